"""Prompt loading and rendering for REINFORCE: unique prompts, split filter, prompt-only templates (SteerLM and a
chat template), the over-length policies with their counts, left padding, and the data module end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf.data.prompts import EncodedPrompt, PromptDataModule, PromptEncoder, PromptStats, collate_prompts, render_prompt, unique_prompts
from rlhf.data.rows import BadRowError, Row
from rlhf.data.templates import TemplateSpec, render_steerlm, split_turns
from rlhf.models.backbone import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}|{% endfor %}"


def _rows(*data: dict) -> list[Row]:
    return [Row(f"test, line {i + 1}", d) for i, d in enumerate(data)]


def test_unique_prompts_keep_order_and_filter_split():
    rows = _rows({"prompt": "b", "split": "train"}, {"prompt": "a", "split": "train"}, {"prompt": "b", "split": "train"},
                 {"prompt": "c", "split": "val"}, {"prompt": "d"})
    stats = PromptStats()
    assert unique_prompts(rows, "train", stats) == ["b", "a", "d"]  # rows without a split field are kept
    assert (stats.rows, stats.unique) == (4, 3)


def test_bad_prompt_rows_raise_or_are_counted():
    rows = _rows({"prompt": "a"}, {"prompt": ""}, {"text": "x"})
    with pytest.raises(BadRowError, match="line 2, field 'prompt'"):
        unique_prompts(rows, None, PromptStats())
    stats = PromptStats()
    assert unique_prompts(rows, None, stats, on_bad_row="skip") == ["a"] and stats.skipped_bad == 2


def test_steerlm_prompt_stops_where_the_response_starts():
    spec = TemplateSpec(name="steerlm", system="")
    text = render_prompt(spec, "Hi there")
    assert text == "<extra_id_0>System\n\n<extra_id_1>User\nHi there\n<extra_id_1>Assistant\n"
    assert render_steerlm(split_turns("Hi there"), "Hello", "") == text + "Hello\n<extra_id_2>"


def test_chat_prompt_uses_the_tokenizer_template(tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    tokenizer.chat_template = CHAT_TEMPLATE
    text = render_prompt(TemplateSpec(name="chat", system="Be brief."), "Hi", tokenizer)
    assert text == "[system]Be brief.|[user]Hi|[assistant]"


def test_overlength_drop_and_truncate_left_are_counted(tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    spec = TemplateSpec(system="")
    short, long = "Tell me about the cat.", "Once upon a time there was a very long story. " * 6 + "What is a cat?"
    limit = len(PromptEncoder(tokenizer, spec, 10_000, "drop").ids(short)) + 5
    stats = PromptStats()
    drop = PromptEncoder(tokenizer, spec, limit, "drop")
    assert drop.encode(short, stats) is not None and drop.encode(long, stats) is None
    assert (stats.dropped, stats.truncated) == (1, 0)
    text, ids = PromptEncoder(tokenizer, spec, limit, "truncate_left").encode(long, stats)
    assert stats.truncated == 1 and len(ids) <= limit
    assert long.endswith(text) and text.endswith("What is a cat?")  # cut from the left, the question kept
    assert ids == PromptEncoder(tokenizer, spec, limit, "drop").ids(text)  # the template survives the cut


def test_truncate_left_takes_whole_turns():
    from tests.test_encode_collate import CharTokenizer  # one id per character

    spec = TemplateSpec(name="steerlm", system="")
    prompt = "u" * 40 + "\n<extra_id_1>Assistant\n" + "a" * 20 + "\n<extra_id_1>User\n" + "last question"
    overhead = len(PromptEncoder(CharTokenizer(), spec, 10_000, "drop").ids(""))
    stats = PromptStats()
    text, ids = PromptEncoder(CharTokenizer(), spec, overhead + len("last question") + 5, "truncate_left").encode(prompt, stats)
    assert text == "last question" and stats.truncated == 1  # a character cut would start with "xtra_id_1>User\n" or so


def test_collate_pads_on_the_left():
    batch = collate_prompts([EncodedPrompt("a", [1, 5, 6]), EncodedPrompt("b", [1, 7])], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 5, 6], [0, 1, 7]]
    assert batch.attention_mask.tolist() == [[True, True, True], [False, True, True]]
    assert batch.prompts == ("a", "b")
    assert batch.to("cpu", non_blocking=True).prompts == ("a", "b")


def test_data_module_on_hh_rlhf_prompts(tiny_llama_dir, tmp_path):
    data = PromptDataModule(path=str(REPO / "data/hh-rlhf/harmless-test-prompts.jsonl"), split=None, tokenizer=str(tiny_llama_dir),
                            template=TemplateSpec(system=""), max_prompt_length=100, batch_size=4, limit=20, shuffle=False)
    data.setup("fit")
    assert data.stats.unique == 2178  # every shipped prompt is distinct
    assert len(data.items) + data.stats.dropped == 20
    batch = next(iter(data.train_dataloader()))
    assert batch.input_ids.shape[0] == 4 and batch.attention_mask[:, -1].all()  # left-padded: every row ends real


def test_data_module_reads_helpsteer2_preference_files(tiny_llama_dir, synthetic_dir):
    data = PromptDataModule(path=str(synthetic_dir / "preference_train.jsonl"), tokenizer=str(tiny_llama_dir), template=TemplateSpec(system=""),
                            max_prompt_length=128, batch_size=2)
    data.setup("fit")
    rows = [json.loads(line) for line in (synthetic_dir / "preference_train.jsonl").read_text().splitlines()]
    assert data.stats.unique == len({r["prompt"] for r in rows}) and len(data.items) == data.stats.unique
    assert {it.text for it in data.items} == {r["prompt"] for r in rows}


def test_data_module_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        PromptDataModule()
    with pytest.raises(ValueError, match="exactly one"):
        PromptDataModule(path="x.jsonl", hub_id="nvidia/HelpSteer2")

"""RewardBench evaluation: hand-computed section weighting, strict ties, padding/batch invariance of model scores,
precomputed scores and their errors, the shipped data's official counts, the training callback and the CLI.

Models are the tiny random Llama of `tiny_llama_dir`; nothing needs a GPU or the network.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from rlhf.data.rows import BadRowError
from rlhf.data.templates import TemplateSpec
from rlhf.eval.rewardbench import evaluate_scores, main
from rlhf.eval.rewardbench_data import BenchPair, load_pairs, load_scores, select
from rlhf.eval.rewardbench_scores import EXAMPLE_COUNTS, FILTERED_ROWS, SUBSET_MAPPING, rewardbench_result, section_scores, subset_accuracy
from rlhf.eval.score_pairs import read_eval_settings, score_pairs

REPO = Path(__file__).resolve().parents[1]
RB_DATA = REPO / "data/rewardbench/filtered.jsonl"

# (subset, score_chosen, score_rejected); accuracies and weights worked out by hand below.
HAND = [
    ("alpacaeval-easy", 2.0, 1.0), ("alpacaeval-easy", 1.0, 2.0), ("alpacaeval-easy", 3.0, 3.0), ("alpacaeval-easy", 5.0, 0.0),  # 2/4 = 0.5 (tie wrong)
    ("mt-bench-easy", 1.0, 0.0),                                              # 1/1 = 1.0
    ("llmbar-natural", 1.0, 1.0), ("llmbar-natural", 2.0, 1.0),               # 1/2 = 0.5 (tie wrong)
    ("donotanswer", 0.0, -1.0), ("donotanswer", -1.0, 0.0),                   # 1/2 = 0.5
    ("xstest-should-respond", 1.0, 0.0),                                      # 1/1 = 1.0
    ("math-prm", 0.2, 0.1),                                                   # 1/1 = 1.0
    ("hep-python", 0.0, 0.0), ("hep-python", 7.0, 7.0),                       # 0/2 = 0.0 (both ties)
]
# Chat      = (0.5·100 + 1.0·28) / (100 + 28)   = 78/128   = 0.609375
# Chat Hard = 0.5·100 / 100                                  = 0.5
# Safety    = (0.5·136 + 1.0·250) / (136 + 250) = 318/386  = 0.8238341969
# Reasoning = (1.0·984 + 0.0·164) / (984 + 164) = 984/1148 = 6/7 = 0.8571428571  (math-prm weighs 984, not 1)
# Overall   = (0.609375 + 0.5 + 0.8238341969 + 0.8571428571) / 4 = 2.7903520540 / 4 = 0.6975880135
HAND_SECTIONS = {"Chat": 78 / 128, "Chat Hard": 0.5, "Safety": 318 / 386, "Reasoning": 6 / 7}
HAND_OVERALL = 0.6975880135


def _hand_result(rows=HAND):
    subsets = [s for s, _, _ in rows]
    return rewardbench_result(subsets, torch.tensor([c for _, c, _ in rows]), torch.tensor([r for _, _, r in rows]))


def test_hand_example_sections_and_overall():
    result = _hand_result()
    assert result.subsets == pytest.approx({"alpacaeval-easy": 0.5, "mt-bench-easy": 1.0, "llmbar-natural": 0.5, "donotanswer": 0.5,
                                            "xstest-should-respond": 1.0, "math-prm": 1.0, "hep-python": 0.0})
    assert result.sections == pytest.approx(HAND_SECTIONS, abs=1e-12)
    assert result.overall == pytest.approx(HAND_OVERALL, abs=1e-9)
    assert result.missing_sections == () and result.n_pairs == len(HAND) and result.truncated is None
    # Without the Safety rows: the mean over the 3 sections present, and Safety is named as missing.
    partial = _hand_result([row for row in HAND if row[0] not in SUBSET_MAPPING["Safety"]])
    assert partial.missing_sections == ("Safety",)
    assert partial.overall == pytest.approx((78 / 128 + 0.5 + 6 / 7) / 3)
    assert any("not the official score" in n for n in partial.notes)


def test_ties_are_wrong():
    chosen, rejected = torch.tensor([1.0, 2.0, 0.5, float("nan")]), torch.tensor([1.0, 1.0, 0.5, 0.0])
    assert subset_accuracy(chosen, rejected) == 0.25  # only 2 > 1 counts; equal scores and NaN are wrong
    assert subset_accuracy(torch.zeros(3), torch.zeros(3)) == 0.0  # a constant model scores 0, not 50
    assert section_scores({"hep-go": 0.0, "math-prm": 1.0}) == {"Reasoning": pytest.approx(984 / 1148)}


@pytest.fixture(scope="module")
def tiny_rm(tiny_llama_dir):
    from rlhf.models.backbone import BackboneSpec, load_tokenizer
    from rlhf.models.heads import HeadSpec
    from rlhf.models.reward_model import build_reward_model

    spec = BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa")
    torch.manual_seed(0)
    return build_reward_model(spec, HeadSpec()), load_tokenizer(str(tiny_llama_dir)), spec


@pytest.fixture(scope="module")
def rb_pairs() -> list[BenchPair]:
    return load_pairs(RB_DATA)


def test_scores_do_not_depend_on_batch_size_padding_or_order(tiny_rm, rb_pairs):
    model, tokenizer, _ = tiny_rm
    pairs = select(rb_pairs, max_per_subset=1) + [BenchPair("custom", "short", "Hi", "Yes.", "No, go away.")]
    model.train()
    run = lambda items, bs, side: score_pairs(model, tokenizer, TemplateSpec(system=""), 96, items, bs, side)  # noqa: E731
    ref = run(pairs, 1, "right")
    assert model.training  # the caller's mode is restored
    assert int(ref.truncated.sum()) == len(pairs) - 1 and not bool(ref.truncated[-1])  # evaluation truncates, never drops
    # code pairs cut at 96 tokens before they differ are the same tokens: an exact tie (wrong) in every configuration
    assert ref.identical.any() and torch.equal(ref.chosen[ref.identical], ref.rejected[ref.identical])
    for bs, side in ((7, "right"), (7, "left"), (1, "left"), (64, "left")):
        other = run(pairs, bs, side)
        torch.testing.assert_close(other.chosen, ref.chosen, atol=1e-5, rtol=0)
        torch.testing.assert_close(other.rejected, ref.rejected, atol=1e-5, rtol=0)
        assert torch.equal(other.chosen > other.rejected, ref.chosen > ref.rejected)
    backwards = run(pairs[::-1], 7, "left")  # scores come back in input order despite length sorting
    torch.testing.assert_close(backwards.chosen.flip(0), ref.chosen, atol=1e-5, rtol=0)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_precomputed_scores_match_the_tensor_path(tmp_path):
    rows = [{"id": str(i), "subset": s, "score_chosen": c, "score_rejected": r} for i, (s, c, r) in enumerate(HAND)]
    result = evaluate_scores(str(_write_jsonl(tmp_path / "s.jsonl", rows)), "hand")
    assert result.sections == pytest.approx(HAND_SECTIONS) and result.overall == pytest.approx(HAND_OVERALL)
    assert result.truncated is None  # no `truncated` flags: unknown, not zero
    flagged = [{**r, "truncated": i == 0} for i, r in enumerate(rows)]
    assert evaluate_scores(str(_write_jsonl(tmp_path / "f.jsonl", flagged)), "hand").n_truncated == 1


@pytest.mark.parametrize(("bad", "match"), [
    ({"score_chosen": None}, "line 2, field 'score_chosen': missing"),
    ({"score_rejected": "0.3"}, "line 2, field 'score_rejected': expected a finite number"),
    ({"score_chosen": True}, "line 2, field 'score_chosen': expected a finite number"),
    ({"subset": ""}, "line 2, field 'subset'"),
    ({"id": None}, "line 2, field 'id': missing"),
    ({"truncated": "yes"}, "line 2, field 'truncated'"),
    ({"id": "0"}, r"line 2: duplicate \(subset, id\) \('mt-bench-easy', '0'\), first seen at .*line 1"),
])
def test_precomputed_bad_row_names_file_line_field(tmp_path, bad, match):
    good = {"id": "0", "subset": "mt-bench-easy", "score_chosen": 1.0, "score_rejected": 0.0}
    second = {k: v for k, v in {**good, "id": "1", **bad}.items() if v is not None}
    path = _write_jsonl(tmp_path / "scores.jsonl", [good, second])
    with pytest.raises(BadRowError, match=match) as err:
        load_scores(path)
    assert str(path) in str(err.value)


def test_shipped_filtered_split_has_the_official_counts(rb_pairs):
    assert len(rb_pairs) == 2985
    assert Counter(p.subset for p in rb_pairs) == FILTERED_ROWS
    assert sorted(EXAMPLE_COUNTS) == sorted(s for members in SUBSET_MAPPING.values() for s in members)
    assert {sec: sum(EXAMPLE_COUNTS[s] for s in m) for sec, m in SUBSET_MAPPING.items()} == {"Chat": 358, "Chat Hard": 456, "Safety": 740, "Reasoning": 1968}
    assert len({(p.subset, p.id) for p in rb_pairs}) == 2985  # ids repeat across subsets, (subset, id) does not


def test_eval_settings_from_checkpoint_config(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "config.yaml").write_text("data:\n  class_path: x\n  init_args:\n    template: {name: steerlm, system: ''}\n    max_length: 77\n")
    settings = read_eval_settings(run / "checkpoint")
    assert settings.template == TemplateSpec(system="") and settings.max_length == 77
    (run / "checkpoint-expo").mkdir()
    shutil.copy(run / "checkpoint" / "config.yaml", run / "config.yaml")  # a run directory's config is not this model's
    with pytest.raises(FileNotFoundError, match="checkpoint-expo: no config.yaml"):
        read_eval_settings(run / "checkpoint-expo")  # never guessed: defaults would score with another template


def test_callback_logs_sections_during_and_after_fit(tiny_llama_dir, synthetic_dir, tmp_path):
    from rlhf.cli import reward_main

    args = [
        f"--model.backbone.name_or_path={tiny_llama_dir}", "--model.backbone.attn_implementation=sdpa", "--model.loss=bt",
        "--model.optimizer=torch.optim.AdamW", "--trainer.max_steps=3", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}", "--seed_everything=0",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
        "--trainer.callbacks+=rlhf.eval.callback.RewardBenchCallback", f"--trainer.callbacks.data_path={RB_DATA}",
        "--trainer.callbacks.every_n_steps=2", "--trainer.callbacks.max_per_subset=2", "--trainer.callbacks.batch_size=32",
        "--data=rlhf.data.datamodules.PreferenceDataModule", f"--data.train_path={synthetic_dir}/preference_train.jsonl",
        f"--data.val_path={synthetic_dir}/preference_val.jsonl", "--data.template.system=", "--data.max_length=128", "--data.overlength=truncate_prompt", "--data.loader.batch_size=2",
    ]
    cli = reward_main(args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    keys = ["rewardbench/chat", "rewardbench/chat_hard", "rewardbench/safety", "rewardbench/reasoning", "rewardbench/overall"]
    for key in keys + ["rewardbench/truncated_fraction"]:
        assert 0.0 <= float(cli.trainer.callback_metrics[key]) <= 1.0, key
    callback = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "RewardBenchCallback")
    assert callback.last_result.n_pairs == 46 and callback.last_result.missing_sections == ()
    assert cli.model.model.training  # train mode restored after each scoring
    with open(next(tmp_path.rglob("metrics.csv")), newline="") as f:
        logged = [row for row in csv.DictReader(f) if row.get("rewardbench/overall")]
    assert [int(row["step"]) for row in logged] == [2, 3]  # every 2 steps, then at the end of training
    assert all(row[k] for row in logged for k in keys)


def test_cli_writes_json_markdown_and_png(tiny_rm, tmp_path):
    from rlhf.models.heads import HeadSpec
    from rlhf.training.checkpoint import save_trained, trained_state_dict

    model, _, spec = tiny_rm
    ckpt = tmp_path / "run" / "checkpoint"
    meta = {"backbone": dataclasses.asdict(spec), "head": dataclasses.asdict(HeadSpec())}
    save_trained(ckpt, trained_state_dict(model), meta, "data:\n  init_args:\n    template: {name: steerlm, system: ''}\n    max_length: 96\n")
    hand = _write_jsonl(tmp_path / "hand.jsonl", [{"id": str(i), "subset": s, "score_chosen": c, "score_rejected": r} for i, (s, c, r) in enumerate(HAND)])
    out = tmp_path / "out"
    results = main(["--checkpoint", str(ckpt), "--scores", str(hand), "--name", "tiny|rm", "--name", "hand",
                    "--data", str(RB_DATA), "--max-per-subset", "1", "--batch-size", "5", "--out", str(out)])
    record = json.loads((out / "rewardbench.json").read_text())
    tiny, hand_rec = record["models"]
    assert tiny["n_pairs"] == 23 and tiny["truncated_pairs"] == 23 and tiny["settings"]["max_length"] == 96
    assert set(tiny["sections"]) == {"chat", "chat_hard", "safety", "reasoning"}
    # --max-per-subset 1 applies to every model: HAND's first row per subset is right except the llmbar-natural
    # and hep-python ties, so Chat 1.0, Chat Hard 0.0, Safety 1.0, Reasoning 984/1148 = 6/7, overall (2 + 6/7)/4.
    assert hand_rec["overall"] == pytest.approx((2 + 6 / 7) / 4) and hand_rec["truncated_pairs"] is None
    table = (out / "rewardbench.md").read_text()
    assert "| Model | Overall | Chat | Chat-Hard | Safety | Reasoning |" in table
    assert "| hand | 71.4 | 100.0 | 0.0 | 100.0 | 85.7 |" in table and "tiny\\|rm" in table
    assert "23 of 23 pairs truncated" in table
    assert (out / "rewardbench.png").read_bytes()[:4] == b"\x89PNG"
    again = evaluate_scores(str(out / "scores" / "tiny_rm.jsonl"), "again")  # our own scores re-tabulate identically
    assert again.sections == results[0].sections and again.n_truncated == 23

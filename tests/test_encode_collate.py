"""Over-length policies (drop, truncate_prompt, truncate) with their counts, collation order and schedules."""

from __future__ import annotations

import pytest
import torch

from rlhf.data.collate import EncodedPair, EncodedRating, collate_preferences, collate_ratings, pad
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.templates import TemplateSpec
from rlhf.training.schedules import WarmupConstantLR


class CharTokenizer:
    """One id per character plus BOS, enough to count lengths exactly."""

    def __call__(self, text: str, add_special_tokens: bool = True, verbose: bool = True) -> dict:
        return {"input_ids": ([1] if add_special_tokens else []) + [3 + (ord(c) % 90) for c in text]}


def _encoder(max_length: int) -> Encoder:
    return Encoder(CharTokenizer(), TemplateSpec(name="steerlm", system=""), max_length)


def test_short_examples_pass_untouched():
    enc, stats = _encoder(200), EncodeStats()
    ids = enc.encode("Hi?", ["Yes.", "No."], "drop", stats)
    assert ids is not None and len(ids) == 2 and stats.truncated == stats.dropped == 0 and stats.total == 1
    assert ids[0] == enc.ids("Hi?", "Yes.")


def test_drop_policy_drops_the_whole_pair():
    enc = _encoder(100)
    overhead = len(enc.ids("", ""))
    stats = EncodeStats()
    assert enc.encode("p" * 100, ["short", "also short"], "drop", stats) is None
    assert (stats.total, stats.dropped, stats.truncated) == (1, 1, 0)
    assert overhead < 100


def test_truncate_prompt_cuts_from_the_left_with_one_cut_for_both():
    enc, stats = _encoder(110), EncodeStats()  # the empty-system template alone is 74 tokens
    prompt = "".join(chr(ord("a") + i % 26) for i in range(100))
    ids = enc.encode(prompt, ["short", "a longer answer"], "truncate_prompt", stats)
    assert ids is not None and max(len(x) for x in ids) == 110  # the longer response fills the limit exactly
    assert (stats.truncated, stats.dropped) == (1, 0)
    kept = len(ids[1]) - len(enc.ids("", "a longer answer"))
    assert ids[0] == enc.ids(prompt[len(prompt) - kept :], "short")  # the same prompt suffix for both responses


def test_truncate_prompt_drops_when_the_response_alone_is_too_long():
    enc, stats = _encoder(100), EncodeStats()
    assert enc.encode("question", ["r" * 100, "ok"], "truncate_prompt", stats) is None
    assert stats.dropped == 1


def test_evaluation_rule_never_drops():
    enc, stats = _encoder(100), EncodeStats()
    ids = enc.encode("question", ["r" * 100, "ok"], "truncate", stats)
    assert ids is not None and len(ids[0]) == 100 and ids[1] == enc.ids("", "ok")
    assert (stats.truncated, stats.dropped) == (1, 0)
    closing = len(enc.ids("", "")) - len(enc.open_ids("", ""))  # "\n<extra_id_2>": 13 characters
    assert ids[0] == enc.open_ids("", "r" * (100 - len(enc.open_ids("", ""))))  # cut, and left open: no closing tokens
    assert ids[0][-closing:] != enc.ids("", "")[-closing:] and closing == 13


def test_prompt_cuts_take_whole_turns_never_part_of_a_marker():
    # 3 turns; with 1 token per character the minimal left cut would land inside "\n<extra_id_1>User\n"
    prompt = "u" * 40 + "\n<extra_id_1>Assistant\n" + "a" * 20 + "\n<extra_id_1>User\n" + "last question"
    overhead = len(_encoder(1000).ids("", "ok"))
    enc, stats = _encoder(overhead + len("last question") + 5), EncodeStats()  # room for 5 more characters
    ids = enc.encode(prompt, ["ok"], "truncate_prompt", stats)
    assert ids == [enc.ids("last question", "ok")] and stats.truncated == 1  # the whole last user turn, nothing of the marker
    enc = _encoder(overhead + 5)  # only the last turn's tail fits: cut inside its text
    assert enc.encode(prompt, ["ok"], "truncate", EncodeStats()) == [enc.ids("stion", "ok")]


def test_collate_preferences_stacks_chosen_over_rejected():
    items = [EncodedPair([1, 2, 3], [1, 4], 2), EncodedPair([1, 5], [1, 6, 7, 8], 1)]
    batch = collate_preferences(items, pad_id=0, side="right")
    assert batch.input_ids.tolist() == [[1, 2, 3, 0], [1, 5, 0, 0], [1, 4, 0, 0], [1, 6, 7, 8]]
    assert batch.attention_mask.dtype == torch.bool and batch.margin.tolist() == [2.0, 1.0]
    left = collate_preferences(items, pad_id=0, side="left")
    assert left.input_ids[0].tolist() == [0, 1, 2, 3] and left.num_pairs == 2


def test_collate_ratings_and_device_move():
    batch = collate_ratings([EncodedRating([1, 2], (3.0, 0, 0, 0, 0), (True, False, False, False, False))], pad_id=0)
    assert batch.labels.shape == (1, 5) and batch.label_mask.tolist() == [[True, False, False, False, False]]
    moved = batch.to("cpu")
    assert moved is not batch and torch.equal(moved.input_ids, batch.input_ids)


def test_pad_rejects_empty():
    with pytest.raises(ValueError):
        pad([[1], []], pad_id=0)


def test_warmup_then_constant():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupConstantLR(opt, warmup_steps=4)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]

"""`python -m rlhf.reward.score` on the pair formats: the real hh-rlhf and conversational files score with no conversion.

The same texts give the same rewards whatever format carries them; empty replies are scored and counted; ties
are scored and left out of the accuracy; `--on-bad-row skip` skips and counts malformed rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf.data.rows import BadRowError
from rlhf.reward import score
from tests.test_reward_module import _args, _fit

REPO = Path(__file__).resolve().parents[1]
HH = REPO / "data/hh-rlhf/harmless-base-test-pairs-first1500.jsonl"
CONVERSATIONAL = REPO / "data/helpsteer2-preference/first100-conversational.jsonl"


@pytest.fixture(scope="module")
def rm(tiny_llama_dir, synthetic_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("score-formats")
    _fit(_args(tiny_llama_dir, synthetic_dir, root, "bt", ("--trainer.max_steps=1",)))
    return root / "checkpoint"


def _score(rm: Path, rows_path: Path, out: Path, *extra: str) -> tuple[dict, list[dict]]:
    summary = score.main(["--model", str(rm), "--input", str(rows_path), "--output", str(out), *extra])
    return summary, [json.loads(line) for line in out.read_text().splitlines()]


def test_hh_rlhf_file_scores_with_empty_replies_and_skips(rm: Path, tmp_path: Path) -> None:
    lines = HH.read_text().splitlines(keepends=True)
    sample = tmp_path / "hh.jsonl"
    sample.write_text("".join(lines[84:88] + [lines[1254]]))  # line 87 has an empty chosen reply; 1255 is mismatched
    with pytest.raises(BadRowError, match=r"hh\.jsonl, line 5, field 'rejected': mismatched shared turns"):
        _score(rm, sample, tmp_path / "o.jsonl")
    summary, rows = _score(rm, sample, tmp_path / "o.jsonl", "--on-bad-row", "skip")
    assert (summary["format"], summary["rows"], summary["skipped_bad"], summary["empty_responses"]) == ("hh_rlhf", 4, 1, 1)
    assert "transcript" in summary["format_evidence"] and len(rows) == 4
    explicit = tmp_path / "explicit.jsonl"  # the same pair as explicit-prompt rows: the same rewards
    from rlhf.data.formats import load_pairs

    pairs, _, _ = load_pairs(sample, on_bad_row="skip")
    explicit.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in pairs))
    _, same = _score(rm, explicit, tmp_path / "e.jsonl")
    assert [(r["score_chosen"], r["score_rejected"]) for r in rows] == [(r["score_chosen"], r["score_rejected"]) for r in same]


def test_conversational_file_scores_ties_apart(rm: Path, tmp_path: Path) -> None:
    sample = tmp_path / "conv.jsonl"
    sample.write_text("".join(CONVERSATIONAL.read_text().splitlines(keepends=True)[:6]))
    summary, rows = _score(rm, sample, tmp_path / "o.jsonl")
    strengths = [json.loads(line)["preference_strength"] for line in sample.read_text().splitlines()]
    assert summary["format"] == "conversational" and summary["rows"] == 6
    assert [r["tie"] for r in rows] == [s == 0 for s in strengths] and summary["ties"] == strengths.count(0)
    counted = [r for r in rows if not r["tie"]]
    assert summary["accuracy"] == sum(r["score_chosen"] > r["score_rejected"] for r in counted) / len(counted)


def test_messages_rows_score_like_prompt_response_rows(rm: Path, tmp_path: Path) -> None:
    messages = tmp_path / "m.jsonl"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Cat?"}]
    messages.write_text(json.dumps({"messages": [*turns, {"role": "assistant", "content": ""}]}) + "\n")
    plain = tmp_path / "p.jsonl"
    plain.write_text(json.dumps({"prompt": "Hi\n<extra_id_1>Assistant\nHello.\n<extra_id_1>User\nCat?", "response": ""}) + "\n")
    summary, rows = _score(rm, messages, tmp_path / "o1.jsonl")
    _, same = _score(rm, plain, tmp_path / "o2.jsonl")
    assert summary["kind"] == "responses" and summary["empty_responses"] == 1  # an empty reply is scored
    assert rows[0]["reward"] == same[0]["reward"]

"""`python -m rlhf.reward.score` on every model format, and the ExPO command and α sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlhf.reward import expo, score
from rlhf.reward.export import export_adapter, export_hf

REPO = Path(__file__).resolve().parents[1]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_pairs_and_responses_on_every_format(trained, tmp_path):
    ckpt = trained / "s2" / "checkpoint"
    export_hf(ckpt, tmp_path / "hf")
    export_adapter(ckpt, tmp_path / "adapter")
    pairs = _write(tmp_path / "pairs.jsonl", [
        {"prompt": "Tell me about the cat.", "chosen": "The cat is soft.", "rejected": "cat cat cat", "tag": 1},
        {"prompt": "What is a dog like?", "chosen": "The dog runs fast.", "rejected": "fast runs dog the", "tag": 2},
        {"prompt": "Tell me about the sun." * 30, "chosen": "It is hot.", "rejected": "It is cold.", "tag": 3},
    ])
    results = {}
    for fmt in ("checkpoint", "hf", "adapter"):
        model = ckpt if fmt == "checkpoint" else tmp_path / fmt
        summary = score.main(["--model", str(model), "--input", str(pairs), "--output", str(tmp_path / f"{fmt}.jsonl"), "--batch-size", "2"])
        assert summary["kind"] == "pairs" and summary["rows"] == 3 and summary["truncated"] == 1  # the long prompt
        rows = [json.loads(line) for line in (tmp_path / f"{fmt}.jsonl").read_text().splitlines()]
        assert [r["tag"] for r in rows] == [1, 2, 3] and [r["truncated"] for r in rows] == [False, False, True]
        assert summary["accuracy"] == sum(r["score_chosen"] > r["score_rejected"] for r in rows) / 3
        results[fmt] = torch.tensor([[r["score_chosen"], r["score_rejected"]] for r in rows])
    torch.testing.assert_close(results["hf"], results["checkpoint"], atol=1e-5, rtol=0)
    assert torch.equal(results["adapter"], results["checkpoint"])

    responses = _write(tmp_path / "responses.jsonl", [{"prompt": "Tell me about the cat.", "response": "The cat is soft."}])
    summary = score.main(["--model", str(ckpt), "--input", str(responses), "--output", str(tmp_path / "r.jsonl")])
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert summary["kind"] == "responses" and row["reward"] == pytest.approx(results["checkpoint"][0, 0].item(), abs=1e-6)
    assert list(row["outputs"]) == ["helpfulness"]


def test_score_rejects_mixed_rows(trained, tmp_path):
    bad = _write(tmp_path / "mixed.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "response": "b"}])
    with pytest.raises(ValueError, match="line 2, field 'chosen'"):
        score.main(["--model", str(trained / "s2" / "checkpoint"), "--input", str(bad), "--output", str(tmp_path / "o.jsonl")])


def test_expo_command_and_sweep(trained, synthetic_dir, tmp_path):
    weak, strong = str(trained / "s1" / "checkpoint"), str(trained / "s2" / "checkpoint")
    expo.main(["--weak", weak, "--strong", strong, "--alpha", "0.0", "--out", str(tmp_path / "a0")])
    a0, s = score.load_scorer(tmp_path / "a0")[0], score.load_scorer(strong)[0]
    ids, mask = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 0, 0]]), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():  # alpha 0 is the strong model (as a rank-2r LoRA whose second half is zero)
        torch.testing.assert_close(a0(ids, mask), s(ids, mask))
    rows = expo.main(["--weak", weak, "--strong", strong, "--out", str(tmp_path / "sweep"), "--sweep", "0", "0.5",
                      "--val-pairs", f"{synthetic_dir}/preference_val.jsonl", "--rewardbench", str(REPO / "data/rewardbench/filtered.jsonl"), "--max-per-subset", "1"])
    report = json.loads((tmp_path / "sweep" / "expo_sweep.json").read_text())
    assert [r["alpha"] for r in rows] == [0.0, 0.5] and report["best_alpha"] in (0.0, 0.5)
    assert {"validation/accuracy", "rewardbench/overall", "rewardbench/accuracy"} <= set(rows[0])

"""The fixed SmolLM2 recipe splits: sizes, no overlap between training and held-out pairs, prompts the RM never saw."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf.data.formats import load_pairs
from rlhf.results.smollm2_data import write_splits

REPO = Path(__file__).resolve().parents[1]


def test_splits_are_fixed_and_disjoint(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    files = write_splits(tmp_path)
    count = {name: len(path.read_text().splitlines()) for name, path in files.items()}
    assert count == {"ratings_train": 450, "ratings_val": 50, "hh_val": 299, "hs2p_test": 5, "pairs_train": 1295,
                     "prompts_train": 705, "prompts_eval": 32}
    train, _, _ = load_pairs(files["pairs_train"])  # the 27 HelpSteer2-Preference training ties dropped (magnitude 0)
    val, _, _ = load_pairs(files["hh_val"])
    assert len(train) == 1295 - 27 and len(val) == 299
    assert not {(p.prompt, p.chosen) for p in train} & {(p.prompt, p.chosen) for p in val}
    seen = {p.prompt.split("\n<extra_id_1>")[0].strip() for p in train + val}
    prompts = [json.loads(line)["prompt"].strip() for name in ("prompts_train", "prompts_eval") for line in files[name].read_text().splitlines()]
    assert prompts and not set(prompts) & seen
    assert not {json.loads(l)["prompt"] for l in files["prompts_eval"].read_text().splitlines()} & {json.loads(l)["prompt"] for l in files["prompts_train"].read_text().splitlines()}

"""`rlhf.data.rows` + `rlhf.data.helpsteer2`: pair sign convention, drops and their counts, exact error messages.

Every bad-input case checks that the message names the file, the line (or row) and the field.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf.data.helpsteer2 import (
    hub_preference_rows,
    hub_rating_rows,
    load_preference_pairs,
    load_rating_examples,
    parse_preference_row,
)
from rlhf.data.rows import BadRowError, Row, read_rows
from rlhf.types import PreferencePair

PAIR = {"prompt": "Tell me about the cat.", "response_1": "A", "response_2": "B", "preference_strength": -2}
RATING = {"prompt": "P", "response": "R", "helpfulness": 3, "correctness": 4, "coherence": 2, "complexity": 1,
          "verbosity": 0}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_sign_convention(tmp_path: Path) -> None:
    rows = [{**PAIR, "preference_strength": s} for s in (-3, -1, 1, 3)]
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    assert pairs == [
        PreferencePair("Tell me about the cat.", chosen="A", rejected="B", magnitude=3),
        PreferencePair("Tell me about the cat.", chosen="A", rejected="B", magnitude=1),
        PreferencePair("Tell me about the cat.", chosen="B", rejected="A", magnitude=1),
        PreferencePair("Tell me about the cat.", chosen="B", rejected="A", magnitude=3),
    ]
    assert (stats.rows, stats.kept) == (4, 4)


def test_zero_strength_dropped_and_counted(tmp_path: Path) -> None:
    rows = [{**PAIR, "preference_strength": s} for s in (0, 2, 0)]
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    assert [p.magnitude for p in pairs] == [2]
    assert (stats.rows, stats.kept, stats.dropped_zero_strength, stats.dropped_spread) == (3, 1, 2, 0)
    assert "2 zero-strength" in stats.summary()
    assert parse_preference_row(Row("x", {**PAIR, "preference_strength": 0})) is None


def test_raw_annotations_are_aggregated(tmp_path: Path) -> None:
    base = {k: v for k, v in PAIR.items() if k != "preference_strength"}

    def raw(*strengths: int) -> dict[str, Any]:
        return base | {"all_preferences_unprocessed": [{"strength": s, "justification": "j"} for s in strengths]}

    rows = [
        raw(2, 3, 3),  # 8/3 -> 3
        raw(-3, 1, 1),  # spread 4 -> dropped as spread
        raw(1, -1, 1),  # 1/3 -> 0 -> dropped as zero strength
        raw(-100, -100, -100),  # nothing valid -> dropped as spread
        raw(-3, -3, -3) | {"preference_strength": None},  # null counts as absent
        base | {"strengths": [-1, -2]},  # -3/2 -> -2 (half away from zero)
        raw(-1, -1, -1) | {"preference_strength": 2},  # a stored aggregate wins over the raw annotations
    ]
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    assert [(p.chosen, p.magnitude) for p in pairs] == [("B", 3), ("A", 3), ("A", 2), ("B", 2)]
    assert (stats.rows, stats.kept, stats.dropped_zero_strength, stats.dropped_spread) == (7, 4, 1, 2)


def test_spread_filter_runs_beside_a_stored_strength(tmp_path: Path) -> None:
    """Hub rows carry `preference_strength` AND the annotations: the paper's filter must still drop spread > 2."""
    def hub(stored: int, triple: list[int], raw: list[int] | None = None) -> dict[str, Any]:
        row = PAIR | {"preference_strength": stored,
                      "three_most_similar_preferences": [{"statement": "s", "elaboration": "e", "strength": t} for t in triple]}
        return row | ({"all_preferences_unprocessed": [{"strength": r, "justification": "j"} for r in raw]} if raw else {})

    rows = [
        hub(-1, [-3, -1, 1]),  # NVIDIA's own triple spreads by 4: dropped although a strength is stored
        hub(2, [1, 2, 3], raw=[1, 2, 3, -3]),  # triple spread 2 passes; the stored strength is used
        hub(-2, [-100, -2, -2]),  # "neither valid" left out of the spread
        PAIR | {"preference_strength": 1, "all_preferences_unprocessed": [{"strength": s} for s in (-3, 0, 3)]},  # no triple: ours, spread 3
        PAIR | {"preference_strength": 3},  # no annotations: nothing to filter
    ]
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "hub.jsonl", rows))
    assert [(p.chosen, p.magnitude) for p in pairs] == [("B", 2), ("A", 2), ("B", 3)]
    assert (stats.rows, stats.kept, stats.dropped_spread, stats.annotated) == (5, 3, 2, 4)
    assert "2 high-spread (spread filter on 4 annotated rows)" in stats.summary()


def test_data_module_prints_the_paper_counts_beside(tmp_path: Path, tiny_llama_dir, monkeypatch) -> None:
    from rlhf.data import loaders
    from rlhf.data.datamodules import PreferenceDataModule
    from rlhf.data.templates import TemplateSpec

    annotated = PAIR | {"three_most_similar_preferences": [{"strength": s} for s in (-2, -2, -1)]}
    train = write_jsonl(tmp_path / "t.jsonl", [annotated, annotated | {"three_most_similar_preferences": [{"strength": s} for s in (-3, 0, 1)]}])
    val = write_jsonl(tmp_path / "v.jsonl", [PAIR])
    messages: list[str] = []
    monkeypatch.setattr(loaders, "rank_zero_info", messages.append)  # the data modules' base logs the counts
    PreferenceDataModule(train_path=str(train), val_path=str(val), tokenizer=str(tiny_llama_dir), template=TemplateSpec(system=""), max_length=64).setup("fit")
    train_msg = next(m for m in messages if "preference/train" in m)
    assert "kept 1" in train_msg and "1 high-spread (spread filter on 2 annotated rows); " in train_msg
    assert "empty responses (kept); the paper kept 6,766 train pairs" in train_msg
    assert "paper" not in next(m for m in messages if "preference/val" in m)  # no annotations: no comparison


def test_rating_modes(tmp_path: Path) -> None:
    helpful_only = {"prompt": "P", "response": "R", "helpfulness": 2, "extra": "ignored"}
    path = write_jsonl(tmp_path / "r.jsonl", [RATING, helpful_only])
    examples, stats = load_rating_examples(path, helpfulness_only=True)
    assert examples[0].labels == (3.0, 0.0, 0.0, 0.0, 0.0)
    assert examples[1].label_mask == (True, False, False, False, False)
    examples, _ = load_rating_examples(write_jsonl(tmp_path / "s.jsonl", [RATING]), helpfulness_only=False)
    assert examples[0].labels == (3.0, 4.0, 2.0, 1.0, 0.0) and all(examples[0].label_mask)
    with pytest.raises(BadRowError, match=r"r\.jsonl, line 2, field 'correctness': missing"):
        load_rating_examples(path, helpfulness_only=False)


def test_disagreement_lists_are_aggregated(tmp_path: Path) -> None:
    row = {**RATING, "helpfulness": [0, 4, 3, 3], "verbosity": [1, 2]}
    examples, _ = load_rating_examples(write_jsonl(tmp_path / "r.jsonl", [row]), helpfulness_only=False)
    assert examples[0].labels == (3.0, 4.0, 2.0, 1.0, 2.0)


BAD_PREFERENCES = [
    ("strength outside -3..3", {**PAIR, "preference_strength": 5},
     "field 'preference_strength': expected an integer in -3..3, got 5"),
    ("strength 2.5", {**PAIR, "preference_strength": 2.5},
     "field 'preference_strength': expected an integer in -3..3, got non-integer 2.5"),
    ("strength 2.0", {**PAIR, "preference_strength": 2.0},
     "field 'preference_strength': expected an integer in -3..3, got non-integer 2.0"),
    ("bool strength", {**PAIR, "preference_strength": True},
     "field 'preference_strength': expected an integer in -3..3, got a bool True"),
    ("string strength", {**PAIR, "preference_strength": "2"},
     "field 'preference_strength': expected an integer in -3..3, got a string '2'"),
    ("missing field", {k: v for k, v in PAIR.items() if k != "response_2"}, "field 'response_2': missing"),
    ("missing strength", {k: v for k, v in PAIR.items() if k != "preference_strength"},
     "field 'preference_strength': missing"),
    ("empty prompt", {**PAIR, "prompt": ""},
     "field 'prompt': expected a non-empty string, got an empty or whitespace-only string"),
    ("list response", {**PAIR, "response_1": ["a"]}, "field 'response_1': expected a string, got list"),
    ("list prompt", {**PAIR, "prompt": ["a"]}, "field 'prompt': expected a non-empty string, got a list"),
    ("null prompt", {**PAIR, "prompt": None}, "field 'prompt': missing"),
    ("bad raw strength", {**PAIR, "preference_strength": None,
                          "all_preferences_unprocessed": [{"strength": 1}, {"strength": 7}]},
     "field 'all_preferences_unprocessed[1].strength': expected an integer in -3..3 or -100, got 7"),
    ("raw annotation without strength", {**PAIR, "preference_strength": None, "all_preferences_unprocessed": ["x"]},
     "field 'all_preferences_unprocessed[0]': expected an object with a 'strength'"),
    ("empty raw list", {**PAIR, "preference_strength": None, "all_preferences_unprocessed": []},
     "field 'all_preferences_unprocessed': expected a non-empty list, got an empty list"),
    ("bad strengths element", {**PAIR, "preference_strength": None, "strengths": [1, 0.5]},
     "field 'strengths[1]': expected an integer in -3..3 or -100, got non-integer 0.5"),
]
BAD_RATINGS = [
    ("rating outside 0..4", {**RATING, "coherence": 5}, "field 'coherence': expected an integer in 0..4, got 5"),
    ("negative rating", {**RATING, "helpfulness": -1}, "field 'helpfulness': expected an integer in 0..4, got -1"),
    ("non-integer rating", {**RATING, "verbosity": 3.5},
     "field 'verbosity': expected an integer in 0..4, got non-integer 3.5"),
    ("bool rating", {**RATING, "complexity": False},
     "field 'complexity': expected an integer in 0..4, got a bool False"),
    ("bad list rating", {**RATING, "helpfulness": [3, 4, 9]},
     "field 'helpfulness[2]': expected an integer in 0..4, got 9"),
    ("null response", {**RATING, "response": None}, "field 'response': missing"),
]


def test_empty_responses_are_kept_and_counted(tmp_path: Path) -> None:
    """An empty reply is a real response (policies produce them): kept, and counted in the summary."""
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", [{**PAIR, "response_1": ""}, {**PAIR, "response_2": " \n"}, PAIR]))
    assert [(p.chosen, p.rejected) for p in pairs] == [("", "B"), ("A", " \n"), ("A", "B")]
    assert stats.empty_responses == 2 and "2 empty responses (kept)" in stats.summary()
    examples, stats = load_rating_examples(write_jsonl(tmp_path / "r.jsonl", [{**RATING, "response": ""}]), helpfulness_only=False)
    assert examples[0].response == "" and stats.empty_responses == 1


@pytest.mark.parametrize(("kind", "row", "message"), BAD_PREFERENCES, ids=[c[0] for c in BAD_PREFERENCES])
def test_bad_preference_rows(tmp_path: Path, kind: str, row: dict[str, Any], message: str) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [PAIR, "", row])  # the blank line still counts: the bad row is line 3
    with pytest.raises(BadRowError) as info:
        load_preference_pairs(path)
    assert str(info.value) == f"{path}, line 3, {message}"


@pytest.mark.parametrize(("kind", "row", "message"), BAD_RATINGS, ids=[c[0] for c in BAD_RATINGS])
def test_bad_rating_rows(tmp_path: Path, kind: str, row: dict[str, Any], message: str) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [RATING, row])
    with pytest.raises(BadRowError) as info:
        load_rating_examples(path, helpfulness_only=False)
    assert str(info.value) == f"{path}, line 2, {message}"


def test_bad_json_and_non_object_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [PAIR, '{"prompt": "x",'])
    with pytest.raises(BadRowError, match=r"p\.jsonl, line 2: invalid JSON \(") as info:
        load_preference_pairs(path)
    assert str(info.value).startswith(f"{path}, line 2: invalid JSON")
    path = write_jsonl(tmp_path / "q.jsonl", [PAIR, [1, 2]])
    with pytest.raises(BadRowError) as info:
        read_rows(path)
    assert str(info.value) == f"{path}, line 2: expected a JSON object, got a list (JSON Lines needs one object per line, not a JSON array)"


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        load_preference_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "p.csv").write_text("prompt\n")
    with pytest.raises(ValueError, match=r"p\.csv: unknown file type '\.csv'; expected \.jsonl or \.parquet"):
        load_preference_pairs(tmp_path / "p.csv")


def test_skip_counts_bad_rows(tmp_path: Path) -> None:
    rows = [PAIR, "not json", {**PAIR, "preference_strength": 9}, {**PAIR, "preference_strength": 0}, [1], PAIR]
    pairs, stats = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", rows), on_bad_row="skip")
    assert (stats.rows, stats.kept, stats.skipped_bad, stats.dropped_zero_strength) == (6, 2, 3, 1)
    assert pairs == [parse_preference_row(Row("x", PAIR))] * 2
    examples, stats = load_rating_examples(write_jsonl(tmp_path / "r.jsonl", [RATING, {**RATING, "prompt": ""}]),
                                           helpfulness_only=True, on_bad_row="skip")
    assert (len(examples), stats.kept, stats.skipped_bad) == (1, 1, 1)


def test_parquet_round_trip(tmp_path: Path) -> None:
    rows = [PAIR, {**PAIR, "preference_strength": 3}, {**PAIR, "preference_strength": 0}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    pairs, stats = load_preference_pairs(tmp_path / "p.parquet")
    assert [(p.chosen, p.magnitude) for p in pairs] == [("A", 2), ("B", 3)]
    assert stats.dropped_zero_strength == 1
    pq.write_table(pa.Table.from_pylist([PAIR, {**PAIR, "prompt": " "}]), tmp_path / "bad.parquet")
    with pytest.raises(BadRowError, match=r"bad\.parquet, row 1, field 'prompt': expected a non-empty string"):
        load_preference_pairs(tmp_path / "bad.parquet")


def test_pre_read_rows_share_the_parser() -> None:
    rows = [Row("hub:nvidia/HelpSteer2/preference, row 17", {**PAIR, "preference_strength": 4})]
    with pytest.raises(BadRowError, match=r"^hub:nvidia/HelpSteer2/preference, row 17, field 'preference_strength'"):
        load_preference_pairs(rows)


def test_hub_loaders_with_a_fake_datasets_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str | None]] = []

    def load_dataset(repo_id: str, data_dir: str | None = None) -> dict[str, list[dict[str, Any]]]:
        calls.append((repo_id, data_dir))
        if data_dir == "preference":
            return {"train": [{**PAIR, "split": "train"}, {**PAIR, "split": "val"}, {**PAIR, "split": "train"}]}
        return {"train": [RATING], "validation": [RATING, RATING]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    rows = hub_preference_rows("train")
    assert [r.source for r in rows] == [
        "hub:nvidia/HelpSteer2/preference, row 0", "hub:nvidia/HelpSteer2/preference, row 2"]
    assert [r.source for r in hub_preference_rows("val")] == ["hub:nvidia/HelpSteer2/preference, row 1"]
    assert [r.source for r in hub_rating_rows("validation", repo_id="me/HS2")] == [
        "hub:me/HS2/validation, row 0", "hub:me/HS2/validation, row 1"]
    assert calls[0] == ("nvidia/HelpSteer2", "preference") and calls[-1] == ("me/HS2", None)
    assert len(load_preference_pairs(rows)[0]) == 2

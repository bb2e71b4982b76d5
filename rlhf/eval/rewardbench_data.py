"""RewardBench rows: text pairs from local JSONL/Parquet or the hub, and precomputed per-pair scores.

Pairs are `prompt, chosen, rejected, subset` with an optional `id`; rows are keyed by `(subset, id)` because
`id` repeats across subsets. Precomputed scores are `id, subset, score_chosen, score_rejected` (optional
`truncated`), so any reward model's outputs tabulate like ours; `write_scores` writes that format. Every error
names the file and line (or hub row) and the field. The hub path (`allenai/reward-bench`, split "filtered")
imports `datasets` lazily and needs network; tests never call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, TypeVar

from rlhf.data.rows import BadRowError, Row, field_error, has_field, read_rows, require_field, require_text
from rlhf.files import json_line, open_atomic

HUB_ID = "allenai/reward-bench"


@dataclass(frozen=True)
class BenchPair:
    """One RewardBench comparison in text form; `id` is a string (the row index when the file has none)."""

    subset: str
    id: str
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class PairScore:
    """A precomputed comparison: rewards of the chosen and rejected response; `truncated` None when unknown."""

    subset: str
    id: str
    chosen: float
    rejected: float
    truncated: bool | None = None


class _HasSubset(Protocol):
    subset: str
    id: str


T = TypeVar("T", bound=_HasSubset)


def _row_id(row: Row, fallback: int | None) -> str:
    if not has_field(row, "id"):
        if fallback is None:
            raise field_error(row, "id", "missing")
        return str(fallback)
    value = row.data["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise field_error(row, "id", f"expected a string or an integer, got {value!r}")
    return str(value)


def parse_pair(row: Row, index: int) -> BenchPair:
    """A RewardBench row → BenchPair; `index` stands in for a missing id."""
    texts = {name: require_text(row, name) for name in ("subset", "prompt", "chosen", "rejected")}
    return BenchPair(id=_row_id(row, index), **texts)


def _score(row: Row, name: str) -> float:
    value = require_field(row, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(row, name, f"expected a finite number, got {value!r}")
    return float(value)


def parse_score(row: Row) -> PairScore:
    """A precomputed-score row → PairScore (id required; `truncated`, if present, must be a bool)."""
    truncated = row.data.get("truncated")
    if truncated is not None and not isinstance(truncated, bool):
        raise field_error(row, "truncated", f"expected true or false, got {truncated!r}")
    return PairScore(require_text(row, "subset"), _row_id(row, None), _score(row, "score_chosen"), _score(row, "score_rejected"), truncated)


def _unique(items: Sequence[T], sources: Sequence[str]) -> list[T]:
    seen: dict[tuple[str, str], str] = {}
    for item, source in zip(items, sources):
        key = (item.subset, item.id)
        if key in seen:
            raise BadRowError(f"{source}: duplicate (subset, id) {key}, first seen at {seen[key]}")
        seen[key] = source
    return list(items)


def load_pairs(path: str | Path) -> list[BenchPair]:
    """Every pair of a RewardBench-format `.jsonl` / `.parquet` file (BadRowError on the first bad row)."""
    rows = read_rows(path)
    return _unique([parse_pair(row, i) for i, row in enumerate(rows)], [row.source for row in rows])


def hub_pairs(repo_id: str = HUB_ID, split: str = "filtered") -> list[BenchPair]:
    """The hub copy of RewardBench (needs network and the `datasets` package)."""
    from datasets import load_dataset  # lazy: only hub users pay for it

    rows = [Row(f"hub:{repo_id}/{split}, row {i}", dict(record)) for i, record in enumerate(load_dataset(repo_id, split=split))]
    return _unique([parse_pair(row, i) for i, row in enumerate(rows)], [row.source for row in rows])


def load_scores(path: str | Path) -> list[PairScore]:
    """Every row of a precomputed-scores `.jsonl` / `.parquet` file (BadRowError on the first bad row)."""
    rows = read_rows(path)
    return _unique([parse_score(row) for row in rows], [row.source for row in rows])


def select(items: Sequence[T], subsets: Sequence[str] | None = None, max_per_subset: int | None = None) -> list[T]:
    """Keep the named subsets (all when None) and at most the first `max_per_subset` items of each, in order.

    Raises:
        ValueError: a named subset has no item (the message lists the subsets that exist).
    """
    present = {item.subset for item in items}
    unknown = [s for s in subsets or () if s not in present]
    if unknown:
        raise ValueError(f"subsets {unknown} are not in the data; it has {sorted(present)}")
    kept, seen = [], dict.fromkeys(present, 0)
    for item in items:
        if (subsets is None or item.subset in subsets) and (max_per_subset is None or seen[item.subset] < max_per_subset):
            seen[item.subset] += 1
            kept.append(item)
    return kept


def write_scores(path: str | Path, pairs: Sequence[BenchPair], chosen: Sequence[float], rejected: Sequence[float], truncated: Sequence[bool]) -> Path:
    """Write one precomputed-score row per pair (the format `load_scores` reads)."""
    path = Path(path)
    with open_atomic(path) as f:
        for p, c, r, t in zip(pairs, chosen, rejected, truncated, strict=True):
            f.write(json_line({"id": p.id, "subset": p.subset, "score_chosen": c, "score_rejected": r, "truncated": bool(t)}))
    return path


def preference_file_pairs(path: str | Path, subset: str = "validation") -> list[BenchPair]:
    """HelpSteer2-Preference rows (kept pairs only) as comparisons, e.g. to score a validation split like RewardBench."""
    from rlhf.data.helpsteer2 import load_preference_pairs

    pairs, _ = load_preference_pairs(path)
    return [BenchPair(subset, str(i), p.prompt, p.chosen, p.rejected) for i, p in enumerate(pairs)]

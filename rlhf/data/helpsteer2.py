"""HelpSteer2 rows -> typed examples: preference pairs (spec §1.2) and attribute ratings (spec §1.1).

Pair convention (NeMo-Aligner bt_loss_func): strength < 0 -> response_1 chosen, > 0 -> response_2 chosen,
magnitude m = |strength|. Strength-0 pairs, and pairs whose raw annotations fail aggregation (spread > 2 or
no valid annotation), are dropped and counted, never turned into m=0 pairs. Files and Hub rows share one
parser; other pair formats (TRL, hh-rlhf) reuse `parse_preference_rows` through `rlhf.data.formats`. An empty
response is a real one: kept, and counted in `LoadStats.empty_responses`; an empty prompt is an error. Rating rows
may also be conversational: `messages` (ending with the rated assistant reply) plus the attribute columns. Left out: the justification texts, the `disagreements` subset's 2-label QA rules, multi-turn
splitting (that is `rlhf.data.templates`), tokenisation and length filtering (the data module's job).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlhf.data.aggregation import NEITHER_VALID, aggregate_ratings, aggregate_strengths
from rlhf.data.messages import require_response, response_texts
from rlhf.data.rows import (
    BadRowError,
    Row,
    check_int,
    field_error,
    has_field,
    read_rows,
    require_field,
    require_int,
    require_list,
    require_text,
)
from rlhf.types import HS2_ATTRIBUTES, PreferencePair, RatingExample

OnBadRow = Literal["error", "skip"]
DropReason = Literal["zero_strength", "spread"]
Source = str | Path | Sequence[Row]
"""A `.jsonl`/`.parquet` path, or rows already read (e.g. from `hub_preference_rows`)."""

DEFAULT_REPO = "nvidia/HelpSteer2"


@dataclass
class LoadStats:
    """What happened to the rows of one load.

    Attributes:
        rows: input rows, including unreadable lines skipped with on_bad_row="skip".
        kept: examples returned.
        skipped_bad: malformed rows skipped (only with on_bad_row="skip").
        dropped_zero_strength: preference rows whose strength is 0.
        dropped_spread: preference rows whose raw annotations have spread > 2 or no valid annotation.
        empty_responses: empty or whitespace-only responses among the kept examples (kept and scored as they are).
    """

    rows: int = 0
    kept: int = 0
    skipped_bad: int = 0
    dropped_zero_strength: int = 0
    dropped_spread: int = 0
    empty_responses: int = 0

    def summary(self) -> str:
        return (
            f"{self.rows} rows: kept {self.kept}, skipped {self.skipped_bad} bad, dropped "
            f"{self.dropped_zero_strength} zero-strength and {self.dropped_spread} high-spread; "
            f"{self.empty_responses} empty responses (kept)"
        )


def _strength(row: Row) -> int | None:
    """The aggregate strength: the stored one, else aggregated from raw annotations (None = failed aggregation)."""
    if has_field(row, "preference_strength"):
        return require_int(row, "preference_strength", -3, 3)
    strengths = raw_strengths(row)
    if strengths is None:
        raise field_error(row, "preference_strength", "missing")
    return aggregate_strengths(strengths)


def raw_strengths(row: Row) -> list[int] | None:
    """Every annotator's strength (−3..3, or −100) from `all_preferences_unprocessed` or `strengths`; None if absent."""
    if has_field(row, "all_preferences_unprocessed"):
        annotations = require_list(row, "all_preferences_unprocessed")
        return [_annotation_strength(row, i, a) for i, a in enumerate(annotations)]
    if has_field(row, "strengths"):
        raw = require_list(row, "strengths")
        return [check_int(row, f"strengths[{i}]", s, -3, 3, (NEITHER_VALID,)) for i, s in enumerate(raw)]
    return None


def _annotation_strength(row: Row, index: int, annotation: object) -> int:
    name = "all_preferences_unprocessed"
    if not isinstance(annotation, dict) or "strength" not in annotation:
        raise field_error(row, f"{name}[{index}]", "expected an object with a 'strength'")
    return check_int(row, f"{name}[{index}].strength", annotation["strength"], -3, 3, (NEITHER_VALID,))


def preference_row_outcome(row: Row) -> PreferencePair | DropReason:
    """Parse one HelpSteer2-Preference row into a pair, or say why it is dropped.

    Raises:
        BadRowError: a field is missing, of the wrong type, or out of range.
    """
    prompt = require_text(row, "prompt")
    response_1 = require_response(row, "response_1")
    response_2 = require_response(row, "response_2")
    strength = _strength(row)
    if strength is None:
        return "spread"
    if strength == 0:
        return "zero_strength"
    chosen, rejected = (response_1, response_2) if strength < 0 else (response_2, response_1)
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, magnitude=abs(strength))


def parse_preference_row(row: Row) -> PreferencePair | None:
    """A pair, or None for a dropped row (strength 0 or failed aggregation); see `preference_row_outcome`."""
    outcome = preference_row_outcome(row)
    return outcome if isinstance(outcome, PreferencePair) else None


def _rating(row: Row, name: str) -> int:
    value = require_field(row, name)
    if isinstance(value, list):  # `disagreements` style: one label per annotator
        labels = [check_int(row, f"{name}[{i}]", v, 0, 4) for i, v in enumerate(require_list(row, name))]
        return aggregate_ratings(labels)
    return check_int(row, name, value, 0, 4)


def parse_rating_row(row: Row, helpfulness_only: bool) -> RatingExample:
    """Parse one ratings row, `{prompt, response, <attributes>}` or conversational `{messages, <attributes>}` (the
    last message is the rated assistant reply); helpfulness-only mode needs and trains only `helpfulness`.

    Raises:
        BadRowError: a field is missing, of the wrong type, or out of range.
    """
    prompt, response = response_texts(row)
    names = HS2_ATTRIBUTES[:1] if helpfulness_only else HS2_ATTRIBUTES
    values = {name: float(_rating(row, name)) for name in names}
    labels = tuple(values.get(name, 0.0) for name in HS2_ATTRIBUTES)
    mask = tuple(name in values for name in HS2_ATTRIBUTES)
    return RatingExample(prompt=prompt, response=response, labels=labels, label_mask=mask)  # type: ignore[arg-type]


def source_rows(source: Source, on_bad_row: OnBadRow) -> tuple[list[Row], int]:
    """The rows of `source` and how many unreadable lines were skipped (only with "skip")."""
    if not isinstance(source, (str, Path)):
        return list(source), 0
    bad_lines: list[BadRowError] = []
    rows = read_rows(source, bad_lines if on_bad_row == "skip" else None)
    return rows, len(bad_lines)


def _with_unreadable(stats: LoadStats, unreadable: int) -> LoadStats:
    stats.rows += unreadable
    stats.skipped_bad += unreadable
    return stats


def _empty(*texts: str) -> int:
    return sum(not t.strip() for t in texts)


def parse_preference_rows(
    rows: Sequence[Row], on_bad_row: OnBadRow = "error",
    row_outcome: Callable[[Row], PreferencePair | DropReason] = preference_row_outcome,
) -> tuple[list[PreferencePair], LoadStats]:
    """Parse rows into pairs with `row_outcome` (a HelpSteer2 row by default); with "skip" bad rows are counted,
    with "error" the first one raises."""
    stats, pairs = LoadStats(rows=len(rows)), []
    for row in rows:
        try:
            outcome = row_outcome(row)
        except BadRowError:
            if on_bad_row == "error":
                raise
            stats.skipped_bad += 1
            continue
        if outcome == "zero_strength":
            stats.dropped_zero_strength += 1
        elif outcome == "spread":
            stats.dropped_spread += 1
        else:
            pairs.append(outcome)
            stats.empty_responses += _empty(outcome.chosen, outcome.rejected)
    stats.kept = len(pairs)
    return pairs, stats


def parse_rating_rows(
    rows: Sequence[Row], helpfulness_only: bool, on_bad_row: OnBadRow = "error"
) -> tuple[list[RatingExample], LoadStats]:
    """Parse rows into rating examples; `on_bad_row` as in `parse_preference_rows`."""
    stats, examples = LoadStats(rows=len(rows)), []
    for row in rows:
        try:
            examples.append(parse_rating_row(row, helpfulness_only))
        except BadRowError:
            if on_bad_row == "error":
                raise
            stats.skipped_bad += 1
            continue
        stats.empty_responses += _empty(examples[-1].response)
    stats.kept = len(examples)
    return examples, stats


def load_preference_pairs(
    source: Source, on_bad_row: OnBadRow = "error"
) -> tuple[list[PreferencePair], LoadStats]:
    """Read (path) or take (rows) HelpSteer2-Preference rows and parse them into pairs.

    With on_bad_row="skip", malformed rows (including lines that are not JSON objects) are counted in
    `skipped_bad` and skipped; with "error" the first one raises BadRowError.
    """
    rows, unreadable = source_rows(source, on_bad_row)
    pairs, stats = parse_preference_rows(rows, on_bad_row)
    return pairs, _with_unreadable(stats, unreadable)


def load_rating_examples(
    source: Source, helpfulness_only: bool, on_bad_row: OnBadRow = "error"
) -> tuple[list[RatingExample], LoadStats]:
    """Read (path) or take (rows) HelpSteer2 ratings rows and parse them into examples; `on_bad_row` as above."""
    rows, unreadable = source_rows(source, on_bad_row)
    examples, stats = parse_rating_rows(rows, helpfulness_only, on_bad_row)
    return examples, _with_unreadable(stats, unreadable)


def hub_preference_rows(split: Literal["train", "val"], repo_id: str = DEFAULT_REPO) -> list[Row]:
    """HelpSteer2-Preference rows of one split from the Hub (needs network and `datasets`).

    The release is a single "train" table whose `split` column says train/val; row indices in the sources
    are indices into that full table.
    """
    from datasets import load_dataset  # lazy: only Hub users need it

    table = load_dataset(repo_id, data_dir="preference")["train"]
    return [
        Row(f"hub:{repo_id}/preference, row {i}", dict(record))
        for i, record in enumerate(table)
        if record.get("split") == split
    ]


def hub_rating_rows(split: Literal["train", "validation"], repo_id: str = DEFAULT_REPO) -> list[Row]:
    """HelpSteer2 ratings rows of one split from the Hub (needs network and `datasets`)."""
    from datasets import load_dataset  # lazy: only Hub users need it

    table = load_dataset(repo_id)[split]
    return [Row(f"hub:{repo_id}/{split}, row {i}", dict(record)) for i, record in enumerate(table)]

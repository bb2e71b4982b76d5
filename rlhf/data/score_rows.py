"""The rows `python -m rlhf.reward.score` scores: single responses or pairs in any format, read with the bad-row policy.

`{prompt, response}` and conversational `{messages}` rows are "responses"; anything else is a pair format of
`rlhf.data.formats` (detected from the first row unless named). Every readable row is kept, ties included (flagged,
so the accuracy can leave them out and count them), and empty replies are kept and counted. With "skip", malformed
rows and unreadable lines are left out and counted; with "error" the first one raises, naming file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlhf.data.formats import detect_format, scored_pair
from rlhf.data.messages import response_texts
from rlhf.data.rows import BadRowError, Row, read_rows


@dataclass(frozen=True)
class ScoredRows:
    """Rows to score, their texts and what reading them did.

    Attributes:
        rows: the rows kept, in file order (their fields are copied to the output).
        texts: (prompt, [response]) or (prompt, [chosen, rejected]) per kept row.
        ties: per kept row, True for a pair of magnitude 0 (always False for responses).
        format: "responses" or the pair format; evidence: why (what auto detection saw, or "set by --format").
        skipped_bad: rows and lines left out as malformed (only with on_bad_row="skip").
    """

    rows: list[Row]
    texts: list[tuple[str, list[str]]]
    ties: list[bool]
    format: str
    evidence: str
    skipped_bad: int

    @property
    def kind(self) -> Literal["responses", "pairs"]:
        return "responses" if self.format == "responses" else "pairs"

    def summary(self) -> dict[str, Any]:
        empty = sum(not r.strip() for _, responses in self.texts for r in responses)
        return {"format": self.format, "format_evidence": self.evidence, "skipped_bad": self.skipped_bad, "empty_responses": empty}


def _format(rows: list[Row], format: str) -> tuple[str, str]:
    if not rows:
        raise ValueError("no rows to score")
    if format != "auto":
        return format, "set by --format"
    if "response" in rows[0].data or "messages" in rows[0].data:
        return "responses", f"{rows[0].source} has 'response' or 'messages'"
    detected = detect_format(rows)
    return detected.name, detected.evidence


def read_scored_rows(path: str | Path, format: str = "auto", strength_field: str | None = None, on_bad_row: str = "error") -> ScoredRows:
    """Read and check the rows of `path` for scoring (see the module docstring)."""
    unreadable: list[BadRowError] = []
    all_rows = read_rows(path, unreadable if on_bad_row == "skip" else None)
    format, evidence = _format(all_rows, format)
    rows, texts, ties = [], [], []
    for row in all_rows:
        try:
            if format == "responses":
                prompt, response = response_texts(row)
                texts.append((prompt, [response]))
                ties.append(False)
            else:
                (prompt, chosen, rejected), tie = scored_pair(row, format, strength_field)
                texts.append((prompt, [chosen, rejected]))
                ties.append(tie)
        except BadRowError:
            if on_bad_row == "error":
                raise
            continue
        rows.append(row)
    return ScoredRows(rows, texts, ties, format, evidence, len(all_rows) - len(rows) + len(unreadable))

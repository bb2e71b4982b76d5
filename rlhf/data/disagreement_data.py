"""DisagreementDataModule: HelpSteer2-Preference rows with every annotator's strength → `DisagreementBatch` (spec §7).

Each row keeps both responses in their stored order (A = response_1, B = response_2, both after the same prompt),
the annotators' empirical 5-class distribution (`rlhf.data.disagreement.class_distribution`) as the training
target, and the divergence label of the configured `DivergenceRule` (1 diverging, 0 high-agreement, −1 neither).
Strengths come from `all_preferences_unprocessed` (objects with a "strength") or a plain `strengths` list; rows with
no valid annotator are dropped, and tie-aggregated or high-spread rows are kept (they carry the disagreement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from rlhf.data import helpsteer2
from rlhf.data.collate import PaddingSide, pad
from rlhf.data.datamodules import LoaderSpec, PreferenceDataModule
from rlhf.data.disagreement import DivergenceRule, class_distribution, divergence_label
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.messages import require_response
from rlhf.data.rows import BadRowError, Row, field_error, require_text
from rlhf.data.templates import TemplateSpec
from rlhf.types import DisagreementBatch

LABEL_CODES = {"diverging": 1, "high_agreement": 0, None: -1}


@dataclass(frozen=True)
class DisagreementExample:
    """One row in text form: the prompt, response_1 (A), response_2 (B), the class distribution and label code."""

    prompt: str
    response_a: str
    response_b: str
    target: tuple[float, ...]
    diverging: int


@dataclass(frozen=True)
class EncodedDisagreement:
    """A tokenised row: ids of response_1 and response_2 (each after the prompt), target and label code."""

    ids_a: list[int]
    ids_b: list[int]
    target: tuple[float, ...]
    diverging: int


@dataclass
class DisagreementStats:
    """Counts of one load: rows read, kept, skipped bad, dropped for no valid annotator, and the label counts."""

    rows: int = 0
    kept: int = 0
    skipped_bad: int = 0
    dropped_no_valid: int = 0
    diverging: int = 0
    high_agreement: int = 0

    def summary(self) -> str:
        return (
            f"{self.rows} rows: kept {self.kept} ({self.diverging} diverging, {self.high_agreement} high-agreement, "
            f"{self.kept - self.diverging - self.high_agreement} neither), skipped {self.skipped_bad} bad, "
            f"dropped {self.dropped_no_valid} with no valid annotator"
        )


def row_strengths(row: Row) -> list[int]:
    """Every annotator's raw strength (−3..3 or −100) of a row."""
    strengths = helpsteer2.raw_strengths(row)
    if strengths is None:
        raise field_error(row, "all_preferences_unprocessed", "missing (the per-annotator strengths are needed)")
    return strengths


def parse_disagreement_row(row: Row, rule: DivergenceRule = DivergenceRule()) -> DisagreementExample | None:
    """A `DisagreementExample`, or None when no annotator gave a valid strength. Raises BadRowError on bad fields."""
    prompt, a, b = require_text(row, "prompt"), require_response(row, "response_1"), require_response(row, "response_2")  # empty replies are kept
    strengths = row_strengths(row)
    target = class_distribution(strengths)
    if target is None:
        return None
    return DisagreementExample(prompt, a, b, tuple(target), LABEL_CODES[divergence_label(strengths, rule)])


def parse_disagreement_rows(
    rows: Sequence[Row], rule: DivergenceRule = DivergenceRule(), on_bad_row: Literal["error", "skip"] = "error"
) -> tuple[list[DisagreementExample], DisagreementStats]:
    """Parse rows; with "skip" malformed rows are counted, with "error" the first one raises."""
    stats, out = DisagreementStats(rows=len(rows)), []
    for row in rows:
        try:
            example = parse_disagreement_row(row, rule)
        except BadRowError:
            if on_bad_row == "error":
                raise
            stats.skipped_bad += 1
            continue
        if example is None:
            stats.dropped_no_valid += 1
            continue
        out.append(example)
        stats.diverging += example.diverging == 1
        stats.high_agreement += example.diverging == 0
    stats.kept = len(out)
    return out, stats


def collate_disagreements(items: Sequence[EncodedDisagreement], pad_id: int, side: PaddingSide = "right") -> DisagreementBatch:
    """B rows → DisagreementBatch with rows [0, B) response_1 and [B, 2B) response_2."""
    ids, mask = pad([it.ids_a for it in items] + [it.ids_b for it in items], pad_id, side)
    target = torch.tensor([it.target for it in items], dtype=torch.float32)
    diverging = torch.tensor([it.diverging for it in items], dtype=torch.long)
    return DisagreementBatch(input_ids=ids, attention_mask=mask, target=target, diverging=diverging)


class DisagreementDataModule(PreferenceDataModule):
    """HelpSteer2-Preference rows with raw annotator strengths → `DisagreementBatch` (for loss "mean_var").

    Args:
        train_path: local JSONL/Parquet of preference rows carrying `all_preferences_unprocessed`; ignored with hub_id.
        val_path: local JSONL/Parquet of validation rows; ignored when hub_id is set.
        hub_id: load `data_dir="preference"` of this hub dataset (e.g. nvidia/HelpSteer2) instead of local files.
        rule: which pairs count as "diverging" / "high-agreement" for the divergence AUROC.
        tokenizer: tokenizer location; linked from model.backbone.name_or_path by the CLI.
        template: how (prompt, response) becomes text.
        max_length: token limit per sequence.
        overlength: training rule for over-length pairs: "drop" (default) or "truncate_prompt" (from the left).
        loader: batch sizes, shuffling, workers, padding side.
        on_bad_row: "error" stops at the first malformed row; "skip" skips and counts them.
    """

    def __init__(self, train_path: str | None = None, val_path: str | None = None, hub_id: str | None = None, rule: DivergenceRule = DivergenceRule(), tokenizer: str | None = None, template: TemplateSpec = TemplateSpec(), max_length: int = 4096, overlength: Literal["drop", "truncate_prompt"] = "drop", loader: LoaderSpec = LoaderSpec(), on_bad_row: Literal["error", "skip"] = "error"):
        super().__init__(train_path, val_path, hub_id, tokenizer, template, max_length, overlength, loader, on_bad_row)
        self.rule = rule

    collate = staticmethod(collate_disagreements)
    batch_type = DisagreementBatch

    def _load_split(self, encoder: Encoder, split: Literal["train", "val"]) -> list[EncodedDisagreement]:
        rows, unreadable = helpsteer2.source_rows(self._source(split), self.on_bad_row)
        examples, load_stats = parse_disagreement_rows(rows, self.rule, self.on_bad_row)
        load_stats.rows += unreadable
        load_stats.skipped_bad += unreadable
        stats, encoded = EncodeStats(), []
        for ex in examples:
            ids = encoder.encode(ex.prompt, [ex.response_a, ex.response_b], self._policy(split), stats)  # type: ignore[arg-type]
            if ids is not None:
                encoded.append(EncodedDisagreement(ids[0], ids[1], ex.target, ex.diverging))
        self._report(f"disagreement/{split}", stats, load_stats.summary())
        return encoded

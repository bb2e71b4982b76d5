"""Lightning data modules for reward-model training: preference pairs and HelpSteer2 ratings (on the shared base
`rlhf.data.loaders.TokenizedDataModule`).

Rows come from local JSONL/Parquet files or, with network, from the hub (`nvidia/HelpSteer2`; the preference
data's `split` column gives train/val). Pair files may be in any format of `rlhf.data.formats` (HelpSteer2, TRL
standard or conversational, hh-rlhf transcripts); `format: auto` detects it and logs which and why. Examples are rendered with the configured template, tokenised once in
`setup`, and over-length examples are handled by the explicit policy in `rlhf.data.encode`; the counts are logged.
Validation never drops an example: it uses the "truncate" rule. The training order is a pure function of a seed and
the epoch, and the data module's state (in resume checkpoints) says how many batches of the epoch were trained on, so
a resumed run continues with the next unseen batch. Under DDP/FSDP the loaders shard the data themselves (rank-aware
`EpochSampler` for training, contiguous blocks for validation), so Lightning's distributed sampler must be off
(`trainer.use_distributed_sampler: false`, the CLI's default). `loader.packing` collates each batch into one unpadded row
(padding-free packing, `rlhf.data.collate.pack`) for training and validation alike; `loader.token_budget` forms
micro-batches of similar-length examples up to a number of tokens instead of a fixed count (`rlhf.data.token_budget`).
"""

from __future__ import annotations

from typing import Literal

from rlhf.data import helpsteer2
from rlhf.data.collate import EncodedPair, EncodedRating, collate_preferences, collate_ratings
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.formats import PreferenceFormat, load_pairs
from rlhf.data.loaders import LoaderSpec, TokenizedDataModule
from rlhf.data.templates import TemplateSpec
from rlhf.types import PreferenceBatch, PreferencePair, RatingBatch, RatingExample


def _encode_pairs(encoder: Encoder, pairs: list[PreferencePair], policy: str, stats: EncodeStats) -> list[EncodedPair]:
    out = []
    for p in pairs:
        ids = encoder.encode(p.prompt, [p.chosen, p.rejected], policy, stats)  # type: ignore[arg-type]
        if ids is not None:
            out.append(EncodedPair(ids[0], ids[1], p.magnitude))
    return out


def _encode_ratings(encoder: Encoder, rows: list[RatingExample], policy: str, stats: EncodeStats) -> list[EncodedRating]:
    out = []
    for r in rows:
        ids = encoder.encode(r.prompt, [r.response], policy, stats)  # type: ignore[arg-type]
        if ids is not None:
            out.append(EncodedRating(ids[0], r.labels, r.label_mask))
    return out


class PreferenceDataModule(TokenizedDataModule):
    """Preference pairs (HelpSteer2-Preference, TRL, hh-rlhf) → `PreferenceBatch` (chosen rows over rejected rows).

    Args:
        train_path: local JSONL/Parquet of preference rows; ignored when hub_id is set.
        val_path: local JSONL/Parquet of validation rows; ignored when hub_id is set.
        hub_id: load `data_dir="preference"` of this hub dataset (e.g. nvidia/HelpSteer2) instead of local files.
        tokenizer: tokenizer location; linked from model.backbone.name_or_path by the CLI.
        template: how (prompt, response) becomes text.
        max_length: token limit per sequence.
        overlength: training rule for over-length pairs: "drop" (default) or "truncate_prompt" (from the left).
        loader: batch sizes, shuffling, workers, padding side.
        on_bad_row: "error" stops at the first malformed row; "skip" skips and counts them.
        format: the pair format ("auto" detects it from the first row and logs why; see rlhf.data.formats).
        strength_field: the magnitude column of non-HelpSteer2 formats (None: preference_strength or margin if
            present, else 1); magnitude-0 pairs are ties, dropped and counted.
        split_values: the values of the rows' `split` column kept for (train, val), e.g. [train, test], when both
            splits live in one file; None reads every row of each file.
    """

    def __init__(self, train_path: str | None = None, val_path: str | None = None, hub_id: str | None = None, tokenizer: str | None = None, template: TemplateSpec = TemplateSpec(), max_length: int = 4096, overlength: Literal["drop", "truncate_prompt"] = "drop", loader: LoaderSpec = LoaderSpec(), on_bad_row: Literal["error", "skip"] = "error", format: PreferenceFormat = "auto", strength_field: str | None = None, split_values: tuple[str, str] | None = None):
        super().__init__(tokenizer, template, max_length, overlength, loader, on_bad_row)
        self.train_path, self.val_path, self.hub_id = train_path, val_path, hub_id
        self.format, self.strength_field, self.split_values = format, strength_field, split_values

    def _source(self, split: Literal["train", "val"]):
        if self.hub_id:
            return helpsteer2.hub_preference_rows(split, repo_id=self.hub_id)
        path = self.train_path if split == "train" else self.val_path
        if path is None:
            raise ValueError(f"{type(self).__name__}: {split}_path is not set and no hub_id is given")
        return path

    collate = staticmethod(collate_preferences)
    batch_type = PreferenceBatch

    def _pairs(self, split: Literal["train", "val"]) -> tuple[list[PreferencePair], str]:
        """The split's pairs and the load summary (format detected and why, counts) for the log."""
        keep = None if self.split_values is None or self.hub_id else self.split_values[split == "val"]
        pairs, load_stats, detected = load_pairs(self._source(split), self.format, self.strength_field, self.on_bad_row, keep)
        paper = f"; the paper kept {helpsteer2.PAPER_PAIRS[split]:,} {split} pairs" if load_stats.annotated else ""
        return pairs, f"{detected.describe()}; {load_stats.summary()}{paper}"

    def _load_split(self, encoder: Encoder, split: Literal["train", "val"]) -> list[EncodedPair]:
        pairs, summary = self._pairs(split)
        stats = EncodeStats()
        encoded = _encode_pairs(encoder, pairs, self._policy(split), stats)
        self._report(f"preference/{split}", stats, summary)
        return encoded


class RatingDataModule(TokenizedDataModule):
    """HelpSteer2 ratings → `RatingBatch`; optionally also validates on preference pairs.

    Args:
        train_path: local JSONL/Parquet of rating rows; ignored when hub_id is set.
        val_path: local JSONL/Parquet of validation rating rows; ignored when hub_id is set.
        val_pairs_path: optional preference rows, a second validation set giving pairwise accuracy.
        hub_id: load the ratings of this hub dataset (e.g. nvidia/HelpSteer2, splits train/validation).
        helpfulness_only: train on helpfulness alone (the other four labels masked out).
        tokenizer: tokenizer location; linked from model.backbone.name_or_path by the CLI.
        template: how (prompt, response) becomes text.
        max_length: token limit per sequence.
        overlength: training rule for over-length examples: "drop" (default) or "truncate_prompt".
        loader: batch sizes, shuffling, workers, padding side.
        on_bad_row: "error" stops at the first malformed row; "skip" skips and counts them.
    """

    def __init__(self, train_path: str | None = None, val_path: str | None = None, val_pairs_path: str | None = None, hub_id: str | None = None, helpfulness_only: bool = False, tokenizer: str | None = None, template: TemplateSpec = TemplateSpec(), max_length: int = 4096, overlength: Literal["drop", "truncate_prompt"] = "drop", loader: LoaderSpec = LoaderSpec(), on_bad_row: Literal["error", "skip"] = "error"):
        super().__init__(tokenizer, template, max_length, overlength, loader, on_bad_row)
        self.train_path, self.val_path, self.val_pairs_path = train_path, val_path, val_pairs_path
        self.hub_id, self.helpfulness_only = hub_id, helpfulness_only

    def _source(self, split: Literal["train", "val"]):
        if self.hub_id:
            return helpsteer2.hub_rating_rows("train" if split == "train" else "validation", repo_id=self.hub_id)
        path = self.train_path if split == "train" else self.val_path
        if path is None:
            raise ValueError(f"RatingDataModule: {split}_path is not set and no hub_id is given")
        return path

    collate = staticmethod(collate_ratings)
    batch_type = RatingBatch  # the extra val_pairs_path set gives PreferenceBatches

    def _load_split(self, encoder: Encoder, split: Literal["train", "val"]) -> list[EncodedRating]:
        rows, load_stats = helpsteer2.load_rating_examples(self._source(split), self.helpfulness_only, on_bad_row=self.on_bad_row)
        stats = EncodeStats()
        encoded = _encode_ratings(encoder, rows, self._policy(split), stats)
        self._report(f"ratings/{split}", stats, load_stats.summary())
        return encoded

    def _extra_val(self, encoder: Encoder) -> None:
        if not self.val_pairs_path:
            return
        pairs, load_stats, detected = load_pairs(self.val_pairs_path, on_bad_row=self.on_bad_row)
        stats = EncodeStats()
        self._val.append(_encode_pairs(encoder, pairs, "truncate", stats))
        self._report("preference/val", stats, f"{detected.describe()}; {load_stats.summary()}")
        self._collate_fns.append(collate_preferences)

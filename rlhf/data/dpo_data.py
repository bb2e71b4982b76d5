"""Preference pairs (any format of `rlhf.data.formats`) for DPO: each sequence is what the policy would generate, with its response marked.

A sequence is the prompt rendered up to the assistant turn (`rlhf.data.templates.render_prompt`, exactly what
REINFORCE and the comparison sample from) + the response text + EOS, so DPO trains the ending the sampler stops at.
Over-length pairs follow `rlhf.data.encode`'s policies (the `Encoder` subclass only changes how a pair is rendered).
The response starts after the longest common token prefix with the rendered prompt; a prompt cut from the left keeps
the response's token count. Rows, loading and batching are those of the reward-model data modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from rlhf.data.collate import PaddingSide, pad
from rlhf.data.datamodules import LoaderSpec, PreferenceDataModule
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.formats import PreferenceFormat, common_prefix
from rlhf.data.templates import TemplateSpec
from rlhf.types import DPOBatch, PreferencePair


class DPOEncoder(Encoder):
    """`Encoder` whose text is render_prompt(prompt) + response, followed by EOS (counted in max_length)."""

    def __init__(self, tokenizer, template: TemplateSpec, max_length: int):
        super().__init__(tokenizer, template, max_length)
        self.eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.open_ids(prompt, "")

    def ids(self, prompt: str, response: str) -> list[int]:
        return self.open_ids(prompt, response) + self.eos  # a response cut by "truncate" gets no EOS (open_ids)

    def response_start(self, prompt: str, response: str, ids: Sequence[int]) -> int:
        """First response column of `ids` (an encoding of this prompt/response, possibly truncated); at least 1."""
        full = self.ids(prompt, response)
        n_response = len(full) - common_prefix(full, self.prompt_ids(prompt))
        return max(len(ids) - n_response, common_prefix(ids, self.prompt_ids("")), 1)


@dataclass(frozen=True)
class EncodedDPOPair:
    """Chosen and rejected ids (prompt + response + EOS), where each response starts, and the magnitude m."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    chosen_start: int
    rejected_start: int
    magnitude: float


def encode_dpo_pairs(encoder: DPOEncoder, pairs: list[PreferencePair], policy: str, stats: EncodeStats) -> list[EncodedDPOPair]:
    """Encode pairs under an over-length policy (dropped pairs are left out and counted in `stats`)."""
    out = []
    for p in pairs:
        ids = encoder.encode(p.prompt, [p.chosen, p.rejected], policy, stats)  # type: ignore[arg-type]
        if ids is not None:
            starts = [encoder.response_start(p.prompt, r, x) for r, x in zip((p.chosen, p.rejected), ids)]
            out.append(EncodedDPOPair(ids[0], ids[1], starts[0], starts[1], p.magnitude))
    return out


def collate_dpo(items: Sequence[EncodedDPOPair], pad_id: int, side: PaddingSide = "right") -> DPOBatch:
    """B pairs → DPOBatch with rows [0, B) chosen and [B, 2B) rejected; the response mask is padded like the ids."""
    seqs = [it.chosen_ids for it in items] + [it.rejected_ids for it in items]
    starts = [it.chosen_start for it in items] + [it.rejected_start for it in items]
    ids, mask = pad(seqs, pad_id, side)
    flags, _ = pad([[0] * s + [1] * (len(x) - s) for x, s in zip(seqs, starts)], 0, side)
    margin = torch.tensor([float(it.magnitude) for it in items], dtype=torch.float32)
    return DPOBatch(input_ids=ids, attention_mask=mask, response_mask=flags.bool() & mask, margin=margin)


class DPODataModule(PreferenceDataModule):
    """Preference pairs → `DPOBatch` (same sources, formats and options as `PreferenceDataModule`).

    Args:
        train_path: local JSONL/Parquet of preference rows; ignored when hub_id is set.
        val_path: local JSONL/Parquet of validation rows; ignored when hub_id is set.
        hub_id: load `data_dir="preference"` of this hub dataset (e.g. nvidia/HelpSteer2) instead of local files.
        tokenizer: the policy's tokenizer; linked from model.backbone.name_or_path by the CLI.
        template: the policy's template (the prompt is rendered up to the assistant turn).
        max_length: token limit per sequence, EOS included.
        overlength: training rule for over-length pairs: "drop" (default) or "truncate_prompt" (from the left).
        loader: batch sizes (pairs), shuffling, workers, padding side.
        on_bad_row: "error" stops at the first malformed row; "skip" skips and counts them.
        format: the pair format ("auto" detects it from the first row and logs why; see rlhf.data.formats).
        strength_field: the magnitude column of non-HelpSteer2 formats (None: preference_strength or margin if
            present, else 1); magnitude-0 pairs are ties, dropped and counted.
        split_values: the values of the rows' `split` column kept for (train, val), e.g. [train, test], when both
            splits live in one file; None reads every row of each file.
    """

    def __init__(self, train_path: str | None = None, val_path: str | None = None, hub_id: str | None = None, tokenizer: str | None = None, template: TemplateSpec = TemplateSpec(), max_length: int = 4096, overlength: Literal["drop", "truncate_prompt"] = "drop", loader: LoaderSpec = LoaderSpec(), on_bad_row: Literal["error", "skip"] = "error", format: PreferenceFormat = "auto", strength_field: str | None = None, split_values: tuple[str, str] | None = None):
        super().__init__(train_path, val_path, hub_id, tokenizer, template, max_length, overlength, loader, on_bad_row, format, strength_field, split_values)

    collate = staticmethod(collate_dpo)
    batch_type = DPOBatch

    def _encoder(self) -> DPOEncoder:
        base = super()._encoder()
        return DPOEncoder(base.tokenizer, self.template, self.max_length)

    def _load_split(self, encoder: Encoder, split: Literal["train", "val"]) -> list[EncodedDPOPair]:
        pairs, summary = self._pairs(split)
        stats = EncodeStats()
        encoded = encode_dpo_pairs(encoder, pairs, self._policy(split), stats)  # type: ignore[arg-type]
        self._report(f"dpo/{split}", stats, summary)
        return encoded

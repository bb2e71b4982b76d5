"""Padding and collation of tokenised examples into typed batches.

`pad` pads lists of token ids on the right or the left and returns ids plus a bool attention mask.
`collate_preferences` stacks chosen rows over rejected rows (one forward pass scores both); `collate_ratings` pads
rated responses. `pack` concatenates sequences into one unpadded row with per-sequence position ids (padding-free
packing); `collate_preferences_packed` / `collate_ratings_packed` are the packed twins, and `PACKED_COLLATE` maps
each padded collate function to its twin. Packing into several fixed-width rows is left out (one row per batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from rlhf.types import PackedPreferenceBatch, PackedRatingBatch, PackedTokens, PreferenceBatch, RatingBatch

PaddingSide = Literal["right", "left"]


@dataclass(frozen=True)
class EncodedPair:
    """A tokenised preference pair: chosen and rejected ids (each with the prompt) and the magnitude m."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    magnitude: float


@dataclass(frozen=True)
class EncodedRating:
    """A tokenised rated response with its 5 labels and label mask."""

    input_ids: list[int]
    labels: tuple[float, ...]
    label_mask: tuple[bool, ...]


def pad(sequences: Sequence[Sequence[int]], pad_id: int, side: PaddingSide = "right") -> tuple[Tensor, Tensor]:
    """Pad to the longest sequence. Returns (N, T) long ids and (N, T) bool attention mask."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pad: need at least one sequence and no empty sequence")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, seq in enumerate(sequences):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[i, cols] = torch.tensor(seq, dtype=torch.long)
        mask[i, cols] = True
    return ids, mask


def collate_preferences(items: Sequence[EncodedPair], pad_id: int, side: PaddingSide = "right") -> PreferenceBatch:
    """B pairs → PreferenceBatch with rows [0, B) chosen and [B, 2B) rejected."""
    ids, mask = pad([it.chosen_ids for it in items] + [it.rejected_ids for it in items], pad_id, side)
    margin = torch.tensor([float(it.magnitude) for it in items], dtype=torch.float32)
    return PreferenceBatch(input_ids=ids, attention_mask=mask, margin=margin)


def collate_ratings(items: Sequence[EncodedRating], pad_id: int, side: PaddingSide = "right") -> RatingBatch:
    """B rated responses → RatingBatch."""
    ids, mask = pad([it.input_ids for it in items], pad_id, side)
    labels = torch.tensor([it.labels for it in items], dtype=torch.float32)
    label_mask = torch.tensor([it.label_mask for it in items], dtype=torch.bool)
    return RatingBatch(input_ids=ids, attention_mask=mask, labels=labels, label_mask=label_mask)


def pack(sequences: Sequence[Sequence[int]]) -> PackedTokens:
    """N sequences → one (1, Σ lengths) row, position ids restarting at 0 per sequence, and cumulative lengths."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pack: need at least one sequence and no empty sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int32)
    cu = torch.zeros(len(sequences) + 1, dtype=torch.int32)
    cu[1:] = lengths.cumsum(0)
    ids = torch.tensor([t for s in sequences for t in s], dtype=torch.long).unsqueeze(0)  # (1, T)
    positions = torch.cat([torch.arange(n, dtype=torch.long) for n in lengths.tolist()]).unsqueeze(0)  # (1, T)
    return PackedTokens(input_ids=ids, position_ids=positions, cu_seqlens=cu)


def collate_preferences_packed(items: Sequence[EncodedPair], pad_id: int = 0, side: PaddingSide = "right") -> PackedPreferenceBatch:
    """B pairs → one packed row: sequences [0, B) chosen, [B, 2B) rejected (`pad_id`/`side` unused, kept for the loader)."""
    tokens = pack([it.chosen_ids for it in items] + [it.rejected_ids for it in items])
    margin = torch.tensor([float(it.magnitude) for it in items], dtype=torch.float32)
    return PackedPreferenceBatch(tokens=tokens, margin=margin)


def collate_ratings_packed(items: Sequence[EncodedRating], pad_id: int = 0, side: PaddingSide = "right") -> PackedRatingBatch:
    """B rated responses → one packed row (`pad_id`/`side` unused)."""
    labels = torch.tensor([it.labels for it in items], dtype=torch.float32)
    label_mask = torch.tensor([it.label_mask for it in items], dtype=torch.bool)
    return PackedRatingBatch(tokens=pack([it.input_ids for it in items]), labels=labels, label_mask=label_mask)


PACKED_COLLATE = {collate_preferences: collate_preferences_packed, collate_ratings: collate_ratings_packed}
"""Padded collate function → its packed twin (data modules without an entry cannot pack)."""

"""Padding and collation of tokenised examples into typed batches.

`pad` pads lists of token ids on the right or the left and returns ids plus a bool attention mask.
`collate_preferences` stacks chosen rows over rejected rows (one forward pass scores both); `collate_ratings` pads
rated responses. Packing several sequences into one row is left out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from rlhf.types import PreferenceBatch, RatingBatch

PaddingSide = Literal["right", "left"]


@dataclass(frozen=True)
class EncodedPair:
    """A tokenised preference pair: chosen and rejected ids (each with the prompt) and the magnitude m."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    magnitude: int


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

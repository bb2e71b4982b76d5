"""Typed examples and batches that flow from the data modules into the models.

Text-level examples (`PreferencePair`, `RatingExample`) come out of `rlhf.data.helpsteer2`; tensor batches
(`PreferenceBatch`, `RatingBatch`) come out of `rlhf.data.collate`; for REINFORCE, `PromptBatch` comes out of
`rlhf.data.prompts` and `Rollout` out of `rlhf.align.rollout`; for DPO, `DPOBatch` out of `rlhf.data.dpo_data`. With
padding-free packing, `PackedPreferenceBatch` / `PackedRatingBatch` hold their sequences as one `PackedTokens` row. Every mask is a bool tensor where True means
"this position counts". Batches are frozen; `.to(device)` returns a moved copy, which is also how Lightning
transfers them (it treats any object with a `.to` method as transferable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

HS2_ATTRIBUTES: tuple[str, ...] = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
"""The five HelpSteer2 attributes, in the order the rating labels use."""

_B = TypeVar("_B")


def _move(batch: _B, device: torch.device | str, **kwargs: object) -> _B:
    moved = {
        f.name: getattr(batch, f.name).to(device, **kwargs)
        for f in dataclasses.fields(batch)  # type: ignore[arg-type]
        if isinstance(getattr(batch, f.name), (Tensor, PackedTokens))
    }
    return dataclasses.replace(batch, **moved)  # type: ignore[type-var]


@dataclass(frozen=True)
class PreferencePair:
    """One preference pair in text form.

    Attributes:
        prompt: the user turn(s); multi-turn prompts keep the HelpSteer2 `<extra_id_1>` separators.
        chosen: the preferred final assistant turn.
        rejected: the other final assistant turn.
        magnitude: m = |preference_strength| in {1, 2, 3} for HelpSteer2; any m > 0 from another format's
            strength/margin column (1 without one). 0-strength pairs (ties) never become a PreferencePair.
    """

    prompt: str
    chosen: str
    rejected: str
    magnitude: float


@dataclass(frozen=True)
class RatingExample:
    """One rated response in text form.

    Attributes:
        prompt: the user turn(s), as in `PreferencePair.prompt`.
        response: the final assistant turn that was rated.
        labels: 5 ratings in `HS2_ATTRIBUTES` order, each 0..4 (0.0 where masked out).
        label_mask: 5 bools, True where the label is trained on (helpfulness-only mode keeps only the first).
    """

    prompt: str
    response: str
    labels: tuple[float, float, float, float, float]
    label_mask: tuple[bool, bool, bool, bool, bool]


@dataclass(frozen=True)
class PreferenceBatch:
    """B preference pairs; chosen rows are stacked over rejected rows so one forward pass scores both.

    Attributes:
        input_ids: (2B, T) long; rows [0, B) are chosen, rows [B, 2B) the matching rejected responses.
        attention_mask: (2B, T) bool, True on real tokens (either padding side).
        margin: (B,) float32, m = |preference strength| of each pair.
    """

    input_ids: Tensor
    attention_mask: Tensor
    margin: Tensor

    @property
    def num_pairs(self) -> int:
        return self.margin.shape[0]

    def to(self, device: torch.device | str, **kwargs: object) -> PreferenceBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class RatingBatch:
    """B rated responses.

    Attributes:
        input_ids: (B, T) long.
        attention_mask: (B, T) bool, True on real tokens.
        labels: (B, 5) float32 ratings in `HS2_ATTRIBUTES` order.
        label_mask: (B, 5) bool, True where a label is trained on.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    label_mask: Tensor

    def to(self, device: torch.device | str, **kwargs: object) -> RatingBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class PromptBatch:
    """B prompts rendered up to the start of the assistant turn, left-padded so generation continues every row.

    Attributes:
        input_ids: (B, P) long, left-padded.
        attention_mask: (B, P) bool, True on real prompt tokens.
        prompts: B raw prompt texts (before templating), re-rendered in the reward model's own template.
    """

    input_ids: Tensor
    attention_mask: Tensor
    prompts: tuple[str, ...]

    def to(self, device: torch.device | str, **kwargs: object) -> PromptBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class Rollout:
    """N = B·K sampled responses; rows [i·K, (i+1)·K) are the K samples of prompt i.

    Attributes:
        sequences: (N, P + R) long, the left-padded prompt followed by the response (padding after it ends).
        attention_mask: (N, P + R) bool, real prompt tokens and response tokens through the first EOS.
        response_mask: (N, R) bool, response tokens through the first EOS inclusive (all R if it did not end).
        ended: (N,) bool, True where the response contains EOS.
        scores: (N,) float32 reward of the decoded (prompt, response) text, never read at a padding position.
        prompts: N raw prompt texts (each repeated K times).
        responses: N decoded responses, without the EOS token.
    """

    sequences: Tensor
    attention_mask: Tensor
    response_mask: Tensor
    ended: Tensor
    scores: Tensor
    prompts: tuple[str, ...]
    responses: tuple[str, ...]

    @property
    def prompt_length(self) -> int:
        """P: the column where every response starts."""
        return self.sequences.shape[1] - self.response_mask.shape[1]

    def to(self, device: torch.device | str, **kwargs: object) -> Rollout:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class DPOBatch:
    """B preference pairs for DPO, chosen rows over rejected rows, with the response tokens marked.

    Attributes:
        input_ids: (2B, T) long, prompt (rendered up to the assistant turn) + response + EOS; rows [0, B) chosen.
        attention_mask: (2B, T) bool, True on real tokens.
        response_mask: (2B, T) bool, True on response tokens (EOS included); prompt and padding are False.
        margin: (B,) float32, m = |preference strength| of each pair.
    """

    input_ids: Tensor
    attention_mask: Tensor
    response_mask: Tensor
    margin: Tensor

    @property
    def num_pairs(self) -> int:
        return self.margin.shape[0]

    def to(self, device: torch.device | str, **kwargs: object) -> DPOBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class DisagreementBatch:
    """B response pairs with every annotator's vote summarised; response_1 rows stacked over response_2 rows.

    Attributes:
        input_ids: (2B, T) long; rows [0, B) are response_1 (A), rows [B, 2B) the matching response_2 (B).
        attention_mask: (2B, T) bool, True on real tokens (either padding side).
        target: (B, 5) float32 empirical class distribution in `rlhf.losses.MEAN_VAR_CLASSES` order (sums to 1).
        diverging: (B,) long, 1 = diverging, 0 = high-agreement, −1 = neither (left out of the divergence AUROC).
    """

    input_ids: Tensor
    attention_mask: Tensor
    target: Tensor
    diverging: Tensor

    @property
    def num_pairs(self) -> int:
        return self.target.shape[0]

    def to(self, device: torch.device | str, **kwargs: object) -> DisagreementBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class PackedTokens:
    """N sequences concatenated into one row without padding (padding-free packing).

    Attributes:
        input_ids: (1, T) long, T = Σ lengths; sequence i occupies columns [cu_seqlens[i], cu_seqlens[i+1]).
        position_ids: (1, T) long, restarting at 0 at every sequence start.
        cu_seqlens: (N + 1,) int32 cumulative lengths starting at 0 (FlashAttention varlen's layout).
    """

    input_ids: Tensor
    position_ids: Tensor
    cu_seqlens: Tensor

    @property
    def num_sequences(self) -> int:
        return self.cu_seqlens.shape[0] - 1

    @property
    def last_index(self) -> Tensor:
        """(N,) long column of each sequence's last token, in sequence order."""
        return self.cu_seqlens[1:].long() - 1

    def to(self, device: torch.device | str, **kwargs: object) -> PackedTokens:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class PackedPreferenceBatch:
    """`PreferenceBatch` with its 2B sequences packed: sequences [0, B) chosen, [B, 2B) the matching rejected.

    Attributes:
        tokens: the 2B sequences, packed.
        margin: (B,) float32, m = |preference strength| of each pair.
    """

    tokens: PackedTokens
    margin: Tensor

    @property
    def num_pairs(self) -> int:
        return self.margin.shape[0]

    def to(self, device: torch.device | str, **kwargs: object) -> PackedPreferenceBatch:
        return _move(self, device, **kwargs)


@dataclass(frozen=True)
class PackedRatingBatch:
    """`RatingBatch` with its B responses packed.

    Attributes:
        tokens: the B sequences, packed.
        labels: (B, 5) float32 ratings in `HS2_ATTRIBUTES` order.
        label_mask: (B, 5) bool, True where a label is trained on.
    """

    tokens: PackedTokens
    labels: Tensor
    label_mask: Tensor

    def to(self, device: torch.device | str, **kwargs: object) -> PackedRatingBatch:
        return _move(self, device, **kwargs)

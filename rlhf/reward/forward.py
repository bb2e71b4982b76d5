"""The reward model's forward pass on each kind of batch: the (B,) rewards of a pair batch, a rating batch's head
outputs restricted to the head's attributes, μ and σ of a disagreement batch, and the mean-variance loss with its
settings (`MeanVarSpec`, spec §7.2). Padded and packed batches give the same outputs. Left out: losses of the other
objectives (`rlhf.losses`) and what any objective does with these outputs (`rlhf.reward.objectives`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from rlhf.losses import DEFAULT_EDGES, mean_var_kl_loss, mean_var_nll_loss
from rlhf.models.heads import attribute_slots
from rlhf.models.reward_model import RewardModel
from rlhf.types import HS2_ATTRIBUTES, DisagreementBatch, PackedPreferenceBatch, PackedRatingBatch, PreferenceBatch, RatingBatch

PairBatch = PreferenceBatch | PackedPreferenceBatch
AnyRatingBatch = RatingBatch | PackedRatingBatch
RewardBatch = PairBatch | AnyRatingBatch | DisagreementBatch


@dataclass(frozen=True)
class MeanVarSpec:
    """Settings of the mean-variance RM (loss "mean_var", spec §7.2).

    Args:
        edges: ascending inner interval edges on r_A − r_B bounding the 5 classes.
        rho: "zero" (independent rewards) or "learned" (ρ = tanh of a trained scalar, saved with the head).
        divergence_lambda: λ of the divergence score |μ_A − μ_B| − λ(σ_A + σ_B) logged as val/divergence_auroc.
        nll_baseline: train the independent-NLL baseline (cross-entropy, ρ = 0) instead of the KL loss.
    """

    edges: tuple[float, ...] = DEFAULT_EDGES
    rho: Literal["zero", "learned"] = "zero"
    divergence_lambda: float = 1.0
    nll_baseline: bool = False


def head_outputs(model: RewardModel, batch: PairBatch | AnyRatingBatch) -> Tensor:
    """(N, n_out) head outputs of every sequence in the batch, padded or packed (the padding-free forward pass)."""
    packed = isinstance(batch, (PackedPreferenceBatch, PackedRatingBatch))
    return model.forward_packed(batch.tokens) if packed else model(batch.input_ids, batch.attention_mask)


def pair_rewards(model: RewardModel, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """(B,) float32 rewards of the chosen and of the rejected responses, from one forward pass over both."""
    return model.reward(head_outputs(model, batch)).float().chunk(2)  # (2B,) → 2 × (B,)


def rating_outputs(model: RewardModel, batch: AnyRatingBatch, n_out: int) -> tuple[Tensor, Tensor, Tensor]:
    """Head outputs, labels and mask restricted to the attributes an `n_out` head has: each (B, A')."""
    slots = attribute_slots(n_out).to(batch.labels.device)
    present = slots >= 0
    if bool(batch.label_mask[:, ~present].any()):
        missing = [a for a, p in zip(HS2_ATTRIBUTES, present.tolist()) if not p]
        raise ValueError(f"the data labels {missing} but a {n_out}-output head has no slot for them")
    outputs = head_outputs(model, batch).float()
    return outputs[:, slots[present]], batch.labels[:, present], batch.label_mask[:, present]


def mean_var_rewards(model: RewardModel, batch: DisagreementBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """μ_A, σ_A, μ_B, σ_B, each (B,), A = response_1 rows and B = response_2 rows of one forward pass."""
    outputs = model(batch.input_ids, batch.attention_mask).float()
    (mu_a, mu_b), (sigma_a, sigma_b) = model.reward(outputs).chunk(2), model.sigma(outputs).chunk(2)
    return mu_a, sigma_a, mu_b, sigma_b


def mean_var_loss(model: RewardModel, spec: MeanVarSpec, mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, target: Tensor) -> Tensor:
    """Mean over pairs of the KL loss (ρ from the head) or, with `spec.nll_baseline`, the NLL baseline; (B,) inputs, target (B, 5)."""
    edges = tuple(spec.edges)
    if spec.nll_baseline:
        return mean_var_nll_loss(mu_a, sigma_a, mu_b, sigma_b, target, edges)
    return mean_var_kl_loss(mu_a, sigma_a, mu_b, sigma_b, target, model.head.rho(), edges)

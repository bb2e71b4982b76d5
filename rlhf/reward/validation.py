"""Validation rows of a reward model, one store per batch kind: each keeps its batches' rows on this rank and, at
epoch end, computes its metrics over every rank's rows (`Gather`, a collective, in rank order). `PairRows`:
val/accuracy, val/margin (+ val/loss); `RatingRows`: val/mse/<attr>, val/pearson/<attr> (+ val/loss);
`DisagreementRows`: val/loss, val/sigma and the divergence metrics. Left out: logging (`RewardModelModule`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, ClassVar, get_args

import torch
from torch import Tensor

from rlhf.losses import masked_mse
from rlhf.metrics import LAMBDA_GRID, disagreement_metrics, pairwise_accuracy, pearson
from rlhf.models.heads import attribute_slots
from rlhf.models.reward_model import RewardModel
from rlhf.reward.forward import AnyRatingBatch, MeanVarSpec, PairBatch, RewardBatch, mean_var_loss, mean_var_rewards, pair_rewards, rating_outputs
from rlhf.types import HS2_ATTRIBUTES, DisagreementBatch

Gather = Callable[[Tensor], Tensor]  # this rank's validation rows → every rank's rows, in rank order (a collective)


@dataclass(eq=False)
class ValidationRows:
    """What one kind of validation batch contributes: `score` gives the `keys` rows of a batch, stored per batch;
    `compute` the metrics over every rank's rows at epoch end (subclasses implement both)."""

    batch_types: ClassVar[tuple[type, ...]] = ()
    keys: ClassVar[tuple[str, ...]] = ()
    rows: dict[str, list[Tensor]] = field(default_factory=lambda: defaultdict(list), init=False)

    def update(self, model: RewardModel, batch: RewardBatch) -> None:
        for key, value in zip(self.keys, self.score(model, batch)):
            self.rows[key].append(value.detach())

    def metrics(self, model: RewardModel, gather: Gather) -> dict[str, Tensor]:
        """{} when no batch of this kind was seen; else the metrics over every rank's rows (emptied afterwards)."""
        if not self.rows:
            return {}
        rows = [gather(torch.cat(self.rows[k])) for k in self.keys]
        self.rows.clear()
        return self.compute(model, *rows)


@dataclass(eq=False)
class PairRows(ValidationRows):
    """val/accuracy and val/margin on preference pairs, plus val/loss when `loss_fn` (a `PAIRWISE_LOSSES` entry) is set."""

    batch_types = get_args(PairBatch)
    keys = ("chosen", "rejected", "margin")
    loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None

    def score(self, model: RewardModel, batch: PairBatch) -> tuple[Tensor, ...]:
        return *pair_rewards(model, batch), batch.margin

    def compute(self, model: RewardModel, chosen: Tensor, rejected: Tensor, margin: Tensor) -> dict[str, Tensor]:
        out = {"val/accuracy": pairwise_accuracy(chosen, rejected), "val/margin": (chosen - rejected).mean()}
        if self.loss_fn is not None:
            out["val/loss"] = self.loss_fn(chosen, rejected, margin)
        return out


@dataclass(eq=False)
class RatingRows(ValidationRows):
    """val/mse/<attr> and val/pearson/<attr> for each attribute the head has, plus val/loss (masked MSE) if `with_loss`."""

    batch_types = get_args(AnyRatingBatch)
    keys = ("pred", "labels", "label_mask")
    n_out: int
    with_loss: bool = False

    def score(self, model: RewardModel, batch: AnyRatingBatch) -> tuple[Tensor, ...]:
        return rating_outputs(model, batch, self.n_out)

    def compute(self, model: RewardModel, pred: Tensor, labels: Tensor, mask: Tensor) -> dict[str, Tensor]:
        out = {"val/loss": masked_mse(pred, labels, mask)} if self.with_loss else {}
        names = [a for a, s in zip(HS2_ATTRIBUTES, attribute_slots(self.n_out).tolist()) if s >= 0]
        for j, name in enumerate(names):
            m = mask[:, j]
            if m.any():
                out[f"val/mse/{name}"] = ((pred[m, j] - labels[m, j]) ** 2).mean()
                out[f"val/pearson/{name}"] = pearson(pred[m, j], labels[m, j])
        return out


@dataclass(eq=False)
class DisagreementRows(ValidationRows):
    """val/loss, val/sigma, `disagreement_metrics`: accuracy of sign(μ_A − μ_B) against the sign of the target's expected
    strength (ties out), divergence AUROCs with the configured λ, of −|μ_A − μ_B| (the scalar-RM baseline) and with λ
    tuned over `LAMBDA_GRID` ON THE SAME VALIDATION SPLIT (optimistic: report it as tuned)."""

    batch_types = (DisagreementBatch,)
    keys = ("mu_a", "sigma_a", "mu_b", "sigma_b", "target", "diverging")
    spec: MeanVarSpec

    def score(self, model: RewardModel, batch: DisagreementBatch) -> tuple[Tensor, ...]:
        return *mean_var_rewards(model, batch), batch.target, batch.diverging

    def compute(self, model: RewardModel, mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, target: Tensor, diverging: Tensor) -> dict[str, Tensor]:
        out = {"val/loss": mean_var_loss(model, self.spec, mu_a, sigma_a, mu_b, sigma_b, target), "val/sigma": torch.cat([sigma_a, sigma_b]).mean()}
        stats = disagreement_metrics(mu_a, sigma_a, mu_b, sigma_b, target, diverging, self.spec.divergence_lambda, LAMBDA_GRID)
        return out | {f"val/{k}": v for k, v in stats.items()}

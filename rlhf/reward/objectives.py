"""Reward-model objectives as small strategies: what each `loss` trains on, its loss, and its validation metrics.

`Regression` ("mse", SteerLM) trains on ratings, `Pairwise` ("bt" / "margin_bt" / "scaled_bt") on preference pairs,
`MeanVariance` ("mean_var", spec §7.2) on annotator distributions; `OBJECTIVES` maps every `LossName` to its class.
The math stays in `rlhf.losses` and `rlhf.metrics`. Every objective also validates on pairs (accuracy, margin) and
ratings (per-attribute MSE, Pearson), e.g. a regression model's `val_pairs_path`, and adds val/loss on its own kind.
Left out: logging, the per-unit gradient weighting and the cross-rank gather (`RewardModelModule` does those).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor

from rlhf.losses import DEFAULT_EDGES, PAIRWISE_LOSSES, LossName, masked_mse, mean_var_kl_loss, mean_var_nll_loss
from rlhf.metrics import LAMBDA_GRID, disagreement_metrics, pairwise_accuracy, pearson
from rlhf.models.heads import HeadSpec, attribute_slots
from rlhf.models.reward_model import RewardModel
from rlhf.types import HS2_ATTRIBUTES, DisagreementBatch, PackedPreferenceBatch, PackedRatingBatch, PreferenceBatch, RatingBatch

PairBatch = PreferenceBatch | PackedPreferenceBatch
AnyRatingBatch = RatingBatch | PackedRatingBatch
RewardBatch = PairBatch | AnyRatingBatch | DisagreementBatch
Gather = Callable[[Tensor], Tensor]  # this rank's validation rows → every rank's rows, in rank order (a collective)

# what `check_data`'s refusals call a data module's `batch_type` (annotator distributions have a message of their own)
DATA_NAMES: dict[type, str] = {PreferenceBatch: "preference pairs", RatingBatch: "ratings"}


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


class TrainStep(NamedTuple):
    """One micro-batch's loss: `loss` is the mean over its `units` (pairs or labelled attributes, the weight of
    `RewardModelModule._counted`), `rows` its examples (the log's batch size), `stats` the further train/ logs."""

    loss: Tensor
    units: int
    rows: int
    stats: dict[str, Tensor]


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

    batch_types = (PreferenceBatch, PackedPreferenceBatch)
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

    batch_types = (RatingBatch, PackedRatingBatch)
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


class Objective:
    """One reward-model loss: the batches it trains on, its loss on them, and the validation it keeps. Subclasses set
    `batch_types` (padded and packed), `data` (what they train on, for messages), `validation` (one `ValidationRows` per
    batch kind they validate on, in gather order) and implement `loss`; all take the arguments of `OBJECTIVES`."""

    batch_types: ClassVar[tuple[type, ...]] = ()
    data: ClassVar[str] = ""

    def __init__(self, loss: LossName, head: HeadSpec, mean_var: MeanVarSpec) -> None:
        self.name = loss
        self.validation: list[ValidationRows] = []

    def head(self, head: HeadSpec) -> HeadSpec:
        """The head this objective trains, from the configured one; raises if it cannot train that head kind."""
        if head.kind != "linear":
            raise ValueError(f"head.kind '{head.kind}' needs loss 'mean_var', not '{self.name}'")
        return head

    def meta(self) -> dict[str, object]:
        """Settings of this objective stored in checkpoint metadata beside `loss` (none by default)."""
        return {}

    def loss(self, model: RewardModel, batch: RewardBatch) -> TrainStep:
        raise NotImplementedError

    def check_data(self, batch_type: type, training: bool) -> None:
        """At setup: TypeError if a data module of `batch_type` batches cannot train (if `training`) or validate this."""
        trains, validates = batch_type in self.batch_types, any(batch_type in rows.batch_types for rows in self.validation)
        if batch_type is DisagreementBatch and not (trains if training else validates):  # only "mean_var" takes these
            verb = "does not train" if training else "cannot validate"
            raise TypeError(f"loss '{self.name}' {verb} on annotator distributions (DisagreementDataModule); use loss 'mean_var'")
        given = DATA_NAMES.get(batch_type, f"{batch_type.__name__} batches")
        if training and not trains:
            raise TypeError(f"loss '{self.name}' trains on {self.data}, but the data module gives {given}")
        if not validates:
            raise TypeError(f"loss '{self.name}' cannot validate on {given}")

    def validation_update(self, model: RewardModel, batch: RewardBatch) -> None:
        """Store what the epoch-end metrics need from one validation batch."""
        for rows in self.validation:
            if isinstance(batch, rows.batch_types):
                return rows.update(model, batch)
        raise TypeError(f"loss '{self.name}' cannot validate on {type(batch).__name__}")

    def validation_metrics(self, model: RewardModel, gather: Gather) -> dict[str, Tensor]:
        """val/ metrics over every rank's stored rows (each kind gathered in `validation` order), then forgotten."""
        return {k: v for rows in self.validation for k, v in rows.metrics(model, gather).items()}


class Regression(Objective):
    """SteerLM regression ("mse"): masked MSE of the head slots of the labelled attributes, per labelled attribute."""

    batch_types = (RatingBatch, PackedRatingBatch)
    data = "ratings (RatingDataModule)"

    def __init__(self, loss: LossName, head: HeadSpec, mean_var: MeanVarSpec) -> None:
        super().__init__(loss, head, mean_var)
        self.n_out, self.validation = head.n_out, [PairRows(), RatingRows(head.n_out, with_loss=True)]

    def loss(self, model: RewardModel, batch: AnyRatingBatch) -> TrainStep:
        pred, labels, mask = rating_outputs(model, batch, self.n_out)
        return TrainStep(masked_mse(pred, labels, mask), int(mask.sum()), labels.shape[0], {})


class Pairwise(Objective):
    """Bradley-Terry on the reward slot ("bt", "margin_bt", "scaled_bt"), per pair; also logs accuracy and margin."""

    batch_types = (PreferenceBatch, PackedPreferenceBatch)
    data = "preference pairs"

    def __init__(self, loss: LossName, head: HeadSpec, mean_var: MeanVarSpec) -> None:
        super().__init__(loss, head, mean_var)
        self.loss_fn = PAIRWISE_LOSSES[loss]
        self.validation = [PairRows(self.loss_fn), RatingRows(head.n_out)]

    def loss(self, model: RewardModel, batch: PairBatch) -> TrainStep:
        chosen, rejected = pair_rewards(model, batch)
        stats = {"accuracy": pairwise_accuracy(chosen, rejected), "margin": (chosen - rejected).mean()}
        return TrainStep(self.loss_fn(chosen, rejected, batch.margin), batch.num_pairs, batch.num_pairs, stats)


class MeanVariance(Objective):
    """Mean-variance RM ("mean_var", spec §7.2): KL from the annotators' 5-class distribution to the interval-CDF
    probabilities (or the independent-NLL baseline), ρ = 0 or a learned tanh(scalar); logs σ (and ρ)."""

    batch_types = (DisagreementBatch,)
    data = "annotator distributions (DisagreementDataModule)"

    def __init__(self, loss: LossName, head: HeadSpec, mean_var: MeanVarSpec) -> None:
        super().__init__(loss, head, mean_var)
        if mean_var.rho == "learned" and mean_var.nll_baseline:
            raise ValueError("mean_var.nll_baseline fixes ρ = 0; it cannot be combined with mean_var.rho=learned")
        if list(mean_var.edges) != sorted(mean_var.edges) or len(mean_var.edges) != 4:
            raise ValueError(f"mean_var.edges must be 4 ascending values (5 classes), got {mean_var.edges}")
        self.spec, self.validation = mean_var, [PairRows(), RatingRows(head.n_out), DisagreementRows(mean_var)]

    def head(self, head: HeadSpec) -> HeadSpec:
        return dataclasses.replace(head, kind="mean_var", learned_rho=self.spec.rho == "learned")

    def meta(self) -> dict[str, object]:
        return {"mean_var": dataclasses.asdict(self.spec)}

    def loss(self, model: RewardModel, batch: DisagreementBatch) -> TrainStep:
        mu_a, sigma_a, mu_b, sigma_b = mean_var_rewards(model, batch)
        stats = {"sigma": torch.cat([sigma_a, sigma_b]).mean()}
        if model.head.rho_raw is not None:
            stats["rho"] = model.head.rho().detach()
        return TrainStep(mean_var_loss(model, self.spec, mu_a, sigma_a, mu_b, sigma_b, batch.target), batch.num_pairs, batch.num_pairs, stats)


OBJECTIVES: dict[LossName, type[Objective]] = {
    "mse": Regression,
    "bt": Pairwise,
    "margin_bt": Pairwise,
    "scaled_bt": Pairwise,
    "mean_var": MeanVariance,
}
"""Every `LossName` → the objective that trains it (built as `OBJECTIVES[loss](loss, head, mean_var)`)."""

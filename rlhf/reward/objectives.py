"""Reward-model objectives as small strategies: what each `loss` trains on, its loss, and its validation metrics.

`Regression` ("mse", SteerLM) trains on ratings, `Pairwise` ("bt" / "margin_bt" / "scaled_bt") on preference pairs,
`MeanVariance` ("mean_var", spec §7.2) on annotator distributions; `OBJECTIVES` maps every `LossName` to its class.
The math stays in `rlhf.losses` and `rlhf.metrics`. Every objective also validates on pairs (accuracy, margin) and
ratings (per-attribute MSE, Pearson), e.g. a regression model's `val_pairs_path`, and adds val/loss on its own kind.
The forward passes are `rlhf.reward.forward`, the validation stores `rlhf.reward.validation`. Left out: logging, the
per-unit gradient weighting and the cross-rank gather (`RewardModelModule` does those).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple, get_args

import torch
from torch import Tensor

from rlhf.losses import PAIRWISE_LOSSES, LossName, masked_mse
from rlhf.metrics import pairwise_accuracy
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import RewardModel
from rlhf.reward.forward import AnyRatingBatch, MeanVarSpec, PairBatch, RewardBatch, mean_var_loss, mean_var_rewards, pair_rewards, rating_outputs
from rlhf.reward.validation import DisagreementRows, Gather, PairRows, RatingRows, ValidationRows
from rlhf.types import DisagreementBatch, PreferenceBatch, RatingBatch

# what `check_data`'s refusals call a data module's `batch_type` (annotator distributions have a message of their own)
DATA_NAMES: dict[type, str] = {PreferenceBatch: "preference pairs", RatingBatch: "ratings"}


class TrainStep(NamedTuple):
    """One micro-batch's loss: `loss` is the mean over its `units` (pairs or labelled attributes, the weight of
    `RewardModelModule._counted`), `rows` its examples (the log's batch size), `stats` the further train/ logs."""

    loss: Tensor
    units: int
    rows: int
    stats: dict[str, Tensor]


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

    batch_types = get_args(AnyRatingBatch)
    data = "ratings (RatingDataModule)"

    def __init__(self, loss: LossName, head: HeadSpec, mean_var: MeanVarSpec) -> None:
        super().__init__(loss, head, mean_var)
        self.n_out, self.validation = head.n_out, [PairRows(), RatingRows(head.n_out, with_loss=True)]

    def loss(self, model: RewardModel, batch: AnyRatingBatch) -> TrainStep:
        pred, labels, mask = rating_outputs(model, batch, self.n_out)
        return TrainStep(masked_mse(pred, labels, mask), int(mask.sum()), labels.shape[0], {})


class Pairwise(Objective):
    """Bradley-Terry on the reward slot ("bt", "margin_bt", "scaled_bt"), per pair; also logs accuracy and margin."""

    batch_types = get_args(PairBatch)
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

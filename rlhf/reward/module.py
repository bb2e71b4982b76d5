"""RewardModelModule: trains a reward model with SteerLM regression or a Bradley-Terry variant (spec §3.1–3.5).

Regression batches (`RatingBatch`) train `mse` on the head slots of the labelled attributes; preference batches
(`PreferenceBatch`) train `bt` / `margin_bt` / `scaled_bt` on the reward slot, chosen and rejected in one forward
pass. `init_from` loads a stage-1 checkpoint, head included, before training: the paper's two-stage recipe.
Validation logs the loss, pairwise accuracy and mean margin on pairs, per-attribute MSE and Pearson on ratings.
`mean_var` (spec §7) trains a mean-variance head (μ, σ per response) on `DisagreementBatch`es: the KL from the
annotators' 5-class distribution to the interval-CDF probabilities (or the independent-NLL baseline), with ρ = 0 or
a learned tanh(scalar). Its validation logs the loss, the accuracy of sign(μ_A − μ_B) against the sign of the
target's expected strength (target ties left out), and divergence AUROCs: `val/divergence_auroc` with the
configured λ, `val/divergence_auroc_scalar` (−|μ_A − μ_B|, the scalar-RM baseline) and
`val/divergence_auroc_best` / `val/divergence_lambda_best`, λ tuned over `LAMBDA_GRID` ON THE SAME VALIDATION SPLIT
(optimistic; report it as tuned, or pick λ here and set `mean_var.divergence_lambda` for a held-out split).
Every pair (or labelled attribute) of an optimizer step weighs the same, across micro-batches of any size (token
budgets), gradient accumulation and ranks; validation metrics are computed on all ranks' rows gathered together.
Packed batches (`PackedPreferenceBatch`, `PackedRatingBatch`, from `loader.packing`) take the padding-free forward
pass and give the same rewards. The backbone is built in `configure_model`, so parsing a config never loads weights;
under `ModelParallelStrategy` it is then sharded with FSDP2 (`rlhf.models.sharding`). ExPO and RewardBench live
elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from rlhf.training.checkpoint import load_trained, lora_signature, read_meta, specs_from_meta
from rlhf.training.distributed import data_parallel, gather_rows, sum_over_ranks, validation_shard
from rlhf.losses import DEFAULT_EDGES, PAIRWISE_LOSSES, LossName, masked_mse, mean_var_kl_loss, mean_var_nll_loss
from rlhf.metrics import LAMBDA_GRID, disagreement_metrics, pairwise_accuracy, pearson
from rlhf.models.backbone import DTYPES, BackboneSpec, check_tokenizer_fits, load_tokenizer
from rlhf.models.heads import HeadSpec, attribute_slots
from rlhf.models.reward_model import RewardModel, build_reward_model
from rlhf.models.sharding import shard_model
from rlhf.training.resume import keep_trained, restore_trained
from rlhf.types import HS2_ATTRIBUTES, DisagreementBatch, PackedPreferenceBatch, PackedRatingBatch, PreferenceBatch, RatingBatch

PairBatch = PreferenceBatch | PackedPreferenceBatch
RatingBatches = (RatingBatch, PackedRatingBatch)


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


def _lora_text(sig: tuple | None, other: tuple | None) -> str:
    """"r=16, alpha=32" (plus the targets when they differ from `other`'s) of a `lora_signature`; "no LoRA" for None."""
    if sig is None:
        return "no LoRA"
    targets = f", targets {list(sig[2])}" if other is None or sig[2] != other[2] else ""
    return f"r={sig[0]}, alpha={sig[1]}{targets}"


class RewardModelModule(LightningModule):
    """Reward-model training.

    Args:
        backbone: which Llama, LoRA and quantisation.
        loss: "mse" (SteerLM regression, needs a rating data module), "bt" / "margin_bt" / "scaled_bt" (pairs) or
            "mean_var" (mean-variance head on annotator distributions, needs a DisagreementDataModule).
        head: head size, reward slot, bias and init (kind is set from the loss).
        mean_var: edges, ρ, λ and NLL baseline of loss "mean_var" (ignored otherwise).
        init_from: a checkpoint directory of this repo to start from, head included (two-stage recipe).
        optimizer: optimizer factory, e.g. AdamW with lr and weight decay.
        scheduler: learning-rate schedule factory, stepped every optimizer step; None keeps the lr constant.
        head_lr_scale: the head's parameters (ρ included) train at this multiple of the optimizer's lr, in their own
            param group; 1.0 keeps one group. The mean-variance head's σ row starts at zero weight and needs it.
    """

    def __init__(
        self,
        backbone: BackboneSpec,
        loss: LossName = "scaled_bt",
        head: HeadSpec = HeadSpec(),
        mean_var: MeanVarSpec = MeanVarSpec(),
        init_from: str | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        head_lr_scale: float = 1.0,
    ):
        super().__init__()
        if not head_lr_scale > 0:
            raise ValueError(f"head_lr_scale must be > 0, got {head_lr_scale}")
        if loss == "mean_var":
            if mean_var.rho == "learned" and mean_var.nll_baseline:
                raise ValueError("mean_var.nll_baseline fixes ρ = 0; it cannot be combined with mean_var.rho=learned")
            if list(mean_var.edges) != sorted(mean_var.edges) or len(mean_var.edges) != 4:
                raise ValueError(f"mean_var.edges must be 4 ascending values (5 classes), got {mean_var.edges}")
            head = dataclasses.replace(head, kind="mean_var", learned_rho=mean_var.rho == "learned")
        elif head.kind != "linear":
            raise ValueError(f"head.kind '{head.kind}' needs loss 'mean_var', not '{loss}'")
        head.resolved_slot()  # fail at parse time on a bad head size
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.mean_var = mean_var
        self.backbone_spec, self.loss, self.head_spec, self.init_from = backbone, loss, head, init_from
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.head_lr_scale = head_lr_scale
        self.model: RewardModel | None = None
        self._val: dict[str, list[Tensor]] = defaultdict(list)
        self._step_units = 0  # pairs / labelled attributes back-propagated on this rank since the last optimizer step

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = build_reward_model(self.backbone_spec, self.head_spec)
        check_tokenizer_fits(load_tokenizer(self.backbone_spec.name_or_path), self.model.backbone, self.backbone_spec.name_or_path)
        if self.init_from:
            meta = read_meta(self.init_from)
            _, head = specs_from_meta(meta)
            if head.n_out != self.head_spec.n_out:
                raise ValueError(f"init_from {self.init_from} has a {head.n_out}-output head, this model {self.head_spec.n_out}")
            theirs, ours = lora_signature(meta["backbone"]["lora"]), lora_signature(dataclasses.asdict(self.backbone_spec)["lora"])
            if theirs != ours:  # other shapes fail on load; the same shapes with another alpha would silently be other weights
                raise ValueError(f"init_from {self.init_from}: its LoRA has {_lora_text(theirs, ours)}, this model {_lora_text(ours, theirs)}; "
                                 "set model.backbone.lora to match (an ExPO checkpoint has r and alpha doubled)")
            load_trained(self.model, self.init_from)
        if self.device_mesh is not None:  # ModelParallelStrategy: FSDP2 over the data-parallel ranks
            shard_model(self.model, self.device_mesh, DTYPES[self.backbone_spec.dtype])
        self.model.train()  # from_pretrained returns eval mode; Lightning switches modes from here on

    def checkpoint_meta(self) -> dict:
        return {
            "backbone": dataclasses.asdict(self.backbone_spec),
            "head": dataclasses.asdict(self.head_spec),
            "loss": self.loss,
            **({"mean_var": dataclasses.asdict(self.mean_var)} if self.loss == "mean_var" else {}),
            "init_from": self.init_from,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep_trained(self, checkpoint)  # resume.ckpt: LoRA + head only, loadable with weights_only

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_trained(self, checkpoint)

    def _outputs(self, batch: PairBatch | RatingBatch | PackedRatingBatch) -> Tensor:
        """(N, n_out) head outputs of every sequence in the batch, padded or packed."""
        if isinstance(batch, (PackedPreferenceBatch, PackedRatingBatch)):
            return self.model.forward_packed(batch.tokens)
        return self.model(batch.input_ids, batch.attention_mask)

    def _pairwise(self, batch: PairBatch) -> tuple[Tensor, Tensor]:
        rewards = self.model.reward(self._outputs(batch))  # (2B,)
        chosen, rejected = rewards.float().chunk(2)
        return chosen, rejected

    def _mean_var(self, batch: DisagreementBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """μ_A, σ_A, μ_B, σ_B, each (B,), A = response_1 rows and B = response_2 rows of one forward pass."""
        outputs = self.model(batch.input_ids, batch.attention_mask).float()
        mu, sigma = self.model.reward(outputs), self.model.sigma(outputs)
        mu_a, mu_b = mu.chunk(2)
        sigma_a, sigma_b = sigma.chunk(2)
        return mu_a, sigma_a, mu_b, sigma_b

    def _mean_var_loss(self, mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, target: Tensor) -> Tensor:
        edges = tuple(self.mean_var.edges)
        if self.mean_var.nll_baseline:
            return mean_var_nll_loss(mu_a, sigma_a, mu_b, sigma_b, target, edges)
        return mean_var_kl_loss(mu_a, sigma_a, mu_b, sigma_b, target, self.model.head.rho(), edges)

    def _regression(self, batch: RatingBatch | PackedRatingBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Head outputs, labels and mask restricted to the attributes this head has: each (B, A')."""
        slots = attribute_slots(self.head_spec.n_out).to(batch.labels.device)
        present = slots >= 0
        if bool(batch.label_mask[:, ~present].any()):
            missing = [a for a, p in zip(HS2_ATTRIBUTES, present.tolist()) if not p]
            raise ValueError(f"the data labels {missing} but a {self.head_spec.n_out}-output head has no slot for them")
        outputs = self._outputs(batch).float()
        return outputs[:, slots[present]], batch.labels[:, present], batch.label_mask[:, present]

    def _counted(self, loss: Tensor, units: int) -> Tensor:
        """`loss`, the mean over this micro-batch's `units` (pairs or labelled attributes), with its gradient scaled
        by `units`: summed over micro-batches and ranks, `on_before_optimizer_step` then divides by the step's total,
        so every unit of an optimizer step weighs the same, whatever the micro-batch sizes (token budgets)."""
        self._step_units += units
        if loss.requires_grad:
            loss.register_hook(lambda grad: grad * units)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # gradients now hold Σ_units ∇loss / (accumulate x world) (Lightning divides by accumulate, DDP/FSDP by world)
        _, world = data_parallel(self.trainer)
        total = sum_over_ranks(self.trainer.strategy, self._step_units, self.device, world)
        self._step_units = 0
        scale = self.trainer.accumulate_grad_batches * world / total
        for p in self.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)

    def training_step(self, batch: PairBatch | RatingBatch | PackedRatingBatch | DisagreementBatch, batch_idx: int) -> Tensor:
        if isinstance(batch, DisagreementBatch):
            if self.loss != "mean_var":
                raise TypeError(f"loss '{self.loss}' does not train on annotator distributions (DisagreementDataModule); use loss 'mean_var'")
            mu_a, sigma_a, mu_b, sigma_b = self._mean_var(batch)
            loss = self._counted(self._mean_var_loss(mu_a, sigma_a, mu_b, sigma_b, batch.target), batch.num_pairs)
            stats = {"loss": loss, "sigma": torch.cat([sigma_a, sigma_b]).mean()}
            if self.model.head.rho_raw is not None:
                stats["rho"] = self.model.head.rho().detach()
            self.log_dict({f"train/{k}": v for k, v in stats.items()}, prog_bar=True, batch_size=batch.num_pairs)
            return loss
        if self.loss == "mean_var":
            raise TypeError("loss 'mean_var' trains on annotator distributions (DisagreementDataModule), but the data module gives "
                            + ("ratings" if isinstance(batch, RatingBatches) else "preference pairs"))
        if isinstance(batch, RatingBatches):
            if self.loss != "mse":
                raise TypeError(f"loss '{self.loss}' trains on preference pairs, but the data module gives ratings")
            pred, labels, mask = self._regression(batch)
            loss = self._counted(masked_mse(pred, labels, mask), int(mask.sum()))
            self.log("train/loss", loss, prog_bar=True, batch_size=labels.shape[0])
            return loss
        if self.loss == "mse":
            raise TypeError("loss 'mse' trains on ratings (RatingDataModule), but the data module gives preference pairs")
        chosen, rejected = self._pairwise(batch)
        loss = self._counted(PAIRWISE_LOSSES[self.loss](chosen, rejected, batch.margin), batch.num_pairs)
        stats = {"loss": loss, "accuracy": pairwise_accuracy(chosen, rejected), "margin": (chosen - rejected).mean()}
        self.log_dict({f"train/{k}": v for k, v in stats.items()}, prog_bar=True, batch_size=batch.num_pairs)
        return loss

    def validation_step(self, batch: PairBatch | RatingBatch | PackedRatingBatch | DisagreementBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(batch, DisagreementBatch):
            if self.loss != "mean_var":
                raise TypeError(f"loss '{self.loss}' cannot validate on annotator distributions (DisagreementDataModule); use loss 'mean_var'")
            for name, value in zip(("mu_a", "sigma_a", "mu_b", "sigma_b"), self._mean_var(batch)):
                self._val[name].append(value.detach())
            self._val["target"].append(batch.target)
            self._val["diverging"].append(batch.diverging)
            return
        if isinstance(batch, RatingBatches):
            pred, labels, mask = self._regression(batch)
            self._val["pred"].append(pred.detach())
            self._val["labels"].append(labels)
            self._val["label_mask"].append(mask)
            return
        chosen, rejected = self._pairwise(batch)
        self._val["chosen"].append(chosen.detach())
        self._val["rejected"].append(rejected.detach())
        self._val["margin"].append(batch.margin)

    def on_validation_epoch_end(self) -> None:
        # every rank scored its own block of each validation set: gather them all, then compute the global metrics
        _, world = validation_shard(self.trainer)

        def rows(*keys: str) -> list[Tensor]:
            return [gather_rows(self.trainer.strategy, torch.cat(self._val[k]), world) for k in keys]

        metrics = {}
        if self._val["chosen"]:
            metrics.update(self._pair_metrics(*rows("chosen", "rejected", "margin")))
        if self._val["pred"]:
            metrics.update(self._rating_metrics(*rows("pred", "labels", "label_mask")))
        if self._val["mu_a"]:
            metrics.update(self._mean_var_metrics(*rows("mu_a", "sigma_a", "mu_b", "sigma_b", "target", "diverging")))
        self._val.clear()
        self.log_dict(metrics, sync_dist=False)  # already global and equal on every rank: averaging would change nothing

    def _pair_metrics(self, chosen: Tensor, rejected: Tensor, margin: Tensor) -> dict[str, Tensor]:
        out = {"val/accuracy": pairwise_accuracy(chosen, rejected), "val/margin": (chosen - rejected).mean()}
        if self.loss in PAIRWISE_LOSSES:
            out["val/loss"] = PAIRWISE_LOSSES[self.loss](chosen, rejected, margin)
        return out

    def _mean_var_metrics(self, mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, target: Tensor, diverging: Tensor) -> dict[str, Tensor]:
        out = {"val/loss": self._mean_var_loss(mu_a, sigma_a, mu_b, sigma_b, target), "val/sigma": torch.cat([sigma_a, sigma_b]).mean()}
        stats = disagreement_metrics(mu_a, sigma_a, mu_b, sigma_b, target, diverging, self.mean_var.divergence_lambda, LAMBDA_GRID)
        return out | {f"val/{k}": v for k, v in stats.items()}

    def _rating_metrics(self, pred: Tensor, labels: Tensor, mask: Tensor) -> dict[str, Tensor]:
        out = {"val/loss": masked_mse(pred, labels, mask)} if self.loss == "mse" else {}
        names = [a for a, s in zip(HS2_ATTRIBUTES, attribute_slots(self.head_spec.n_out).tolist()) if s >= 0]
        for j, name in enumerate(names):
            m = mask[:, j]
            if m.any():
                out[f"val/mse/{name}"] = ((pred[m, j] - labels[m, j]) ** 2).mean()
                out[f"val/pearson/{name}"] = pearson(pred[m, j], labels[m, j])
        return out

    def configure_optimizers(self):
        trained = [p for p in self.parameters() if p.requires_grad]
        if self.head_lr_scale == 1.0:
            optimizer = self.optimizer_factory(trained)
        else:
            head = {id(p) for p in self.model.head.parameters()}
            optimizer = self.optimizer_factory([{"params": [p for p in trained if id(p) not in head]}, {"params": [p for p in trained if id(p) in head]}])
            optimizer.param_groups[1]["lr"] *= self.head_lr_scale  # before the scheduler reads its base lrs
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

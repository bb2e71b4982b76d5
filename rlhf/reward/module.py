"""RewardModelModule: trains a reward model with the objective its `loss` names (spec §3.1–3.5, §7).

The objectives (`rlhf.reward.objectives`): SteerLM regression (`mse`) on ratings, Bradley-Terry (`bt` / `margin_bt` /
`scaled_bt`) on preference pairs, the mean-variance RM (`mean_var`) on annotator distributions; a data module of the
wrong kind is refused at setup. `init_from` loads a stage-1 checkpoint, head included: the two-stage recipe. Every
pair (or labelled attribute) of an optimizer step weighs the same, across micro-batches of any size (token budgets),
gradient accumulation and ranks; validation metrics are computed on all ranks' rows gathered together. The backbone
is built in `configure_model`, so parsing a config never loads weights; under `ModelParallelStrategy` it is then
sharded with FSDP2 (`rlhf.models.sharding`). ExPO and RewardBench live elsewhere.
"""

from __future__ import annotations

import dataclasses

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from rlhf.losses import LossName
from rlhf.models.backbone import DTYPES, BackboneSpec, check_tokenizer_fits, load_tokenizer
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import RewardModel, build_reward_model
from rlhf.models.sharding import shard_model
from rlhf.reward.objectives import OBJECTIVES, MeanVarSpec, RewardBatch
from rlhf.training.checkpoint import load_trained, lora_signature, read_meta, specs_from_meta
from rlhf.training.distributed import data_parallel, gather_rows, sum_over_ranks, validation_shard
from rlhf.training.resume import keep_trained, restore_trained


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
        self.objective = OBJECTIVES[loss](loss, head, mean_var)  # checks its own settings
        head = self.objective.head(head)  # the mean-variance objective sets the head kind; saved as the hyper-parameter
        head.resolved_slot()  # fail at parse time on a bad head size
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.mean_var = mean_var
        self.backbone_spec, self.loss, self.head_spec, self.init_from = backbone, loss, head, init_from
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.head_lr_scale = head_lr_scale
        self.model: RewardModel | None = None
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
            **self.objective.meta(),
            "init_from": self.init_from,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep_trained(self, checkpoint)  # resume.ckpt: LoRA + head only, loadable with weights_only

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_trained(self, checkpoint)

    def setup(self, stage: str) -> None:
        """Refuse, once, a data module whose batches this loss cannot train on (fit) or validate on."""
        batch_type = getattr(self.trainer.datamodule, "batch_type", None)  # loaders passed directly: not checked
        if batch_type is not None:
            self.objective.check_data(batch_type, training=stage == "fit")

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

    def training_step(self, batch: RewardBatch, batch_idx: int) -> Tensor:
        step = self.objective.loss(self.model, batch)  # the mean over the micro-batch's pairs or labelled attributes
        loss = self._counted(step.loss, step.units)
        self.log_dict({"train/loss": loss} | {f"train/{k}": v for k, v in step.stats.items()}, prog_bar=True, batch_size=step.rows)
        return loss

    def validation_step(self, batch: RewardBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.objective.validation_update(self.model, batch)

    def on_validation_epoch_end(self) -> None:
        # every rank scored its own block of each validation set: gather them all, then compute the global metrics
        _, world = validation_shard(self.trainer)
        metrics = self.objective.validation_metrics(self.model, lambda rows: gather_rows(self.trainer.strategy, rows, world))
        self.log_dict(metrics, sync_dist=False)  # already global and equal on every rank: averaging would change nothing

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

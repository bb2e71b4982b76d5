"""RewardModelModule: trains a reward model with SteerLM regression or a Bradley-Terry variant (spec §3.1–3.5).

Regression batches (`RatingBatch`) train `mse` on the head slots of the labelled attributes; preference batches
(`PreferenceBatch`) train `bt` / `margin_bt` / `scaled_bt` on the reward slot, chosen and rejected in one forward
pass. `init_from` loads a stage-1 checkpoint, head included, before training: the paper's two-stage recipe.
Validation logs the loss, pairwise accuracy and mean margin on pairs, per-attribute MSE and Pearson on ratings.
The backbone is built in `configure_model`, so parsing a config never loads weights. ExPO and RewardBench live
elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from rlhf.checkpoint import load_trained, read_meta, specs_from_meta
from rlhf.losses import PAIRWISE_LOSSES, LossName, masked_mse
from rlhf.metrics import pairwise_accuracy, pearson
from rlhf.models.backbone import BackboneSpec
from rlhf.models.heads import HeadSpec, attribute_slots
from rlhf.models.reward_model import RewardModel, build_reward_model
from rlhf.types import HS2_ATTRIBUTES, PreferenceBatch, RatingBatch


class RewardModelModule(LightningModule):
    """Reward-model training.

    Args:
        backbone: which Llama, LoRA and quantisation.
        loss: "mse" (SteerLM regression, needs a rating data module) or "bt" / "margin_bt" / "scaled_bt" (pairs).
        head: head size, reward slot, bias and init.
        init_from: a checkpoint directory of this repo to start from, head included (two-stage recipe).
        optimizer: optimizer factory, e.g. AdamW with lr and weight decay.
        scheduler: learning-rate schedule factory, stepped every optimizer step; None keeps the lr constant.
    """

    def __init__(
        self,
        backbone: BackboneSpec,
        loss: LossName = "scaled_bt",
        head: HeadSpec = HeadSpec(),
        init_from: str | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        head.resolved_slot()  # fail at parse time on a bad head size
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.backbone_spec, self.loss, self.head_spec, self.init_from = backbone, loss, head, init_from
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.model: RewardModel | None = None
        self._val: dict[str, list[Tensor]] = defaultdict(list)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = build_reward_model(self.backbone_spec, self.head_spec)
        if self.init_from:
            _, head = specs_from_meta(read_meta(self.init_from))
            if head.n_out != self.head_spec.n_out:
                raise ValueError(f"init_from {self.init_from} has a {head.n_out}-output head, this model {self.head_spec.n_out}")
            load_trained(self.model, self.init_from)
        self.model.train()  # from_pretrained returns eval mode; Lightning switches modes from here on

    def checkpoint_meta(self) -> dict:
        return {
            "backbone": dataclasses.asdict(self.backbone_spec),
            "head": dataclasses.asdict(self.head_spec),
            "loss": self.loss,
            "init_from": self.init_from,
        }

    def _pairwise(self, batch: PreferenceBatch) -> tuple[Tensor, Tensor]:
        rewards = self.model.reward(self.model(batch.input_ids, batch.attention_mask))  # (2B,)
        chosen, rejected = rewards.float().chunk(2)
        return chosen, rejected

    def _regression(self, batch: RatingBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Head outputs, labels and mask restricted to the attributes this head has: each (B, A')."""
        slots = attribute_slots(self.head_spec.n_out).to(batch.labels.device)
        present = slots >= 0
        if bool(batch.label_mask[:, ~present].any()):
            missing = [a for a, p in zip(HS2_ATTRIBUTES, present.tolist()) if not p]
            raise ValueError(f"the data labels {missing} but a {self.head_spec.n_out}-output head has no slot for them")
        outputs = self.model(batch.input_ids, batch.attention_mask).float()
        return outputs[:, slots[present]], batch.labels[:, present], batch.label_mask[:, present]

    def training_step(self, batch: PreferenceBatch | RatingBatch, batch_idx: int) -> Tensor:
        if isinstance(batch, RatingBatch):
            if self.loss != "mse":
                raise TypeError(f"loss '{self.loss}' trains on preference pairs, but the data module gives ratings")
            pred, labels, mask = self._regression(batch)
            loss = masked_mse(pred, labels, mask)
            self.log("train/loss", loss, prog_bar=True, batch_size=labels.shape[0])
            return loss
        if self.loss == "mse":
            raise TypeError("loss 'mse' trains on ratings (RatingDataModule), but the data module gives preference pairs")
        chosen, rejected = self._pairwise(batch)
        loss = PAIRWISE_LOSSES[self.loss](chosen, rejected, batch.margin)
        stats = {"loss": loss, "accuracy": pairwise_accuracy(chosen, rejected), "margin": (chosen - rejected).mean()}
        self.log_dict({f"train/{k}": v for k, v in stats.items()}, prog_bar=True, batch_size=batch.num_pairs)
        return loss

    def validation_step(self, batch: PreferenceBatch | RatingBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(batch, RatingBatch):
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
        metrics = {}
        if self._val["chosen"]:
            metrics.update(self._pair_metrics(*(torch.cat(self._val[k]) for k in ("chosen", "rejected", "margin"))))
        if self._val["pred"]:
            metrics.update(self._rating_metrics(*(torch.cat(self._val[k]) for k in ("pred", "labels", "label_mask"))))
        self._val.clear()
        self.log_dict(metrics, sync_dist=True)

    def _pair_metrics(self, chosen: Tensor, rejected: Tensor, margin: Tensor) -> dict[str, Tensor]:
        out = {"val/accuracy": pairwise_accuracy(chosen, rejected), "val/margin": (chosen - rejected).mean()}
        if self.loss != "mse":
            out["val/loss"] = PAIRWISE_LOSSES[self.loss](chosen, rejected, margin)
        return out

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
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

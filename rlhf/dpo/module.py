"""DPOModule: offline alignment on preference pairs with regular, margin or scaled DPO (spec §3.8).

The policy is a LoRA-wrapped causal Llama (the backbone builder of REINFORCE); the reference is the same model with
its adapter disabled, run in eval mode without grad (`rlhf.models.policy.reference_logprobs`: no second copy, no
dropout). Sequence log-probs sum the response tokens only (prompt and padding masked), Δ and the losses are the pure
functions of `rlhf.losses`. Logged: loss, implicit-reward accuracy (Δ > 0) and margin (mean Δ), chosen/rejected
log-prob drift (policy − reference per sequence) and, on validation, the k1 token-mean KL on chosen responses.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from rlhf.losses import DPO_LOSSES, DPOLossName, dpo_delta, masked_mean, masked_sum
from rlhf.models.backbone import BackboneSpec, load_backbone
from rlhf.models.policy import reference_logprobs, token_logprobs
from rlhf.training.resume import keep_trained, restore_trained
from rlhf.types import DPOBatch


class PairLogprobs(NamedTuple):
    """Per-token log-probs over columns 1..T−1 (N, T−1) of policy (with grad) and reference, and the response mask."""

    policy: Tensor
    reference: Tensor
    mask: Tensor


class DPOModule(LightningModule):
    """Regular / margin / scaled DPO of a LoRA-wrapped causal Llama against its own adapter-off reference.

    Args:
        backbone: the policy (and, adapter off, the reference): a causal Llama with LoRA.
        loss: "dpo" −log σ(Δ), "margin_dpo" −log σ(Δ − m), or "scaled_dpo" −m·log σ(Δ).
        beta: β in Δ = β[(log πθ(y_c) − log πref(y_c)) − (log πθ(y_r) − log πref(y_r))].
        optimizer: optimizer factory over the LoRA weights.
        scheduler: learning-rate schedule factory, stepped every optimizer step; None keeps the lr constant.
        logprob_chunk_tokens: the LM head scores this many positions at a time (memory-lean: no (2B, T, V)
            logits); None computes all logits at once.
    """

    def __init__(self, backbone: BackboneSpec, loss: DPOLossName = "dpo", beta: float = 0.1, optimizer: OptimizerCallable = torch.optim.AdamW, scheduler: LRSchedulerCallable | None = None, logprob_chunk_tokens: int | None = 2048):
        super().__init__()
        if backbone.lora is None:
            raise ValueError("DPOModule needs backbone.lora: the reference policy is the model with its adapter off")
        if loss not in DPO_LOSSES or beta <= 0:
            raise ValueError(f"DPOModule: unknown loss {loss!r} or beta {beta} <= 0")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.backbone_spec, self.loss_name, self.beta = backbone, loss, beta
        self.loss_fn = DPO_LOSSES[loss]
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.chunk_tokens = logprob_chunk_tokens
        self.model: torch.nn.Module | None = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = load_backbone(self.backbone_spec, causal_lm=True)
        self.model.train()  # from_pretrained returns eval mode; the reference pass switches to eval itself

    def checkpoint_meta(self) -> dict:
        return {"kind": "policy", "backbone": dataclasses.asdict(self.backbone_spec), "objective": {"loss": self.loss_name, "beta": self.beta}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep_trained(self, checkpoint)  # resume.ckpt: LoRA + head only, loadable with weights_only

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_trained(self, checkpoint)

    def pair_logprobs(self, batch: DPOBatch) -> PairLogprobs:
        """Token log-probs of every predicted column (1..T−1) under policy and reference; prompts need no alignment."""
        ids, mask = batch.input_ids, batch.attention_mask
        policy = token_logprobs(self.model, ids, mask, 1, chunk_tokens=self.chunk_tokens)
        reference = reference_logprobs(self.model, ids, mask, 1, chunk_tokens=self.chunk_tokens)
        return PairLogprobs(policy, reference, batch.response_mask[:, 1:])

    def _step(self, batch: DPOBatch, stage: str) -> Tensor:
        lp = self.pair_logprobs(batch)
        policy, reference = masked_sum(lp.policy, lp.mask, dim=1), masked_sum(lp.reference, lp.mask, dim=1)  # (2B,)
        b = batch.num_pairs
        delta = dpo_delta(policy[:b], policy[b:], reference[:b], reference[b:], self.beta)  # (B,)
        loss = self.loss_fn(delta, batch.margin)
        drift = (policy - reference).detach()
        metrics = {
            f"{stage}/loss": loss, f"{stage}/accuracy": (delta > 0).float().mean(), f"{stage}/margin": delta.detach().mean(),
            f"{stage}/chosen_drift": drift[:b].mean(), f"{stage}/rejected_drift": drift[b:].mean(),
        }
        if stage == "val":
            k1 = masked_mean((lp.policy - lp.reference)[:b], lp.mask[:b], dim=1)  # per chosen sequence, token mean
            metrics["val/kl_k1"] = k1.mean()
        self.log_dict(metrics, batch_size=b, on_step=stage == "train", on_epoch=stage == "val")
        return loss

    def training_step(self, batch: DPOBatch, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    @torch.no_grad()
    def validation_step(self, batch: DPOBatch, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}

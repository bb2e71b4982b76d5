"""ReinforceModule: online REINFORCE with a leave-one-out (RLOO) baseline and a KL-regularised reward (spec §6.2).

Per batch of prompts: sample K responses each (no grad), score the decoded text with a frozen reward source,
recompute log π with grad and log π_ref with the adapter disabled, r̃ = r − β·KL (KL without grad and without
dropout), RLOO advantages over the samples that ended, loss = token mean of −log π · A over the counted samples. One optimizer step per batch (or per accumulated
batches: samples stay on-policy, since weights change only at the step). The reference is the LoRA policy with its
adapter off; only LoRA weights train. Under ModelParallelStrategy the policy and the RM are sharded with FSDP2.
Left out: PPO clipping, several updates per rollout, a value model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from rlhf.advantages import counted_samples, kl_penalised_reward, rloo_advantages, whiten
from rlhf.align.rewards import RewardSource
from rlhf.align.rollout import make_rollout, sample_rows
from rlhf.losses import KLAggregate, KLEstimator, masked_mean, reinforce_loss, sequence_kl
from rlhf.models.backbone import DTYPES, BackboneSpec, check_tokenizer_fits, load_backbone, load_tokenizer
from rlhf.models.policy import GenerationSpec, dropout_off, eos_token_ids, reference_logprobs, sample, token_stats
from rlhf.models.sharding import shard_model
from rlhf.training.resume import keep_trained, restore_trained
from rlhf.types import PromptBatch, Rollout

SAMPLE_COLUMNS = ["step", "prompt", "response", "score", "ended", "length"]


@dataclass(frozen=True)
class ObjectiveSpec:
    """The REINFORCE objective (defaults: NeMo-Aligner's, spec §6.2).

    Args:
        kl_coef: β in r̃ = r − β·KL.
        kl_estimator: per-token KL estimate: "abs" |log π − log π_ref| (NeMo default), "k1", or "k3".
        kl_aggregate: "mean" (NeMo) or "sum" of the token estimates over a response.
        unended_penalty: None: samples without EOS get zero advantage and stay out of the baseline; a number: they
            count like the others with reward r̃ − unended_penalty.
        whiten_advantages: standardise the advantages over the counted samples of the batch (off in NeMo).
        dropout_in_gradient: with LoRA dropout > 0, keep dropout in the gradient pass (the KL and the old log-probs
            are always computed without dropout, like the reference's); False runs every pass without dropout.
    """

    kl_coef: float = 0.01
    kl_estimator: KLEstimator = "abs"
    kl_aggregate: KLAggregate = "mean"
    unended_penalty: float | None = None
    whiten_advantages: bool = False
    dropout_in_gradient: bool = False


class ReinforceModule(LightningModule):
    """REINFORCE/RLOO policy training of a LoRA-wrapped causal Llama against a frozen reward source.

    Args:
        backbone: the policy (and, adapter off, the reference): a causal Llama with LoRA.
        reward: what scores (prompt, response) texts, e.g. rlhf.align.rewards.RewardModelScore with an RM checkpoint.
        generation: K samples per prompt and the sampling settings.
        objective: KL estimator and coefficient, unended-sample rule, whitening.
        optimizer: optimizer factory over the LoRA weights.
        scheduler: learning-rate schedule factory, stepped every optimizer step; None keeps the lr constant.
        sample_table_every_n_steps: log a table of generations every N optimizer steps (0: never).
        sample_table_rows: rows per table.
        logprob_chunk_tokens: the LM head scores this many response positions at a time when recomputing log-probs
            (memory-lean: no (N, R, V) logits); None computes all logits at once.
    """

    def __init__(self, backbone: BackboneSpec, reward: RewardSource, generation: GenerationSpec = GenerationSpec(), objective: ObjectiveSpec = ObjectiveSpec(), optimizer: OptimizerCallable = torch.optim.AdamW, scheduler: LRSchedulerCallable | None = None, sample_table_every_n_steps: int = 0, sample_table_rows: int = 8, logprob_chunk_tokens: int | None = 2048):
        super().__init__()
        if backbone.lora is None:
            raise ValueError("ReinforceModule needs backbone.lora: the reference policy is the model with its adapter off")
        self.save_hyperparameters(ignore=["reward", "optimizer", "scheduler"])
        self.backbone_spec, self.reward, self.generation, self.objective = backbone, reward, generation, objective
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.table_every, self.table_rows = sample_table_every_n_steps, sample_table_rows
        self.chunk_tokens = logprob_chunk_tokens
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self.eos_ids: list[int] = []
        self._times: dict[str, float] = {}
        self._last_table_step = -1

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = load_backbone(self.backbone_spec, causal_lm=True)
        self.tokenizer = load_tokenizer(self.backbone_spec.name_or_path)
        check_tokenizer_fits(self.tokenizer, self.model, self.backbone_spec.name_or_path)
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        self.reward.build()
        if self.device_mesh is not None:  # ModelParallelStrategy: FSDP2 for the policy and the reward model
            shard_model(self.model, self.device_mesh, DTYPES[self.backbone_spec.dtype])
            self.reward.shard(self.device_mesh)
        self.reward.requires_grad_(False).train()  # frozen; its score() runs in eval mode and restores this flag
        self.model.train()  # from_pretrained returns eval mode; generation and the reference pass switch to eval
        if self.backbone_spec.lora.dropout > 0 and self.objective.dropout_in_gradient:
            rank_zero_info("LoRA dropout > 0 in the gradient pass only; the KL uses a second pass without dropout")

    def checkpoint_meta(self) -> dict:
        return {"kind": "policy", "backbone": dataclasses.asdict(self.backbone_spec),
                "generation": dataclasses.asdict(self.generation), "objective": dataclasses.asdict(self.objective)}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep_trained(self, checkpoint)  # resume.ckpt: LoRA + head only, loadable with weights_only

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_trained(self, checkpoint)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._times[name] = time.perf_counter() - start

    def on_train_batch_start(self, batch: PromptBatch, batch_idx: int) -> None:
        self._times = {"start": time.perf_counter()}

    def training_step(self, batch: PromptBatch, batch_idx: int) -> Tensor:
        k, temperature, obj = self.generation.num_samples, self.generation.temperature, self.objective
        with self._timed("generate"):
            sequences = sample(self.model, batch, self.generation, self.eos_ids, self.tokenizer.pad_token_id, self.device_mesh is not None)  # (B·K, P+R)
        with self._timed("score"):
            rollout = make_rollout(sequences, batch, k, self.tokenizer, self.reward, self.eos_ids)
        ids, mask, start = rollout.sequences, rollout.attention_mask, rollout.prompt_length
        policy, old_logprobs = self._policy_logprobs(ids, mask, start)  # (N, R) log π with grad (+ entropy); without dropout, no grad
        ref_logprobs = reference_logprobs(self.model, ids, mask, start, temperature, self.chunk_tokens)  # (N, R) adapter off, no grad
        kl = sequence_kl(old_logprobs, ref_logprobs, rollout.response_mask, obj.kl_estimator, obj.kl_aggregate)  # (N,)
        rewards = kl_penalised_reward(rollout.scores, kl, obj.kl_coef)  # (N,)
        advantages = rloo_advantages(rewards, rollout.ended, k, obj.unended_penalty)  # (N,)
        counted = counted_samples(rollout.ended, k, obj.unended_penalty)
        if obj.whiten_advantages:
            advantages = whiten(advantages, counted)
        loss = reinforce_loss(policy.logprobs, advantages, rollout.response_mask, counted)  # uncounted samples: out of the denominator
        k1 = sequence_kl(old_logprobs, ref_logprobs, rollout.response_mask, "k1", obj.kl_aggregate)
        self.log_dict({
            "train/loss": loss, "train/counted_fraction": counted.float().mean(), "train/advantage_abs": advantages.abs().mean(),
            "rollout/score": rollout.scores.mean(), "rollout/kl": kl.mean(), "rollout/kl_k1": k1.mean(),
            "rollout/reward_with_kl": rewards.mean(), "rollout/length": rollout.response_mask.sum(1).float().mean(),
            "rollout/ended_fraction": rollout.ended.float().mean(),
            "rollout/entropy": masked_mean(policy.entropy, rollout.response_mask),
        }, prog_bar=False, batch_size=len(batch.prompts))
        self._maybe_log_samples(rollout)
        return loss

    def _policy_logprobs(self, ids: Tensor, mask: Tensor, start: int) -> tuple[Any, Tensor]:
        """The gradient pass (dropout only if `objective.dropout_in_gradient`) and the log-probs without dropout
        that the KL uses, as the reference's are: one pass unless dropout is kept for the gradient."""
        temperature, chunk = self.generation.temperature, self.chunk_tokens
        keep_dropout = self.objective.dropout_in_gradient and self.backbone_spec.lora.dropout > 0
        with nullcontext() if keep_dropout else dropout_off(self.model):
            policy = token_stats(self.model, ids, mask, start, temperature, chunk)
        if not keep_dropout:
            return policy, policy.logprobs.detach()
        with torch.no_grad(), dropout_off(self.model):
            return policy, token_stats(self.model, ids, mask, start, temperature, chunk).logprobs

    def on_train_batch_end(self, outputs: Any, batch: PromptBatch, batch_idx: int) -> None:
        total = time.perf_counter() - self._times["start"]
        generate, score = self._times.get("generate", 0.0), self._times.get("score", 0.0)
        times = {"time/generate": generate, "time/score": score, "time/train": total - generate - score}
        self.log_dict(times, batch_size=len(batch.prompts))

    def _maybe_log_samples(self, rollout: Rollout) -> None:
        step = self.global_step
        if not self.table_every or step % self.table_every or step == self._last_table_step or self._trainer is None:
            return
        self._last_table_step = step
        rows = [[step, *row] for row in sample_rows(rollout, self.table_rows)]
        log_sample_table(self.trainer, rows, step)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}


def log_sample_table(trainer: Any, rows: list[list[Any]], step: int) -> None:
    """A wandb.Table under "rollout/samples" for each WandbLogger; otherwise printed and appended to samples.csv."""
    log_dir = trainer.log_dir  # on every rank: Trainer.log_dir broadcasts from rank 0, a collective
    if not trainer.is_global_zero:
        return
    wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
    for logger in wandb_loggers:
        logger.log_table(key="rollout/samples", columns=SAMPLE_COLUMNS, data=rows, step=step)
    if wandb_loggers:
        return
    import csv

    path = Path(log_dir or trainer.default_root_dir) / "samples.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(SAMPLE_COLUMNS)
        writer.writerows(rows)
    lines = "\n".join(f"  [{r[3]:+.3f}{'' if r[4] else ' no EOS'}] {r[1]!r} -> {r[2]!r}" for r in rows)
    rank_zero_info(f"[samples @ step {step}] ({path})\n{lines}")

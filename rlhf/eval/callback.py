"""Training-time callbacks. `RewardBenchCallback` scores the model being trained on RewardBench.

It reads the pairs once at setup, tokenises them with the data module's tokenizer, template and max_length
(evaluation's "truncate" rule), and scores `pl_module.model` at the end of training and, if asked, every N
optimizer steps. Metrics `rewardbench/<section>` (chat, chat_hard, safety, reasoning), `rewardbench/overall` and
`rewardbench/truncated_fraction` go straight to every logger (self.log is not allowed in on_train_end) and into
`trainer.callback_metrics`. Scoring runs on every rank (sharded models need all of them); loggers write on rank 0.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from rlhf.data.encode import Encoder
from rlhf.eval.rewardbench_data import load_pairs, select
from rlhf.eval.rewardbench_scores import RewardBenchResult, rewardbench_result, section_key
from rlhf.eval.score_pairs import EncodedPairs, encode_pairs, pad_id_of, score_encoded


def rewardbench_metrics(result: RewardBenchResult, prefix: str = "rewardbench/") -> dict[str, float]:
    """Sections (lower-case keys), overall, and the fraction of truncated pairs."""
    metrics = {f"{prefix}{section_key(s)}": v for s, v in result.sections.items()}
    metrics[f"{prefix}overall"] = result.overall
    if result.n_truncated is not None:
        metrics[f"{prefix}truncated_fraction"] = result.n_truncated / result.n_pairs
    return metrics


class RewardBenchCallback(Callback):
    """Score the trained reward model on RewardBench during and after fit.

    Args:
        data_path: RewardBench-format .jsonl/.parquet file (prompt, chosen, rejected, subset, id).
        every_n_steps: also score every N optimizer steps (0: only at the end of training).
        subsets: score only these subsets (None: all); overall is then the mean over the sections present.
        max_per_subset: score only the first N pairs of each subset (None: all), for quick runs.
        batch_size: sequences per forward pass; scores do not depend on it.
    """

    def __init__(self, data_path: str = "data/rewardbench/filtered.jsonl", every_n_steps: int = 0, subsets: list[str] | None = None, max_per_subset: int | None = None, batch_size: int = 16):
        if every_n_steps < 0 or batch_size < 1:
            raise ValueError(f"RewardBenchCallback: every_n_steps must be ≥ 0 and batch_size ≥ 1, got {every_n_steps}, {batch_size}")
        self.data_path, self.every_n_steps, self.subsets = data_path, every_n_steps, subsets
        self.max_per_subset, self.batch_size = max_per_subset, batch_size
        self.subset_names: list[str] = []
        self.encoded: EncodedPairs | None = None
        self.pad_id = 0
        self.last_step = -1
        self.last_result: RewardBenchResult | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.encoded is not None:
            return
        data = trainer.datamodule
        if not all(hasattr(data, a) for a in ("tokenizer_path", "template", "max_length")):
            raise TypeError("RewardBenchCallback needs a data module with tokenizer_path, template and max_length (a TokenizedDataModule)")
        from rlhf.models.backbone import load_tokenizer

        pairs = select(load_pairs(self.data_path), self.subsets, self.max_per_subset)
        tokenizer = load_tokenizer(data.tokenizer_path)
        self.pad_id = pad_id_of(tokenizer)
        self.encoded = encode_pairs(Encoder(tokenizer, data.template, data.max_length), pairs)
        self.subset_names = [p.subset for p in pairs]
        rank_zero_info(f"[rewardbench] {len(pairs)} pairs from {self.data_path}, {sum(self.encoded.truncated)} truncated to max_length {data.max_length}")

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> RewardBenchResult:
        """Score `pl_module.model` now (eval mode, no grad; its mode is restored)."""
        if self.encoded is None:
            raise RuntimeError("RewardBenchCallback.evaluate called before setup('fit')")
        with trainer.precision_plugin.forward_context():
            scores = score_encoded(pl_module.model, self.encoded, self.pad_id, self.batch_size)
        return rewardbench_result(self.subset_names, scores.chosen, scores.rejected, scores.truncated, "training", self.data_path, identical=scores.identical)

    def _score_and_log(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.last_step = trainer.global_step
        self.last_result = self.evaluate(trainer, pl_module)
        metrics = rewardbench_metrics(self.last_result)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})  # visible to checkpointing/early stopping
        shown = ", ".join(f"{k.split('/')[-1]} {100 * v:.1f}" for k, v in metrics.items())
        rank_zero_info(f"[rewardbench] step {trainer.global_step}: {shown}")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self.last_step:
            self._score_and_log(trainer, pl_module)  # step != last_step: once per optimizer step under accumulation

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step != self.last_step:
            self._score_and_log(trainer, pl_module)

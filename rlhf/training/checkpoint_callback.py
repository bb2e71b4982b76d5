"""`TrainedWeightsCheckpoint`: the callback that writes the trained-weights checkpoint (`rlhf.training.checkpoint`)
during a fit, at the end and every N steps.

It also writes `resume.ckpt` (Lightning's state of optimizer, scheduler and loops, plus RNG and data position;
loaded with `weights_only=True`, see `rlhf.training.resume`), refuses to overwrite a checkpoint with non-finite
weights, stops every rank at a non-finite loss on any rank (one message naming the ranks), and ends with
`summary.json`. Before any model loads it checks that its directory is writable and refuses to replace a finished
checkpoint there unless the run resumes it (`--ckpt_path`) or says `--checkpoint.overwrite true`. Left out: resume
state under sharded strategies (FSDP would gather the whole model first).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from rlhf.files import check_writable
from rlhf.training.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_meta, save_trained, trained_state_dict
from rlhf.training.distributed import data_parallel, nonfinite_ranks
from rlhf.training.resume import RESUME_NAME, rng_state, set_rng_state
from rlhf.training.summary import config_hash, write_summary


class TrainedWeightsCheckpoint(Callback):
    """Saves `pl_module.model`'s LoRA + head (safetensors), the resolved config and the resume state at the end of fit
    (and every N steps); stops the run at a non-finite loss; writes `summary.json` at the end.

    Args:
        dirpath: where to write; defaults to `<trainer.default_root_dir>/checkpoint`. Environment variables are
            expanded (`runs/sweep/$WANDB_RUN_ID`: one directory per sweep run).
        every_n_train_steps: also save every N optimizer steps (0: only at the end).
        save_resume_state: also write `resume.ckpt` (optimizer, scheduler, loops, RNG, data position) so that
            `fit --ckpt_path <dirpath>` continues the run exactly (single-device and DDP runs only).
        overwrite: let a new run replace a finished checkpoint already in `dirpath`. Without it (or a resume of
            that checkpoint with `--ckpt_path`) the run stops before any model loads.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0, save_resume_state: bool = True, overwrite: bool = False):
        self.dirpath, self.overwrite = dirpath, overwrite
        self.every_n_train_steps = every_n_train_steps
        self.save_resume_state = save_resume_state
        self.config_yaml: str | None = None  # filled in by the CLI with the resolved config
        self.resuming: bool | None = None  # set by the CLI's fit (Lightning sets trainer.ckpt_path only after setup)
        self.last_saved_step: int | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        self._started = time.perf_counter()
        self._earlier_wall_time = 0.0  # of the runs this one resumes

    def resolve_dir(self, trainer: Trainer) -> Path:
        return Path(os.path.expandvars(self.dirpath)) if self.dirpath else Path(trainer.default_root_dir) / "checkpoint"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":  # before configure_model: nothing is loaded yet
            check_writable(self.resolve_dir(trainer), "directory")
            self.guard_target(trainer)

    def guard_target(self, trainer: Trainer) -> None:
        """Refuse to replace a finished checkpoint in the directory unless this run resumes it or `overwrite` is set.

        The CLI says whether the run resumes (`resuming`) before any model loads; a `trainer.fit(ckpt_path=...)` call
        made directly is checked at `on_fit_start` instead, once Lightning has set `trainer.ckpt_path`."""
        if self.resuming is None:
            return
        directory = self.resolve_dir(trainer)
        if self.overwrite or self.resuming or not (directory / WEIGHTS_NAME).is_file():
            return
        step = _stored_step(directory)
        old_hash = config_hash((directory / CONFIG_NAME).read_text()) if (directory / CONFIG_NAME).is_file() else None
        new_hash = config_hash(self.config_yaml)
        if old_hash and new_hash and old_hash != new_hash:
            reason = f"from another config (hash {old_hash}, this run's is {new_hash}) at step {step}"
        else:
            reason = f"of this config at step {step}, later than this run's start (step 0)"
        raise FileExistsError(f"{directory} holds a finished checkpoint {reason}; not overwriting it. Resume it with "
                              f"--ckpt_path {directory}, write elsewhere with --checkpoint.dirpath, or replace it with --checkpoint.overwrite true")

    def save(self, trainer: Trainer, pl_module: LightningModule) -> Path | None:
        state = trained_state_dict(pl_module.model, trainer.strategy.model)
        bad = next((n for n, t in state.items() if not bool(torch.isfinite(t).all())), None)
        if bad is not None:
            raise FloatingPointError(f"step {trainer.global_step}: trained tensor '{bad}' is not finite; not saving, the last good "
                                     f"checkpoint ({self.resolve_dir(trainer)}, step {self.last_saved_step}) is left as it was")
        directory = self.resolve_dir(trainer)
        if self.save_resume_state and _resume_supported(trainer):  # every rank takes part (barrier); rank 0 writes, renames
            tmp = directory / f".{RESUME_NAME}.tmp"
            try:
                trainer.save_checkpoint(tmp, weights_only=False)
            except BaseException:
                if trainer.is_global_zero:
                    tmp.unlink(missing_ok=True)  # a partial resume state is worse than none
                raise
            if trainer.is_global_zero:
                os.replace(tmp, directory / RESUME_NAME)
        self.last_saved_step = trainer.global_step
        if not trainer.is_global_zero:
            return None
        meta = {**pl_module.checkpoint_meta(), "global_step": trainer.global_step}
        return save_trained(directory, state, meta, self.config_yaml)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(), "wall_time_s": self._wall_time(), "last_saved_step": self.last_saved_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng_to_restore = state_dict.get("rng")
        self._earlier_wall_time = state_dict.get("wall_time_s", 0.0)
        self.last_saved_step = state_dict.get("last_saved_step")

    def _wall_time(self) -> float:
        return self._earlier_wall_time + time.perf_counter() - self._started

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.resuming is None:  # trainer.fit called without the CLI: the checkpoint path is known only now
            self.resuming = trainer.ckpt_path is not None
            self.guard_target(trainer)
        self._started = time.perf_counter()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._rng_to_restore is not None:  # first batch after a resume: the RNGs as they were after the saved step
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        _, world = data_parallel(trainer)
        bad = nonfinite_ranks(trainer.strategy, float(loss.detach()), pl_module.device, world)  # all ranks see all losses
        if bad:  # every rank stops here with the same message, so none is left waiting in the gradient all-reduce
            where = f"{self.resolve_dir(trainer)} (step {self.last_saved_step})" if self.last_saved_step is not None else "none written yet"
            what = "loss is " + ", ".join(f"{v} on rank {r}" for r, v in bad.items()) + f" (of {world})" if world > 1 else f"loss is {bad[0]}"
            raise FloatingPointError(f"{what} at step {trainer.global_step + 1}: stopping before the update; last good checkpoint: {where}")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        due = self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0
        if (due or _last_batch_of_fit(trainer)) and step != self.last_saved_step:
            self.save(trainer, pl_module)  # step != last_saved_step: once per optimizer step under accumulation

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step != self.last_saved_step:  # stopped early (should_stop, time limit): best effort
            self.save(trainer, pl_module)
        if trainer.is_global_zero:
            write_summary(self.resolve_dir(trainer), self.config_yaml, trainer.callback_metrics, trainer.global_step, self._wall_time())


def _stored_step(directory: Path) -> int | str:
    try:
        return int(read_meta(directory)["global_step"])
    except (KeyError, ValueError, OSError):
        return "unknown"


def _resume_supported(trainer: Trainer) -> bool:
    """Resume state is written for one device and DDP; sharded strategies would gather the whole model first."""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    if isinstance(trainer.strategy, (SingleDeviceStrategy, DDPStrategy)):
        return True
    rank_zero_warn(f"checkpoint: no resume.ckpt under {type(trainer.strategy).__name__} (only single-device and DDP runs "
                   "write resume state); set checkpoint.save_resume_state=false to silence this")
    return False


def _last_batch_of_fit(trainer: Trainer) -> bool:
    """Whether fit ends after this batch (max_steps or the last epoch's last batch). Saving here, not in
    on_train_end, gives a resume state whose loop counters and data position agree (after a max_steps stop
    Lightning's on_train_end state already counts the unfinished epoch as done)."""
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return True
    last_epoch = trainer.max_epochs is not None and trainer.max_epochs != -1 and trainer.current_epoch + 1 >= trainer.max_epochs
    return last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch

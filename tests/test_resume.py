"""Exact resume on CPU: 6 steps straight give the same per-step losses as 3 steps, a stop, and 3 resumed steps.

For the reward model (`train.py`) and for REINFORCE (`align.py`, whose generation samples from the restored RNG).
The resumed run reads `resume.ckpt` with `weights_only=True` (optimizer, scheduler, loops, RNG, data position).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rlhf.cli import align_main, reward_main
from rlhf.resume import resume_file
from tests.test_reinforce_module import _fit_args, rm_checkpoint  # noqa: F401  (fixture)
from tests.test_reward_module import _args


class LossLog(L.Callback):
    """The training loss of every optimizer step."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, *args):
        self.losses.append(float(outputs["loss"]))


class CrashAt(L.Callback):
    """Raises at the start of an optimizer step, as a crash would (after the previous step's checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def _set(args: list[str], key: str, value: str) -> list[str]:
    return [a for a in args if not a.startswith(f"--{key}=")] + [f"--{key}={value}"]


def _run(main, args: list[str], steps: int, resume_from=None, crash_at: int | None = None) -> list[float]:
    cli = main(_set(args, "trainer.max_steps", str(steps)), run=False)
    log = LossLog()
    cli.trainer.callbacks.append(log)
    ckpt = None if resume_from is None else str(resume_file(resume_from))
    if crash_at is not None:
        cli.trainer.callbacks.append(CrashAt(crash_at))
        with pytest.raises(RuntimeError, match="simulated crash"):
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        return log.losses
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True)
    assert cli.trainer.global_step == steps
    return log.losses


def _check_resume(main, args_for, stop: str = "max_steps") -> None:
    """6 steps straight == 3 steps + resume to 6; the 3 steps end by max_steps=3 or by a crash after the step-3 checkpoint."""
    straight = _run(main, args_for("straight"), 6)
    if stop == "max_steps":
        first = _run(main, args_for("stopped"), 3)
    else:
        first = _run(main, _set(args_for("stopped"), "checkpoint.every_n_train_steps", "3"), 6, crash_at=3)
    rest = _run(main, args_for("stopped"), 6, resume_from=args_for.root / "stopped" / "checkpoint")
    assert len(straight) == 6 and len(first) == 3 and len(rest) == 3
    assert first + rest == straight, f"straight {straight}\nresumed {first} + {rest}"


@pytest.mark.parametrize("schedule,stop", [("constant", "max_steps"), ("warmup", "max_steps"), ("warmup", "crash")])
def test_reward_model_resume_is_exact(schedule, stop, tiny_llama_dir, synthetic_dir, tmp_path):
    extra = ("--data.loader.batch_size=2", "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=0",
             "--model.backbone.lora.dropout=0.1")  # 2 epochs of 4 batches: an epoch boundary inside each half; dropout draws RNG
    if schedule == "warmup":
        extra += ("--model.scheduler=rlhf.schedules.WarmupConstantLR", "--model.scheduler.warmup_steps=5")

    def args_for(name):
        return _args(tiny_llama_dir, synthetic_dir, tmp_path / name, "scaled_bt", extra)

    args_for.root = tmp_path
    _check_resume(reward_main, args_for, stop)


@pytest.mark.parametrize("stop", ["max_steps", "crash"])
def test_reinforce_resume_is_exact(stop, tiny_llama_dir, rm_checkpoint, synthetic_dir, tmp_path):  # noqa: F811
    prompts = synthetic_dir / "preference_train.jsonl"

    def args_for(name):
        args = _fit_args(tiny_llama_dir, rm_checkpoint, prompts, tmp_path / name)
        return _set(_set(args, "model.sample_table_every_n_steps", "0"), "data.limit", "6")  # 3 batches of 2 per epoch

    args_for.root = tmp_path
    _check_resume(align_main, args_for, stop)

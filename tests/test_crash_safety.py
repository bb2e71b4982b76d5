"""Crash safety: a training process killed with SIGKILL resumes from its last checkpoint and finishes at the right
step; a non-finite loss, or non-finite weights about to be saved, stop the run with a message naming the step and
leave the last good checkpoint as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from rlhf.cli import reward_main
from rlhf.training.checkpoint import read_meta
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]


class SlowSteps(L.Callback):
    """Sleeps after every training batch, so that a test can kill the process between checkpoints."""

    def __init__(self, seconds: float = 0.2):
        self.seconds = seconds

    def on_train_batch_end(self, *args):
        time.sleep(self.seconds)


class CountSteps(L.Callback):
    """The optimizer step a fit starts from, and how many training batches it runs."""

    def __init__(self):
        self.started_at: int | None = None
        self.batches = 0

    def on_train_start(self, trainer, pl_module):
        self.started_at = trainer.global_step

    def on_train_batch_end(self, *args):
        self.batches += 1


class PoisonGradients(L.Callback):
    """Turns the head's gradient into NaN at one optimizer step (so the weights become NaN after the update)."""

    def __init__(self, step: int):
        self.step = step

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step + 1 == self.step:
            for name, p in pl_module.model.named_parameters():
                if name.startswith("head.") and p.grad is not None:
                    p.grad.fill_(float("nan"))


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before writing {path}:\n{log.read_text()}"
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.05)


def test_sigkill_then_resume_finishes_at_the_right_step(tiny_llama_dir, synthetic_dir, tmp_path):
    steps = 12
    args = ["fit", *_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--checkpoint.every_n_train_steps=2", f"--trainer.max_steps={steps}",
                                                                        "--trainer.limit_val_batches=0"))]
    args = [a for a in args if a != "--trainer.max_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    slow = ["--trainer.callbacks+=tests.test_crash_safety.SlowSteps"]
    log = tmp_path / "train.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "train.py", *args, *slow], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    ckpt = tmp_path / "checkpoint"
    try:
        _wait_for(ckpt / "model.safetensors", proc, log)  # written right after resume.ckpt
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_meta(ckpt)["global_step"]
    assert 0 < killed_at < steps and not (ckpt / "summary.json").exists()

    resume_step = torch.load(ckpt / "resume.ckpt", weights_only=True)["global_step"]
    assert resume_step >= killed_at
    cli = reward_main([*args, f"--ckpt_path={ckpt}", "--trainer.callbacks+=tests.test_crash_safety.CountSteps"])  # a directory
    count = next(c for c in cli.trainer.callbacks if type(c).__name__ == "CountSteps")  # imported as tests.test_crash_safety
    assert count.started_at == resume_step and count.batches == steps - resume_step  # continued, not restarted
    assert cli.trainer.global_step == steps
    assert read_meta(ckpt)["global_step"] == steps
    assert json.loads((ckpt / "summary.json").read_text())["global_step"] == steps
    assert torch.load(ckpt / "resume.ckpt", weights_only=True)["global_step"] == steps


def _fit_until_error(args: list[str], callbacks=()) -> str:
    cli = reward_main(args, run=False)
    cli.trainer.callbacks.extend(callbacks)
    with pytest.raises(FloatingPointError) as info:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return str(info.value)


def _assert_good_checkpoint_at(ckpt: Path, step: int) -> None:
    assert read_meta(ckpt)["global_step"] == step
    assert all(torch.isfinite(t).all() for t in load_file(str(ckpt / "model.safetensors")).values())
    assert torch.load(ckpt / "resume.ckpt", weights_only=True)["global_step"] == step
    assert not (ckpt / "summary.json").exists()


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_llama_dir, synthetic_dir, tmp_path):
    args = _args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--checkpoint.every_n_train_steps=1", "--trainer.max_steps=5",
                                                                "--model.optimizer.lr=1e30"))
    message = _fit_until_error(args)
    assert message.startswith("loss is nan at step 2: stopping before the update; last good checkpoint: ") and message.endswith("(step 1)")
    _assert_good_checkpoint_at(tmp_path / "checkpoint", 1)


def test_non_finite_weights_are_never_saved(tiny_llama_dir, synthetic_dir, tmp_path):
    args = _args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--checkpoint.every_n_train_steps=1", "--trainer.max_steps=5"))
    message = _fit_until_error(args, [PoisonGradients(step=3)])
    assert message.startswith("step 3: trained tensor 'head.linear.weight' is not finite; not saving")
    _assert_good_checkpoint_at(tmp_path / "checkpoint", 2)

"""Exact resume on CPU: 6 steps straight give the same per-step losses as 3 steps, a stop, and 3 resumed steps.

For the reward model (`train.py`) and for REINFORCE (`align.py`, whose generation samples from the restored RNG).
The resumed run reads `resume.ckpt` with `weights_only=True` (optimizer, scheduler, loops, RNG, data position).
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import pytest
import torch

from rlhf.cli import align_main, dpo_main, reward_main
from rlhf.training.resume import EpochSampler, keep_trained, restore_trained, resume_file, resumed_sampler, rng_state, set_rng_state
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
        extra += ("--model.scheduler=rlhf.training.schedules.WarmupConstantLR", "--model.scheduler.warmup_steps=5")

    def args_for(name):
        return _args(tiny_llama_dir, synthetic_dir, tmp_path / name, "scaled_bt", extra)

    args_for.root = tmp_path
    _check_resume(reward_main, args_for, stop)


@pytest.mark.parametrize("stop,n_prompts", [("max_steps", 6), ("max_steps", 8), ("crash", 8)])
def test_reinforce_resume_is_exact(stop, n_prompts, tiny_llama_dir, rm_checkpoint, synthetic_dir, tmp_path):  # noqa: F811
    prompts = synthetic_dir / "preference_train.jsonl"

    def args_for(name):
        args = _fit_args(tiny_llama_dir, rm_checkpoint, prompts, tmp_path / name)
        return _set(_set(args, "model.sample_table_every_n_steps", "0"), "data.limit", str(n_prompts))  # batches of 2: the stop ends
        # an epoch (6 prompts) or falls mid-epoch (8); a new epoch starts between the stop and the resumed steps, or after

    args_for.root = tmp_path
    _check_resume(align_main, args_for, stop)


def test_dpo_resume_is_exact(tiny_llama_dir, synthetic_dir, tmp_path):
    def args_for(name):
        out = tmp_path / name
        return [f"--model.backbone.name_or_path={tiny_llama_dir}", "--model.backbone.attn_implementation=sdpa", "--model.backbone.lora.r=4",
                "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.01", f"--data.train_path={synthetic_dir / 'preference_train.jsonl'}",
                f"--data.val_path={synthetic_dir / 'preference_val.jsonl'}", "--data.template.system=", "--data.max_length=200",
                "--data.loader.batch_size=2", "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=0", "--trainer.logger=false",
                "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu",
                f"--trainer.default_root_dir={out}", f"--checkpoint.dirpath={out / 'checkpoint'}", "--seed_everything=0"]

    args_for.root = tmp_path
    _check_resume(dpo_main, args_for)

def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_skips_once():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    a.set_epoch(1)
    assert list(a) != list(b) and list(a) == EpochSampler(10, 3, epoch=1).order(1)
    resumed = EpochSampler(10, 3, epoch=1, skip=4)
    assert len(resumed) == 10  # Lightning counts the skipped batches as done
    assert list(resumed) == a.order(1)[4:] and list(resumed) == a.order(1)  # the skip applies to one iteration only
    assert list(EpochSampler(5, 0, shuffle=False, skip=2)) == [2, 3, 4]


def test_resumed_sampler_positions():
    assert resumed_sampler(10, True, 2, 7, None).seed == 7
    mid = resumed_sampler(10, True, 2, 99, {"seed": 7, "epoch": 2, "batches": 3})
    assert (mid.seed, mid.epoch, mid.skip) == (7, 2, 6)
    end = resumed_sampler(10, True, 4, 99, {"seed": 7, "epoch": 2, "batches": 2}, drop_last=True)  # drop_last: epoch over
    assert (end.epoch, end.skip) == (3, 0)
    # 2 ranks of 5 indices: the position counts per-rank batches, so 2 batches of 2 leave one index of the epoch
    two = resumed_sampler(10, True, 2, 99, {"seed": 7, "epoch": 2, "batches": 2, "world_size": 2}, rank=1, num_replicas=2)
    assert (two.epoch, two.skip, len(two)) == (2, 4, 5)
    with pytest.raises(ValueError, match="counted over 2 data-parallel rank"):
        resumed_sampler(10, True, 2, 99, {"seed": 7, "epoch": 2, "batches": 2, "world_size": 2})


def test_epoch_sampler_shards_the_global_order_over_ranks():
    one = EpochSampler(7, seed=5, epoch=1).order(1)
    shards = [list(EpochSampler(7, 5, epoch=1, rank=r, num_replicas=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4  # padded by wrapping around: as many batches on every rank
    padded = one + one[:1]
    assert shards == [padded[0::2], padded[1::2]]  # micro-batch s of both ranks = micro-batch s of one process
    assert [list(EpochSampler(5, 0, shuffle=False, rank=r, num_replicas=2)) for r in range(2)] == [[0, 2, 4], [1, 3, 0]]
    assert list(EpochSampler(7, 5, epoch=1, skip=2, rank=1, num_replicas=2)) == shards[1][2:]


def test_rng_state_round_trips_through_weights_only_loading(tmp_path):
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.save(state, tmp_path / "rng.pt")
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_trained_state_is_checked_on_load():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    module[0].requires_grad_(False)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": {"x": 1}}
    keep_trained(module, checkpoint)
    assert set(checkpoint["state_dict"]) == {"1.weight", "1.bias"} and "hyper_parameters" not in checkpoint
    restore_trained(module, checkpoint)
    with pytest.raises(ValueError, match=r"resume.ckpt: tensor '1.weight' has shape \(1, 3\), the model expects \(1, 2\)"):
        restore_trained(module, {"state_dict": {**checkpoint["state_dict"], "1.weight": torch.zeros(1, 3)}})
    with pytest.raises(ValueError, match=r"no tensor for the trained parameter '1.bias'"):
        restore_trained(module, {"state_dict": {"1.weight": torch.zeros(1, 2)}})

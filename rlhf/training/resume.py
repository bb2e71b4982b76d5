"""Exact resume: what a run needs beyond its trained weights to continue as if it had never stopped.

Lightning's `trainer.fit(ckpt_path=...)` restores optimizer, scheduler and loop counters; this file adds the rest.
`rng_state`/`set_rng_state`: torch (CPU, CUDA), numpy and Python RNGs as tensors and plain values, readable with
`torch.load(weights_only=True)`. `EpochSampler`: a shuffle that is a pure function of (seed, epoch), sharded over the
data-parallel ranks (so data modules set `use_distributed_sampler=False`), that skips the batches an interrupted epoch
already trained on (`data_position`/`resumed_sampler`). `keep_trained`/`restore_trained`:
the Lightning checkpoint keeps only trainable tensors (LoRA + head), checked by name and shape on load; the frozen
base is not touched. `resume_file`: a checkpoint directory's `resume.ckpt`. Left out: resuming with another world
size (refused with a clear error) or batch size (the data position is counted in batches).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

RESUME_NAME = "resume.ckpt"


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (dropout, sampling, shuffles), as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochSampler(Sampler[int]):
    """One rank's share of indices 0..n-1, shuffled by a generator seeded with seed + epoch (so a resumed run sees
    the same order on every rank).

    The epoch's global order is padded by wrapping around to a multiple of `num_replicas` (as torch's
    DistributedSampler does, so every rank has as many batches) and rank r takes every num_replicas-th index from r:
    micro-batch s of all ranks together is micro-batch s of one process with num_replicas times the batch size.

    Args:
        n: dataset size.
        seed: base seed of the shuffle.
        shuffle: False gives 0..n-1 (then sharded) every epoch.
        epoch: the epoch the next iteration belongs to (Lightning calls `set_epoch` at every epoch start).
        skip: leave out this rank's first `skip` indices of the next iteration only (what a resumed epoch trained on).
        rank: this process's data-parallel rank.
        num_replicas: data-parallel world size.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, epoch: int = 0, skip: int = 0, rank: int = 0, num_replicas: int = 1):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"EpochSampler: rank {rank} is not in [0, {num_replicas})")
        self.n, self.seed, self.shuffle, self.epoch, self.skip = n, seed, shuffle, epoch, skip
        self.rank, self.num_replicas = rank, num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        """The global order of an epoch (all ranks together, before padding)."""
        if not self.shuffle:
            return list(range(self.n))
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def shard(self, epoch: int) -> list[int]:
        """This rank's indices of an epoch."""
        order = self.order(epoch)
        total = len(self) * self.num_replicas
        padded = (order * -(-total // max(len(order), 1)))[:total]
        return padded[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return iter(self.shard(self.epoch)[skip:])

    def __len__(self) -> int:
        # the full epoch of one rank: Lightning counts the skipped batches as done (restored loop progress)
        return -(-self.n // self.num_replicas)


def data_position(trainer: Any, seed: int, world_size: int = 1) -> dict[str, int]:
    """Where training stands in its data: shuffle seed, epoch, batches each rank already trained on in that epoch,
    and the data-parallel world size those batches were counted with."""
    return {"seed": seed, "epoch": trainer.current_epoch, "batches": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
            "world_size": world_size}


class ResumableDataPosition:
    """Mixin for a LightningDataModule whose train loader samples with `resumed_sampler(..., self._position)` and
    keeps it in `self._sampler`: Lightning saves `state_dict()` (the data position) in resume.ckpt and hands it back
    through `load_state_dict` before the loader is built."""

    _sampler: EpochSampler | None = None
    _position: dict[str, int] | None = None  # set when resuming
    trainer: Any

    def state_dict(self) -> dict[str, Any]:
        if self._sampler is None or self.trainer is None:
            return {}
        return data_position(self.trainer, self._sampler.seed, self._sampler.num_replicas)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._position = state_dict or None


def resumed_sampler(n: int, shuffle: bool, batch_size: int, default_seed: int, position: dict[str, int] | None,
                    drop_last: bool = False, rank: int = 0, num_replicas: int = 1) -> EpochSampler:
    """This rank's sampler of a fresh run (position None) or of one resumed at `position` (see `data_position`).

    `drop_last`: the loader drops each rank's last incomplete batch (an epoch then trains on fewer examples).
    """
    if position is None:
        return EpochSampler(n, default_seed, shuffle, rank=rank, num_replicas=num_replicas)
    saved_world = position.get("world_size", 1)
    if saved_world != num_replicas:
        raise ValueError(f"cannot resume: the checkpoint's data position was counted over {saved_world} data-parallel "
                         f"rank(s), this run has {num_replicas}; resume with the same devices x num_nodes")
    # our data modules restore the position themselves; Lightning's warning assumes the loader restarts the epoch
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    skip = position["batches"] * batch_size
    per_rank = -(-n // num_replicas)
    usable = per_rank // batch_size * batch_size if drop_last else per_rank
    if skip >= usable:  # the checkpoint was written after the epoch's last batch
        return EpochSampler(n, position["seed"], shuffle, position["epoch"] + 1, rank=rank, num_replicas=num_replicas)
    return EpochSampler(n, position["seed"], shuffle, position["epoch"], skip, rank, num_replicas)


def keep_trained(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """In `on_save_checkpoint`: keep only trainable tensors and drop pickled hyper-parameters (weights_only loading)."""
    trained = {n for n, p in module.named_parameters() if p.requires_grad}
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}
    for key in ("hyper_parameters", "hparams_name", "hparams_type", "datamodule_hyper_parameters", "datamodule_hparams_name", "datamodule_hparams_type"):
        checkpoint.pop(key, None)


def restore_trained(module: nn.Module, checkpoint: dict[str, Any], source: str = RESUME_NAME) -> None:
    """In `on_load_checkpoint`: check the stored tensors against the model; the frozen weights stay as built."""
    own = dict(module.named_parameters())
    trained = {n for n, p in own.items() if p.requires_grad}
    stored: dict[str, Tensor] = checkpoint["state_dict"]
    for name, tensor in stored.items():
        if name not in own:
            raise ValueError(f"{source}: tensor '{name}' has no counterpart in the model (a checkpoint of another model, LoRA targets or head?)")
        if own[name].shape != tensor.shape:
            raise ValueError(f"{source}: tensor '{name}' has shape {tuple(tensor.shape)}, the model expects {tuple(own[name].shape)}")
    missing = sorted(trained - stored.keys())
    if missing:
        raise ValueError(f"{source}: no tensor for the trained parameter '{missing[0]}' ({len(missing)} missing; a checkpoint of another model?)")
    module.strict_loading = False  # every trained key is checked above; the frozen (maybe quantised) base is not in the file


def resume_file(path: str | Path) -> Path:
    """`path` itself if it is a file, else `path/resume.ckpt`; a clear error when there is none."""
    path = Path(path)
    file = path / RESUME_NAME if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"cannot resume: no {RESUME_NAME} at {file} (give the checkpoint directory of a run "
                                f"saved with checkpoint.save_resume_state=true)")
    return file

"""Data-parallel bookkeeping: who holds which examples, and the few collectives that make multi-process runs exact.

`data_parallel(trainer)` gives (rank, world) of the data-parallel group (DDP: every process; ModelParallelStrategy:
its data-parallel dimension). `validation_shard` says which part of a validation set a rank scores: contiguous,
uneven blocks without duplicates under DDP; the whole set on every rank under sharded (FSDP2) strategies, where all
ranks must run the same number of forward passes. `ShardSampler` reads such a block; `gather_rows` all-gathers
tensors whose first dimension differs by rank, in rank order, so metrics are computed on the global set.
`sum_over_ranks` and `nonfinite_ranks` serve the loss normalisation and the NaN stop. Left out: tensor parallelism.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler


def data_parallel(trainer: Any) -> tuple[int, int]:
    """(rank, world size) of the data-parallel group; (0, 1) without a trainer or on one device."""
    kwargs = None if trainer is None else getattr(trainer.strategy, "distributed_sampler_kwargs", None)
    if not kwargs:
        return 0, 1
    return int(kwargs["rank"]), int(kwargs["num_replicas"])


def own_sampling(trainer: Any, who: str) -> tuple[int, int]:
    """`data_parallel(trainer)` for a data module that shards its own data; refuses Lightning's sampler on top of it."""
    rank, world = data_parallel(trainer)
    if world > 1 and trainer._accelerator_connector.use_distributed_sampler:
        raise ValueError(f"{who} shards its data over ranks itself (exact resume, loader.shuffle); set "
                         "trainer.use_distributed_sampler: false (the CLI's default)")
    return rank, world


def sharded_strategy(trainer: Any) -> bool:
    """Whether parameters are sharded (ModelParallelStrategy / FSDP): every forward pass is a collective."""
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    return trainer is not None and isinstance(trainer.strategy, (ModelParallelStrategy, FSDPStrategy))


def validation_shard(trainer: Any) -> tuple[int, int]:
    """(rank, world) over which validation sets are split: the data-parallel group, or (0, 1) when sharded."""
    return (0, 1) if sharded_strategy(trainer) else data_parallel(trainer)


def block(n: int, rank: int, world: int) -> range:
    """Rank `rank`'s contiguous block of 0..n-1 when split into `world` blocks whose sizes differ by at most one."""
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return range(start, start + size + (rank < extra))


class ShardSampler(Sampler[int]):
    """Indices of one rank's contiguous validation block (no padding, no duplicates; sizes may differ by one)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        if n < world:
            raise ValueError(f"a validation set of {n} example(s) cannot be split over {world} ranks; use more examples or fewer devices")
        self.indices = block(n, rank, world)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def gather_rows(strategy: Any, tensor: Tensor, world: int) -> Tensor:
    """All ranks' `tensor`s (first dimension may differ by rank) concatenated in rank order; a collective."""
    if world == 1:
        return tensor
    sizes = strategy.all_gather(torch.tensor(tensor.shape[0], device=tensor.device)).flatten().tolist()
    longest = max(sizes)
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    wire = padded.to(torch.uint8) if tensor.dtype == torch.bool else padded  # gloo has no bool all-gather
    gathered = strategy.all_gather(wire).to(tensor.dtype)  # (world, longest, ...)
    return torch.cat([gathered[r, : sizes[r]] for r in range(world)])


def sum_over_ranks(strategy: Any, value: float, device: torch.device, world: int) -> float:
    """Σ of a number over the data-parallel ranks (the number itself on one rank); a collective."""
    if world == 1:
        return value
    return float(strategy.reduce(torch.tensor(float(value), device=device, dtype=torch.float64), reduce_op="sum"))


def nonfinite_ranks(strategy: Any, value: float, device: torch.device, world: int) -> dict[int, float]:
    """{rank: value} of the ranks whose `value` is not finite, the same dict on every rank; a collective."""
    if world == 1:
        return {} if math.isfinite(value) else {0: value}
    values = strategy.all_gather(torch.tensor(float(value), device=device, dtype=torch.float64)).flatten().tolist()
    return {r: v for r, v in enumerate(values) if not math.isfinite(v)}

"""Data-parallel bookkeeping without processes: validation blocks, and the refusal of Lightning's sampler on top of ours.

The collectives themselves (`gather_rows`, `sum_over_ranks`, `nonfinite_ranks`) run in tests/test_multiprocess.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlhf.training.distributed import ShardSampler, block, data_parallel, own_sampling


def test_blocks_are_contiguous_cover_everything_once_and_differ_by_at_most_one():
    assert [list(block(7, r, 2)) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6]]  # rank order = single-process order
    assert [len(block(10, r, 4)) for r in range(4)] == [3, 3, 2, 2]
    assert list(ShardSampler(5, 1, 2)) == [3, 4] and len(ShardSampler(5, 0, 2)) == 3
    with pytest.raises(ValueError, match="1 example\\(s\\) cannot be split over 2 ranks"):
        ShardSampler(1, 0, 2)


def _trainer(rank: int, world: int, lightning_sampler: bool):
    strategy = SimpleNamespace(distributed_sampler_kwargs={"rank": rank, "num_replicas": world})
    return SimpleNamespace(strategy=strategy, _accelerator_connector=SimpleNamespace(use_distributed_sampler=lightning_sampler))


def test_own_sampling_refuses_lightnings_distributed_sampler():
    assert data_parallel(None) == (0, 1) and data_parallel(SimpleNamespace(strategy=SimpleNamespace())) == (0, 1)
    assert own_sampling(_trainer(1, 2, False), "PreferenceDataModule") == (1, 2)
    assert own_sampling(_trainer(0, 1, True), "PreferenceDataModule") == (0, 1)  # one device: nothing to wrap
    with pytest.raises(ValueError, match="PreferenceDataModule shards its data over ranks itself .* set trainer.use_distributed_sampler: false"):
        own_sampling(_trainer(0, 2, True), "PreferenceDataModule")

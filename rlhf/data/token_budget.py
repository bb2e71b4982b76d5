"""Token-budget batching: micro-batches of similar-length examples holding at most a fixed number of tokens.

`budget_batches` sorts examples by length (longest first) and fills each micro-batch greedily while its cost stays
within the budget. The cost of a micro-batch is what the forward pass computes on: the sum of its rows' lengths when
packed, rows × longest row when padded. An example is all of its rows (a preference pair is its chosen and rejected
rows, kept together). The grouping is fixed once per data set; the loader shuffles the order of the micro-batches
(and, under DDP/FSDP, deals whole micro-batches to ranks). The reward module weighs every pair of an optimizer step
equally whatever its micro-batch's size (`RewardModelModule._counted`). Left out: re-bucketing every epoch.
"""

from __future__ import annotations

from typing import Sequence


def batch_cost(rows: Sequence[int], packed: bool) -> int:
    """Tokens a forward pass over these row lengths computes on: Σ lengths (packed) or rows × max length (padded)."""
    return sum(rows) if packed else len(rows) * max(rows, default=0)


def budget_batches(lengths: Sequence[Sequence[int]], budget: int, packed: bool) -> list[list[int]]:
    """Group example indices into micro-batches of cost ≤ `budget`, longest examples first.

    Args:
        lengths: per example, the token lengths of its rows (e.g. [chosen, rejected] for a pair).
        budget: the most tokens per micro-batch.
        packed: cost as packed rows (sum) instead of padded rows (rows × max).

    Returns:
        Lists of example indices; every index appears exactly once. Raises ValueError if one example alone exceeds
        the budget.
    """
    if budget < 1:
        raise ValueError(f"token budget must be ≥ 1, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-max(lengths[i]), i))
    batches: list[list[int]] = []
    current: list[int] = []
    rows: list[int] = []
    for i in order:
        if batch_cost(lengths[i], packed) > budget:
            raise ValueError(f"example {i} ({list(lengths[i])} tokens) alone exceeds the token budget {budget}; raise it above max_length x rows")
        if current and batch_cost(rows + list(lengths[i]), packed) > budget:
            batches.append(current)
            current, rows = [], []
        current.append(i)
        rows += list(lengths[i])
    if current:
        batches.append(current)
    return batches


def collate_group(collate, group: list) -> object:
    """DataLoader collate for a dataset of pre-formed micro-batches read with batch_size=1."""
    return collate(group[0])

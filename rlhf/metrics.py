"""Pure evaluation metrics for reward models.

`pairwise_accuracy` counts a pair as correct only when r(chosen) > r(rejected) strictly (ties are wrong, as in
RewardBench); `pearson` is the sample correlation used for per-attribute regression quality. RewardBench section
weighting is left to the evaluation code that owns the subset counts.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Fraction of pairs with chosen (B,) strictly above rejected (B,); ties count as wrong."""
    return (chosen > rejected).float().mean()


def pearson(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation of two 1-D tensors; NaN when either has zero variance or fewer than 2 values."""
    x, y = x.double().flatten(), y.double().flatten()
    if x.numel() < 2:
        return torch.tensor(float("nan"))
    xc, yc = x - x.mean(), y - y.mean()
    denom = xc.norm() * yc.norm()
    if denom == 0:
        return torch.tensor(float("nan"))
    return ((xc * yc).sum() / denom).float()

"""Paired bootstrap over test items and training seeds, and the verdict an interval gives an ordering.

Every variant of the study is scored on the same test items for every seed, so two variants are compared *paired*:
one bootstrap replicate draws S seeds and N items with replacement (the same draw for both variants), computes the
statistic of each drawn seed's run on the drawn items, and averages over the drawn seeds. The 95% interval is the
2.5 / 97.5 percentile of the replicates. A claim "A beats B" is "held" when the interval of A − B lies above 0,
"reversed" when it lies below 0 and "unresolved" when it contains 0. Left out: BCa corrections, multiple-comparison
adjustment (each ordering is a separate claim of the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

Statistic = Callable[[object, Tensor], Tensor]
"""stat(run, idx): the statistic of one seed's run on resampled items idx (B, N) long → (B,) float64."""

Verdict = Literal["held", "reversed", "unresolved"]


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the full data) and its 95% bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def verdict(self) -> Verdict:
        """held (interval above 0), reversed (below 0) or unresolved (contains 0)."""
        return "held" if self.low > 0 else "reversed" if self.high < 0 else "unresolved"


def resample(n_seeds: int, n_items: int, n_boot: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(seed indices (B, S), item indices (B, N)), drawn with replacement from a generator seeded by `seed`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n_seeds, (n_boot, n_seeds), generator=g), torch.randint(n_items, (n_boot, n_items), generator=g)


def paired_interval(stat: Statistic, runs_a: Sequence[object], runs_b: Sequence[object] | None, n_items: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Interval of mean-over-seeds stat(A) − stat(B) (or of stat(A) alone when `runs_b` is None).

    runs_a[s] and runs_b[s] are the two variants' runs of training seed s, scored on the same `n_items` items.
    """
    if runs_b is not None and len(runs_a) != len(runs_b):
        raise ValueError(f"paired runs need the same seeds, got {len(runs_a)} and {len(runs_b)}")
    full = torch.arange(n_items).unsqueeze(0)

    def per_seed(idx: Tensor) -> Tensor:  # (S, B)
        rows = [stat(a, idx) - (stat(b, idx) if runs_b is not None else 0.0) for a, b in zip(runs_a, runs_b or runs_a)]
        return torch.stack(rows).double()

    estimate = float(per_seed(full).mean())
    seed_idx, item_idx = resample(len(runs_a), n_items, n_boot, seed)
    d = per_seed(item_idx)  # (S, B): each seed's difference on each replicate's items
    replicates = d.gather(0, seed_idx.T).nanmean(0)  # (B,): the mean over the replicate's drawn seeds
    tail = (1 - level) / 2
    low, high = torch.nanquantile(replicates, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return Interval(estimate, low, high)


def accuracy_stat(correct: Tensor, counts: Tensor) -> Tensor:
    """Helper for accuracy-like statistics: `correct` (N,) 0/1 float, `counts` (N,) bool mask of the items that count."""
    return torch.stack([correct.double(), counts.double()])


def accuracy(run: Tensor, idx: Tensor) -> Tensor:
    """stat for a (2, N) tensor from `accuracy_stat`: share correct among the counted resampled items, (B,)."""
    correct, counts = run[0][idx], run[1][idx]
    return (correct * counts).sum(-1) / counts.sum(-1)


def auroc_stat(scores: Tensor, labels: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Helper for AUROC statistics: scores (N,), labels (N,) bool, counts (N,) bool mask (all items by default)."""
    return scores.double(), labels.bool(), torch.ones_like(labels, dtype=torch.bool) if counts is None else counts.bool()


def resampled_auroc(run: tuple[Tensor, Tensor, Tensor], idx: Tensor) -> Tensor:
    """stat for a triple from `auroc_stat`: AUROC on each replicate's counted items, (B,); Mann–Whitney with tied
    scores' ranks averaged, as `rlhf.metrics.auroc` (NaN when a class is empty)."""
    scores, labels, counts = run
    s, y, c = scores[idx], labels[idx] & counts[idx], counts[idx]
    s = torch.where(c, s, torch.inf)  # items that do not count sort last and never shift a counted item's rank
    ordered = s.sort(dim=-1).values
    left = torch.searchsorted(ordered, s.contiguous(), right=False)
    right = torch.searchsorted(ordered, s.contiguous(), right=True)
    rank = (left + right + 1).double() / 2  # 1-based, averaged over ties
    n_pos = y.sum(-1).double()
    n_neg = (c & ~y).sum(-1).double()
    u = (rank * y).sum(-1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)

"""Pure evaluation metrics for reward models.

`pairwise_accuracy` counts a pair as correct only when r(chosen) > r(rejected) strictly (ties are wrong, as in
RewardBench); `pearson` is the sample correlation used for per-attribute regression quality. RewardBench section
weighting is left to the evaluation code that owns the subset counts. Divergence detection (spec §7.2-7.3):
`auroc` (Mann–Whitney, ties averaged), `mean_var_divergence` and `scalar_divergence` (higher = more likely diverging).
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


def auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve by Mann–Whitney: P(score_pos > score_neg) + ½ P(tie), ranks of tied scores averaged.

    Args:
        scores: (N,) higher = more likely positive.
        labels: (N,) bool or 0/1, positive = True/1.

    Returns:
        Scalar float; NaN when either class is empty.
    """
    s, y = scores.double().flatten(), labels.bool().flatten()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return torch.tensor(float("nan"))
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # 1-based rank of the last member of each tie group
    avg_rank = (ends - (counts.double() - 1) / 2)[inverse]
    u = avg_rank[y].sum() - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).float()


def mean_var_divergence(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, lam: float) -> Tensor:
    """−(|μ_A − μ_B| − λ(σ_A + σ_B)), all (B,): a small gap and wide sds score high (likely diverging)."""
    return -((mu_a - mu_b).abs() - lam * (sigma_a + sigma_b))


def scalar_divergence(r_a: Tensor, r_b: Tensor) -> Tensor:
    """Scalar-RM baseline −|r_A − r_B|, (B,): a smaller reward gap scores higher."""
    return -(r_a - r_b).abs()


LAMBDA_GRID: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
"""λ values tried when tuning the mean-variance divergence score."""


def best_lambda(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, labels: Tensor, grid: tuple[float, ...] = LAMBDA_GRID) -> tuple[float, Tensor]:
    """(λ, AUROC): the λ of `grid` whose `mean_var_divergence` best separates `labels` (first one on ties; NaN AUROCs lose)."""
    tuned = [auroc(mean_var_divergence(mu_a, sigma_a, mu_b, sigma_b, g), labels) for g in grid]
    best = int(torch.stack(tuned).nan_to_num(-1.0).argmax())
    return grid[best], tuned[best]


STRENGTH_OF_CLASS = (-2.0, -1.0, 0.0, 1.0, 2.0)
"""A signed strength per `MEAN_VAR_CLASSES` class (positive = A better), for the target's expected strength."""


def disagreement_metrics(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor, target: Tensor, diverging: Tensor, lam: float, lam_grid: tuple[float, ...]) -> dict[str, Tensor]:
    """Validation metrics of a mean-variance RM over N pairs (all inputs (N,), target (N, 5), diverging (N,) in {1, 0, −1}).

    accuracy: sign(μA − μB) against the sign of the target's expected strength (target ties left out);
    divergence_auroc (score with `lam`), divergence_auroc_scalar (−|μA − μB|), divergence_auroc_best and
    divergence_lambda_best (λ tuned over `lam_grid` on these same pairs: optimistic). Pairs labelled −1 are left out.
    """
    out: dict[str, Tensor] = {}
    expected = target.float() @ torch.tensor(STRENGTH_OF_CLASS, device=target.device)  # > 0: A preferred on average
    decided = expected != 0
    if decided.any():
        out["accuracy"] = (torch.sign(expected[decided]) == torch.sign(mu_a - mu_b)[decided]).float().mean()
    labelled = diverging >= 0
    if labelled.any():
        a, sa, b, sb, y = mu_a[labelled], sigma_a[labelled], mu_b[labelled], sigma_b[labelled], diverging[labelled] == 1
        out["divergence_auroc"] = auroc(mean_var_divergence(a, sa, b, sb, lam), y)
        out["divergence_auroc_scalar"] = auroc(scalar_divergence(a, b), y)
        lam_best, out["divergence_auroc_best"] = best_lambda(a, sa, b, sb, y, lam_grid)
        out["divergence_lambda_best"] = torch.tensor(lam_best)
    return out

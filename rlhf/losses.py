"""Reward-model objectives of HelpSteer2-Preference (arXiv 2410.01257, spec §3) as pure tensor functions.

- `masked_mse`: SteerLM regression, sum of squared errors over valid (sample, attribute) entries / their count.
- `bradley_terry`: −log σ(r_c − r_r)                     (regular BT, InstructGPT)
- `margin_bradley_terry`: −log σ(r_c − r_r − m)          (Llama-2 margin BT, m used raw)
- `scaled_bradley_terry`: −m · log σ(r_c − r_r)          (the paper's scaled BT; m outside the log-sigmoid)
Pairwise losses average over pairs (not normalised by Σm). No logging, no config: tensors in, a tensor out.
REINFORCE (spec §6.2): `kl_estimate` (k1 / abs / k3), `sequence_kl`, `reinforce_loss` (token mean of −log π · A).
DPO (spec §3.8): `dpo_delta` Δ and `dpo` / `margin_dpo` / `scaled_dpo`, the BT losses applied to Δ.
Mean-variance RM (spec §7.2): `interval_log_probabilities` (5-class interval CDF, in log space), `mean_var_kl_loss`,
`mean_var_nll_loss`.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

PairwiseLossName = Literal["bt", "margin_bt", "scaled_bt"]
LossName = Literal["mse", "bt", "margin_bt", "scaled_bt", "mean_var"]


def masked_mse(pred: Tensor, labels: Tensor, label_mask: Tensor) -> Tensor:
    """Masked mean squared error.

    Args:
        pred: (B, A) predicted attribute values.
        labels: (B, A) targets; values under a False mask are ignored (may be anything finite).
        label_mask: (B, A) bool, True where the label counts.

    Returns:
        Scalar Σ mask·(pred − label)² / Σ mask. Raises if no entry counts (an empty mask has no loss).
    """
    if pred.shape != labels.shape or labels.shape != label_mask.shape:
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, labels {tuple(labels.shape)}, mask {tuple(label_mask.shape)}")
    count = label_mask.sum()
    if count == 0:
        raise ValueError("masked_mse: label_mask has no True entry")
    sq = torch.where(label_mask, (pred - labels) ** 2, torch.zeros_like(pred))
    return sq.sum() / count


def bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Regular BT: mean over pairs of −log σ(r_c − r_r). `margin` (B,) is accepted and ignored."""
    del margin
    return -F.logsigmoid(chosen - rejected).mean()


def margin_bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Margin BT: mean over pairs of −log σ(r_c − r_r − m); chosen, rejected, margin all (B,)."""
    return -F.logsigmoid(chosen - rejected - margin).mean()


def scaled_bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Scaled BT: mean over pairs of −m · log σ(r_c − r_r); chosen, rejected, margin all (B,)."""
    return -(margin * F.logsigmoid(chosen - rejected)).mean()


PAIRWISE_LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "bt": bradley_terry,
    "margin_bt": margin_bradley_terry,
    "scaled_bt": scaled_bradley_terry,
}


# --- REINFORCE (spec §6.2): per-token KL estimators, their per-sequence aggregate and the policy-gradient loss ---

KLEstimator = Literal["k1", "abs", "k3"]
KLAggregate = Literal["mean", "sum"]


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, estimator: KLEstimator = "abs") -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from the log-probs of the sampled tokens (y ~ π).

    - "k1": log π − log π_ref (unbiased, can be negative);
    - "abs": |k1|, NeMo-Aligner's `use_absolute_kl` default (not an unbiased estimator);
    - "k3": (ρ − 1) − log ρ with ρ = π_ref/π (non-negative, unbiased as a value).

    Args:
        logprobs: (N, R) log π(y_t) of the policy.
        ref_logprobs: (N, R) log π_ref(y_t) of the reference.

    Returns:
        (N, R) per-token estimates; positions outside the response are meaningless (mask them).
    """
    k1 = logprobs - ref_logprobs
    if estimator == "k1":
        return k1
    if estimator == "abs":
        return k1.abs()
    if estimator == "k3":
        log_ratio = -k1  # log(π_ref / π)
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1', 'abs' or 'k3'")


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ values over True mask entries (all of them, or along `dim`); masked-out values may be anything finite."""
    kept = torch.where(mask, values, torch.zeros_like(values))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of values over True mask entries (all of them, or along `dim`); an empty row gives 0, not NaN."""
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


def sequence_kl(
    logprobs: Tensor, ref_logprobs: Tensor, response_mask: Tensor, estimator: KLEstimator = "abs", aggregate: KLAggregate = "mean"
) -> Tensor:
    """Per-sequence KL: the token estimates of `kl_estimate` averaged ("mean", NeMo) or summed over response tokens.

    Args:
        logprobs, ref_logprobs: (N, R) log-probs of the sampled tokens.
        response_mask: (N, R) bool, True on response tokens (through the first EOS).

    Returns:
        (N,) KL_i. A token mean keeps β's effect independent of length; a sum makes long responses pay more.
    """
    per_token = kl_estimate(logprobs, ref_logprobs, estimator)
    if aggregate == "mean":
        return masked_mean(per_token, response_mask, dim=1)
    if aggregate == "sum":
        return masked_sum(per_token, response_mask, dim=1)
    raise ValueError(f"unknown KL aggregate {aggregate!r}; expected 'mean' or 'sum'")


def reinforce_loss(logprobs: Tensor, advantages: Tensor, response_mask: Tensor) -> Tensor:
    """REINFORCE loss: the global token mean of −log π(y_t) · A_i over every response token of the batch.

    Every counted token weighs the same (NeMo's masked_mean over the micro-batch), so a long response contributes
    more terms than a short one; a sample whose advantage is 0 still counts in the denominator.

    Args:
        logprobs: (N, R) log π(y_t), with grad.
        advantages: (N,) A_i, treated as constants (detached).
        response_mask: (N, R) bool.

    Returns:
        Scalar Σ_{i,t} m_it · (−log π(y_it) · A_i) / Σ m_it.
    """
    per_token = -logprobs * advantages.detach().unsqueeze(1)
    return masked_mean(per_token, response_mask)


# --- Offline DPO analogues (spec §3.8): the BT losses applied to the implicit reward difference Δ ---

DPOLossName = Literal["dpo", "margin_dpo", "scaled_dpo"]


def dpo_delta(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> Tensor:
    """Δ = β[(log πθ(y_c) − log πref(y_c)) − (log πθ(y_r) − log πref(y_r))]; every input (B,) summed response log-probs."""
    return beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))


def dpo(delta: Tensor, margin: Tensor) -> Tensor:
    """Regular DPO: mean over pairs of −log σ(Δ). `margin` (B,) is accepted and ignored."""
    return bradley_terry(delta, torch.zeros_like(delta), margin)


def margin_dpo(delta: Tensor, margin: Tensor) -> Tensor:
    """Margin DPO: mean over pairs of −log σ(Δ − m); delta and margin (B,)."""
    return margin_bradley_terry(delta, torch.zeros_like(delta), margin)


def scaled_dpo(delta: Tensor, margin: Tensor) -> Tensor:
    """Scaled DPO: mean over pairs of −m · log σ(Δ); delta and margin (B,)."""
    return scaled_bradley_terry(delta, torch.zeros_like(delta), margin)


DPO_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"dpo": dpo, "margin_dpo": margin_dpo, "scaled_dpo": scaled_dpo}


# --- Distributional (mean-variance) RM of "Diverging Preferences" (spec §7.2): 5-class interval-CDF objectives ---

DEFAULT_EDGES: tuple[float, ...] = (-1.5, -0.5, 0.5, 1.5)
"""Inner interval edges on d = r_A − r_B; with ±∞ appended they bound the 5 classes of `interval_probabilities`."""

MEAN_VAR_CLASSES: tuple[str, ...] = ("b_significant", "b_slight", "tie", "a_slight", "a_significant")
"""Class order, ascending in d = μ_A − μ_B: index 0 = "B significantly better" … index 4 = "A significantly better"."""


def pair_sd(sigma_a: Tensor, sigma_b: Tensor, rho: Tensor | float = 0.0, eps: float = 1e-6) -> Tensor:
    """sd of r_A − r_B: sqrt(σ_A² + σ_B² − 2ρσ_Aσ_B), the variance clamped at `eps` (ρ → 1 with σ_A = σ_B gives 0).

    `rho` is a float or a tensor already in (−1, 1), e.g. tanh of a learned raw scalar.
    """
    var = sigma_a**2 + sigma_b**2 - 2 * rho * sigma_a * sigma_b
    return var.clamp(min=eps).sqrt()


def interval_log_probabilities(mu_diff: Tensor, sd: Tensor, edges: tuple[float, ...] = DEFAULT_EDGES) -> Tensor:
    """Log class probabilities of d ~ N(mu_diff, sd²) over (−∞, e_0), [e_0, e_1), …, [e_{K-2}, ∞), in log space.

    Orientation: mu_diff = μ_A − μ_B, so class 0 is "B significantly better" and the last class "A significantly
    better" (`MEAN_VAR_CLASSES`). For (chosen, rejected) pass A = chosen; for HelpSteer2 rows pass A = response_1,
    B = response_2 (strength −3 → class 4, see `rlhf.data.disagreement`). With z = (e − μ)/sd: the end classes are
    log Φ(z_0) and log Φ(−z_{K-2}) (`log_ndtr`); a middle class [a, b) is log Φ(b) + log(1 − Φ(a)/Φ(b)), taken on
    the mirrored interval [−b, −a) (the survival side) when it lies above the mean, so a confidently wrong pair
    gets a large negative log-probability with a gradient instead of p = 0 (Φ(−15) ≈ 4e-51 is 0 in fp32).

    Args:
        mu_diff: (B,) μ_A − μ_B.
        sd: (B,) positive sd of the difference (see `pair_sd`).
        edges: ascending inner edges (default ±0.5, ±1.5 → 5 classes).

    Returns:
        (B, len(edges) + 1) log-probabilities; each row's exp sums to 1.
    """
    inner = torch.tensor(edges, dtype=mu_diff.dtype, device=mu_diff.device)
    z = (inner - mu_diff.unsqueeze(-1)) / sd.unsqueeze(-1)  # (B, K-1)
    a, b = z[:, :-1], z[:, 1:]  # middle classes [a, b)
    upper = (a + b) > 0  # above the mean: use P(−b < Z < −a), the same probability
    a, b = torch.where(upper, -b, a), torch.where(upper, -a, b)
    log_b = torch.special.log_ndtr(b)
    middle = log_b + _log1mexp(torch.special.log_ndtr(a) - log_b)
    first, last = torch.special.log_ndtr(z[:, :1]), torch.special.log_ndtr(-z[:, -1:])
    return torch.cat([first, middle, last], dim=-1)


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 − eˣ) for x ≤ 0, accurate at both ends (Mächler 2012): log(−expm1 x) near 0, log1p(−eˣ) below −log 2."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def interval_probabilities(mu_diff: Tensor, sd: Tensor, edges: tuple[float, ...] = DEFAULT_EDGES) -> Tensor:
    """(B, K) class probabilities: exp of `interval_log_probabilities` (same arguments); each row sums to 1."""
    return interval_log_probabilities(mu_diff, sd, edges).exp()


def mean_var_kl_loss(
    mu_a: Tensor,
    sigma_a: Tensor,
    mu_b: Tensor,
    sigma_b: Tensor,
    target_dist: Tensor,
    rho: Tensor | float = 0.0,
    edges: tuple[float, ...] = DEFAULT_EDGES,
) -> Tensor:
    """Mean over pairs of KL(q ‖ p) = Σ_k q_k (log q_k − log p_k) (0·log 0 = 0), log p from `interval_log_probabilities`.

    Args:
        mu_a, sigma_a, mu_b, sigma_b: (B,) means and (positive) sds of r_A and r_B.
        target_dist: (B, K) the annotators' empirical class distribution q, in `MEAN_VAR_CLASSES` order.
        rho: correlation of r_A and r_B, 0.0 or a tensor in (−1, 1) (e.g. tanh of a learned scalar).
    """
    log_p = interval_log_probabilities(mu_a - mu_b, pair_sd(sigma_a, sigma_b, rho), edges)
    q = target_dist.to(log_p.dtype)
    return (torch.special.xlogy(q, q) - q * log_p).sum(-1).mean()


def mean_var_nll_loss(
    mu_a: Tensor,
    sigma_a: Tensor,
    mu_b: Tensor,
    sigma_b: Tensor,
    target_dist: Tensor,
    edges: tuple[float, ...] = DEFAULT_EDGES,
) -> Tensor:
    """Independent-NLL baseline: mean over pairs of −Σ_k q_k log p_k with ρ fixed at 0 (log p in log space).

    This is −log P(annotator's class) averaged over the annotators (cross-entropy with the empirical q). It equals
    the KL loss at ρ = 0 plus the entropy H(q), a constant in the parameters, so it is not 0 at a perfect fit.
    """
    log_p = interval_log_probabilities(mu_a - mu_b, pair_sd(sigma_a, sigma_b, 0.0), edges)
    return -(target_dist.to(log_p.dtype) * log_p).sum(-1).mean()

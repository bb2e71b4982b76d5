"""Advantages for REINFORCE with a leave-one-out baseline (RLOO, Ahmadian et al. 2024; spec §6.2), as pure functions.

- `kl_penalised_reward`: r̃_i = r_i − β·KL_i, KL computed without grad ("k1-in-reward", not a KL loss term).
- `rloo_advantages`: A_i = r̃_i − mean of r̃_j over the *other* counted samples of the same prompt, where only samples
  that ended with EOS count (NeMo-Aligner); with `unended_penalty` the others count too, at r̃ − penalty.
- `whiten`: optional standardisation over the counted samples (off by default, as in NeMo-Aligner).
Rows are grouped prompt-major: rows [i·K, (i+1)·K) are the K samples of prompt i. No logging, no config objects.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kl_penalised_reward(scores: Tensor, kl: Tensor, kl_coef: float) -> Tensor:
    """r̃ = r − β·KL, per sample; `kl` is detached here, so no gradient flows through the penalty.

    Args:
        scores: (N,) reward-model scores r.
        kl: (N,) per-sequence KL estimates (see `rlhf.losses.sequence_kl`).
        kl_coef: β.
    """
    return scores - kl_coef * kl.detach()


def rloo_advantages(rewards: Tensor, ended: Tensor, group_size: int, unended_penalty: float | None = None) -> Tensor:
    """Leave-one-out advantages within each prompt's group of K samples.

    Rule. A sample is *counted* if it ended with EOS, or always when `unended_penalty` is set; an unended sample's
    reward is then r̃ − penalty. In a group with n counted samples (n ≥ 2), a counted sample gets
    A_i = r̃_i − Σ_{j counted, j≠i} r̃_j / (n − 1). A group with n ≤ 1 gives every sample A = 0, and a sample that is
    not counted always gets A = 0 (it neither learns nor enters anyone's baseline). NeMo-Aligner's code differs on
    one point: it keeps the baseline of the ended samples but still gives unended ones r̃_i − b_i.

    Args:
        rewards: (N,) r̃, N = B·K, prompt-major.
        ended: (N,) bool.
        group_size: K.
        unended_penalty: None (unended samples excluded) or the amount subtracted from an unended sample's reward.

    Returns:
        (N,) advantages, detached.
    """
    if rewards.dim() != 1 or rewards.shape != ended.shape or rewards.numel() % group_size:
        raise ValueError(f"need (N,) rewards and ended with N a multiple of K={group_size}, got {tuple(rewards.shape)}, {tuple(ended.shape)}")
    rewards = rewards.detach()
    if unended_penalty is None:
        counted = ended.bool()
    else:
        rewards = torch.where(ended.bool(), rewards, rewards - unended_penalty)
        counted = torch.ones_like(ended, dtype=torch.bool)
    r = torch.where(counted, rewards, torch.zeros_like(rewards)).view(-1, group_size)  # (B, K)
    c = counted.view(-1, group_size)
    n = c.sum(dim=1, keepdim=True)  # (B, 1)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (n - 1).clamp(min=1)  # leave-one-out mean; exact for counted i
    advantages = torch.where(c & (n >= 2), r - baseline, torch.zeros_like(r))
    return advantages.view(-1)


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(values − mean) / (std + eps) over the True entries of `mask` (population std); False entries become 0.

    With fewer than two True entries the input is returned with masked-out entries zeroed (nothing to scale).
    """
    if int(mask.sum()) < 2:
        return torch.where(mask, values, torch.zeros_like(values))
    kept = values[mask]
    mean, std = kept.mean(), kept.std(unbiased=False)
    return torch.where(mask, (values - mean) / (std + eps), torch.zeros_like(values))


def counted_samples(ended: Tensor, group_size: int, unended_penalty: float | None = None) -> Tensor:
    """(N,) bool: the samples `rloo_advantages` can give a nonzero advantage (counted, in a group with ≥ 2 counted)."""
    counted = ended.bool() if unended_penalty is None else torch.ones_like(ended, dtype=torch.bool)
    c = counted.view(-1, group_size)
    return (c & (c.sum(dim=1, keepdim=True) >= 2)).view(-1)

"""Reward heads and last-token pooling.

`last_token_index` finds the last attended position from `attention_mask` alone, so it is right for left padding,
right padding and pad == eos (the pooling bug peers shipped). `RewardHead` is a linear layer on the final hidden
state with `n_out` ∈ {1, 5, 9} outputs laid out as in NeMo-Aligner (9 = four OpenAssistant legacy slots, then the
five HelpSteer2 attributes); the scalar reward is the helpfulness slot unless another is configured.
`MeanVarHead` (spec §7.2) gives μ and σ = softplus(·) + σ_min per response (HeadSpec.kind = "mean_var"); inside a
`RewardModel` it returns the raw (B, 2) [μ, z] outputs, μ is the reward and `sigma` maps z to σ. With
`learned_rho` it also holds a raw scalar whose tanh is the correlation ρ of a pair's rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from rlhf.types import HS2_ATTRIBUTES

HEAD_LAYOUTS: dict[int, tuple[str, ...]] = {
    1: ("helpfulness",),
    5: HS2_ATTRIBUTES,
    9: ("quality", "toxicity", "humor", "creativity") + HS2_ATTRIBUTES,
}


def last_token_index(attention_mask: Tensor) -> Tensor:
    """Index of the last True position in each row.

    Args:
        attention_mask: (B, T) bool (or 0/1), True on real tokens; padding may be on either side.

    Returns:
        (B,) long. Raises ValueError if a row has no real token.
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("last_token_index: a row of attention_mask has no real token")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values


def gather_last(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T, H) hidden states → (B, H) at each row's last real token."""
    idx = last_token_index(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


class RewardHead(nn.Module):
    """Linear reward head.

    Args:
        hidden_size: backbone hidden size H.
        n_out: number of outputs, one of `HEAD_LAYOUTS` (1, 5 or 9).
        bias: whether the linear layer has a bias (NeMo-Aligner's does; Hugging Face's sequence-classification head does not).
        init: "stiennon" draws weights from N(0, 1/(H+1)) (std 1/sqrt(H+1)); "zeros" starts at zero.
    """

    def __init__(self, hidden_size: int, n_out: int = 1, bias: bool = False, init: Literal["stiennon", "zeros"] = "stiennon"):
        super().__init__()
        if n_out not in HEAD_LAYOUTS:
            raise ValueError(f"n_out must be one of {sorted(HEAD_LAYOUTS)}, got {n_out}")
        self.linear = nn.Linear(hidden_size, n_out, bias=bias)
        if init == "stiennon":
            nn.init.normal_(self.linear.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        else:
            nn.init.zeros_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)

    @property
    def attributes(self) -> tuple[str, ...]:
        return HEAD_LAYOUTS[self.linear.out_features]

    def forward(self, pooled: Tensor) -> Tensor:
        """(B, H) → (B, n_out), computed in the head's dtype."""
        return self.linear(pooled.to(self.linear.weight.dtype))


class MeanVarHead(nn.Module):
    """Distributional reward head: (B, H) → μ (B,) and σ = softplus(z) + `min_sigma` (B,), from one 2-output layer.

    The σ row starts at zero weight and bias softplus⁻¹(1 − min_sigma), so every σ starts at 1; μ uses `init` as
    `RewardHead` does. Pair with `rlhf.losses.mean_var_kl_loss`.
    """

    def __init__(self, hidden_size: int, init: Literal["stiennon", "zeros"] = "stiennon", min_sigma: float = 1e-3, learned_rho: bool = False):
        super().__init__()
        self.min_sigma = min_sigma
        self.rho_raw = nn.Parameter(torch.zeros(())) if learned_rho else None  # ρ = tanh(rho_raw), starts at 0
        self.linear = nn.Linear(hidden_size, 2, bias=True)
        nn.init.zeros_(self.linear.weight)
        if init == "stiennon":
            nn.init.normal_(self.linear.weight[:1], std=1.0 / (hidden_size + 1) ** 0.5)
        with torch.no_grad():
            start = torch.tensor(1.0 - min_sigma)
            self.linear.bias.copy_(torch.stack([torch.tensor(0.0), start + torch.log(-torch.expm1(-start))]))

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """(B, H) → (μ, σ), each (B,), computed in the head's dtype."""
        out = self.raw(pooled)
        return out[:, 0], self.sigma(out)

    def raw(self, pooled: Tensor) -> Tensor:
        """(B, H) → (B, 2) [μ, z], the layer's outputs before the softplus."""
        return self.linear(pooled.to(self.linear.weight.dtype))

    def sigma(self, raw: Tensor) -> Tensor:
        """(B, 2) raw outputs → (B,) σ = softplus(z) + min_sigma."""
        return nn.functional.softplus(raw[:, 1]) + self.min_sigma

    def rho(self) -> Tensor | float:
        """The pair correlation: tanh(rho_raw) if learned, else 0.0."""
        return 0.0 if self.rho_raw is None else torch.tanh(self.rho_raw)


def attribute_slots(n_out: int) -> Tensor:
    """For each of the 5 HelpSteer2 attributes, its output slot in an `n_out` head, or −1 if the head lacks it. (5,) long."""
    layout = HEAD_LAYOUTS[n_out]
    return torch.tensor([layout.index(a) if a in layout else -1 for a in HS2_ATTRIBUTES])


@dataclass(frozen=True)
class HeadSpec:
    """Reward head settings.

    Args:
        n_out: 1 (helpfulness only), 5 (HelpSteer2 attributes) or 9 (NeMo-Aligner layout, to load NeMo checkpoints).
        reward_slot: head output used as the scalar reward; None means the helpfulness slot (0, 0 or 4).
        bias: whether the head has a bias. Off by default: pairwise losses cannot train it, and a head without bias
            exports exactly to `AutoModelForSequenceClassification` (NeMo-Aligner's head has one).
        init: "stiennon" (N(0, 1/(H+1))) or "zeros".
        kind: "linear" (`RewardHead`) or "mean_var" (`MeanVarHead`: μ is the reward, n_out stays 1, always a bias);
            set by the module from its loss, stored in checkpoints (old ones without it load as "linear").
        learned_rho: mean_var only: the head holds the learned correlation ρ (set from `MeanVarSpec.rho`).
    """

    n_out: int = 1
    reward_slot: int | None = None
    bias: bool = False
    init: Literal["stiennon", "zeros"] = "stiennon"
    kind: Literal["linear", "mean_var"] = "linear"
    learned_rho: bool = False

    def resolved_slot(self) -> int:
        if self.kind == "mean_var":
            if self.n_out != 1 or self.reward_slot not in (None, 0):
                raise ValueError("a mean_var head has one reward output (μ): keep head.n_out=1 and reward_slot unset")
            return 0
        if self.n_out not in HEAD_LAYOUTS:
            raise ValueError(f"head n_out must be one of {sorted(HEAD_LAYOUTS)}, got {self.n_out}")
        return HEAD_LAYOUTS[self.n_out].index("helpfulness") if self.reward_slot is None else self.reward_slot

"""Padding-free forward passes: N sequences concatenated in one row, each attending only to its own earlier tokens.

With FlashAttention-2 the backbone gets no attention mask and `position_ids` restarting per sequence; Hugging Face
turns those into the cumulative lengths of the varlen kernel, so no (T, T) mask exists. With SDPA or eager attention
the exact masked path is taken: an explicit block-diagonal causal (1, 1, T, T) mask (bool for SDPA, additive for
eager), so the result does not depend on Hugging Face's packed-sequence detection. That mask costs T² bytes: it is
the correctness fallback for CPU and GPUs without flash-attn, not the fast path. Left out: several packed rows per
batch, and packing for generation (the KV cache would cross sequence boundaries).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlhf.types import PackedTokens


def segment_ids(cu_seqlens: Tensor) -> Tensor:
    """(N + 1,) cumulative lengths → (T,) long index of the sequence each column belongs to."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    return torch.repeat_interleave(torch.arange(lengths.shape[0], device=cu_seqlens.device), lengths)


def block_causal_mask(cu_seqlens: Tensor) -> Tensor:
    """(1, 1, T, T) bool, True where query i may attend key j: same sequence and j ≤ i."""
    seg = segment_ids(cu_seqlens)
    cols = torch.arange(seg.shape[0], device=seg.device)
    mask = (seg[:, None] == seg[None, :]) & (cols[None, :] <= cols[:, None])
    return mask[None, None]


def _attention_mask(tokens: PackedTokens, attn_implementation: str, dtype: torch.dtype) -> Tensor | None:
    if attn_implementation.startswith("flash_attention"):
        return None  # varlen from position_ids
    mask = block_causal_mask(tokens.cu_seqlens.to(tokens.input_ids.device))
    if attn_implementation == "sdpa":
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def packed_hidden(body: nn.Module, tokens: PackedTokens) -> Tensor:
    """(1, T, H) last hidden states of a Hugging Face decoder body (possibly peft-wrapped) over a packed row."""
    config = body.config
    dtype = next(p for p in body.parameters() if p.is_floating_point()).dtype
    mask = _attention_mask(tokens, config._attn_implementation, dtype)
    out = body(input_ids=tokens.input_ids, attention_mask=mask, position_ids=tokens.position_ids, use_cache=False)
    return out.last_hidden_state

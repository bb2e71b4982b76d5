"""Padding-free forward passes: N sequences concatenated in one row, each attending only to its own earlier tokens.

With FlashAttention-2 the backbone gets no attention mask and `position_ids` restarting per sequence; Hugging Face
turns those into the cumulative lengths of the varlen kernel, so no mask exists and nothing is padded. With SDPA or
eager attention the exact masked path is taken: the packed row is laid out as a few rows of the longest sequence's
width (first-fit decreasing, so the (R, L, L) block-causal mask costs Σ rows·L² rather than T² for one long row),
and the hidden states are put back in packed order. Only the tails of those rows are padding; each tail token
attends to itself alone. Left out: packing for generation (the KV cache would cross sequence boundaries).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlhf.types import PackedTokens


def segment_ids(cu_seqlens: Tensor) -> Tensor:
    """(N + 1,) cumulative lengths → (T,) long index of the sequence each column belongs to."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    return torch.repeat_interleave(torch.arange(lengths.shape[0], device=cu_seqlens.device), lengths)


def row_layout(cu_seqlens: Tensor) -> tuple[Tensor, int, int]:
    """First-fit-decreasing placement of the packed sequences into rows as wide as the longest one.

    Returns (T,) long destination of every packed column in the flattened (R·L) layout, R and L.
    """
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    width = max(lengths)
    fill: list[int] = []
    starts = [0] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        row = next((r for r, used in enumerate(fill) if used + lengths[i] <= width), len(fill))
        if row == len(fill):
            fill.append(0)
        starts[i] = row * width + fill[row]
        fill[row] += lengths[i]
    dest = torch.cat([torch.arange(n) + start for n, start in zip(lengths, starts)])
    return dest.to(cu_seqlens.device), len(fill), width


def _masked_rows(body: nn.Module, tokens: PackedTokens, additive: bool) -> Tensor:
    """SDPA/eager: run the sequences as (R, L) rows with a block-causal mask; (1, T, H) hidden states in packed order."""
    device = tokens.input_ids.device
    dest, rows, width = row_layout(tokens.cu_seqlens.to(device))
    flat = rows * width
    ids = torch.zeros(flat, dtype=torch.long, device=device).index_copy(0, dest, tokens.input_ids[0])
    positions = torch.zeros(flat, dtype=torch.long, device=device).index_copy(0, dest, tokens.position_ids[0])
    segments = torch.arange(flat, device=device) + tokens.num_sequences  # tails: a segment per token
    segments = segments.index_copy(0, dest, segment_ids(tokens.cu_seqlens.to(device))).view(rows, width)
    cols = torch.arange(width, device=device)
    mask = (segments[:, :, None] == segments[:, None, :]) & (cols[None, :] <= cols[:, None])  # (R, L, L)
    mask = mask[:, None]
    if additive:
        dtype = next(p for p in body.parameters() if p.is_floating_point()).dtype
        mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
    out = body(input_ids=ids.view(rows, width), attention_mask=mask, position_ids=positions.view(rows, width), use_cache=False)
    hidden = out.last_hidden_state.reshape(flat, -1)
    return hidden[dest].unsqueeze(0)


def packed_hidden(body: nn.Module, tokens: PackedTokens) -> Tensor:
    """(1, T, H) last hidden states of a Hugging Face decoder body (possibly peft-wrapped) over a packed row."""
    impl = body.config._attn_implementation
    if impl.startswith("flash_attention"):  # varlen kernels from position_ids: no mask, no padding
        out = body(input_ids=tokens.input_ids, attention_mask=None, position_ids=tokens.position_ids, use_cache=False)
        return out.last_hidden_state
    return _masked_rows(body, tokens, additive=impl != "sdpa")

"""Memory-lean token log-probs: the LM head applied to a few thousand positions at a time, never to all at once.

`chunked_token_stats` takes final hidden states (N, R, H) and the LM head (a callable H → V, e.g. the model's
`lm_head` module, so FSDP sees a module call) and returns log π(y_t) and the entropy at every position. Each chunk of `chunk_tokens` positions computes its (chunk, V) logits, log-softmax
and gather inside a non-reentrant activation checkpoint, so neither the forward nor the backward pass holds more
than one chunk's logits: peak extra memory is O(chunk·V) instead of O(N·R·V) (for Llama 3, V = 128,256: 1 GiB of
fp32 logits per 2,048 positions). Backward recomputes each chunk's LM-head matmul once. Pure torch; logit
soft-capping is left out (Llama has none).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


class ChunkStats(NamedTuple):
    """(N, R) log-probs of the targets (with grad) and (N, R) entropies (no grad)."""

    logprobs: Tensor
    entropy: Tensor


def _chunk(hidden: Tensor, head: Callable[[Tensor], Tensor], targets: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    logits = head(hidden).float() / temperature  # (c, V)
    logp = F.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets[:, None]).squeeze(-1)  # (c,)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


def chunked_token_stats(hidden: Tensor, head: Callable[[Tensor], Tensor], targets: Tensor, temperature: float = 1.0, chunk_tokens: int = 2048) -> ChunkStats:
    """log softmax(head(hidden) / temperature)[target] and the entropy, `chunk_tokens` positions at a time.

    Args:
        hidden: (N, R, H) final hidden states at the positions that predict `targets`.
        head: the LM head, (c, H) → (c, V) logits.
        targets: (N, R) long token ids to score.
        temperature: softmax temperature (> 0).
        chunk_tokens: positions per chunk (≥ 1).

    Returns:
        ChunkStats of (N, R) float32 tensors, equal to the plain full-logits computation.
    """
    if chunk_tokens < 1 or temperature <= 0:
        raise ValueError(f"chunked_token_stats: chunk_tokens {chunk_tokens} must be ≥ 1 and temperature {temperature} > 0")
    n, r, h = hidden.shape
    flat_h, flat_t = hidden.reshape(n * r, h), targets.reshape(n * r)
    picked, entropy = [], []
    for start in range(0, n * r, chunk_tokens):
        part = slice(start, start + chunk_tokens)
        if torch.is_grad_enabled():
            lp, ent = checkpoint(_chunk, flat_h[part], head, flat_t[part], temperature, use_reentrant=False)
        else:
            lp, ent = _chunk(flat_h[part], head, flat_t[part], temperature)
        picked.append(lp)
        entropy.append(ent)
    return ChunkStats(torch.cat(picked).reshape(n, r), torch.cat(entropy).reshape(n, r))

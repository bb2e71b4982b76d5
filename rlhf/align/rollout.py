"""From sampled token ids to a scored `Rollout`: EOS truncation, response mask, decoding, reward.

A response counts through its first EOS token inclusive (`response_mask`); tokens after it (padding from `generate`,
or anything else) never count, and `ended` says whether an EOS was sampled at all. The reward is computed from the
decoded text (prompt as given, response without EOS) by a `RewardSource`, so it is never read at a padding position
and the RM may use its own template and tokenizer. Sampling itself is `rlhf.models.policy.sample`. Left out: stop
strings other than EOS tokens, and reward shaping beyond the KL penalty (see `rlhf.advantages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rlhf.align.rewards import RewardSource
from rlhf.types import PromptBatch, Rollout


class ResponseEnd(NamedTuple):
    """response_mask (N, R) bool: tokens through the first EOS inclusive; ended (N,) bool: an EOS was sampled."""

    response_mask: Tensor
    ended: Tensor


def response_mask_through_eos(responses: Tensor, eos_ids: Sequence[int]) -> ResponseEnd:
    """Mask of the tokens up to and including the first EOS, and whether each row has one.

    Args:
        responses: (N, R) sampled ids (the part after the prompt).
        eos_ids: the ids that end a response.

    Returns:
        response_mask (N, R) bool, all True for a row without EOS; ended (N,) bool.
    """
    is_eos = torch.isin(responses, torch.tensor(list(eos_ids), device=responses.device))
    eos_before = is_eos.long().cumsum(dim=1) - is_eos.long()  # EOS tokens strictly before each position
    return ResponseEnd(eos_before == 0, is_eos.any(dim=1))


def decode_responses(tokenizer: Any, responses: Tensor, response_mask: Tensor, eos_ids: Sequence[int]) -> list[str]:
    """Text of each response: the masked tokens without EOS, special tokens skipped."""
    keep = response_mask & ~torch.isin(responses, torch.tensor(list(eos_ids), device=responses.device))
    return tokenizer.batch_decode([row[m].tolist() for row, m in zip(responses, keep)], skip_special_tokens=True)


def make_rollout(sequences: Tensor, batch: PromptBatch, num_samples: int, tokenizer: Any, reward: RewardSource, eos_ids: Sequence[int]) -> Rollout:
    """Masks, decoded texts and rewards of B·K sampled sequences (no grad).

    Args:
        sequences: (B·K, P + R) output of `sample`, prompt-major.
        batch: the B prompts they continue.
        num_samples: K.
        tokenizer: the policy's tokenizer (for decoding).
        reward: scores (prompt, response) texts.
        eos_ids: the ids that end a response.
    """
    prompt_length = batch.input_ids.shape[1]
    responses = sequences[:, prompt_length:]  # (N, R)
    response_mask, ended = response_mask_through_eos(responses, eos_ids)
    prompt_mask = batch.attention_mask.repeat_interleave(num_samples, dim=0)  # (N, P)
    texts = decode_responses(tokenizer, responses, response_mask, eos_ids)
    prompts = tuple(p for p in batch.prompts for _ in range(num_samples))
    with torch.no_grad():
        scores = reward.score(prompts, texts).to(device=sequences.device, dtype=torch.float32)
    return Rollout(
        sequences=sequences,
        attention_mask=torch.cat([prompt_mask, response_mask], dim=1),
        response_mask=response_mask,
        ended=ended,
        scores=scores,
        prompts=prompts,
        responses=tuple(texts),
    )


def sample_rows(rollout: Rollout, limit: int) -> list[list[Any]]:
    """Up to `limit` rows of [prompt, response, score, ended, length] for a table of generations."""
    lengths = rollout.response_mask.sum(dim=1).tolist()
    return [[p, r, float(s), bool(e), int(n)] for p, r, s, e, n in
            zip(rollout.prompts, rollout.responses, rollout.scores.tolist(), rollout.ended.tolist(), lengths)][:limit]

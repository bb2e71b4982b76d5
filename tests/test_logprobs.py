"""Chunked (memory-lean) token log-probs equal the plain full-logits computation: values, entropy and gradients.

Pure-function checks on random tensors (every chunk size, including 1 and larger than the batch) and a hand value,
a check that the LM head never sees more than `chunk_tokens` positions per call, and the policy path on the tiny
Llama (LoRA gradients included, left padding, temperature).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from rlhf.data.collate import pad
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_backbone
from rlhf.models.logprobs import chunked_token_stats
from rlhf.models.policy import eval_mode, token_stats


def _plain(hidden, head, targets, temperature):
    logp = F.log_softmax(head(hidden).float() / temperature, dim=-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


def test_zero_head_gives_uniform_hand_values():
    # zero weights: every logit 0, so log π = −log V and the entropy is log V (V = 4 here)
    head = nn.Linear(3, 4, bias=False)
    nn.init.zeros_(head.weight)
    stats = chunked_token_stats(torch.randn(2, 3, 3), head, torch.tensor([[0, 1, 2], [3, 0, 1]]), chunk_tokens=2)
    assert_close(stats.logprobs, torch.full((2, 3), -math.log(4)))
    assert_close(stats.entropy, torch.full((2, 3), math.log(4)))


@pytest.mark.parametrize("chunk", [1, 4, 5, 100])
def test_chunked_equals_plain_values_and_gradients(chunk):
    torch.manual_seed(0)
    head = nn.Linear(8, 11, bias=False)
    hidden = torch.randn(3, 5, 8, requires_grad=True)
    targets = torch.randint(0, 11, (3, 5))
    weights = torch.randn(3, 5)  # a loss that weighs every position differently
    grads = []
    for fn in (lambda: _plain(hidden, head, targets, 0.7), lambda: chunked_token_stats(hidden, head, targets, 0.7, chunk)):
        hidden.grad, head.weight.grad = None, None
        logprobs, entropy = fn()
        (logprobs * weights).sum().backward()
        grads.append((logprobs.detach(), entropy, hidden.grad.clone(), head.weight.grad.clone()))
    for got, want in zip(grads[1], grads[0]):
        assert_close(got, want)
    assert not grads[1][1].requires_grad  # entropy carries no grad


def test_head_never_sees_more_than_chunk_positions():
    seen = []
    head = nn.Linear(4, 6)
    head.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    chunked_token_stats(torch.randn(4, 7, 4, requires_grad=True), head, torch.zeros(4, 7, dtype=torch.long), chunk_tokens=5)[0].sum().backward()
    assert seen and max(seen) <= 5 and sum(seen) >= 28  # 28 positions, recomputed in backward


def test_bad_arguments():
    with pytest.raises(ValueError):
        chunked_token_stats(torch.randn(1, 1, 2), nn.Linear(2, 3), torch.zeros(1, 1, dtype=torch.long), chunk_tokens=0)


def test_policy_chunked_path_equals_full_logits(tiny_llama_dir):
    torch.manual_seed(0)
    model = load_backbone(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), causal_lm=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.3)
    prompts, prompt_mask = pad([[1, 20, 21, 22, 23], [1, 30, 31]], pad_id=0, side="left")
    ids = torch.cat([prompts, torch.tensor([[40, 41, 42, 43], [44, 2, 0, 0]])], dim=1)
    mask = torch.cat([prompt_mask, torch.tensor([[True] * 4, [True, True, False, False]])], dim=1)
    trained = [p for p in model.parameters() if p.requires_grad]
    out = []
    with eval_mode(model):
        for chunk in (None, 3):
            model.zero_grad()
            stats = token_stats(model, ids, mask, 5, 0.8, chunk_tokens=chunk)
            (stats.logprobs * mask[:, 5:]).sum().backward()
            out.append((stats.logprobs.detach(), stats.entropy, [p.grad.clone() for p in trained]))
    assert out[0][0].shape == (2, 4)
    assert_close(out[1][0], out[0][0])
    assert_close(out[1][1], out[0][1])
    assert all(g.abs().sum() > 0 for g in out[0][2])
    for got, want in zip(out[1][2], out[0][2]):
        assert_close(got, want)

"""The policy side of REINFORCE: sampling settings, sampling, and per-token log-probs of policy and reference.

The policy is a LoRA-wrapped causal Llama (`load_backbone(spec, causal_lm=True)`); the reference is the same model
with the adapter disabled, run in eval mode without grad (no second copy, no dropout). Log-probs are recomputed from
logits / temperature, the distribution `generate` sampled from; top-k / top-p truncation is not re-applied (the
defaults 0 and 1.0 truncate nothing). Position ids come from the attention mask, so left padding is harmless.
With `chunk_tokens` the LM head runs on that many positions at a time (`rlhf.models.logprobs`), so the full
(N, R, V) logits never exist; without it they are computed at once (only response positions reach the LM head).
Left out: vLLM / TensorRT-LLM generation and importance-sampling corrections.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlhf.models.backbone import adapter_disabled
from rlhf.models.logprobs import chunked_token_stats
from rlhf.models.reward_model import position_ids_from_mask
from rlhf.types import PromptBatch


@dataclass(frozen=True)
class GenerationSpec:
    """How responses are sampled (defaults: NeMo-Aligner's REINFORCE, spec §6.2).

    Args:
        num_samples: K responses per prompt (the RLOO group size).
        max_new_tokens: response length limit; a response without EOS by then has not ended.
        temperature: softmax temperature; log-probs are recomputed with the same value.
        top_k: keep the k most likely tokens (0: no limit).
        top_p: nucleus sampling mass (1.0: no limit).
    """

    num_samples: int = 4
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        rules = {"num_samples": (self.num_samples >= 1, "≥ 1"), "max_new_tokens": (self.max_new_tokens >= 1, "≥ 1"),
                 "temperature": (self.temperature > 0, "> 0"), "top_k": (self.top_k >= 0, "≥ 0"), "top_p": (0 < self.top_p <= 1, "in (0, 1]")}
        for name, (ok, wanted) in rules.items():
            if not ok:
                raise ValueError(f"generation.{name} must be {wanted}, got {getattr(self, name)}")


class TokenStats(NamedTuple):
    """Per response token: log π(y_t) (N, R) with grad, and the entropy of π(·) at that position (N, R), no grad."""

    logprobs: Tensor
    entropy: Tensor


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Dropout off inside the block; the previous train/eval mode of every submodule is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def dropout_off(model: nn.Module) -> Iterator[nn.Module]:
    """Only the dropout layers (LoRA's included) in eval mode inside the block; the rest keeps its mode, so
    gradient checkpointing (active only in training mode) still runs. Modes are restored after."""
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout) and m.training]
    for m in dropouts:
        m.eval()
    try:
        yield model
    finally:
        for m in dropouts:
            m.train()


def eos_token_ids(model: nn.Module, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and the generation config's (e.g. Llama 3's <|eot_id|>)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    ids = sorted({*configured, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})
    if not ids:
        raise ValueError("no EOS token: neither the tokenizer nor the generation config names one")
    return ids


@torch.no_grad()
def sample(model: nn.Module, batch: PromptBatch, spec: GenerationSpec, eos_ids: Sequence[int], pad_id: int, synced_gpus: bool = False) -> Tensor:
    """K samples per prompt with `generate`, in eval mode: (B·K, P + R) ids, prompt-major (rows i·K … i·K+K−1).

    `synced_gpus` keeps every rank stepping until all ranks are done (needed when the model is sharded).
    """
    with eval_mode(model):
        return model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            do_sample=True,
            temperature=spec.temperature,
            top_k=spec.top_k,
            top_p=spec.top_p,
            max_new_tokens=spec.max_new_tokens,
            num_return_sequences=spec.num_samples,
            eos_token_id=list(eos_ids),
            pad_token_id=pad_id,
            use_cache=True,
            synced_gpus=synced_gpus,
        )


def response_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_start: int) -> Tensor:
    """(N, R, V) logits predicting tokens [response_start, T) of each row; only those positions reach the LM head."""
    length = input_ids.shape[1] - response_start
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask.long(),
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
        logits_to_keep=length + 1,
    )
    return out.logits[:, :-1]  # position t predicts token t + 1


def response_hidden(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_start: int) -> Tensor:
    """(N, R, H) final (normed) hidden states at the positions predicting tokens [response_start, T).

    The whole model runs (so wrappers such as FSDP see their forward), with the LM head on one position only; the
    decoder's output is taken by a forward hook.
    """
    captured: list[Tensor] = []
    hook = model.get_decoder().register_forward_hook(lambda module, args, out: captured.append(out.last_hidden_state))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask.long(), position_ids=position_ids_from_mask(attention_mask), use_cache=False, logits_to_keep=1)
    finally:
        hook.remove()
    return captured[0][:, response_start - 1 : -1]  # position t predicts token t + 1


def token_stats(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_start: int, temperature: float, chunk_tokens: int | None = None) -> TokenStats:
    """log π(y_t) of each response token under softmax(logits / temperature), and the entropy there.

    Args:
        model: the (LoRA-wrapped) causal LM.
        input_ids: (N, T) prompt + response ids.
        attention_mask: (N, T) bool, real prompt tokens and response tokens through EOS.
        response_start: P, the column where responses start.
        temperature: the sampling temperature.
        chunk_tokens: apply the LM head to this many positions at a time (memory-lean); None: all at once.
    """
    targets = input_ids[:, response_start:]
    if chunk_tokens is not None:
        hidden = response_hidden(model, input_ids, attention_mask, response_start)  # (N, R, H)
        stats = chunked_token_stats(hidden, model.get_output_embeddings(), targets, temperature, chunk_tokens)
        return TokenStats(stats.logprobs, stats.entropy)
    logits = response_logits(model, input_ids, attention_mask, response_start).float() / temperature  # (N, R, V)
    logp = F.log_softmax(logits, dim=-1)
    logprobs = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N, R)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return TokenStats(logprobs, entropy)


def token_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_start: int, temperature: float = 1.0, chunk_tokens: int | None = None) -> Tensor:
    """(N, R) log π(y_t) of the response tokens, with grad (see `token_stats`)."""
    return token_stats(model, input_ids, attention_mask, response_start, temperature, chunk_tokens).logprobs


@torch.no_grad()
def reference_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_start: int, temperature: float = 1.0, chunk_tokens: int | None = None) -> Tensor:
    """(N, R) log π_ref(y_t): the same model with its adapter disabled, in eval mode, without grad."""
    with adapter_disabled(model), eval_mode(model):
        return token_logprobs(model, input_ids, attention_mask, response_start, temperature, chunk_tokens)

"""The policy side: log-probs equal a manual log_softmax gather (with temperature) and what `generate` sampled from;
the reference (adapter off, eval mode) equals the policy exactly while LoRA B = 0; sampling shapes and EOS ids.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from rlhf.data.collate import pad
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_backbone, load_tokenizer
from rlhf.models.policy import GenerationSpec, eos_token_ids, eval_mode, reference_logprobs, sample, token_logprobs, token_stats
from rlhf.models.reward_model import position_ids_from_mask
from rlhf.types import PromptBatch


@pytest.fixture(scope="module")
def policy(tiny_llama_dir):
    torch.manual_seed(0)
    return load_backbone(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), causal_lm=True).train()


def _batch() -> tuple[torch.Tensor, torch.Tensor, int]:
    """Two left-padded prompts (P = 5) with 4 response tokens; row 1's response ends after its first token."""
    prompts, prompt_mask = pad([[1, 20, 21, 22, 23], [1, 30, 31]], pad_id=0, side="left")
    ids = torch.cat([prompts, torch.tensor([[40, 41, 42, 43], [44, 2, 0, 0]])], dim=1)
    mask = torch.cat([prompt_mask, torch.tensor([[True] * 4, [True, True, False, False]])], dim=1)
    return ids, mask, 5


def _perturb_lora(model: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def test_logprobs_equal_manual_log_softmax_gather_with_temperature(policy):
    ids, mask, start = _batch()
    temperature = 0.7
    with eval_mode(policy), torch.no_grad():
        got = token_logprobs(policy, ids, mask, start, temperature)
        logits = policy(input_ids=ids, attention_mask=mask.long(), position_ids=position_ids_from_mask(mask)).logits
    manual = F.log_softmax(logits[:, start - 1 : -1] / temperature, dim=-1).gather(-1, ids[:, start:, None]).squeeze(-1)
    assert got.shape == (2, 4)
    assert_close(got, manual)


def test_entropy_matches_definition(policy):
    ids, mask, start = _batch()
    with eval_mode(policy), torch.no_grad():
        stats = token_stats(policy, ids, mask, start, 1.0)
        logits = policy(input_ids=ids, attention_mask=mask.long(), position_ids=position_ids_from_mask(mask)).logits[:, start - 1 : -1]
    p = logits.softmax(-1)
    assert_close(stats.entropy, -(p * p.log()).sum(-1))


def test_reference_equals_policy_exactly_at_step_zero(policy):
    # LoRA B starts at 0, so policy and reference are the same function: the KL is exactly 0, not approximately.
    ids, mask, start = _batch()
    assert all(not p.any() for n, p in policy.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        logp = token_logprobs(policy, ids, mask, start)
    assert torch.equal(logp, reference_logprobs(policy, ids, mask, start))


def test_reference_disables_the_adapter_and_restores_it(tiny_llama_dir):
    torch.manual_seed(0)
    model = load_backbone(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8, dropout=0.5)), causal_lm=True).train()
    ids, mask, start = _batch()
    with eval_mode(model), torch.no_grad():
        base_before = token_logprobs(model, ids, mask, start)
    _perturb_lora(model)
    ref_1 = reference_logprobs(model, ids, mask, start)
    ref_2 = reference_logprobs(model, ids, mask, start)
    assert torch.equal(ref_1, ref_2)  # no dropout in the reference pass even though the model is in train mode
    assert_close(ref_1, base_before)  # the adapter really is off
    assert model.training and all(m.training for m in model.modules())  # modes restored
    with eval_mode(model), torch.no_grad():
        assert not torch.allclose(token_logprobs(model, ids, mask, start), ref_1)  # and back on afterwards


def test_sampled_tokens_come_from_the_recomputed_distribution(policy):
    # generate's raw next-token logits / temperature, gathered at the sampled tokens, equal token_logprobs of the
    # finished sequences (KV cache vs full forward: float noise only) for rows with different left padding.
    _perturb_lora(policy, seed=3)
    try:
        prompts, prompt_mask = pad([[1, 20, 21, 22, 23, 24], [1, 30]], pad_id=0, side="left")
        temperature = 0.8
        torch.manual_seed(0)
        with eval_mode(policy), torch.no_grad():
            out = policy.generate(input_ids=prompts, attention_mask=prompt_mask.long(), do_sample=True, temperature=temperature, top_k=0,
                                  top_p=1.0, max_new_tokens=6, eos_token_id=[2], pad_token_id=0, use_cache=True, output_logits=True,
                                  return_dict_in_generate=True)
            sampled = out.sequences[:, prompts.shape[1]:]
            gen_logp = torch.stack([F.log_softmax(step / temperature, -1) for step in out.logits], dim=1).gather(-1, sampled[..., None]).squeeze(-1)
            mask = torch.cat([prompt_mask, torch.ones_like(sampled, dtype=torch.bool)], dim=1)
            recomputed = token_logprobs(policy, out.sequences, mask, prompts.shape[1], temperature)
        assert_close(recomputed, gen_logp, atol=1e-5, rtol=1e-4)
    finally:
        with torch.no_grad():
            for n, p in policy.named_parameters():
                if "lora_B" in n:
                    p.zero_()


def test_sample_shapes_and_group_order(policy, tiny_llama_dir):
    prompts, mask = pad([[1, 20, 21], [1, 30, 31, 32]], pad_id=0, side="left")
    batch = PromptBatch(prompts, mask, ("a", "b"))
    torch.manual_seed(0)
    out = sample(policy, batch, GenerationSpec(num_samples=3, max_new_tokens=5), eos_ids=[2], pad_id=0)
    assert out.shape[0] == 6 and out.shape[1] <= 4 + 5
    assert torch.equal(out[:3, :4], prompts[0].expand(3, 4)) and torch.equal(out[3:, :4], prompts[1].expand(3, 4))  # prompt-major
    assert policy.training  # mode restored after sampling in eval mode


def test_eos_ids_join_tokenizer_and_generation_config(policy, tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    assert eos_token_ids(policy, tokenizer) == [2]
    policy.generation_config.eos_token_id = [2, 7]
    try:
        assert eos_token_ids(policy, tokenizer) == [2, 7]
    finally:
        policy.generation_config.eos_token_id = 2


def test_generation_spec_validates():
    with pytest.raises(ValueError):
        GenerationSpec(temperature=0.0)
    with pytest.raises(ValueError):
        GenerationSpec(top_p=0.0)

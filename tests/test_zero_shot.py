"""The zero-shot baseline: mean log-prob of the response tokens (through the EOS), independent of batching."""

from __future__ import annotations

import torch

from rlhf.data.dpo_data import DPOEncoder
from rlhf.data.templates import TemplateSpec
from rlhf.models.backbone import BackboneSpec, load_backbone, load_tokenizer
from rlhf.models.policy import token_logprobs
from rlhf.results.zero_shot import zero_shot_scores

TEMPLATE = TemplateSpec(name="steerlm", system="")


def test_mean_response_logprob_matches_the_policy_log_probs(tiny_llama_dir):
    prompts, responses = ["Tell me about the cat.", "Why?"], ["The cat is soft.", "Because the sky is blue and the sea is big."]
    scores, truncated = zero_shot_scores(str(tiny_llama_dir), prompts, responses, max_length=200, template=TEMPLATE, batch_size=2)
    alone, _ = zero_shot_scores(str(tiny_llama_dir), prompts[1:], responses[1:], max_length=200, template=TEMPLATE, batch_size=1)
    assert not truncated.any()
    torch.testing.assert_close(scores[1:], alone, rtol=0, atol=1e-5)  # padding in the batch changes nothing
    model = load_backbone(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=None), causal_lm=True).eval()
    encoder = DPOEncoder(load_tokenizer(str(tiny_llama_dir)), TEMPLATE, 200)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids = encoder.ids(p, r)
        start = encoder.response_start(p, r, ids)
        with torch.no_grad():
            logp = token_logprobs(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool), start)
        torch.testing.assert_close(scores[i], logp.mean(), rtol=0, atol=1e-5)


def test_over_length_text_is_truncated_and_counted(tiny_llama_dir):
    scores, truncated = zero_shot_scores(str(tiny_llama_dir), ["Hi"], ["a long answer " * 30], max_length=64, template=TEMPLATE)
    assert truncated.tolist() == [True] and torch.isfinite(scores).all()

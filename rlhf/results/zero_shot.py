"""The zero-shot baseline every trained RM is compared with: the base model's mean token log-probability of a response.

`zero_shot_scores` renders each (prompt, response) as the policy sees it (chat template up to the assistant turn,
then the response and <|im_end|>, as `rlhf.data.dpo_data.DPOEncoder` does), truncates over-length text by the
encoder's "truncate" rule (counted), and returns mean log π(response tokens) per sequence. No training, no head.
Left out: length normalisations other than the mean, and sum log-probs (which favour short responses).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf.data.collate import pad
from rlhf.data.dpo_data import DPOEncoder
from rlhf.data.encode import EncodeStats
from rlhf.data.templates import TemplateSpec
from rlhf.models.backbone import BackboneSpec, load_backbone, load_tokenizer


@torch.no_grad()
def zero_shot_scores(model_dir: str, prompts: Sequence[str], responses: Sequence[str], max_length: int = 1024,
                     template: TemplateSpec = TemplateSpec(name="chat", system=""), batch_size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) mean response-token log-probs under the frozen base model and (N,) bool "was truncated"."""
    tokenizer = load_tokenizer(model_dir)
    model = load_backbone(BackboneSpec(model_dir, attn_implementation="sdpa", lora=None), causal_lm=True).eval()
    encoder = DPOEncoder(tokenizer, template, max_length)
    sequences, starts, truncated = [], [], []
    for prompt, response in zip(prompts, responses, strict=True):
        stats = EncodeStats()
        ids = encoder.encode(prompt, [response], "truncate", stats)[0]  # type: ignore[index]  # "truncate" never drops
        sequences.append(ids)
        starts.append(encoder.response_start(prompt, response, ids))
        truncated.append(stats.truncated > 0)
    scores = []
    for i in range(0, len(sequences), batch_size):
        ids, mask = pad(sequences[i : i + batch_size], tokenizer.pad_token_id, "right")
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float(), dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1): log p(ids[t+1] | ids[:t+1])
        cols = torch.arange(1, ids.shape[1])[None, :]
        counted = mask[:, 1:] & (cols >= torch.tensor(starts[i : i + batch_size])[:, None])
        scores.append((token_logp * counted).sum(1) / counted.sum(1).clamp(min=1))
    return torch.cat(scores), torch.tensor(truncated)

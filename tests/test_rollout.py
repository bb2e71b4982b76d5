"""Rollouts: the response mask runs through the first EOS inclusive, `ended` flags, EOS-free decoding, rewards from
the decoded text (never from a padding position), and the attention mask that joins prompt and response.
"""

from __future__ import annotations

import torch

from rlhf.align.rewards import CharFrequencyReward
from rlhf.align.rollout import decode_responses, make_rollout, response_mask_through_eos, sample_rows
from rlhf.data.collate import pad
from rlhf.models.backbone import load_tokenizer
from rlhf.types import PromptBatch

T, F = True, False


def test_mask_runs_through_the_first_eos_inclusive():
    responses = torch.tensor([
        [5, 2, 0, 0],  # ends at position 1; padding after
        [5, 6, 7, 8],  # never ends: every token counts
        [2, 9, 2, 0],  # EOS first: only the EOS counts, later tokens (even another EOS) do not
        [5, 6, 2, 2],  # pad == eos: the padding EOS tokens after the first do not count
    ])
    mask, ended = response_mask_through_eos(responses, [2])
    assert mask.tolist() == [[T, T, F, F], [T, T, T, T], [T, F, F, F], [T, T, T, F]]
    assert ended.tolist() == [T, F, T, T]


def test_any_of_several_eos_ids_ends_a_response():
    mask, ended = response_mask_through_eos(torch.tensor([[5, 9, 6], [5, 6, 7]]), [2, 9])
    assert mask.tolist() == [[T, T, F], [T, T, T]] and ended.tolist() == [T, F]


def test_decoding_drops_eos_and_what_follows(tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    cat = tokenizer("cat", add_special_tokens=False)["input_ids"]
    dog = tokenizer("dog", add_special_tokens=False)["input_ids"]
    responses = torch.tensor([cat + [2] + dog, dog + dog[:1] + cat])
    mask, _ = response_mask_through_eos(responses, [2])
    assert decode_responses(tokenizer, responses, mask, [2]) == ["cat", tokenizer.decode(dog + dog[:1] + cat)]


def test_make_rollout_scores_decoded_text_and_joins_masks(tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    prompts, prompt_mask = pad([[1, 20, 21], [1, 30]], pad_id=0, side="left")  # P = 3
    batch = PromptBatch(prompts, prompt_mask, ("first", "second"))
    e = tokenizer("e", add_special_tokens=False)["input_ids"][-1]
    x = tokenizer("x", add_special_tokens=False)["input_ids"][-1]
    responses = torch.tensor([[e, e, 2, 0], [e, x, x, x], [x, 2, e, e], [2, e, e, e]])  # K = 2 samples per prompt
    sequences = torch.cat([prompts.repeat_interleave(2, dim=0), responses], dim=1)
    rollout = make_rollout(sequences, batch, 2, tokenizer, CharFrequencyReward("e"), [2])
    assert rollout.prompt_length == 3
    assert rollout.prompts == ("first", "first", "second", "second")
    assert rollout.responses == ("ee", "exxx", "x", "")
    # reward from the text: 2/2, 1/4, 0/1, 0 (empty); the e's after EOS in rows 2 and 3 never count
    assert torch.equal(rollout.scores, torch.tensor([1.0, 0.25, 0.0, 0.0]))
    assert rollout.ended.tolist() == [T, F, T, T]
    assert rollout.response_mask.tolist() == [[T, T, T, F], [T, T, T, T], [T, T, F, F], [T, F, F, F]]
    assert rollout.attention_mask[:, :3].tolist() == [[T, T, T], [T, T, T], [F, T, T], [F, T, T]]
    assert torch.equal(rollout.attention_mask[:, 3:], rollout.response_mask)
    assert sample_rows(rollout, 2) == [["first", "ee", 1.0, True, 3], ["first", "exxx", 0.25, False, 4]]

"""TRL 1.16 (the `test` extra) as an oracle nobody here wrote: the same tiny model, the same weights, the same batch.

- BT and margin-BT loss and the LoRA + head gradients of RewardModelModule = TRL `RewardTrainer.compute_loss`.
- DPO (sigmoid, same β, reference = adapter off) loss and LoRA gradients of DPOModule = TRL `DPOTrainer.compute_loss`.
- RLOO advantages = TRL `RLOOTrainer`'s on the same rewards; where we differ on purpose (unended samples) the
  difference is tested explicitly.
The models share parameters (TRL's wrapper holds our backbone and head), so gradients compare tensor by tensor.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlhf.data.collate import EncodedPair, collate_preferences
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_tokenizer, sequence_classifier
from rlhf.models.heads import HeadSpec
from rlhf.reward.module import RewardModelModule

trl = pytest.importorskip("trl", minversion="1.16")

PAIRS = [([1, 17, 30, 44, 9], [1, 17, 30, 51], 3), ([1, 60, 8, 22], [1, 60, 8, 23, 70, 71, 5], 1), ([1, 88, 12], [1, 40, 41, 42], 2)]


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """LoRA B = 0 at init would make LoRA gradients of A zero and hide mistakes: give every LoRA B weight a value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("loss", ["bt", "margin_bt"])
def test_bt_loss_and_gradients_equal_trl_reward_trainer(loss, tiny_llama_dir, tmp_path):
    from datasets import Dataset

    module = RewardModelModule(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), loss=loss, head=HeadSpec())
    module.configure_model()
    _perturb(module.model)
    rm = module.model
    batch = collate_preferences([EncodedPair(c, r, m) for c, r, m in PAIRS], pad_id=0, side="right")
    ours = module.training_step(batch, 0)
    ours.backward()
    # training_step scales each micro-batch's gradient by its pairs and the optimizer step divides by the step's total
    # (RewardModelModule._counted, so token-budget micro-batches weigh every pair alike): one micro-batch here
    ours_grads = {n: g / batch.num_pairs for n, g in _grads(rm).items()}

    # TRL's classifier: our (LoRA) body and our head weight as its `score`; it pools at the last non-pad token
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    classifier = sequence_classifier(rm.backbone, rm.head.linear.weight, str(tiny_llama_dir), {"pad_token_id": 0, "num_labels": 1})
    classifier.score.weight = rm.head.linear.weight  # share the Parameter, not a copy
    rows = [{"chosen_ids": c, "rejected_ids": r, **({"margin": float(m)} if loss == "margin_bt" else {})} for c, r, m in PAIRS]
    config = trl.RewardConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_length=None, disable_tqdm=True,
                              gradient_checkpointing=False, center_rewards_coefficient=None)
    trainer = trl.RewardTrainer(model=classifier, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    inputs = trainer.data_collator(rows)
    theirs = trainer.compute_loss(trainer.model, inputs)
    theirs.backward()
    theirs_grads = _grads(rm)

    assert_close(ours, theirs)
    assert ours_grads.keys() == theirs_grads.keys() and any("lora_A" in k for k in ours_grads) and "head.linear.weight" in ours_grads
    for name, grad in ours_grads.items():
        assert grad.abs().max() > 0, name
        assert_close(grad, theirs_grads[name], msg=lambda m, name=name: f"{name}: {m}")


DPO_ROWS = [([1, 17, 30], [44, 9, 2], [51, 2]), ([1, 60, 8, 22, 6], [23, 2], [70, 71, 5, 2]), ([1, 88], [12, 13, 14, 2], [40, 2])]


def test_dpo_loss_and_gradients_equal_trl_dpo_trainer(tiny_llama_dir, tmp_path):
    from datasets import Dataset

    from rlhf.data.dpo_data import EncodedDPOPair, collate_dpo
    from rlhf.dpo.module import DPOModule

    module = DPOModule(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), loss="dpo", beta=0.5)
    module.configure_model()
    _perturb(module.model, seed=1)
    pairs = [EncodedDPOPair(p + c, p + r, len(p), len(p), 1) for p, c, r in DPO_ROWS]
    ours = module.training_step(collate_dpo(pairs, pad_id=0), 0)
    ours.backward()
    ours_grads = _grads(module.model)

    rows = [{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r} for p, c, r in DPO_ROWS]
    config = trl.DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, beta=0.5, loss_type=["sigmoid"], max_length=None,
                           disable_tqdm=True, gradient_checkpointing=False, precompute_ref_log_probs=False)
    text = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])  # TRL tokenises text at init; we collate ids
    trainer = trl.DPOTrainer(model=module.model, args=config, train_dataset=text, processing_class=load_tokenizer(str(tiny_llama_dir)))
    # Given a model that already has an adapter, TRL copies it as a "ref" adapter (reference = the adapter as given);
    # ours is the base model. Deleting the copy makes TRL disable the adapters for the reference, as for a new adapter.
    assert trainer.ref_model is None and "ref" in trainer.model.peft_config
    trainer.model.delete_adapter("ref")
    theirs = trainer.compute_loss(trainer.model, trainer.data_collator(rows))
    theirs.backward()
    theirs_grads = _grads(module.model)

    assert_close(ours, theirs)
    assert ours_grads.keys() == theirs_grads.keys() and any("lora_A" in k for k in ours_grads)
    for name, grad in ours_grads.items():
        assert grad.abs().max() > 0, name
        assert_close(grad, theirs_grads[name], msg=lambda m, name=name: f"{name}: {m}")


REWARDS = [0.5, -1.0, 2.0, 0.25, 3.0, 3.0, -2.0, 1.0]  # 2 prompts × K = 4, prompt-major


def test_rloo_advantages_equal_trl_rloo_trainer(tiny_llama_dir, tmp_path):
    from datasets import Dataset

    from rlhf.advantages import rloo_advantages

    calls: list[int] = []

    def reward(prompts, completions, **kwargs):  # the fixed rewards, in TRL's completion order; None = unscorable
        calls.append(len(completions))
        return [None if i in unscorable else REWARDS[i] for i in range(len(completions))]

    config = trl.RLOOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_train_batch_size=8, num_generations=4,
                            max_completion_length=3, beta=0.0, normalize_advantages=False, disable_tqdm=True, gradient_checkpointing=False)
    trainer = trl.RLOOTrainer(model=str(tiny_llama_dir), reward_funcs=reward, args=config,
                              train_dataset=Dataset.from_dict({"prompt": ["Once", "Hi"]}), processing_class=load_tokenizer(str(tiny_llama_dir)))
    inputs = [{"prompt": "Once"}] * 4 + [{"prompt": "Hi"}] * 4
    rewards, every = torch.tensor(REWARDS), torch.ones(8, dtype=torch.bool)
    unscorable: set[int] = set()
    theirs = trainer._generate_and_score_completions(inputs)["advantages"]
    assert calls == [8]
    assert_close(rloo_advantages(rewards, every, 4), theirs)

    # Differs on purpose: our default leaves samples that did not end (no EOS) out of every baseline and gives them
    # A = 0 (NeMo-Aligner's rule; a cut-off answer is not scored as a finished one). TRL counts them like the others
    # unless mask_truncated_completions is set. TRL's unscorable completions (reward None) get exactly our treatment:
    unscorable = {1, 6}
    ended = torch.tensor([i not in unscorable for i in range(8)])
    theirs_masked = trainer._generate_and_score_completions(inputs)["advantages"]
    ours_masked = rloo_advantages(rewards, ended, 4)
    assert_close(ours_masked, theirs_masked)
    assert (ours_masked - rloo_advantages(rewards, every, 4)).abs().max() > 0.1  # and it is a real difference

"""DPO (spec §3.8): each loss on a 2-pair example by hand, the m=1 / m=0 reductions, prompt tokens masked out, the
pair encoding (prompt rendered up to the assistant turn + response + EOS), the module's loss against a hand gather
with a perturbed LoRA (policy ≠ reference), and a 2-step fit through `dpo_main` that changes only the LoRA weights with a finite loss.
"""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from rlhf.cli import dpo_main
from rlhf.data.dpo_data import DPODataModule
from rlhf.data.templates import TemplateSpec
from rlhf.dpo.module import DPOModule
from rlhf.losses import DPO_LOSSES, dpo, dpo_delta, margin_dpo, masked_sum, scaled_dpo
from rlhf.models.backbone import BackboneSpec, LoraSpec, load_tokenizer
from tests.weight_checks import assert_only_trained_weights_changed

# Two pairs, β = 0.5. Summed response log-probs:
#   pair 1: πθ(y_c) = −10, πref(y_c) = −10.5, πθ(y_r) = −11, πref(y_r) = −10.5 → Δ = 0.5·[(0.5) − (−0.5)] = 0.5
#   pair 2: πθ(y_c) = −12, πref(y_c) = −12,   πθ(y_r) = −10, πref(y_r) = −10   → Δ = 0.5·[0 − 0] = 0
POLICY_C, POLICY_R = torch.tensor([-10.0, -12.0]), torch.tensor([-11.0, -10.0])
REF_C, REF_R = torch.tensor([-10.5, -12.0]), torch.tensor([-10.5, -10.0])
MARGIN = torch.tensor([1.0, 3.0])


def nls(x: float) -> float:
    """−log σ(x) = log(1 + e^(−x))."""
    return math.log1p(math.exp(-x))


def test_delta_by_hand():
    delta = dpo_delta(POLICY_C, POLICY_R, REF_C, REF_R, beta=0.5)
    torch.testing.assert_close(delta, torch.tensor([0.5, 0.0]))


def test_regular_dpo_by_hand():
    # mean(−log σ(0.5), −log σ(0)) = mean(log(1 + e^−0.5) = 0.474077, log 2 = 0.693147) = 0.583612
    loss = dpo(torch.tensor([0.5, 0.0]), MARGIN)
    assert loss.item() == pytest.approx((nls(0.5) + nls(0.0)) / 2) and loss.item() == pytest.approx(0.583612, abs=1e-6)


def test_margin_dpo_by_hand():
    # mean(−log σ(0.5 − 1), −log σ(0 − 3)) = mean(log(1 + e^0.5) = 0.974077, log(1 + e^3) = 3.048587) = 2.011332
    loss = margin_dpo(torch.tensor([0.5, 0.0]), MARGIN)
    assert loss.item() == pytest.approx((nls(-0.5) + nls(-3.0)) / 2) and loss.item() == pytest.approx(2.011332, abs=1e-6)


def test_scaled_dpo_by_hand():
    # mean(1·(−log σ(0.5)), 3·(−log σ(0))) = mean(0.474077, 3·0.693147 = 2.079442) = 1.276759
    loss = scaled_dpo(torch.tensor([0.5, 0.0]), MARGIN)
    assert loss.item() == pytest.approx((nls(0.5) + 3 * nls(0.0)) / 2) and loss.item() == pytest.approx(1.276759, abs=1e-6)


def test_scaled_with_unit_margin_and_margin_with_zero_margin_equal_regular():
    delta = torch.tensor([0.7, -1.3, 0.0, 2.5])
    torch.testing.assert_close(scaled_dpo(delta, torch.ones(4)), dpo(delta, torch.ones(4)))
    torch.testing.assert_close(margin_dpo(delta, torch.zeros(4)), dpo(delta, torch.zeros(4)))
    assert set(DPO_LOSSES) == {"dpo", "margin_dpo", "scaled_dpo"}


@pytest.fixture(scope="module")
def dpo_data(tiny_llama_dir, synthetic_dir) -> DPODataModule:
    data = DPODataModule(train_path=str(synthetic_dir / "preference_train.jsonl"), val_path=str(synthetic_dir / "preference_val.jsonl"),
                         tokenizer=str(tiny_llama_dir), template=TemplateSpec(system=""), max_length=200)
    data.setup("fit")
    return data


def test_pairs_are_prompt_plus_response_plus_eos(dpo_data, tiny_llama_dir, synthetic_dir):
    from rlhf.data.dpo_data import DPOEncoder
    from rlhf.data.helpsteer2 import load_preference_pairs

    tokenizer = load_tokenizer(str(tiny_llama_dir))
    encoder = DPOEncoder(tokenizer, TemplateSpec(system=""), 200)
    pairs, _ = load_preference_pairs(synthetic_dir / "preference_val.jsonl")
    batch = next(iter(dpo_data.val_dataloader()))  # validation keeps file order and drops nothing
    b = batch.num_pairs
    assert batch.input_ids.shape[0] == 2 * b and not (batch.response_mask & ~batch.attention_mask).any()
    for row in range(2 * b):
        pair = pairs[row % b]
        ids, resp = batch.input_ids[row][batch.attention_mask[row]], batch.response_mask[row][batch.attention_mask[row]]
        start = int(resp.float().argmax())
        assert resp[start:].all() and not resp[:start].any() and ids[-1] == tokenizer.eos_token_id
        assert ids[:start].tolist() == encoder.prompt_ids(pair.prompt)  # rendered up to the assistant turn
        text = pair.chosen if row < b else pair.rejected
        expected = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert tokenizer.decode(ids[start:-1].tolist()).strip() == expected.strip()


def _manual_sequence_logprobs(model, batch, mask=None) -> torch.Tensor:
    """(2B,) Σ log p(y_t | y_<t) over the response tokens (or `mask`), by hand: one forward, log_softmax, gather."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits.float()  # (2B, T, V)
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]  # (2B, T−1)
    return (logp * (batch.response_mask if mask is None else mask)[:, 1:]).sum(1)


def test_module_loss_equals_a_manual_gather_with_a_perturbed_lora(dpo_data, real_tiny_llama):
    """DPOModule's loss on a batch = −log σ(Δ) from hand-gathered response log-probs of the policy (LoRA B ≠ 0) and
    the adapter-off reference: catches a wrong shift, prompt or padding tokens counted, or a swapped reference."""
    # the pretrained tiny Llama (same tokenizer as the data): a random one's near-uniform log-probs would hide errors
    module = DPOModule(BackboneSpec(str(real_tiny_llama), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)), beta=0.5)
    module.configure_model()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    batch = next(iter(dpo_data.train_dataloader()))
    assert (batch.response_mask[:, 1:].sum(1) < batch.attention_mask[:, 1:].sum(1)).all()  # every row has prompt tokens
    loss = module.training_step(batch, 0)
    with torch.no_grad():
        policy = _manual_sequence_logprobs(module.model, batch)
        with module.model.disable_adapter():
            reference = _manual_sequence_logprobs(module.model, batch)
    b = batch.num_pairs
    assert (policy - reference).abs().min() > 1e-3  # the LoRA does change every sequence's log-prob
    delta = 0.5 * ((policy[:b] - reference[:b]) - (policy[b:] - reference[b:]))
    torch.testing.assert_close(loss, -torch.nn.functional.logsigmoid(delta).mean())
    # per sequence too (Δ alone cannot tell: a shared prompt's log-probs cancel between chosen and rejected)
    lp = module.pair_logprobs(batch)
    torch.testing.assert_close(masked_sum(lp.policy, lp.mask, dim=1), policy)
    torch.testing.assert_close(masked_sum(lp.reference, lp.mask, dim=1), reference)
    with torch.no_grad():
        counted_prompt = _manual_sequence_logprobs(module.model, batch, batch.attention_mask)
    assert (counted_prompt - policy).abs().min() > 1e-2  # counting prompt tokens would be visible


class Recorder(L.Callback):
    def __init__(self):
        self.train: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.train.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.mark.parametrize("loss", ["scaled_dpo"])
def test_two_step_fit_changes_only_lora_weights(tiny_llama_dir, synthetic_dir, tmp_path, loss):
    cli = dpo_main([
        f"--model.backbone.name_or_path={tiny_llama_dir}", "--model.backbone.attn_implementation=sdpa",
        "--model.backbone.lora.r=4", "--model.backbone.lora.alpha=8", f"--model.loss={loss}",
        "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.01",
        f"--data.train_path={synthetic_dir / 'preference_train.jsonl'}", f"--data.val_path={synthetic_dir / 'preference_val.jsonl'}",
        "--data.template.system=", "--data.max_length=200", "--data.loader.batch_size=2",
        "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path / 'checkpoint'}",
        "--seed_everything=0",
    ], run=False)
    cli.model.configure_model()
    before = {n: p.detach().clone() for n, p in cli.model.model.named_parameters()}
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    assert cli.trainer.global_step == 2 and len(recorder.train) == 2
    first = recorder.train[0]
    assert first["train/margin"] == 0.0 and first["train/chosen_drift"] == 0.0 and first["train/rejected_drift"] == 0.0
    assert all(math.isfinite(s["train/loss"]) for s in recorder.train)
    metrics = cli.trainer.callback_metrics
    for key in ("val/loss", "val/accuracy", "val/margin", "val/chosen_drift", "val/rejected_drift", "val/kl_k1"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    trained = {n for n, p in cli.model.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert_only_trained_weights_changed(cli.model.model, before)
    from rlhf.training.checkpoint import read_meta
    meta = read_meta(tmp_path / "checkpoint")
    assert meta["kind"] == "policy" and meta["objective"] == {"loss": loss, "beta": 0.1}
    summary = json.loads((tmp_path / "checkpoint" / "summary.json").read_text())
    assert summary["global_step"] == 2 and "val/accuracy" in summary["metrics"] and summary["config_hash"]

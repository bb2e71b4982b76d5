"""DPO (spec §3.8): each loss on a 2-pair example by hand, the m=1 / m=0 reductions, prompt tokens masked out, the
pair encoding (prompt rendered up to the assistant turn + response + EOS), Δ exactly 0 at initialisation (LoRA B = 0),
and a 2-step fit through `dpo_main` that changes only the LoRA weights with a finite loss.
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
from rlhf.dpo_module import DPOModule
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


def test_prompt_tokens_do_not_contribute():
    # (4 sequences = 2 chosen over 2 rejected) × 5 token log-probs; the first 2 (or 3) columns are prompt tokens.
    torch.manual_seed(0)
    policy, ref = -torch.rand(4, 5), -torch.rand(4, 5)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)

    def loss(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        sp, sr = masked_sum(p, mask, dim=1), masked_sum(r, mask, dim=1)
        return dpo(dpo_delta(sp[:2], sp[2:], sr[:2], sr[2:], 0.1), MARGIN)

    perturbed_p, perturbed_r = policy.clone(), ref.clone()
    perturbed_p[~mask] = -50.0 * torch.rand(int((~mask).sum()))
    perturbed_r[~mask] = -7.0
    assert loss(perturbed_p, perturbed_r).item() == loss(policy, ref).item()
    perturbed_p[0, 2] -= 1.0  # a response token does count
    assert loss(perturbed_p, perturbed_r).item() != loss(policy, ref).item()


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


def test_delta_is_zero_at_initialisation(dpo_data, tiny_llama_dir):
    module = DPOModule(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, alpha=8)))
    module.configure_model()
    batch = next(iter(dpo_data.train_dataloader()))
    lp = module.pair_logprobs(batch)
    assert torch.equal(lp.policy.detach(), lp.reference)  # LoRA B = 0: the policy is the reference, bit for bit
    seq_p, seq_r = masked_sum(lp.policy, lp.mask, dim=1), masked_sum(lp.reference, lp.mask, dim=1)
    b = batch.num_pairs
    assert torch.equal(dpo_delta(seq_p[:b], seq_p[b:], seq_r[:b], seq_r[b:], 0.1), torch.zeros(b))


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
    from rlhf.checkpoint import read_meta
    meta = read_meta(tmp_path / "checkpoint")
    assert meta["kind"] == "policy" and meta["objective"] == {"loss": loss, "beta": 0.1}
    summary = json.loads((tmp_path / "checkpoint" / "summary.json").read_text())
    assert summary["global_step"] == 2 and "val/accuracy" in summary["metrics"] and summary["config_hash"]

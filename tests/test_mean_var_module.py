"""The mean-variance RM wired into RewardModelModule: 2-step CLI fits on the synthetic data (tiny random Llama).

A fit gives a finite loss, moves LoRA and the μ/σ head (and a learned ρ), keeps the base bit-identical, checkpoints
exactly the trained tensors, and a reload gives identical μ and σ; the logged validation accuracy and divergence
AUROCs equal those recomputed from the trained model's μ, σ on the validation loader.
The data module's targets are the class distribution of the raw strengths.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from rlhf.data.collate import pad
from rlhf.data.disagreement import class_distribution
from rlhf.data.disagreement_data import EncodedDisagreement, collate_disagreements, parse_disagreement_rows
from rlhf.data.rows import Row
from rlhf.metrics import LAMBDA_GRID, auroc, mean_var_divergence, scalar_divergence
from rlhf.training.checkpoint import load_reward_model, read_meta
from tests.test_reward_module import _args, _fit
from tests.weight_checks import assert_only_trained_weights_changed


def _mv_args(tiny_llama_dir, synthetic_dir, tmp_path, extra: tuple[str, ...] = ()) -> list[str]:
    args = _args(tiny_llama_dir, synthetic_dir, tmp_path, "mean_var", extra)
    args = [a.replace("rlhf.data.datamodules.PreferenceDataModule", "rlhf.data.disagreement_data.DisagreementDataModule") for a in args]
    return args + ["--data.loader.eval_batch_size=64", "--trainer.limit_train_batches=2"]  # epoch end = step 2: validation runs


def test_mean_var_fit_checkpoint_and_reload(tiny_llama_dir, synthetic_dir, tmp_path):
    cli, before = _fit(_mv_args(tiny_llama_dir, synthetic_dir, tmp_path))
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics
    assert math.isfinite(float(metrics["train/loss"]))
    model = cli.model.model
    _check_logged_validation_metrics(cli, metrics)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_B" in n for n in trained) and "head.linear.weight" in trained and "head.linear.bias" in trained
    assert all("lora_" in n or n.startswith("head.") for n in trained)
    assert "head.rho_raw" not in trained  # rho "zero" by default
    assert_only_trained_weights_changed(model, before, moved=("lora_B", "head.linear.weight", "head.linear.bias"))
    assert not torch.equal(before["head.linear.weight"][1], model.head.linear.weight[1])  # the σ row trained too
    ckpt = tmp_path / "checkpoint"
    assert set(load_file(str(ckpt / "model.safetensors"))) == trained
    meta = read_meta(ckpt)
    assert meta["head"]["kind"] == "mean_var" and meta["loss"] == "mean_var"

    trained_model = model.eval()
    reloaded = load_reward_model(ckpt)
    ids, mask = pad([[1, 5, 6, 7, 8], [1, 9, 10], [1, 11, 12, 13, 14, 15, 16]], pad_id=0)
    with torch.no_grad():
        a, b = trained_model(ids, mask), reloaded(ids, mask)
        assert a.shape == (3, 2)
        assert torch.equal(trained_model.reward(a), reloaded.reward(b))
        assert torch.equal(trained_model.sigma(a), reloaded.sigma(b))
        assert bool((reloaded.sigma(b) > 0).all())


def _check_logged_validation_metrics(cli, metrics) -> None:
    """The logged AUROCs and accuracy = those of the trained model's own μ, σ on every validation pair, recomputed
    here from the data module's loader with `auroc` (itself checked against a brute-force pair count)."""
    model, lam = cli.model.model.eval(), cli.model.mean_var.divergence_lambda
    mu_a, s_a, mu_b, s_b, target, diverging = [], [], [], [], [], []
    with torch.no_grad():
        for batch in cli.datamodule.val_dataloader():
            out = model(batch.input_ids, batch.attention_mask)
            for acc, value in zip((mu_a, mu_b), model.reward(out).chunk(2)):
                acc.append(value)
            for acc, value in zip((s_a, s_b), model.sigma(out).chunk(2)):
                acc.append(value)
            target.append(batch.target)
            diverging.append(batch.diverging)
    mu_a, s_a, mu_b, s_b, target, diverging = (torch.cat(x) for x in (mu_a, s_a, mu_b, s_b, target, diverging))
    keep = diverging >= 0
    y = diverging[keep] == 1
    assert 0 < int(y.sum()) < int(keep.sum())  # both classes present, so AUROC is defined and informative
    a, sa, b, sb = mu_a[keep], s_a[keep], mu_b[keep], s_b[keep]
    want = {
        "val/divergence_auroc": auroc(mean_var_divergence(a, sa, b, sb, lam), y),
        "val/divergence_auroc_scalar": auroc(scalar_divergence(a, b), y),
        "val/divergence_auroc_best": max(auroc(mean_var_divergence(a, sa, b, sb, g), y) for g in LAMBDA_GRID),
    }
    expected = target @ torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])  # signed class strengths (A significantly better = +2)
    decided = expected != 0
    want["val/accuracy"] = (torch.sign(expected[decided]) == torch.sign(mu_a - mu_b)[decided]).float().mean()
    for key, value in want.items():
        assert float(metrics[key]) == pytest.approx(float(value), abs=1e-6), key
    assert math.isfinite(float(metrics["val/loss"]))


def test_learned_rho_is_trained_and_saved(tiny_llama_dir, synthetic_dir, tmp_path):
    cli, before = _fit(_mv_args(tiny_llama_dir, synthetic_dir, tmp_path, ("--model.mean_var.rho=learned",)))
    model = cli.model.model
    assert model.head.rho_raw.requires_grad and float(before["head.rho_raw"]) == 0.0
    assert not torch.equal(before["head.rho_raw"], model.head.rho_raw.detach())
    saved = load_file(str(tmp_path / "checkpoint" / "model.safetensors"))
    assert torch.equal(saved["head.rho_raw"], model.head.rho_raw.detach())
    assert read_meta(tmp_path / "checkpoint")["head"]["learned_rho"] is True
    reloaded = load_reward_model(tmp_path / "checkpoint")
    assert torch.equal(reloaded.head.rho(), model.head.rho().detach())


def test_nll_baseline_fits(tiny_llama_dir, synthetic_dir, tmp_path):
    cli, _ = _fit(_mv_args(tiny_llama_dir, synthetic_dir, tmp_path, ("--model.mean_var.nll_baseline=true",)))
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))


def test_wrong_data_for_mean_var_fails_clearly(tiny_llama_dir, synthetic_dir, tmp_path):
    args = [a.replace("rlhf.data.disagreement_data.DisagreementDataModule", "rlhf.data.datamodules.PreferenceDataModule")
            for a in _mv_args(tiny_llama_dir, synthetic_dir, tmp_path)]
    with pytest.raises(TypeError, match="trains on annotator distributions"):
        _fit(args)


def test_targets_equal_class_distribution_of_raw_strengths():
    strengths = [-3, -1, 1, 0, -100]
    row = Row("hand, row 1", {"prompt": "p", "response_1": "a", "response_2": "b",
                              "all_preferences_unprocessed": [{"strength": s} for s in strengths]})
    none = Row("hand, row 2", {"prompt": "p", "response_1": "a", "response_2": "b", "all_preferences_unprocessed": [{"strength": -100}]})
    examples, stats = parse_disagreement_rows([row, none])
    assert stats.kept == 1 and stats.dropped_no_valid == 1 and stats.rows == 2
    assert examples[0].target == tuple(class_distribution(strengths)) == (0.0, 0.25, 0.25, 0.25, 0.25)
    assert examples[0].diverging == 1  # votes on both sides, one significant
    batch = collate_disagreements([EncodedDisagreement([1, 2], [1, 3, 4], examples[0].target, examples[0].diverging)], pad_id=0)
    assert batch.input_ids.shape == (2, 3) and batch.target.shape == (1, 5)
    assert torch.equal(batch.target[0], torch.tensor(class_distribution(strengths)))
    assert batch.diverging.tolist() == [1]

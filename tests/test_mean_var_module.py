"""The mean-variance RM wired into RewardModelModule: 2-step CLI fits on the synthetic data (tiny random Llama).

A fit gives a finite loss, moves LoRA and the μ/σ head (and a learned ρ), keeps the base bit-identical, checkpoints
exactly the trained tensors, and a reload gives identical μ and σ; validation logs divergence AUROCs in [0, 1].
The data module's targets are the class distribution of the raw strengths.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from rlhf.checkpoint import load_reward_model, read_meta
from rlhf.data.collate import pad
from rlhf.data.disagreement import class_distribution
from rlhf.data.disagreement_data import EncodedDisagreement, collate_disagreements, parse_disagreement_rows
from rlhf.data.rows import Row
from rlhf.metrics import LAMBDA_GRID
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
    for key in ("val/divergence_auroc", "val/divergence_auroc_scalar", "val/divergence_auroc_best"):
        assert 0.0 <= float(metrics[key]) <= 1.0, key
    assert math.isfinite(float(metrics["val/loss"])) and 0.0 <= float(metrics["val/accuracy"]) <= 1.0
    assert cli.model.mean_var.divergence_lambda in LAMBDA_GRID  # so the tuned AUROC is at least the configured one
    assert float(metrics["val/divergence_auroc_best"]) >= float(metrics["val/divergence_auroc"]) - 1e-6
    model = cli.model.model
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

"""Every configs/align/*.yaml parses with the align CLI (run=False) without loading weights, and prints its config.

The paper-defaults config is also checked value by value against NeMo-Aligner's REINFORCE defaults (spec §6.2).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlhf.cli import align_main
from tests.cli_output import printed_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / "configs" / "align").glob("*.yaml"))


def test_align_configs_exist():
    names = {c.name for c in CONFIGS}
    assert {"demo_tiny.yaml", "reinforce-rloo_llama3.1-8b_lora.yaml", "reinforce-rloo_paper-defaults.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_align_config_parses_without_loading_weights(config, monkeypatch):
    monkeypatch.chdir(REPO)
    cli = align_main(["--config", str(config)], run=False)
    assert cli.model.model is None and cli.model.tokenizer is None  # configure_model not called: no weights
    assert getattr(cli.model.reward, "model", None) is None
    assert cli.datamodule.tokenizer_path == cli.model.backbone_spec.name_or_path  # linked, given once
    assert cli.model.backbone_spec.lora is not None


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_align_print_config(config, monkeypatch):
    monkeypatch.chdir(REPO)
    text = printed_config(align_main, config)
    for key in ("model:", "backbone:", "reward:", "generation:", "objective:", "data:", "seed_everything:"):
        assert key in text


def test_paper_defaults_config_spells_out_nemo_defaults(monkeypatch):
    monkeypatch.chdir(REPO)
    cli = align_main(["--config", "configs/align/reinforce-rloo_paper-defaults.yaml"], run=False)
    gen, obj, model = cli.model.generation, cli.model.objective, cli.model
    assert (gen.num_samples, gen.temperature, gen.top_k, gen.top_p) == (4, 1.0, 0, 1.0)
    assert (obj.kl_coef, obj.kl_estimator, obj.kl_aggregate, obj.unended_penalty, obj.whiten_advantages) == (0.01, "abs", "mean", None, False)
    optimizer = model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert optimizer.defaults["lr"] == 1e-6 and optimizer.defaults["weight_decay"] == 0.01
    assert model.scheduler_factory is None  # constant learning rate
    assert cli.datamodule.batch_size * cli.trainer.accumulate_grad_batches == 32  # prompts per optimizer step
    assert cli.trainer.gradient_clip_val == 1.0

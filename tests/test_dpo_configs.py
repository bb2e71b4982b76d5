"""Every configs/dpo/*.yaml parses with dpo.py's CLI and prints its config; those that run on CPU also instantiate.

The 70B FSDP config is parse-only here: a Trainer with `accelerator: gpu` and FSDPStrategy cannot be built without
GPUs ("No supported gpu backend"), so it is checked through --print_config (which parses and validates every key,
the strategy's init_args included) instead of run=False instantiation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.cli import dpo_main
from tests.cli_output import printed_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / "configs" / "dpo").glob("*.yaml"))
GPU_ONLY = {"dpo_llama3.1-70b_fsdp.yaml"}


def test_dpo_configs_exist():
    assert {c.name for c in CONFIGS} >= {"dpo_demo_tiny.yaml", "dpo_llama3.1-8b_lora.yaml", "dpo_llama3.1-70b_fsdp.yaml"}


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.name not in GPU_ONLY], ids=str)
def test_dpo_config_instantiates_without_loading_weights(config, monkeypatch):
    monkeypatch.chdir(REPO)
    cli = dpo_main(["--config", str(config)], run=False)
    assert cli.model.model is None  # configure_model not called: no weights
    assert cli.datamodule.tokenizer_path == cli.model.backbone_spec.name_or_path  # linked, given once
    assert cli.model.backbone_spec.lora is not None and cli.model.beta == 0.1 and cli.model.loss_name == "dpo"


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_dpo_print_config(config, monkeypatch):
    monkeypatch.chdir(REPO)
    text = printed_config(dpo_main, config)
    for key in ("model:", "backbone:", "loss: dpo", "beta: 0.1", "data:", "seed_everything:"):
        assert key in text
    if config.name in GPU_ONLY:
        assert "FSDPStrategy" in text and "activation_checkpointing_policy" in text and "LlamaDecoderLayer" in text

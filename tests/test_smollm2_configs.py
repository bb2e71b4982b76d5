"""Every configs/smollm2/*.yaml parses and instantiates with its entry point (no weights are loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.cli import align_main, dpo_main, reward_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / "configs" / "smollm2").glob("*.yaml"))
ENTRY = {"reinforce.yaml": align_main, "dpo.yaml": dpo_main}


def test_the_recipe_is_there():
    assert {c.name for c in CONFIGS} == {"stage1_regression.yaml", "stage2_scaled_bt.yaml", "stage2_bt.yaml", "bt_scratch.yaml", "reinforce.yaml", "dpo.yaml"}
    for config in CONFIGS:
        assert "Expected CPU wall time" in (REPO / config).read_text(), config


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_config_instantiates(config, monkeypatch):
    monkeypatch.chdir(REPO)
    cli = ENTRY.get(config.name, reward_main)(["--config", str(config)], run=False)
    assert cli.model.backbone_spec.name_or_path == "models/smollm2-135m-instruct" and cli.model.model is None
    assert cli.datamodule.template.name == "chat"

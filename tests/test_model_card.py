"""`rlhf.reward.model_card`: the HF export's README carries the Hub metadata header, data + licence, loss and the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rlhf.reward.model_card import model_card

CONFIG = """model:
  backbone:
    name_or_path: meta-llama/Llama-3.1-8B-Instruct
  loss: scaled_bt
data:
  class_path: rlhf.data.datamodules.PreferenceDataModule
  init_args:
    hub_id: nvidia/HelpSteer2
    train_path: null
"""


def _card(tmp_path: Path, summary: dict | None) -> str:
    (tmp_path / "config.yaml").write_text(CONFIG)
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    return model_card(tmp_path, "# Reward model\n\n## How to score\n\nAutoModelForSequenceClassification ...\n",
                      "meta-llama/Llama-3.1-8B-Instruct", ["helpfulness"], "llama3.1")


def test_header_data_loss_numbers_and_config(tmp_path: Path) -> None:
    card = _card(tmp_path, {"metrics": {"val/accuracy": 0.75, "rewardbench/overall": 0.5, "train/loss": 0.1}})
    assert card.startswith("---\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header == {"license": "llama3.1", "base_model": "meta-llama/Llama-3.1-8B-Instruct", "library_name": "transformers",
                      "pipeline_tag": "text-classification", "tags": ["reward-model", "rlhf", "loss-scaled_bt"],
                      "datasets": ["nvidia/HelpSteer2"]}
    assert "- Data: `hub_id: nvidia/HelpSteer2` ([nvidia/HelpSteer2](https://huggingface.co/datasets/nvidia/HelpSteer2)); licence: cc-by-4.0" in card
    assert "- Loss: `scaled_bt`; head outputs: helpfulness" in card
    assert "| rewardbench/overall | 0.5000 |\n| val/accuracy | 0.7500 |" in card and "train/loss" not in card
    assert "AutoModelForSequenceClassification" in card and card.rstrip().endswith(CONFIG.rstrip() + "\n```")


def test_without_summary_says_so(tmp_path: Path) -> None:
    card = _card(tmp_path, None)
    assert "No validation or RewardBench numbers: the checkpoint has no summary.json with them." in card

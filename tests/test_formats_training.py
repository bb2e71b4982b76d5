"""The shipped real files train from their YAMLs with no conversion step: hh-rlhf transcripts and TRL conversational.

`configs/formats/*.yaml` run 2 steps on a tiny random Llama (the YAML's backbone swapped for the test fixture,
outputs in tmp). The DPO data module reads the same files; an empty hh-rlhf reply becomes a response of just EOS.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rlhf.cli import reward_main
from rlhf.data.dpo_data import DPODataModule
from rlhf.data.templates import TemplateSpec

REPO = Path(__file__).resolve().parents[1]
HH = REPO / "data/hh-rlhf/harmless-base-test-pairs-first1500.jsonl"
CONVERSATIONAL = REPO / "data/helpsteer2-preference/first100-conversational.jsonl"
CONFIGS = ["configs/formats/hh-rlhf_bt_tiny.yaml", "configs/formats/helpsteer2-preference-conversational_scaled-bt_tiny.yaml"]


@pytest.mark.parametrize("config", CONFIGS)
def test_yaml_trains_two_steps(config: str, tiny_llama_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    extra = []
    if "hh-rlhf" in config:  # validating on 40 real pairs keeps the test short (the YAML re-reads all 1,500)
        val = tmp_path / "hh-val.jsonl"
        val.write_text("".join(HH.read_text().splitlines(keepends=True)[:40]))
        extra.append(f"--data.init_args.val_path={val}")
    cli = reward_main(["--config", config, f"--model.backbone.name_or_path={tiny_llama_dir}", "--trainer.logger=false",
                       f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path / 'ckpt'}", *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()


def test_dpo_data_reads_hh_rlhf_and_keeps_empty_replies(tiny_llama_dir: Path, tmp_path: Path) -> None:
    lines = HH.read_text().splitlines(keepends=True)
    path = tmp_path / "hh.jsonl"
    path.write_text(lines[86])  # line 87: the chosen reply is an empty string
    data = DPODataModule(train_path=str(path), val_path=str(path), tokenizer=str(tiny_llama_dir), template=TemplateSpec(system=""),
                         max_length=1024)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    eos = 2  # the shipped tokenizer's EOS id
    chosen_response = batch.input_ids[0][batch.response_mask[0]]
    assert chosen_response.tolist() == [eos]  # the empty reply is kept: its response is the EOS the sampler stops at
    assert batch.response_mask[1].sum() > 1


def test_dpo_data_reads_conversational_with_splits(tiny_llama_dir: Path) -> None:
    data = DPODataModule(train_path=str(CONVERSATIONAL), val_path=str(CONVERSATIONAL), tokenizer=str(tiny_llama_dir),
                         template=TemplateSpec(system=""), max_length=4096, split_values=("train", "test"))
    data.setup("fit")
    # train: 95 rows - 27 ties = 68 pairs, 7 of them longer than 4,096 characters-tokens (dropped); test: 5 rows - 2 ties
    assert (data.stats["dpo/train"].total, data.stats["dpo/train"].dropped, len(data._train), len(data._val[0])) == (68, 7, 61, 3)
    batch = next(iter(data.val_dataloader()))
    assert torch.equal(batch.margin, torch.tensor([1.0, 2.0, 1.0]))

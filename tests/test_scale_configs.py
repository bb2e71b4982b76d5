"""configs/scale/*.yaml (70B on 8xH100, and on 2 or 4 such nodes) parse and print with their entry point; batch sizes
are the paper's on every layout, and the multi-node configs shard over all GPUs of all nodes.

They need 8 GPUs, so they are checked through --print_config (every key validated, strategy init_args included), not
instantiated: a Trainer with `accelerator: gpu` cannot be built here. `reward_*` files belong to train.py,
`align_*` files to align.py. The resolved YAML is read back to check sharding, packing and global batch sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlhf.cli import align_main, reward_main
from tests.cli_output import printed_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / "configs" / "scale").glob("*.yaml"))


def _entry(config: Path):
    return reward_main if config.name.startswith("reward_") else align_main


def test_scale_configs_exist():
    names = {c.name for c in CONFIGS}
    assert names == {
        "reward_regression-helpfulness_llama3.1-70b_fsdp.yaml", "reward_scaled-bt_init-regression_llama3.1-70b_fsdp.yaml",
        "reward_regression-helpfulness_llama3.1-70b_qlora-fsdp.yaml", "align_reinforce-rloo_llama3.1-70b_fsdp.yaml",
        "reward_scaled-bt_init-regression_llama3.1-70b_fsdp_2nodes.yaml", "reward_scaled-bt_init-regression_llama3.1-70b_fsdp_4nodes.yaml",
    }
    assert all(c.name.startswith(("reward_", "align_")) for c in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_scale_config_prints_and_has_paper_batch(config, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = yaml.safe_load(printed_config(_entry(config), config))
    trainer, model = cfg["trainer"], cfg["model"]
    assert trainer["devices"] == 8 and trainer["accelerator"] == "gpu"
    nodes = trainer["num_nodes"]
    assert nodes == (int(config.name.split("_")[-1][0]) if config.name.endswith("nodes.yaml") else 1)
    gpus = 8 * nodes
    assert model["backbone"]["name_or_path"] == "meta-llama/Llama-3.1-70B-Instruct" and model["backbone"]["lora"]
    strategy = trainer["strategy"]["class_path"]
    if "qlora" in config.name:
        assert strategy.endswith("FSDPStrategy") and model["backbone"]["quantize"] == "nf4" and model["backbone"]["dtype"] == "bfloat16"
    else:
        assert strategy.endswith("ModelParallelStrategy") and trainer["strategy"]["init_args"]["data_parallel_size"] == gpus
    accumulate = trainer["accumulate_grad_batches"]
    if config.name.startswith("align_"):
        assert cfg["data"]["batch_size"] * gpus * accumulate == 32 and model["generation"]["num_samples"] == 4  # 32 prompts x K=4
        assert model["logprob_chunk_tokens"] and model["reward"]["init_args"]["packing"]
        return
    loader = cfg["data"]["init_args"]["loader"]
    assert loader["packing"] is True
    pairs = model["loss"] != "mse"
    assert loader["batch_size"] * gpus * accumulate * (2 if pairs else 1) == 128  # 128 sequences per step (spec §4)
    assert model["optimizer"]["init_args"]["lr"] == (1.0e-6 if pairs else 2.0e-6)
    if pairs:
        assert model["init_from"] == "runs/reward_regression-helpfulness_llama3.1-70b_fsdp/checkpoint"


def test_sbatch_example_launches_one_task_per_gpu():
    text = (REPO / "configs/scale/multinode.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=8" in text and "#SBATCH --gpus-per-node=8" in text  # SLURMEnvironment: a task per GPU
    assert "srun" in text and "train.py fit --config" in text and "--trainer.num_nodes" in text

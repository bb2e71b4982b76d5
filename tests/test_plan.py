"""`rlhf.training.plan`: parameter counts equal real models' (tiny Llama built here, Llama 3.1 8B/70B published counts), the
estimate of a small config equals the hand sum, sharding divides by the GPU count, and the 70B configs report sanely.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlhf.models.backbone import BackboneSpec, LoraSpec, load_backbone
from rlhf.training.plan import GIB, KNOWN_SHAPES, main, model_shape, plan

REPO = Path(__file__).resolve().parents[1]


def test_published_llama_parameter_counts():
    assert KNOWN_SHAPES["meta-llama/Llama-3.1-8B-Instruct"].params(lm_head=True) == 8_030_261_248
    assert KNOWN_SHAPES["meta-llama/Llama-3.1-70B-Instruct"].params(lm_head=True) == 70_553_706_496


@pytest.mark.parametrize("causal_lm", [False, True])
def test_counts_match_the_built_model(tiny_llama_dir, causal_lm):
    targets = ("q_proj", "v_proj", "down_proj")
    model = load_backbone(BackboneSpec(str(tiny_llama_dir), attn_implementation="sdpa", lora=LoraSpec(r=4, target_modules=targets)), causal_lm=causal_lm)
    base = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    shape = model_shape(str(tiny_llama_dir))
    assert shape.params(lm_head=causal_lm) == base  # tied embeddings: the LM head adds nothing
    assert shape.lora_params(4, list(targets)) == lora


def _small(tiny_llama_dir, trainer: dict) -> dict:
    return {
        "trainer": trainer,
        "model": {"backbone": {"name_or_path": str(tiny_llama_dir), "dtype": "float32", "gradient_checkpointing": False,
                               "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}}, "loss": "mse", "head": {"n_out": 1}},
        "data": {"init_args": {"max_length": 256, "loader": {"batch_size": 4}}},
    }


def test_small_config_equals_hand_sum(tiny_llama_dir):
    # tiny Llama: V 105, H 32, I 64, 2 layers, 4 heads, 2 KV heads → kv_dim 16; fp32 everywhere
    parts = plan(_small(tiny_llama_dir, {"devices": 1}))
    base = 105 * 32 + 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32) + 32  # embeddings, 2 layers, final norm
    trained = 2 * 4 * ((32 + 32) + (32 + 16)) + 32  # LoRA on q (32→32) and v (32→16) in 2 layers, head 32→1
    tokens = 4 * 256  # 4 responses of up to 256 tokens
    assert parts == {
        "weights": base * 4, "lora+head": trained * 4, "gradients": trained * 4, "optimizer": trained * 8,
        "activations": 2 * tokens * (8 * 32 + 2 * 16 + 4 * 64) * 4,
    }


def test_sharding_divides_by_gpus(tiny_llama_dir):
    single = plan(_small(tiny_llama_dir, {"devices": 1}))
    strategy = {"class_path": "lightning.pytorch.strategies.ModelParallelStrategy"}
    sharded = plan(_small(tiny_llama_dir, {"devices": 4, "num_nodes": 2, "strategy": strategy}))
    for key in ("weights", "lora+head", "gradients", "optimizer"):
        assert sharded[key] == single[key] / 8
    assert sharded["activations"] == single["activations"] and sharded["fsdp gathered layers"] > 0


def test_70b_configs_report(capsys):
    text = main(["--config", str(REPO / "configs/scale/reward_regression-helpfulness_llama3.1-70b_fsdp.yaml")])
    assert "fits in 80 GiB" in text and "NOT" not in text
    bf16 = plan(yaml.safe_load((REPO / "configs/scale/reward_regression-helpfulness_llama3.1-70b_fsdp.yaml").read_text()))
    assert 16 < bf16["weights"] / GIB < 16.5  # 70.55e9 x 2 bytes / 8 GPUs
    qlora = plan(yaml.safe_load((REPO / "configs/scale/reward_regression-helpfulness_llama3.1-70b_qlora-fsdp.yaml").read_text()))
    assert qlora["weights"] < bf16["weights"] / 3  # nf4 layers
    assert "reward model (frozen)" in main(["--config", str(REPO / "configs/scale/align_reinforce-rloo_llama3.1-70b_fsdp.yaml")])

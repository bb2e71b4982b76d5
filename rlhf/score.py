"""`python -m rlhf.score`: rewards for a JSONL of responses or pairs, from any reward model this repo writes.

Input rows are `{prompt, response}` (one reward per row, plus every head output) or `{prompt, chosen, rejected}`
(both rewards, and pairwise accuracy with ties wrong). The model is a training checkpoint, an adapter export or a
merged Hugging Face export (`rlhf.export`); text is rendered with the template the model was trained with and cut by
evaluation's "truncate" rule (never dropped; truncated rows are flagged and counted). Extra input fields are copied
to the output. Batching is by length and does not change the rewards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.progress import Progress
from torch import nn

from rlhf.data.encode import EncodeStats, Encoder
from rlhf.data.rows import Row, field_error, read_rows, require_text
from rlhf.errors import ArgumentParser, run_main
from rlhf.outputs import refuse_to_replace
from rlhf.eval.score_pairs import EvalSettings, pad_id_of, read_eval_settings, score_sequences


def load_scorer(path: str | Path) -> tuple[nn.Module, Any, EvalSettings, tuple[str, ...]]:
    """(model, tokenizer, template settings, head attribute names) for a checkpoint or an export directory."""
    from rlhf.checkpoint import WEIGHTS_NAME, load_reward_model, read_meta
    from rlhf.models.backbone import load_sequence_classifier, load_tokenizer
    from rlhf.models.heads import HEAD_LAYOUTS
    from rlhf.models.reward_model import ExportedRewardModel

    path = Path(path)
    if (path / WEIGHTS_NAME).is_file() and "rlhf" in _safetensors_meta(path / WEIGHTS_NAME):
        meta = read_meta(path)
        model = load_reward_model(path)
        return model, load_tokenizer(meta["backbone"]["name_or_path"]), read_eval_settings(path), HEAD_LAYOUTS[meta["head"]["n_out"]]
    if (path / "rlhf_reward_model.json").is_file():
        from rlhf.export import load_exported_adapter

        model = load_exported_adapter(path)
        spec = json.loads((path / "rlhf_reward_model.json").read_text())
        return model, load_tokenizer(spec["backbone"]["name_or_path"]), read_eval_settings(path), tuple(spec["attributes"])
    if (path / "config.json").is_file():
        classifier = load_sequence_classifier(str(path))
        labels = tuple(classifier.config.id2label[i] for i in range(classifier.config.num_labels))
        model = ExportedRewardModel(classifier, int(getattr(classifier.config, "reward_slot", 0)))
        return model, load_tokenizer(str(path)), read_eval_settings(path), labels
    raise FileNotFoundError(f"{path}: not a checkpoint ({WEIGHTS_NAME}), adapter export or Hugging Face export (config.json)")


def _safetensors_meta(file: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        return f.metadata() or {}


def _texts(row: Row, kind: str) -> tuple[str, list[str]]:
    if kind == "pairs":
        return require_text(row, "prompt"), [require_text(row, "chosen"), require_text(row, "rejected")]
    return require_text(row, "prompt"), [require_text(row, "response")]


def _kind(rows: list[Row]) -> str:
    if not rows:
        raise ValueError("no rows to score")
    kind = "pairs" if "chosen" in rows[0].data else "responses"
    for row in rows:
        if ("chosen" in row.data) != (kind == "pairs"):
            raise field_error(row, "chosen" if kind == "pairs" else "response", f"every row must have the same shape as the first ({kind})")
    return kind


def score_file(model_path: str, input_path: str, output_path: str, batch_size: int = 16, packing: bool = False) -> dict[str, Any]:
    """Score every row of `input_path` and write `output_path` (JSONL); returns a summary. `packing`: padding-free batches.
    The input is read and checked before the model loads."""
    rows = read_rows(input_path)
    kind = _kind(rows)
    model, tokenizer, settings, attributes = load_scorer(model_path)
    encoder, stats, sequences, flags = Encoder(tokenizer, settings.template, settings.max_length), EncodeStats(), [], []
    with Progress(transient=True) as bar:
        task = bar.add_task("encoding", total=len(rows))
        for row in rows:
            before = stats.truncated
            sequences += encoder.encode(*_texts(row, kind), "truncate", stats)  # type: ignore[operator]
            flags.append(stats.truncated > before)
            bar.advance(task)
        task = bar.add_task("scoring", total=len(sequences))
        outputs = score_sequences(model, sequences, pad_id_of(tokenizer), batch_size, progress=lambda n: bar.advance(task, n), all_outputs=True, packing=packing)
    summary = _write(rows, kind, outputs, model.reward(outputs), flags, attributes, output_path)
    summary.update({"model": model_path, "input": input_path, "output": output_path, "truncated": stats.truncated, "template": settings.template.name, "max_length": settings.max_length})
    return summary


def _write(rows: list[Row], kind: str, outputs: torch.Tensor, rewards: torch.Tensor, flags: list[bool], attributes: Sequence[str], out: str) -> dict[str, Any]:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    correct = 0
    with open(out, "w") as f:
        for i, row in enumerate(rows):
            extra: dict[str, Any] = {"truncated": flags[i]}
            if kind == "pairs":
                chosen, rejected = float(rewards[2 * i]), float(rewards[2 * i + 1])
                correct += chosen > rejected
                extra.update(score_chosen=chosen, score_rejected=rejected)
            else:
                extra.update(reward=float(rewards[i]), outputs=dict(zip(attributes, outputs[i].tolist())))
            f.write(json.dumps({**row.data, **extra}) + "\n")
    summary: dict[str, Any] = {"rows": len(rows), "kind": kind}
    if kind == "pairs":
        summary["accuracy"] = correct / len(rows)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(prog="python -m rlhf.score", description="Score responses or pairs with a reward model.")
    p.add_argument("--model", required=True, help="checkpoint directory, adapter export or Hugging Face export")
    p.add_argument("--input", required=True, help="JSONL/Parquet of {prompt, response} or {prompt, chosen, rejected}")
    p.add_argument("--output", required=True, help="JSONL to write (input fields plus rewards)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--packing", action="store_true", help="pack each batch into one unpadded row (same rewards, no padding compute)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists (default: refuse)")
    args = p.parse_args(argv)
    refuse_to_replace(args.output, args.overwrite, "scores")
    summary = score_file(args.model, args.input, args.output, args.batch_size, args.packing)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_main(main)

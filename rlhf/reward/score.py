"""`python -m rlhf.reward.score`: rewards for a JSONL of responses or pairs, from any reward model this repo writes.

Input rows (`rlhf.data.score_rows`) are `{prompt, response}` or `{messages}` (one reward per row, plus every head
output), or pairs in any format of `rlhf.data.formats` (both rewards, and pairwise accuracy with equal scores
wrong; tie pairs are scored, flagged and left out of the accuracy). `--format auto` reports the format detected and
why; empty replies are scored and counted; `--on-bad-row skip` skips malformed rows and counts them. The model is a training checkpoint, an adapter export or a
merged Hugging Face export (`rlhf.reward.export`); text is rendered with the template the model was trained with and cut by
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

from rlhf.data.encode import Encoder, EncodeStats
from rlhf.data.formats import PreferenceFormat
from rlhf.data.rows import Row
from rlhf.data.score_rows import read_scored_rows
from rlhf.errors import ArgumentParser, run_main
from rlhf.eval.score_pairs import EvalSettings, pad_id_of, read_eval_settings, score_sequences
from rlhf.files import check_writable, json_line, open_atomic, refuse_overwriting_input, refuse_to_replace


def load_scorer(path: str | Path) -> tuple[nn.Module, Any, EvalSettings, tuple[str, ...]]:
    """(model, tokenizer, template settings, head attribute names) for a checkpoint or an export directory."""
    from rlhf.models.backbone import load_sequence_classifier, load_tokenizer
    from rlhf.models.heads import HEAD_LAYOUTS
    from rlhf.models.reward_model import ExportedRewardModel
    from rlhf.training.checkpoint import WEIGHTS_NAME, load_reward_model, read_meta

    path = Path(path)
    if (path / WEIGHTS_NAME).is_file() and "rlhf" in _safetensors_meta(path / WEIGHTS_NAME):
        meta = read_meta(path)
        model = load_reward_model(path)
        return model, load_tokenizer(meta["backbone"]["name_or_path"]), read_eval_settings(path), HEAD_LAYOUTS[meta["head"]["n_out"]]
    if (path / "rlhf_reward_model.json").is_file():
        from rlhf.reward.export import load_exported_adapter

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


def score_file(model_path: str, input_path: str, output_path: str, batch_size: int = 16, packing: bool = False, format: str = "auto", strength_field: str | None = None, on_bad_row: str = "error") -> dict[str, Any]:
    """Score every row of `input_path` and write `output_path` (JSONL); returns a summary. `packing`: padding-free batches.

    The input is read and checked, and the output checked writable (and not the input), before the model loads; the
    output appears only once every row is scored (written to a temporary file beside it, then renamed)."""
    refuse_overwriting_input(output_path, input_path)
    check_writable(output_path)
    data = read_scored_rows(input_path, format, strength_field, on_bad_row)
    rows, kind = data.rows, data.kind
    model, tokenizer, settings, attributes = load_scorer(model_path)
    encoder, stats, sequences, flags = Encoder(tokenizer, settings.template, settings.max_length), EncodeStats(), [], []
    with Progress(transient=True) as bar:
        task = bar.add_task("encoding", total=len(rows))
        for prompt, responses in data.texts:
            before = stats.truncated
            sequences += encoder.encode(prompt, responses, "truncate", stats)  # type: ignore[operator]
            flags.append(stats.truncated > before)
            bar.advance(task)
        task = bar.add_task("scoring", total=len(sequences))
        outputs = score_sequences(model, sequences, pad_id_of(tokenizer), batch_size, progress=lambda n: bar.advance(task, n), all_outputs=True, packing=packing)
    summary = _write(rows, kind, outputs, model.reward(outputs), flags, attributes, output_path, data.ties)
    summary.update(data.summary())
    summary.update({"model": model_path, "input": input_path, "output": output_path, "truncated": stats.truncated, "template": settings.template.name, "max_length": settings.max_length})
    return summary


def _write(rows: list[Row], kind: str, outputs: torch.Tensor, rewards: torch.Tensor, flags: list[bool], attributes: Sequence[str], out: str, ties: list[bool]) -> dict[str, Any]:
    correct = 0
    with open_atomic(out) as f:
        for i, row in enumerate(rows):
            extra: dict[str, Any] = {"truncated": flags[i]}
            if kind == "pairs":
                chosen, rejected = float(rewards[2 * i]), float(rewards[2 * i + 1])
                correct += chosen > rejected and not ties[i]
                extra.update(score_chosen=chosen, score_rejected=rejected, tie=ties[i])
            else:
                extra.update(reward=float(rewards[i]), outputs=dict(zip(attributes, outputs[i].tolist())))
            f.write(json_line({**row.data, **extra}))
    summary: dict[str, Any] = {"rows": len(rows), "kind": kind}
    if kind == "pairs":
        summary["ties"] = sum(ties)
        summary["accuracy"] = correct / max(len(rows) - sum(ties), 1)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(prog="python -m rlhf.reward.score", description="Score responses or pairs with a reward model.")
    p.add_argument("--model", required=True, help="checkpoint directory, adapter export or Hugging Face export")
    p.add_argument("--input", required=True, help="JSONL/Parquet of {prompt, response}, {messages} or pairs in any format (see --format)")
    p.add_argument("--output", required=True, help="JSONL to write (input fields plus rewards)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--packing", action="store_true", help="pack each batch into one unpadded row (same rewards, no padding compute)")
    p.add_argument("--format", default="auto", choices=["auto", "responses", *PreferenceFormat.__args__[1:]], help="input format (auto: detected from the first row and reported)")
    p.add_argument("--strength-field", default=None, help="pair magnitude column (default preference_strength or margin); 0 = tie")
    p.add_argument("--on-bad-row", default="error", choices=["error", "skip"], help="stop at the first malformed row, or skip and count them")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists (default: refuse)")
    args = p.parse_args(argv)
    refuse_overwriting_input(args.output, args.input)  # first: an output that is the input exists, and must not be --overwritten
    refuse_to_replace(args.output, args.overwrite, "scores")
    summary = score_file(args.model, args.input, args.output, args.batch_size, args.packing, args.format, args.strength_field, args.on_bad_row)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_main(main)

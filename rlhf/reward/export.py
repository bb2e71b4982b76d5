"""Export a trained reward-model checkpoint for other tools, plus `python -m rlhf.reward.export`.

- `export_hf`: rebuild the RM in float32, merge LoRA into the base weights and write a `save_pretrained` directory
  that `AutoModelForSequenceClassification` loads as `LlamaForSequenceClassification` (score = our head, id2label =
  the head's attributes, `config.reward_slot`), with the tokenizer, the training config.yaml and a model card
  (`rlhf.reward.model_card`: Hub metadata header, base model, data and licence, loss, numbers, usage, config).
- `export_adapter`: peft's adapter directory plus `reward_head.safetensors` and `rlhf_reward_model.json`;
  `load_exported_adapter` rebuilds the exact RewardModel from it.
Left out: heads with a nonzero bias in the HF format (its score layer has none) and merging into dequantised nf4
weights (an nf4-trained checkpoint's HF export merges into the original weights; its README says what that means).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rlhf.errors import ArgumentParser, run_main
from rlhf.files import atomic_dir, check_writable, refuse_overwriting_input
from rlhf.models.backbone import (
    DTYPES,
    BackboneSpec,
    load_adapter_weights,
    load_tokenizer,
    merge_lora,
    save_adapter,
    sequence_classifier,
)
from rlhf.models.heads import HEAD_LAYOUTS, HeadSpec
from rlhf.models.reward_model import RewardModel, build_reward_model
from rlhf.reward.model_card import ADAPTER_README, HF_README, model_card, training_template
from rlhf.training.checkpoint import CONFIG_NAME, load_trained, read_meta, specs_from_meta, weights_path

HEAD_FILE = "reward_head.safetensors"
SPEC_FILE = "rlhf_reward_model.json"


def _rebuild(checkpoint_dir: str | Path, name_or_path: str | None, **overrides: object) -> tuple[RewardModel, BackboneSpec, HeadSpec]:
    """`load_reward_model` with backbone overrides (dtype, quantize) for this load only.

    Returns the RM, the checkpoint's own BackboneSpec (with `name_or_path` if given) and its HeadSpec.
    """
    backbone_spec, head_spec = specs_from_meta(read_meta(checkpoint_dir))
    if head_spec.kind != "linear":
        raise ValueError(f"{checkpoint_dir}: export supports linear reward heads only, this checkpoint has a '{head_spec.kind}' head")
    if name_or_path is not None:
        backbone_spec = dataclasses.replace(backbone_spec, name_or_path=name_or_path)
    model = build_reward_model(dataclasses.replace(backbone_spec, gradient_checkpointing=False, **overrides), head_spec)
    load_trained(model, checkpoint_dir)
    return model.eval(), backbone_spec, head_spec


def _check_no_bias(checkpoint_dir: str | Path) -> None:
    """Fail early (before loading the base) on a nonzero head bias: HF's `score` layer has none. A zero bias is dropped."""
    with safe_open(str(weights_path(checkpoint_dir)), framework="pt") as f:
        bias = f.get_tensor("head.linear.bias") if "head.linear.bias" in f.keys() else None
    if bias is not None and bool(bias.ne(0).any()):
        raise ValueError(
            f"{checkpoint_dir}: the reward head has a nonzero bias {bias.tolist()}, but "
            "LlamaForSequenceClassification's score layer has no bias, so this head cannot be exported to the HF "
            "format exactly. Use --format adapter (which keeps the bias), or train with model.head.bias=false."
        )


def _check_out(checkpoint_dir: str | Path, out_dir: str | Path) -> None:
    """Before any model loads: the export directory must be writable, not the checkpoint, and empty or an old export
    (the new export replaces the whole directory)."""
    check_writable(out_dir, "directory")
    refuse_overwriting_input(out_dir, checkpoint_dir)
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not any((out / f).is_file() for f in ("config.json", SPEC_FILE)):
        raise FileExistsError(f"{out}: not empty and not an export of this repo; the export replaces the whole directory, so give a new or empty one")


def _copy_config(checkpoint_dir: str | Path, out: Path) -> None:
    if (Path(checkpoint_dir) / CONFIG_NAME).is_file():
        shutil.copy(Path(checkpoint_dir) / CONFIG_NAME, out / CONFIG_NAME)


def _export_pad(tokenizer) -> str:
    """Keep HF's pad-id pooling off real tokens: replace a pad that is eos/bos (which end or start real texts) by
    a reserved token of the vocabulary when there is one. Returns the README's note on the pad."""
    if tokenizer.pad_token_id in (tokenizer.eos_token_id, tokenizer.bos_token_id):
        vocab = tokenizer.get_vocab()
        reserved = sorted(t for t in vocab if t.startswith("<|reserved_special_token_"))
        safe = [t for t in ("<|finetune_right_pad_id|>", "<pad>", tokenizer.unk_token) if t in vocab] + reserved
        if not safe:
            return (f" (it is also eos/bos, so HF pools the token before a trailing {tokenizer.pad_token!r}:"
                    " use the mask-based index below)")
        tokenizer.pad_token = safe[0]
    if tokenizer.pad_token == tokenizer.unk_token:
        return " (`<unk>`: the tokenizer emits it only for text outside its vocabulary, if at all)"
    return " (if that token can end a real text, use the mask-based index below)"


def export_hf(checkpoint_dir: str | Path, out_dir: str | Path, dtype: Literal["float32", "bfloat16", "float16"] = "float32",
              name_or_path: str | None = None, license: str = "other", base_model_id: str | None = None) -> Path:
    """Write a merged `LlamaForSequenceClassification` directory (weights, config, tokenizer, config.yaml, README.md).

    Args:
        checkpoint_dir: a checkpoint written by this repo (LoRA + head).
        out_dir: the export directory (built in a temporary sibling and swapped in whole; an old export there is replaced).
        dtype: dtype of the saved weights; the merge itself is always float32.
        name_or_path: the base model's location if it moved since training.
        license: the model card's `license` (a Hub licence id, e.g. llama3.1, apache-2.0).
        base_model_id: the card's `base_model` (a Hub id) when the backbone was a local path.
    """
    _check_out(checkpoint_dir, out_dir)
    _check_no_bias(checkpoint_dir)
    model, spec, head_spec = _rebuild(checkpoint_dir, name_or_path, dtype="float32", quantize="none", attn_implementation="sdpa")
    weight = model.head.linear.weight.detach()  # (n_out, H) float32
    tokenizer = load_tokenizer(spec.name_or_path)
    pad_note = _export_pad(tokenizer)  # before pad_token_id goes into the config
    attributes = HEAD_LAYOUTS[head_spec.n_out]
    fields = {
        "id2label": dict(enumerate(attributes)), "label2id": {a: i for i, a in enumerate(attributes)},
        "pad_token_id": tokenizer.pad_token_id, "problem_type": "regression", "reward_slot": model.reward_slot,
        "reward_attribute": attributes[model.reward_slot],
    }
    classifier = sequence_classifier(merge_lora(model.backbone), weight, spec.name_or_path, fields).to(DTYPES[dtype])
    with atomic_dir(out_dir) as out:  # built beside out_dir, swapped in whole
        classifier.save_pretrained(out)
        tokenizer.save_pretrained(out)
        _copy_config(checkpoint_dir, out)
        nf4 = ("\nIt was trained on an nf4-quantised base, but the LoRA is merged into the ORIGINAL unquantised weights, not "
               "their nf4-dequantised values that training saw: its rewards are not those of the trained model (they differ "
               "by the effect of the quantisation error). The checkpoint or `--format adapter` give the trained rewards.") if spec.quantize == "nf4" else ""
        readme = HF_README.format(
            checkpoint=checkpoint_dir, base=spec.name_or_path, dtype=dtype, nf4_note=nf4, pad_token=tokenizer.pad_token,
            pad_id=tokenizer.pad_token_id, pad_note=pad_note,
            slot=model.reward_slot, attribute=attributes[model.reward_slot], n_out=head_spec.n_out,
            attributes=", ".join(attributes), template=training_template(checkpoint_dir),
        )
        card = model_card(checkpoint_dir, readme, base_model_id or spec.name_or_path, list(attributes), license)
        (out / "README.md").write_text(card)
    return Path(out_dir)


def export_adapter(checkpoint_dir: str | Path, out_dir: str | Path, name_or_path: str | None = None) -> Path:
    """Write peft's adapter directory plus the head and the specs (see ADAPTER_README); the base is not copied.

    Args:
        checkpoint_dir: a checkpoint written by this repo (LoRA + head).
        out_dir: the export directory (built in a temporary sibling and swapped in whole; an old export there is replaced).
        name_or_path: the base model's location if it moved since training.
    """
    _check_out(checkpoint_dir, out_dir)
    model, spec, head_spec = _rebuild(checkpoint_dir, name_or_path, quantize="none")  # adapters do not depend on nf4
    with atomic_dir(out_dir) as out:  # built beside out_dir, swapped in whole
        save_adapter(model.backbone, str(out))
        head = {k: t.detach().contiguous() for k, t in model.head.linear.state_dict().items()}  # "weight" (and "bias")
        save_file(head, str(out / HEAD_FILE))
        meta = {"backbone": dataclasses.asdict(spec),
                "head": dataclasses.asdict(head_spec), "reward_slot": model.reward_slot,
                "attributes": list(HEAD_LAYOUTS[head_spec.n_out]), "source_checkpoint": str(weights_path(checkpoint_dir))}
        (out / SPEC_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        _copy_config(checkpoint_dir, out)
        has_bias = "bias" in head
        readme = ADAPTER_README.format(
            checkpoint=checkpoint_dir, base=spec.name_or_path, head_file=HEAD_FILE, spec_file=SPEC_FILE,
            bias_note=", `bias` (n_out,)" if has_bias else "", bias_code=' + head["bias"]' if has_bias else "",
            n_out=head_spec.n_out, attributes=", ".join(HEAD_LAYOUTS[head_spec.n_out]), slot=model.reward_slot,
            template=training_template(checkpoint_dir),
        )
        (out / "README.md").write_text(readme)  # replaces peft's generic model card
    return Path(out_dir)


def load_exported_adapter(out_dir: str | Path, name_or_path: str | None = None) -> RewardModel:
    """Rebuild the RewardModel from an `export_adapter` directory (optionally with the base moved)."""
    out = Path(out_dir)
    backbone_spec, head_spec = specs_from_meta(json.loads((out / SPEC_FILE).read_text()))
    if name_or_path is not None:
        backbone_spec = dataclasses.replace(backbone_spec, name_or_path=name_or_path)
    model = build_reward_model(backbone_spec, head_spec)
    load_adapter_weights(model.backbone, str(out))
    head = load_file(str(out / HEAD_FILE))
    own = model.head.linear.state_dict()
    if head.keys() != own.keys():
        raise ValueError(f"{out / HEAD_FILE}: holds {sorted(head)}, the head built from {SPEC_FILE} has {sorted(own)}")
    with torch.no_grad():
        for name, tensor in head.items():
            own[name].copy_(tensor)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m rlhf.reward.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory written by training (LoRA + head)")
    parser.add_argument("--out", required=True, help="export directory (created)")
    parser.add_argument("--format", choices=["hf", "adapter"], default="hf", help="merged HF classifier, or peft adapter + head")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="saved weight dtype, hf format only (default float32)")
    parser.add_argument("--base", default=None, help="base model location, if it moved since training")
    parser.add_argument("--license", default="other", help="hf format: the model card's licence id (default other)")
    parser.add_argument("--base-model-id", default=None, help="hf format: the card's base_model Hub id, if the base was a local path")
    args = parser.parse_args(argv)
    if args.format == "hf":
        out = export_hf(args.checkpoint, args.out, args.dtype or "float32", args.base, args.license, args.base_model_id)
    elif args.dtype is not None:
        parser.error("--dtype applies to --format hf only (an adapter keeps the trained dtypes)")
    else:
        out = export_adapter(args.checkpoint, args.out, args.base)
    print(f"wrote {args.format} export of {args.checkpoint} to {out}:")
    for path in sorted(p for p in out.iterdir() if p.is_file()):
        print(f"  {path.name} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    run_main(main)

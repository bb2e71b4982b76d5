"""ExPO model extrapolation (spec §3.6; Zheng et al., official `extrapolate.py`) over trained state dicts.

`extrapolate(weak, strong, alpha, convention)` works on every tensor, head included, computed in fp32:
- "expo":  θ = θ_strong + α (θ_strong − θ_weak)    (the ExPO paper's α; α = 0 gives the strong model)
- "total": θ = θ_weak + α (θ_strong − θ_weak)      (α is the total factor; α = 1 gives the strong model)
The paper's "1.52" is ambiguous between the two; both are offered. `ExpoCheckpoint` writes the extrapolated
checkpoint at the end of a stage-2 fit; `python -m rlhf.expo` writes one from two checkpoints, and
`python -m rlhf.expo --sweep` scores a grid of α on validation pairs (and RewardBench) and reports the best;
`--sweep` without values scores `--alpha` alone, and `--wandb-project` logs each α's row to wandb (configs/sweeps).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from lightning.pytorch import Callback, LightningModule, Trainer
from safetensors.torch import load_file
from torch import Tensor

from rlhf.checkpoint import CONFIG_NAME, load_trained_state, read_meta, save_trained, trained_state_dict, weights_path

Convention = Literal["expo", "total"]


def extrapolate(weak: dict[str, Tensor], strong: dict[str, Tensor], alpha: float, convention: Convention = "expo") -> dict[str, Tensor]:
    """Extrapolate from `weak` through `strong`; both state dicts need the same keys and shapes.

    LoRA weights are extrapolated factor-wise (A and B separately), as the official code does on any tensor.
    Returns tensors in the strong model's dtypes.
    """
    if weak.keys() != strong.keys():
        diff = sorted(set(weak) ^ set(strong))
        raise ValueError(f"weak and strong checkpoints hold different tensors, e.g. {diff[:3]}")
    out = {}
    for name, s in strong.items():
        w = weak[name]
        if w.shape != s.shape:
            raise ValueError(f"tensor '{name}': weak {tuple(w.shape)} vs strong {tuple(s.shape)}")
        s32, w32 = s.float(), w.float()
        base = s32 if convention == "expo" else w32
        out[name] = (base + alpha * (s32 - w32)).to(s.dtype)
    return out


class ExpoCheckpoint(Callback):
    """At the end of fit, write θ_expo from a weak checkpoint and the model just trained (the strong one).

    Args:
        weak: checkpoint directory of the weak model (the stage-1 regression RM the strong one started from).
        alpha: extrapolation factor.
        convention: "expo" (θ_s + αΔ) or "total" (θ_w + αΔ).
        dirpath: where to write; defaults to `<trainer.default_root_dir>/checkpoint-expo`.
    """

    def __init__(self, weak: str, alpha: float = 0.52, convention: Convention = "expo", dirpath: str | None = None):
        self.weak, self.alpha, self.convention, self.dirpath = weak, alpha, convention, dirpath
        self.config_yaml: str | None = None  # filled in by the CLI with the resolved config

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        weak = load_file(str(weights_path(self.weak)))
        strong = trained_state_dict(pl_module.model)
        meta = {**pl_module.checkpoint_meta(), "expo": {"weak": self.weak, "alpha": self.alpha, "convention": self.convention}}
        out = Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoint-expo"
        save_trained(out, extrapolate(weak, strong, self.alpha, self.convention), meta, self.config_yaml)


def extrapolate_checkpoints(weak: str, strong: str, out: str, alpha: float, convention: Convention = "expo") -> Path:
    """File-level ExPO: read two checkpoints of this repo, write the extrapolated one with the strong one's metadata
    and config.yaml (so it is scored with the strong model's template and max_length, not the defaults)."""
    meta = {**read_meta(strong), "expo": {"weak": weak, "alpha": alpha, "convention": convention}}
    merged = extrapolate(load_file(str(weights_path(weak))), load_file(str(weights_path(strong))), alpha, convention)
    config = Path(strong) / CONFIG_NAME
    return save_trained(out, merged, meta, config.read_text() if config.is_file() else None)


def extrapolated_scorers(weak: str, strong: str, alphas: Sequence[float], convention: Convention = "expo") -> Iterator[tuple[float, Any, Any, Any]]:
    """(α, model, tokenizer, eval settings) per α: the strong checkpoint is loaded once (`rlhf.score.load_scorer`) and
    each α's extrapolated LoRA + head is copied into it in turn, so a yielded model is valid until the next step."""
    from rlhf.score import load_scorer

    model, tokenizer, settings, _ = load_scorer(strong)
    weak_state, strong_state = load_file(str(weights_path(weak))), load_file(str(weights_path(strong)))
    for alpha in alphas:
        load_trained_state(model, extrapolate(weak_state, strong_state, alpha, convention), f"ExPO alpha={alpha}")
        yield alpha, model, tokenizer, settings


def sweep(weak: str, strong: str, alphas: Sequence[float], pairs: dict[str, list], convention: Convention = "expo", batch_size: int = 32) -> list[dict]:
    """Accuracy of the extrapolated model on each named list of `BenchPair`s for every α (the base is loaded once).

    Returns one row per α: {"alpha", "<set>/accuracy", ...} plus RewardBench sections when a set is named "rewardbench".
    """
    from rlhf.eval.rewardbench_scores import rewardbench_result
    from rlhf.data.encode import Encoder
    from rlhf.eval.score_pairs import encode_pairs, pad_id_of, score_encoded

    rows, encoded = [], None
    for alpha, model, tokenizer, settings in extrapolated_scorers(weak, strong, alphas, convention):
        if encoded is None:
            encoder = Encoder(tokenizer, settings.template, settings.max_length)
            encoded = {name: encode_pairs(encoder, items) for name, items in pairs.items()}
        row: dict = {"alpha": alpha}
        for name, enc in encoded.items():
            scores = score_encoded(model, enc, pad_id_of(tokenizer), batch_size)
            row[f"{name}/accuracy"] = float((scores.chosen > scores.rejected).float().mean())
            if name == "rewardbench":
                result = rewardbench_result([p.subset for p in pairs[name]], scores.chosen, scores.rejected, scores.truncated, f"alpha={alpha}", strong, {}, scores.identical)
                row.update({f"rewardbench/{k}": v for k, v in result.sections.items()} | {"rewardbench/overall": result.overall})
        rows.append(row)
    return rows


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rlhf.expo", description="ExPO: write an extrapolated checkpoint, or sweep alpha.")
    p.add_argument("--weak", required=True, help="weak checkpoint (stage-1 regression RM)")
    p.add_argument("--strong", required=True, help="strong checkpoint (stage-2 BT RM initialised from the weak one)")
    p.add_argument("--convention", choices=["expo", "total"], default="expo")
    p.add_argument("--alpha", type=float, default=0.52, help="extrapolation factor (without --sweep)")
    p.add_argument("--out", required=True, type=os.path.expandvars,
                   help="checkpoint directory to write, or with --sweep the report directory ($VARS expanded, e.g. $WANDB_RUN_ID)")
    p.add_argument("--sweep", type=float, nargs="*", help="alphas to evaluate, e.g. --sweep 0 0.25 0.5 1 1.5")
    p.add_argument("--val-pairs", help="HelpSteer2-Preference JSONL/Parquet to evaluate on (with --sweep)")
    p.add_argument("--rewardbench", help="RewardBench JSONL to evaluate on (with --sweep)")
    p.add_argument("--max-per-subset", type=int, help="RewardBench pairs per subset (default: all)")
    p.add_argument("--wandb-project", help="with --sweep: log each alpha's metrics to this wandb project (a sweep agent's run)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict] | Path:
    args = _parse(argv)
    if args.sweep is None:
        path = extrapolate_checkpoints(args.weak, args.strong, args.out, args.alpha, args.convention)
        print(f"wrote {path} (alpha={args.alpha}, convention={args.convention})")
        return path
    pairs: dict[str, list] = {}
    if args.val_pairs:
        from rlhf.eval.rewardbench_data import preference_file_pairs

        pairs["validation"] = preference_file_pairs(args.val_pairs)
    if args.rewardbench:
        from rlhf.eval.rewardbench_data import load_pairs, select

        pairs["rewardbench"] = select(load_pairs(args.rewardbench), None, args.max_per_subset)
    if not pairs:
        raise SystemExit("--sweep needs --val-pairs and/or --rewardbench")
    rows = sweep(args.weak, args.strong, args.sweep or [args.alpha], pairs, args.convention)
    key = "validation/accuracy" if "validation" in pairs else "rewardbench/overall"
    best = max(rows, key=lambda r: r[key])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "expo_sweep.json").write_text(json.dumps({"convention": args.convention, "selected_by": key, "best_alpha": best["alpha"], "rows": rows}, indent=2))
    if args.wandb_project:
        _log_to_wandb(args, rows)
    for row in rows:
        print("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(f"best alpha by {key}: {best['alpha']}  ->  {out / 'expo_sweep.json'}")
    return rows


def _log_to_wandb(args: argparse.Namespace, rows: list[dict]) -> None:
    import wandb

    run = wandb.init(project=args.wandb_project, config={"weak": args.weak, "strong": args.strong, "convention": args.convention})
    for row in rows:
        run.log(row)
    run.finish()


if __name__ == "__main__":
    main()

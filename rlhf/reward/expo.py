"""ExPO model extrapolation (spec §3.6; Zheng et al., official `extrapolate.py`) on the models' effective weights.

ExPO moves full weights; a LoRA model's are θ = W0 + s·B·A (s = alpha/r), and extrapolating A and B separately would
add s·α(1+α)(B_s−B_w)(A_s−A_w). So each LoRA pair becomes one of rank 2r (alpha doubled, s kept): B' = [c_s·B_s,
c_w·B_w], A' = [A_s; A_w], giving exactly W0 + s·B'A' = c_s·θ_s + c_w·θ_w; other tensors (the head) are
element-wise. "expo": θ_s + α(θ_s − θ_w) (c = 1+α, −α); "total": θ_w + α(θ_s − θ_w) (c = α, 1−α). Both checkpoints
need the same LoRA (r, alpha, targets); `rlhf.reward.export --format hf` merges the result into the base. `ExpoCheckpoint`
writes it after a stage-2 fit; `python -m rlhf.reward.expo` from two checkpoints, or `--sweep`s α on validation pairs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from rich.progress import Progress, TimeElapsedColumn
from safetensors.torch import load_file
from torch import Tensor

from rlhf.errors import ArgumentParser, run_main
from rlhf.files import check_writable, refuse_to_replace, write_json
from rlhf.training.checkpoint import (
    CONFIG_NAME,
    load_trained_state,
    lora_signature,
    read_meta,
    reward_model_from_meta,
    save_trained,
    trained_state_dict,
    weights_path,
)

Convention = Literal["expo", "total"]
LORA_A, LORA_B = ".lora_A.", ".lora_B."


def coefficients(alpha: float, convention: Convention) -> tuple[float, float]:
    """(c_strong, c_weak) with θ = c_strong·θ_s + c_weak·θ_w; they sum to 1."""
    return (1.0 + alpha, -alpha) if convention == "expo" else (alpha, 1.0 - alpha)


def extrapolate(weak: dict[str, Tensor], strong: dict[str, Tensor], alpha: float, convention: Convention = "expo") -> dict[str, Tensor]:
    """Extrapolate from `weak` through `strong` (same keys and shapes, same LoRA scale) on the effective weights.

    LoRA pairs (`*.lora_A.*` (r, in), `*.lora_B.*` (out, r)) come back as rank-2r pairs: [A_s; A_w] (2r, in) and
    [c_s·B_s, c_w·B_w] (out, 2r); the model that loads them needs `extrapolated_lora` of the checkpoints' LoRA.
    Every other tensor is c_s·θ_s + c_w·θ_w. Computed in fp32, returned in the strong model's dtypes.
    """
    if weak.keys() != strong.keys():
        diff = sorted(set(weak) ^ set(strong))
        raise ValueError(f"weak and strong checkpoints hold different tensors, e.g. {diff[:3]}")
    c_s, c_w = coefficients(alpha, convention)
    out = {}
    for name, s in strong.items():
        w = weak[name]
        if w.shape != s.shape:
            raise ValueError(f"tensor '{name}': weak {tuple(w.shape)} vs strong {tuple(s.shape)}")
        s32, w32 = s.float(), w.float()
        if LORA_A in name:
            if name.replace(LORA_A, LORA_B) not in strong:
                raise ValueError(f"tensor '{name}' has no matching {LORA_B.strip('.')} tensor")
            out[name] = torch.cat([s32, w32], dim=0).to(s.dtype)  # (2r, in)
        elif LORA_B in name:
            if name.replace(LORA_B, LORA_A) not in strong:
                raise ValueError(f"tensor '{name}' has no matching {LORA_A.strip('.')} tensor")
            out[name] = torch.cat([c_s * s32, c_w * w32], dim=1).to(s.dtype)  # (out, 2r)
        elif ".lora_" in name:
            raise ValueError(f"tensor '{name}': only plain LoRA (lora_A, lora_B) can be extrapolated exactly")
        else:
            out[name] = (c_s * s32 + c_w * w32).to(s.dtype)
    return out


def extrapolated_lora(weak_meta: dict[str, Any], strong_meta: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The stored LoRA settings of the extrapolated model (r and alpha doubled), after checking both models' agree."""
    weak, strong = weak_meta["backbone"]["lora"], strong_meta["backbone"]["lora"]
    if lora_signature(weak) != lora_signature(strong):
        raise ValueError(f"{source}: ExPO needs the same LoRA in both models (r, alpha, target_modules); "
                         f"weak {lora_signature(weak)}, strong {lora_signature(strong)}")
    return None if strong is None else {**strong, "r": 2 * strong["r"], "alpha": 2 * strong["alpha"]}


def expo_meta(weak: str, weak_meta: dict[str, Any], strong_meta: dict[str, Any], alpha: float, convention: Convention) -> dict[str, Any]:
    """The strong checkpoint's metadata with the extrapolated LoRA settings and an `expo` record."""
    backbone = {**strong_meta["backbone"], "lora": extrapolated_lora(weak_meta, strong_meta, f"ExPO of {weak} and the strong model")}
    return {**strong_meta, "backbone": backbone, "expo": {"weak": weak, "alpha": alpha, "convention": convention}}


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
        strong = trained_state_dict(pl_module.model, trainer.strategy.model)  # gathers FSDP shards: a collective, so every rank takes part
        if not trainer.is_global_zero:  # rank 0 writes
            return
        weak = load_file(str(weights_path(self.weak)))
        meta = expo_meta(self.weak, read_meta(self.weak), pl_module.checkpoint_meta(), self.alpha, self.convention)
        out = Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoint-expo"
        save_trained(out, extrapolate(weak, strong, self.alpha, self.convention), meta, self.config_yaml)


def extrapolate_checkpoints(weak: str, strong: str, out: str, alpha: float, convention: Convention = "expo") -> Path:
    """File-level ExPO: read two checkpoints of this repo, write the extrapolated one with the strong one's metadata
    and its `config.yaml` (the template and max_length scorers need); a strong checkpoint without one is refused."""
    config = weights_path(strong).parent / CONFIG_NAME
    if not config.is_file():
        raise FileNotFoundError(f"{config.parent}: no {CONFIG_NAME}; the ExPO checkpoint needs the strong model's settings")
    meta = expo_meta(weak, read_meta(weak), read_meta(strong), alpha, convention)
    merged = extrapolate(load_file(str(weights_path(weak))), load_file(str(weights_path(strong))), alpha, convention)
    return save_trained(out, merged, meta, config.read_text())


def extrapolated_scorers(weak: str, strong: str, alphas: Sequence[float], convention: Convention = "expo") -> Iterator[tuple[float, Any, Any, Any]]:
    """(α, model, tokenizer, eval settings) per α: the rank-2r model is built once and each α's extrapolated LoRA +
    head is copied into it in turn, so a yielded model is valid until the next step."""
    from rlhf.eval.score_pairs import read_eval_settings
    from rlhf.models.backbone import load_tokenizer

    meta = read_meta(strong)
    lora = extrapolated_lora(read_meta(weak), meta, f"ExPO of {weak} and {strong}")
    model = reward_model_from_meta({**meta, "backbone": {**meta["backbone"], "lora": lora}}).eval()
    tokenizer, settings = load_tokenizer(meta["backbone"]["name_or_path"]), read_eval_settings(strong)
    weak_state, strong_state = load_file(str(weights_path(weak))), load_file(str(weights_path(strong)))
    for alpha in alphas:
        load_trained_state(model, extrapolate(weak_state, strong_state, alpha, convention), f"ExPO alpha={alpha}")
        yield alpha, model, tokenizer, settings


def sweep(weak: str, strong: str, alphas: Sequence[float], pairs: dict[str, list], convention: Convention = "expo", batch_size: int = 32,
          progress: Callable[[int], None] | None = None) -> list[dict]:
    """Accuracy of the extrapolated model on each named list of `BenchPair`s for every α (the base is loaded once).

    Returns one row per α: {"alpha", "<set>/accuracy", ...} plus RewardBench sections when a set is named "rewardbench".
    `progress(n)` is called after each set is scored, with its number of pairs.
    """
    from rlhf.data.encode import Encoder
    from rlhf.eval.rewardbench_scores import rewardbench_result
    from rlhf.eval.score_pairs import encode_pairs, pad_id_of, score_encoded

    rows, encoded = [], None
    for alpha, model, tokenizer, settings in extrapolated_scorers(weak, strong, alphas, convention):
        if encoded is None:
            encoder = Encoder(tokenizer, settings.template, settings.max_length)
            encoded = {name: encode_pairs(encoder, items) for name, items in pairs.items()}
        row: dict = {"alpha": alpha}
        for name, enc in encoded.items():
            scores = score_encoded(model, enc, pad_id_of(tokenizer), batch_size)
            if progress is not None:
                progress(len(pairs[name]))
            row[f"{name}/accuracy"] = float((scores.chosen > scores.rejected).float().mean())
            if name == "rewardbench":
                result = rewardbench_result([p.subset for p in pairs[name]], scores.chosen, scores.rejected, scores.truncated, f"alpha={alpha}", strong, {}, scores.identical)
                row.update({f"rewardbench/{k}": v for k, v in result.sections.items()} | {"rewardbench/overall": result.overall})
        rows.append(row)
    return rows


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m rlhf.reward.expo", description="ExPO: write an extrapolated checkpoint, or sweep alpha.")
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
    p.add_argument("--overwrite", action="store_true", help="replace what --out already holds (default: refuse)")
    p.add_argument("--wandb-project", help="with --sweep: log each alpha's metrics to this wandb project (a sweep agent's run)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict] | Path:
    args = _parse(argv)
    check_writable(args.out, "directory")  # before any model loads
    if args.sweep is None:
        refuse_to_replace(args.out, args.overwrite, "a checkpoint")
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
        raise ValueError("--sweep needs --val-pairs and/or --rewardbench")
    out = Path(args.out)
    refuse_to_replace(out / "expo_sweep.json", args.overwrite, "an ExPO sweep")
    alphas = args.sweep or [args.alpha]
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn()) as bar:
        task = bar.add_task(f"ExPO sweep, {len(alphas)} alphas", total=len(alphas) * sum(len(v) for v in pairs.values()))
        rows = sweep(args.weak, args.strong, alphas, pairs, args.convention, progress=lambda n: bar.advance(task, n))
    key = "validation/accuracy" if "validation" in pairs else "rewardbench/overall"
    best = max(rows, key=lambda r: r[key])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "expo_sweep.json", {"convention": args.convention, "selected_by": key, "best_alpha": best["alpha"], "rows": rows})
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
    run_main(main)

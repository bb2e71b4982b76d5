"""ExPO model extrapolation (spec §3.6; Zheng et al., official `extrapolate.py`) over trained state dicts.

`extrapolate(weak, strong, alpha, convention)` works on every tensor, head included, computed in fp32:
- "expo":  θ = θ_strong + α (θ_strong − θ_weak)    (the ExPO paper's α; α = 0 gives the strong model)
- "total": θ = θ_weak + α (θ_strong − θ_weak)      (α is the total factor; α = 1 gives the strong model)
The paper's "1.52" is ambiguous between the two; both are offered. `ExpoCheckpoint` writes the extrapolated
checkpoint at the end of a stage-2 fit. Sweeping α on validation/RewardBench is left to the evaluation code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from safetensors.torch import load_file
from torch import Tensor

from rlhf.checkpoint import read_meta, save_trained, trained_state_dict, weights_path

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

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        weak = load_file(str(weights_path(self.weak)))
        strong = trained_state_dict(pl_module.model)
        meta = {**pl_module.checkpoint_meta(), "expo": {"weak": self.weak, "alpha": self.alpha, "convention": self.convention}}
        out = Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoint-expo"
        save_trained(out, extrapolate(weak, strong, self.alpha, self.convention), meta)


def extrapolate_checkpoints(weak: str, strong: str, out: str, alpha: float, convention: Convention = "expo") -> Path:
    """File-level ExPO: read two checkpoints of this repo, write the extrapolated one with the strong one's metadata."""
    meta = {**read_meta(strong), "expo": {"weak": weak, "alpha": alpha, "convention": convention}}
    merged = extrapolate(load_file(str(weights_path(weak))), load_file(str(weights_path(strong))), alpha, convention)
    return save_trained(out, merged, meta)

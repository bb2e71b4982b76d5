"""Reward-model objectives of HelpSteer2-Preference (arXiv 2410.01257, spec §3) as pure tensor functions.

- `masked_mse`: SteerLM regression, sum of squared errors over valid (sample, attribute) entries / their count.
- `bradley_terry`: −log σ(r_c − r_r)                     (regular BT, InstructGPT)
- `margin_bradley_terry`: −log σ(r_c − r_r − m)          (Llama-2 margin BT, m used raw)
- `scaled_bradley_terry`: −m · log σ(r_c − r_r)          (the paper's scaled BT; m outside the log-sigmoid)
Pairwise losses average over pairs (not normalised by Σm). No logging, no config: tensors in, a tensor out.
The distributional (mean-variance) objective lives with its own head and is left out here.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

PairwiseLossName = Literal["bt", "margin_bt", "scaled_bt"]
LossName = Literal["mse", "bt", "margin_bt", "scaled_bt"]


def masked_mse(pred: Tensor, labels: Tensor, label_mask: Tensor) -> Tensor:
    """Masked mean squared error.

    Args:
        pred: (B, A) predicted attribute values.
        labels: (B, A) targets; values under a False mask are ignored (may be anything finite).
        label_mask: (B, A) bool, True where the label counts.

    Returns:
        Scalar Σ mask·(pred − label)² / Σ mask. Raises if no entry counts (an empty mask has no loss).
    """
    if pred.shape != labels.shape or labels.shape != label_mask.shape:
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, labels {tuple(labels.shape)}, mask {tuple(label_mask.shape)}")
    count = label_mask.sum()
    if count == 0:
        raise ValueError("masked_mse: label_mask has no True entry")
    sq = torch.where(label_mask, (pred - labels) ** 2, torch.zeros_like(pred))
    return sq.sum() / count


def bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Regular BT: mean over pairs of −log σ(r_c − r_r). `margin` (B,) is accepted and ignored."""
    del margin
    return -F.logsigmoid(chosen - rejected).mean()


def margin_bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Margin BT: mean over pairs of −log σ(r_c − r_r − m); chosen, rejected, margin all (B,)."""
    return -F.logsigmoid(chosen - rejected - margin).mean()


def scaled_bradley_terry(chosen: Tensor, rejected: Tensor, margin: Tensor) -> Tensor:
    """Scaled BT: mean over pairs of −m · log σ(r_c − r_r); chosen, rejected, margin all (B,)."""
    return -(margin * F.logsigmoid(chosen - rejected)).mean()


PAIRWISE_LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "bt": bradley_terry,
    "margin_bt": margin_bradley_terry,
    "scaled_bt": scaled_bradley_terry,
}

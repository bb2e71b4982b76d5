"""PNG plots of a reward-model run: loss curves from Lightning's CSV metrics, and reward-margin histograms.

Pure matplotlib (Agg backend), called by the demo; interactive dashboards are wandb's job.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlhf.files import write_with  # noqa: E402


def save_figure(fig, out: str | Path, dpi: int = 120) -> Path:
    """Lay out `fig`, write it to `out` (parent directories created), close it; returns the path."""
    fig.tight_layout()
    out = Path(out)
    try:
        write_with(out, lambda tmp: fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return out


def read_metric(metrics_csv: str | Path, name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric from a CSVLogger metrics.csv, skipping rows that lack it."""
    steps, values = [], []
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(name):
                steps.append(int(row["step"]))
                values.append(float(row[name]))
    return steps, values


def plot_loss_curves(runs: dict[str, Path], out: str | Path) -> Path:
    """One panel per run: train/loss over steps and val/loss at each validation."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.6), squeeze=False)
    for ax, (title, metrics_csv) in zip(axes[0], runs.items()):
        for name, style in (("train/loss", "-"), ("val/loss", "o-")):
            steps, values = read_metric(metrics_csv, name)
            if steps:
                ax.plot(steps, values, style, label=name, markersize=4)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, out)


def plot_margin_histograms(margins: dict[str, list[float]], out: str | Path) -> Path:
    """Histogram of r(chosen) − r(rejected) on validation pairs for each model; right of 0 is correct."""
    fig, ax = plt.subplots(figsize=(7, 4))
    everything = [v for values in margins.values() for v in values]
    lo, hi = min(everything, default=-1.0), max(everything, default=1.0)
    bins = [lo + (hi - lo) * i / 40 for i in range(41)] if hi > lo else 40  # shared bins, so models compare
    for label, values in margins.items():
        accuracy = sum(v > 0 for v in values) / max(len(values), 1)
        ax.hist(values, bins=bins, histtype="step", linewidth=1.6, label=f"{label} (acc {accuracy:.1%})")
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_xlabel("r(chosen) − r(rejected) on validation pairs")
    ax.set_ylabel("pairs")
    ax.legend()
    return save_figure(fig, out)

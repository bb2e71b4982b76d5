"""wandb sweep files (`configs/sweeps/*.yaml`) expanded into command lines, for running a grid without a wandb server.

`wandb sweep FILE` + `wandb agent ID` is the normal way (the agent fills in `${args}`); `python -m rlhf.training.sweep FILE`
prints the command of every grid point and `--run` runs them one after the other with `WANDB_MODE=offline` and
`WANDB_RUN_ID=<sweep>-<i>` (upload later with `wandb sync`). Parameters must be given as `values` or `value` (grid
points); `distribution` parameters need the wandb server. The macros are wandb's: `${env}`, `${interpreter}`,
`${program}`, `${args}` (`--key=value` pairs) and `${args_no_hyphens}`.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from rlhf.errors import ArgumentParser, run_main

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # wandb's default


def load_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep YAML as a dict, with the fields every sweep here needs checked."""
    sweep = yaml.safe_load(Path(path).read_text())
    for key in ("program", "method", "metric", "parameters"):
        if key not in sweep:
            raise ValueError(f"{path}: sweep has no '{key}'")
    if not {"name", "goal"} <= set(sweep["metric"]):
        raise ValueError(f"{path}: metric needs a name and a goal (minimize/maximize)")
    return sweep


def grid(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, in file order."""
    names, choices = [], []
    for name, spec in sweep["parameters"].items():
        if "values" in spec:
            choices.append(list(spec["values"]))
        elif "value" in spec:
            choices.append([spec["value"]])
        else:
            raise ValueError(f"parameter '{name}': only 'values'/'value' expand to a grid here ({sorted(spec)} needs the wandb server)")
        names.append(name)
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def _arg_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def command(sweep: dict[str, Any], params: dict[str, Any], interpreter: str = "python") -> list[str]:
    """The argv the agent would run for `params` (`${env}` dropped)."""
    args = [f"--{k}={_arg_value(v)}" for k, v in params.items()]
    out: list[str] = []
    for token in sweep.get("command", DEFAULT_COMMAND):
        if token == "${env}":
            continue
        if token == "${args}":
            out += args
        elif token == "${args_no_hyphens}":
            out += [a[2:] for a in args]
        else:
            out.append(token.replace("${interpreter}", interpreter).replace("${program}", sweep["program"]))
    return out


def main(argv: Sequence[str] | None = None) -> list[list[str]]:
    p = ArgumentParser(prog="python -m rlhf.training.sweep", description="Print or run (offline) the grid of a wandb sweep file.")
    p.add_argument("sweep", help="configs/sweeps/<name>.yaml")
    p.add_argument("--run", action="store_true", help="run every grid point, one after the other, with WANDB_MODE=offline")
    args = p.parse_args(argv)
    sweep = load_sweep(args.sweep)
    commands = [command(sweep, params, sys.executable) for params in grid(sweep)]
    name = Path(args.sweep).stem
    for i, cmd in enumerate(commands):
        print(" ".join(cmd))
        if args.run:
            env = {**os.environ, "WANDB_MODE": "offline", "WANDB_RUN_ID": f"{name}-{i}"}
            subprocess.run(cmd, env=env, check=True)
    return commands


if __name__ == "__main__":
    run_main(main)

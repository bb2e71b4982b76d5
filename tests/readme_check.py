"""`make readme-check`: run every CPU command of README.md's usage guide, in order, in a temporary copy of the repo.

Commands come from the guide's bash blocks and from inline `.venv/bin/python ...` commands; each runs with small
step and sampling limits appended (`LIMITS`), after the demo's outputs exist (copied from this checkout's runs/demo
when it has a finished demo, else made by `python -m rlhf.demo` in the copy). A command fails the check by a
non-zero exit status; the check also fails when a command changed or removed a file an earlier one wrote (the
README's commands must never destroy each other's results). Skipped, with the reason printed: GPU/hub configs,
placeholders, wandb-server and HTTP-server commands (tests/test_serve.py covers the server).
    .venv/bin/python tests/readme_check.py [--keep DIR] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {  # substring → why the command does not run here
    "llama3.1-8b": "needs Llama-3.1-8B from the hub and a GPU",
    "llama3.1-70b": "needs Llama-3.1-70B and 8 GPUs",
    "X.yaml": "placeholder config", "Y.yaml": "placeholder config",
    "wandb sweep": "needs a wandb server", "wandb agent": "needs a wandb server",
    "reward_lr.yaml --run": "runs the 8B grid",
    "rlhf.serve": "long-running server (tests/test_serve.py)", "curl ": "needs the server", "remote_rm": "needs the server",
}
LIMITS = [  # (pattern, arguments appended after the match) — small steps and samples, same code paths
    (r"train\.py fit --config \S+(?! --print_config)$", " --trainer.max_steps 2"),
    (r"train\.py validate --config \S+", " --trainer.limit_val_batches 2"),
    (r"align\.py fit --config \S+", " --trainer.max_steps 2"),
    (r"dpo\.py fit --config \S+ --model\.loss=\$l", " --trainer.max_steps=2 --trainer.limit_val_batches=2"),
    (r"rlhf\.rewardbench --checkpoint .*", " --max-per-subset 2"),
    (r"rlhf\.expo .*--sweep .*", " --max-per-subset 2"),
    (r"rlhf\.compare_policies .*", " --n-prompts 4 --max-new-tokens 8"),
    (r"rlhf\.align_demo", " --max-steps 2"),
    (r"rlhf\.study.*", " --seeds 0 --world-size 24 8 8 --max-steps 1"),
    (r"bench/\S+\.py --shape tiny", " --no-trl --steps 2 --warmup 1 --repeats 1"),
]
PLACEHOLDERS = {"--out DIR": "--out runs/readme/synthetic"}


def usage_guide(text: str) -> str:
    return text[text.index("## Usage guide"): text.index("## Layout")]


def commands(readme: str) -> list[str]:
    """The guide's commands in reading order: bash-block lines (continuations joined, comments dropped) and inline
    `.venv/bin/python ...` commands that take arguments."""
    found: list[tuple[int, int, str]] = []
    guide = usage_guide(readme)
    for block in re.finditer(r"```bash\n(.*?)```", guide, re.S):
        for i, line in enumerate(block[1].replace("\\\n", " ").splitlines()):
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append((block.start(), i, " ".join(line.split())))
    for inline in re.finditer(r"`(\.venv/bin/python [^`]*--[^`]*)`", guide):
        if inline[1].split()[-1].startswith("--") and len(inline[1].split()) <= 4:
            continue  # a fragment naming one option (e.g. `rlhf.reward.score --packing`), shown whole elsewhere
        found.append((inline.start(), 0, inline[1]))
    return [cmd for _, _, cmd in sorted(found)]


def limited(cmd: str) -> str:
    if cmd == "make study":
        cmd = ".venv/bin/python -m rlhf.study --results runs/study/make-study"
    for placeholder, value in PLACEHOLDERS.items():
        cmd = cmd.replace(placeholder, value)
    for pattern, extra in LIMITS:
        cmd = re.sub(pattern, lambda m: m[0] + extra, cmd, count=1)
    return cmd


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")


def demo_outputs(dest: Path, env: dict) -> str:
    if (REPO / "runs/demo/results.json").is_file() and (REPO / "models/tiny-llama-hf").is_dir():
        shutil.copytree(REPO / "runs/demo", dest / "runs/demo", symlinks=True)
        shutil.copytree(REPO / "models", dest / "models")
        return "copied runs/demo and models/ from this checkout"
    subprocess.run([".venv/bin/python", "-m", "rlhf.demo"], cwd=dest, env=env, check=True)
    return "ran python -m rlhf.demo"


def snapshot(root: Path) -> dict[str, str]:
    runs = root / "runs"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(runs.rglob("*"))
            if p.is_file() and "wandb" not in p.parts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="work in this directory (kept) instead of a temporary one")
    p.add_argument("--only", help="run only the commands containing this text (after the demo)")
    args = p.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="readme-check-"))
    work.mkdir(parents=True, exist_ok=True)
    copy_repo(work)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    print(f"readme-check in {work}: {demo_outputs(work, env)}", flush=True)
    failures, seen = [], snapshot(work)
    for cmd in commands((REPO / "README.md").read_text()):
        reason = None if "rlhf.training.plan" in cmd else next((why for key, why in SKIP.items() if key in cmd), None)  # plan: CPU only
        if args.only and args.only not in cmd:
            continue
        if reason:
            print(f"skip  {cmd[:100]}  ({reason})", flush=True)
            continue
        run = limited(cmd)
        start = time.perf_counter()
        proc = subprocess.run(["bash", "-c", run], cwd=work, env=env, capture_output=True, text=True)
        now = snapshot(work)
        lost = [f for f, digest in seen.items() if now.get(f) != digest]
        print(f"{'ok' if proc.returncode == 0 and not lost else 'FAIL':<5} {time.perf_counter() - start:6.1f} s  {run}", flush=True)
        if proc.returncode != 0:
            failures.append(run)
            print("      " + "\n      ".join((proc.stdout + proc.stderr).strip().splitlines()[-15:]), flush=True)
        if lost:
            failures.append(f"{run}: changed or removed {lost[:5]}")
            print(f"      changed or removed earlier results: {lost[:5]}", flush=True)
        seen = {**seen, **now}
    print(f"readme-check: {'all commands ran' if not failures else f'{len(failures)} failed'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

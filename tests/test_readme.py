"""README.md as a newcomer reads it: its Python snippet runs as written from another directory, every command uses
the venv's Python, the example inputs it names exist, and the numbers it shares with the Makefile and the server agree.
(`tests/readme_check.py`, `make readme-check`, runs the usage guide's commands themselves.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from rlhf.cli import reward_main
from tests.readme_check import commands, usage_guide
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_load_reward_model_snippet_runs_from_any_directory(tiny_llama_dir, synthetic_dir, tmp_path, monkeypatch, capsys):
    snippet = re.search(r"```python\n(.*?)```", README, re.S)[1]
    assert "load_reward_model" in snippet and "load_tokenizer" in snippet and "read_eval_settings" in snippet
    shutil.copytree(tiny_llama_dir, tmp_path / "repo" / "models" / "tiny")
    monkeypatch.chdir(tmp_path / "repo")  # trained with a backbone path relative to the repo, as the demo configs give it
    reward_main(["fit", *_args("models/tiny", synthetic_dir, tmp_path / "repo" / "runs" / "rm", "bt", ("--trainer.max_steps=1",))])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    exec(snippet.replace("runs/demo/stage2/checkpoint", str(tmp_path / "repo" / "runs" / "rm" / "checkpoint")), {})
    assert re.fullmatch(r"reward -?\d+\.\d{4} \(steerlm template, max_length 256\)\n", capsys.readouterr().out)


def test_every_command_uses_the_venv_python():
    bare = [m.group(0) for m in re.finditer(r"(?<![/\w.])python3? (-m \S+|\S+\.py)", README)]
    assert bare == []
    assert all(c.startswith((".venv/bin/python", "make ", "wandb ", "curl ", "RLHF_RM_API_KEY=", "for ")) for c in commands(README))


def test_example_inputs_exist():
    text = usage_guide(README)
    named = set(re.findall(r"(?<![/\w])(examples/[\w./-]+\.jsonl)", text))  # and every shipped input a command reads:
    named |= {p for c in commands(README) for p in re.findall(r"(?<![/\w])(data/[\w./-]+\.(?:jsonl|bin|model))", c)}
    assert {"examples/rows.jsonl", "examples/rewardbench_scores.jsonl"} <= named
    assert [p for p in sorted(named) if not (REPO / p).is_file()] == []


def test_study_time_is_the_same_in_the_readme_and_the_makefile():
    makefile = re.search(r"study: .*?~(\d+) min", (REPO / "Makefile").read_text())[1]
    assert set(re.findall(r"make study[^\n]*?~(\d+) min", README)) == {makefile}


def test_server_limit_is_explicit_before_start(tmp_path):
    from rlhf.serve.api import ServeLimits
    from rlhf.serve.server import resolve_limits

    (tmp_path / "config.yaml").write_text("data:\n  init_args: {max_length: 256}\n")
    assert resolve_limits(str(tmp_path), ServeLimits()).max_item_tokens == 1024  # what the start-up log and /info both show
    assert resolve_limits(str(tmp_path), ServeLimits(max_item_tokens=77)).max_item_tokens == 77

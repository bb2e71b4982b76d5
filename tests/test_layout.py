"""The package's layout by capability holds: imports point only down the layers of `rlhf/__init__.py` (no cycles;
the check itself is shown to catch an upward import), only `rlhf.models` imports transformers / peft / bitsandbytes,
no module is past 300 lines, the top level holds only the math, the shared types and the CLI, every subpackage says
in three lines what lives there and what it may import, and the old module paths (imports, `python -m`, YAML
`class_path`s) still work as aliases of the new modules, with a FutureWarning naming the new path.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import rlhf
from rlhf.cli import align_main, reward_main

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rlhf"
# lowest first; a module may import its own subpackage and any layer before its own, never a peer of its layer
LAYERS = [
    {"types", "losses", "advantages", "metrics", "errors", "files"},
    {"models"}, {"training"}, {"data"}, {"eval"}, {"reward"},
    {"dpo", "align", "serve"},
    {"cli"}, {"demo"},
    {"results", "study"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
ROOT_MODULES = {"__init__", *LAYERS[0], "cli"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _unit(module: str) -> str:
    """`rlhf.reward.module` -> `reward`; `rlhf.losses` -> `losses`; `rlhf` -> `` (the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports absolutely, at the top or inside a function (`from rlhf.x import y` also names
    rlhf.x.y when that is one of `modules`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def layer_violations(modules: dict[str, Path]) -> list[str]:
    bad = []
    for module, path in sorted(modules.items()):
        own = _unit(module)
        if own == "":
            continue
        for target in sorted(t for t in _imports(path, modules) if t.split(".")[0] == "rlhf"):
            other = _unit(target)
            if other == "" or other == own:
                continue
            if target in rlhf.MOVED or other not in RANK:
                bad.append(f"{module} imports {target}, which is not a module of the new layout")
            elif RANK[other] > RANK[own] or (RANK[other] == RANK[own] and RANK[own] != 0):
                bad.append(f"{module} (layer {RANK[own]}) imports {target} (layer {RANK[other]})")
    return bad


def test_imports_point_down_the_layers():
    modules = _modules()
    assert {_unit(m) for m in modules} - {""} <= set(RANK), "a subpackage or root module missing from LAYERS"
    assert layer_violations(modules) == []


def test_the_layer_check_catches_an_upward_import(tmp_path):
    # the check itself can fail: a training module that imports the reward module is reported
    probe = tmp_path / "_layout_probe.py"
    probe.write_text("from rlhf.reward.module import RewardModelModule\n")
    modules = _modules() | {"rlhf.training._layout_probe": probe}
    assert layer_violations(modules) == ["rlhf.training._layout_probe (layer 2) imports rlhf.reward.module (layer 5)"]


def test_only_the_models_layer_imports_transformers_peft_bitsandbytes():
    modules = _modules()
    found = sorted(f"{m} imports {name}" for m, path in modules.items() if _unit(m) != "models"
                   for name in _imports(path, modules) if name.split(".")[0] in {"transformers", "peft", "bitsandbytes"})
    assert found == []


def test_no_module_past_300_lines():
    long = {str(p.relative_to(REPO)): n for p in [*PACKAGE.rglob("*.py"), *REPO.glob("*.py")]
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def test_top_level_holds_the_math_types_and_cli_only():
    assert {p.stem for p in PACKAGE.glob("*.py")} == ROOT_MODULES


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_each_subpackage_says_what_lives_there_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert doc and len(doc.splitlines()) <= 3, doc
    assert "Imports:" in doc.splitlines()[-1]


def test_old_module_paths_are_the_new_modules_with_a_warning():
    probe = ("import importlib, json, sys, warnings\nimport rlhf\nout = {}\n"
             "for old, new in rlhf.MOVED.items():\n"
             "    with warnings.catch_warnings(record=True) as seen:\n"
             "        warnings.simplefilter('always')\n"
             "        module = importlib.import_module(old)\n"
             "    out[old] = [module is importlib.import_module(new), module.__name__, module.__spec__.name,\n"
             "                [str(w.message) for w in seen if w.category is FutureWarning]]\n"
             "print(json.dumps(out))\n")
    result = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO).stdout)
    assert len(result) == len(rlhf.MOVED) >= 31
    for old, (same, name, spec, messages) in result.items():
        new = rlhf.MOVED[old]
        assert same and name == new and spec == new, old  # one module object, its own name and spec
        assert f"{old} moved to {new}; use the new path" in messages, old


def test_old_python_m_names_run_the_new_command():
    done = subprocess.run([sys.executable, "-m", "rlhf.score", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: python -m rlhf" in done.stdout
    assert "rlhf.score moved to rlhf.reward.score; use the new path" in done.stderr


def _with_old_paths(config: Path, tmp_path: Path) -> Path:
    text = config.read_text()
    for old, new in sorted(rlhf.MOVED.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(f"class_path: {new}.", f"class_path: {old}.")
    assert text != config.read_text(), f"{config} names no moved class"
    out = tmp_path / config.name
    out.write_text(text)
    return out


def test_yaml_class_paths_of_the_old_layout_still_parse(tmp_path, monkeypatch):
    from rlhf.reward.expo import ExpoCheckpoint
    from rlhf.training.schedules import WarmupConstantLR

    monkeypatch.chdir(REPO)
    reward_yaml = _with_old_paths(REPO / "configs/demo/stage2_scaled_bt.yaml", tmp_path)
    assert "class_path: rlhf.expo.ExpoCheckpoint" in reward_yaml.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the warning itself: test_old_module_paths_are_the_new_modules
        cli = reward_main(["--config", str(reward_yaml)], run=False)
        assert any(isinstance(c, ExpoCheckpoint) for c in cli.trainer.callbacks)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        assert isinstance(cli.model.scheduler_factory(optimizer), WarmupConstantLR)
        remote = _with_old_paths(REPO / "configs/align/demo_tiny_remote_rm.yaml", tmp_path)
        assert "rlhf.remote_reward." in remote.read_text()
        align = align_main(["--config", str(remote)], run=False)
    assert type(align.model.reward).__module__ == "rlhf.align.remote_reward"

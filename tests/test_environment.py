"""environment.yml and pyproject.toml pin the same packages at the same versions, and the venv matches them."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        if line.startswith("-e"):
            continue
        name, _, pinned = line.partition("==")
        assert pinned, f"'{line}' is not pinned with =="
        pins[name.split("[")[0].strip().lower()] = pinned.strip()
    return pins


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == _pins(project["dependencies"])
    assert "python=3.11" in env["dependencies"]


def test_installed_versions_match_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for name, pinned in _pins(project["dependencies"]).items():
        assert version(name).split("+")[0] == pinned, f"{name}: installed {version(name)}, pinned {pinned}"


def test_bench_extra_is_pinned_and_matches_if_installed():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = _pins(extras["bench"])
    assert set(pins) == {"trl"}
    try:
        installed = version("trl")
    except PackageNotFoundError:  # the extra is optional: tests never need it
        return
    assert installed == pins["trl"]

"""configs/sweeps/*.yaml: every grid point's command parses with its program's real parser and sets the swept key to the
swept value, and the sweep's metric is a name the program actually logs (checked on a tiny run of each program).
Also the pure parts of `rlhf.training.sweep`: grid expansion and wandb's command macros.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.cli import align_main, reward_main
from rlhf.reward import expo
from rlhf.training.sweep import command, grid, load_sweep
from tests.test_reinforce_module import _fit_args, rm_checkpoint  # noqa: F401  (fixture)
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted(p.relative_to(REPO) for p in (REPO / "configs" / "sweeps").glob("*.yaml"))
MAINS = {"train.py": reward_main, "align.py": align_main}


def _swept(sweep_path: Path) -> list[tuple[dict, list[str]]]:
    sweep = load_sweep(REPO / sweep_path)
    return [(params, command(sweep, params)) for params in grid(sweep)]


def test_sweeps_cover_the_issue():
    keys = {k for s in SWEEPS for k in load_sweep(REPO / s)["parameters"]}
    assert {"model.optimizer.init_args.lr", "model.loss", "alpha", "model.objective.kl_coef"} <= keys


def test_grid_and_macros():
    sweep = {"program": "train.py", "parameters": {"a.b": {"values": [1, 2]}, "c": {"value": True}, "d": {"values": ["x", "y"]}},
             "command": ["${env}", "${interpreter}", "${program}", "fit", "${args}"]}
    assert grid(sweep) == [{"a.b": 1, "c": True, "d": "x"}, {"a.b": 1, "c": True, "d": "y"}, {"a.b": 2, "c": True, "d": "x"}, {"a.b": 2, "c": True, "d": "y"}]
    assert command(sweep, {"a.b": 1, "c": True}, "py") == ["py", "train.py", "fit", "--a.b=1", "--c=true"]
    assert command({"program": "p.py"}, {"k": 0.5}) == ["python", "p.py", "--k=0.5"]  # wandb's default command
    with pytest.raises(ValueError, match="parameter 'lr': only 'values'/'value' expand to a grid here"):
        grid({"parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-4}}})


def _lightning_argv(argv: list[str]) -> tuple[str, list[str]]:
    """(program, its arguments without the `fit` subcommand) from a command line `python <program> fit ...`."""
    program, rest = argv[1], argv[2:]
    assert rest[0] == "fit", argv
    return program, rest[1:]


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("sweep_path", SWEEPS, ids=[str(s) for s in SWEEPS])
def test_every_swept_key_is_a_cli_key_of_its_program(sweep_path, monkeypatch):
    monkeypatch.chdir(REPO)
    for params, argv in _swept(sweep_path):
        if argv[1:3] == ["-m", "rlhf.reward.expo"]:
            monkeypatch.setenv("WANDB_RUN_ID", "run-7")
            parsed = vars(expo._parse(argv[3:]))
            assert parsed["sweep"] == [] and parsed["wandb_project"] and parsed["out"].endswith("/run-7")  # one directory per run
            for key, value in params.items():
                assert parsed[key.replace("-", "_")] == value, key
            continue
        program, args = _lightning_argv(argv)
        cli = MAINS[program](args, run=False)  # the real parser: an unknown key or a bad value exits here
        for key, value in params.items():
            assert _get(cli.config, key) == value, key
        assert "$WANDB_RUN_ID" in cli.config["checkpoint"]["dirpath"]  # one checkpoint directory per sweep run


def _metric(sweep_name: str) -> str:
    return load_sweep(REPO / "configs" / "sweeps" / sweep_name)["metric"]["name"]


def test_reward_sweep_metrics_are_logged(tiny_llama_dir, synthetic_dir, tmp_path):
    names = {_metric("reward_lr.yaml"), _metric("reward_loss.yaml")}
    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--trainer.val_check_interval=2",)), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert names <= set(cli.trainer.callback_metrics), sorted(cli.trainer.callback_metrics)


def test_align_sweep_metric_is_logged(tiny_llama_dir, rm_checkpoint, synthetic_dir, tmp_path):  # noqa: F811
    cli = align_main(_fit_args(tiny_llama_dir, rm_checkpoint, synthetic_dir / "preference_train.jsonl", tmp_path), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert _metric("align_kl_coef.yaml") in cli.trainer.callback_metrics


def test_expo_sweep_metric_is_reported(rm_checkpoint, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(REPO)
    rows = expo.main(["--weak", str(rm_checkpoint), "--strong", str(rm_checkpoint), "--rewardbench", "data/rewardbench/filtered.jsonl",
                      "--max-per-subset", "1", "--out", str(tmp_path), "--sweep", "--alpha=0.5"])
    assert [r["alpha"] for r in rows] == [0.5] and _metric("expo_alpha.yaml") in rows[0]

"""The README's commands as a user runs them: through `rlhf.errors.run_main`, the wrapper of `train.py` and every
`python -m rlhf.*`, with the exit status and what lands on stdout/stderr checked.

validate evaluates exactly the checkpoint it is given (or the config's) and leaves the fit's files alone; ExPO's
command writes its settings and scorers refuse a checkpoint without them; each fit has its own finished wandb run;
a resume appends to the old metrics.csv and continues the same wandb run; evaluation outputs are never replaced.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf.align import compare as compare_policies
from rlhf.cli import reward_main
from rlhf.errors import run_main
from rlhf.eval import rewardbench
from rlhf.reward import expo, score
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]


def command(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `main` run as its command runs it."""
    capsys.readouterr()
    try:
        run_main(main, [str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _csv(save_dir: Path) -> tuple[str, ...]:
    return ("--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={save_dir}",
            "--trainer.logger.name=csv", "--trainer.logger.version=v0", "--trainer.log_every_n_steps=1")


def _wandb(save_dir: Path) -> tuple[str, ...]:
    return ("--trainer.logger+=lightning.pytorch.loggers.WandbLogger", f"--trainer.logger.save_dir={save_dir}",
            "--trainer.logger.offline=true", "--trainer.logger.project=rlhf-tests")


@dataclass
class Runs:
    root: Path
    s1: Path  # checkpoint of a 2-step mse fit
    s2: Path  # checkpoint of a 2-step scaled-BT fit initialised from s1, logged to CSV
    s2_args: list[str]


@pytest.fixture(scope="module")
def runs(tiny_llama_dir, synthetic_dir, tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("commands")
    reward_main(["fit", *_args(tiny_llama_dir, synthetic_dir, root / "s1", "mse")])
    s2_args = _args(tiny_llama_dir, synthetic_dir, root / "s2", "scaled_bt", (f"--model.init_from={root / 's1' / 'checkpoint'}", *_csv(root / "s2")))
    reward_main(["fit", *s2_args])
    return Runs(root, root / "s1" / "checkpoint", root / "s2" / "checkpoint", s2_args)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _trained(cli) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in cli.model.model.named_parameters() if p.requires_grad}


def test_validate_evaluates_exactly_the_checkpoint_and_keeps_the_fit_files(runs, capsys):
    before = _files(runs.s2.parent)
    stored = load_file(str(runs.s2 / "model.safetensors"))
    for extra in ([f"--ckpt_path={runs.s2}"], []):  # the directory, as resume takes it; by default the config's checkpoint
        cli = reward_main(["validate", *runs.s2_args, *extra])
        got = _trained(cli)
        assert got.keys() == stored.keys() and all(torch.equal(got[k], stored[k]) for k in stored)  # not init_from's (stage 1)
        assert f"validate: evaluating the trained weights of {runs.s2} (step 2)" in capsys.readouterr().out
    assert _files(runs.s2.parent) == before  # the fit's metrics.csv and config.yaml are untouched
    code, _, err = command(reward_main, ["validate", *runs.s2_args, f"--ckpt_path={runs.root / 'none'}"], capsys)
    assert (code, err) == (1, f"error: no checkpoint at {runs.root / 'none'} (expected a directory holding model.safetensors)\n")


def test_expo_command_writes_its_settings_and_scorers_refuse_a_checkpoint_without(runs, tmp_path, capsys):
    out = tmp_path / "expo"
    code, printed, _ = command(expo.main, ["--weak", runs.s1, "--strong", runs.s2, "--alpha", "0.52", "--out", out], capsys)
    assert code == 0 and (out / "config.yaml").read_text() == (runs.s2 / "config.yaml").read_text()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "Tell me about the cat.", "response": "The cat is soft."}) + "\n")
    code, printed, _ = command(score.main, ["--model", out, "--input", rows, "--output", tmp_path / "a.jsonl"], capsys)
    assert code == 0 and json.loads(printed)["max_length"] == 256  # the training config's, not the 4096 default
    (out / "config.yaml").unlink()
    refusal = f"error: {out}: no config.yaml, so the template and max_length the reward model was trained with are unknown; " \
              "copy the training run's config.yaml next to its weights\n"
    assert command(score.main, ["--model", out, "--input", rows, "--output", tmp_path / "b.jsonl"], capsys)[::2] == (1, refusal)
    assert command(rewardbench.main, ["--checkpoint", out, "--max-per-subset", "1", "--out", tmp_path / "rb"], capsys)[::2] == (1, refusal)
    assert not (tmp_path / "b.jsonl").exists() and not (tmp_path / "rb").exists()


def test_each_fit_has_its_own_finished_wandb_run(tiny_llama_dir, synthetic_dir, tmp_path):
    import wandb

    for name in ("stage1", "stage2"):
        reward_main(["fit", *_args(tiny_llama_dir, synthetic_dir, tmp_path / name, "bt", ("--trainer.max_steps=1", *_csv(tmp_path / name), *_wandb(tmp_path / name)))])
        assert wandb.run is None  # finished when its command ended
    for name in ("stage1", "stage2"):
        assert len(list((tmp_path / name / "wandb").glob("offline-run-*"))) == 1


def test_resume_appends_to_the_metrics_and_continues_the_wandb_run(tiny_llama_dir, synthetic_dir, tmp_path):
    args = _args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", (*_csv(tmp_path), *_wandb(tmp_path)))
    reward_main(["fit", *args])
    first_id = json.loads((tmp_path / "checkpoint" / "loggers.json").read_text())["wandb_run_ids"]
    reward_main(["fit", *args, "--trainer.max_steps=4", f"--ckpt_path={tmp_path / 'checkpoint'}"])
    with (tmp_path / "csv" / "v0" / "metrics.csv").open() as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert steps == [0, 1, 2, 3]
    assert json.loads((tmp_path / "checkpoint" / "loggers.json").read_text())["wandb_run_ids"] == first_id
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    # offline-run-<date>_<time>-<id>, plus "-1" when the resumed run starts within the same second as the first
    assert len(runs) == 2 and {r.name.split("-")[3] for r in runs} == set(first_id)


def test_evaluation_outputs_are_never_replaced(runs, synthetic_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps({"id": str(i), "subset": "alpacaeval-easy", "score_chosen": 1.0, "score_rejected": float(i)}) + "\n" for i in range(3)))
    for name in ("a", "b"):  # each default output directory is the model's own
        assert command(rewardbench.main, ["--scores", scores, "--name", name], capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "rewardbench").iterdir()) == ["a", "b"]
    code, _, err = command(rewardbench.main, ["--scores", scores, "--name", "a"], capsys)
    assert (code, err) == (1, f"error: runs/rewardbench/a/rewardbench.json already holds RewardBench results; give another output path, or --overwrite to replace them\n")
    assert command(rewardbench.main, ["--scores", scores, "--name", "a", "--overwrite"], capsys)[0] == 0

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "Tell me about the cat.", "response": "The cat is soft."}) + "\n")
    assert command(score.main, ["--model", runs.s2, "--input", rows, "--output", "out.jsonl"], capsys)[0] == 0
    written = (tmp_path / "out.jsonl").read_text()
    code, _, err = command(score.main, ["--model", runs.s2, "--input", rows, "--output", "out.jsonl"], capsys)
    assert (code, err) == (1, "error: out.jsonl already holds scores; give another output path, or --overwrite to replace them\n")
    assert (tmp_path / "out.jsonl").read_text() == written

    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "compare.json").write_text("{}")
    code, _, err = command(compare_policies.main, ["--reward", runs.s2, "--prompts", synthetic_dir / "preference_val.jsonl", "--out", "cmp"], capsys)
    assert (code, err) == (1, "error: cmp/compare.json already holds a policy comparison; give another output path, or --overwrite to replace them\n")


def test_inputs_are_checked_before_any_model_loads(runs, tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(score, "load_scorer", no_model)
    missing = tmp_path / "nope.jsonl"
    assert command(score.main, ["--model", runs.s2, "--input", missing, "--output", tmp_path / "o.jsonl"], capsys)[::2] == (1, f"error: {missing}: no such file\n")
    monkeypatch.setattr("rlhf.training.checkpoint.load_reward_model", no_model)
    code, _, err = command(rewardbench.main, ["--checkpoint", runs.s2, "--data", missing, "--out", tmp_path / "rb"], capsys)
    assert (code, err) == (1, f"error: {missing}: no such file\n")


def test_traceback_on_request_and_for_unexpected_errors(runs, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope.jsonl"
    argv = ["--model", runs.s2, "--input", missing, "--output", tmp_path / "o.jsonl"]
    with pytest.raises(FileNotFoundError):
        run_main(score.main, [*map(str, argv), "--traceback"])
    monkeypatch.setenv("RLHF_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        run_main(score.main, list(map(str, argv)))
    monkeypatch.delenv("RLHF_TRACEBACK")

    def bug(argv):
        return {}["key"] + 1  # a KeyError raised by a bug, not by a `raise`: keeps its traceback

    with pytest.raises(KeyError):
        run_main(bug, [])

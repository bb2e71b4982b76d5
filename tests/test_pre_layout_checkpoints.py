"""Artefacts written by the code before the package was laid out by capability still load with the new code and give
the same rewards, and a run checkpointed then resumes.

`tests/fixtures/pre_layout/` was made by its `make_fixtures.py` at commit 8912f6b (old module paths: `rlhf.checkpoint`,
`rlhf.expo`, `rlhf.export`, `rlhf.score`, `rlhf.schedules`, ...): a tiny random Llama, a stage-1 (MSE) and a stage-2
(scaled BT, with `resume.ckpt`) checkpoint, two ExPO checkpoints (the fit's callback and `python -m rlhf.expo`), a
merged and an adapter export, and `rewards.json`, what the old `rlhf.score.score_file` gave for `data/texts.jsonl` from
each. This file uses only the new paths (an old one raises here: pyproject turns its FutureWarning into an error).

The fixtures were built in a temporary directory since deleted, and store absolute paths into it (`generated_in`): the
backbone `name_or_path` of model.safetensors' metadata and of the adapter's spec, and the data, checkpoint and callback
paths of config.yaml. Each test works on a copy in tmp_path and relocates it as the code allows: the base is passed
explicitly (`name_or_path` of `load_reward_model` and `load_exported_adapter`; `rlhf.reward.score` has no such
option, so it scores only the self-contained HF export), and the resume replaces the old root in the copied config.yaml.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rlhf.cli import reward_main
from rlhf.data.encode import Encoder, EncodeStats
from rlhf.eval.score_pairs import pad_id_of, read_eval_settings, score_sequences
from rlhf.models.backbone import load_tokenizer
from rlhf.reward.expo import ExpoCheckpoint, extrapolate_checkpoints
from rlhf.reward.export import export_adapter, export_hf, load_exported_adapter
from rlhf.reward.score import score_file
from rlhf.training.checkpoint import load_reward_model, read_meta
from rlhf.training.schedules import WarmupConstantLR

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pre_layout"
RECORD = json.loads((FIXTURES / "rewards.json").read_text())
TOL = 1e-5  # same thread count and batch size as the old scoring; in practice they agree to float32 rounding

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def moved(tmp_path) -> Path:
    """The fixtures copied to a new place (the generator script left out)."""
    root = tmp_path / "moved"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("make_fixtures.py", "__pycache__"))
    return root


def _rewards(model, tokenizer, settings, root: Path) -> list[float]:
    """What `rlhf.reward.score.score_file` computes for `data/texts.jsonl` (same encoding, batch size, reward slot)."""
    encoder, stats = Encoder(tokenizer, settings.template, settings.max_length), EncodeStats()
    rows = [json.loads(line) for line in (root / RECORD["texts"]).read_text().splitlines()]
    sequences = [s for row in rows for s in encoder.encode(row["prompt"], [row["response"]], "truncate", stats)]
    outputs = score_sequences(model, sequences, pad_id_of(tokenizer), RECORD["score_batch_size"], all_outputs=True)
    return model.reward(outputs).tolist()


def _assert_rewards(got: list[float], name: str) -> None:
    assert torch.get_num_threads() == RECORD["torch_threads"]
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(RECORD["rewards"][name], dtype=torch.float64),
                               rtol=0, atol=TOL, msg=lambda m: f"{name}: {m}")


def _old(path: str) -> str:
    return f"{RECORD['generated_in']}/{path}"


@pytest.mark.parametrize("name", ["s1", "s2", "s2-expo", "expo"])
def test_old_checkpoint_gives_the_old_rewards(name, moved):
    directory, base = moved / RECORD["artefacts"][name], str(moved / "base")
    meta = read_meta(directory)
    assert meta["backbone"]["name_or_path"] == _old("base") and not Path(_old("base")).exists()  # stored path is gone
    model = load_reward_model(directory, name_or_path=base)
    _assert_rewards(_rewards(model, load_tokenizer(base), read_eval_settings(directory), moved), name)


def test_old_adapter_export_gives_the_old_rewards(moved):
    directory, base = moved / "export-adapter", str(moved / "base")
    assert json.loads((directory / "rlhf_reward_model.json").read_text())["backbone"]["name_or_path"] == _old("base")
    model = load_exported_adapter(directory, name_or_path=base)
    _assert_rewards(_rewards(model, load_tokenizer(base), read_eval_settings(directory), moved), "export-adapter")


def test_old_hf_export_scores_with_the_new_score_command(moved, tmp_path):
    # self-contained (weights, tokenizer, config.yaml): the new `rlhf.reward.score` end to end, nothing relocated
    out = tmp_path / "scores.jsonl"
    summary = score_file(str(moved / "export-hf"), str(moved / RECORD["texts"]), str(out), batch_size=RECORD["score_batch_size"])
    assert summary["rows"] == len(RECORD["rewards"]["export-hf"]) and summary["truncated"] == 0
    _assert_rewards([json.loads(line)["reward"] for line in out.read_text().splitlines()], "export-hf")


def test_new_expo_and_exports_of_an_old_checkpoint_match_the_old_ones(moved, tmp_path):
    """The new ExPO and export code, applied to the old s2 (and s1) checkpoint, give what the old code's outputs give."""
    base, s1, s2 = str(moved / "base"), moved / "s1/checkpoint", moved / "s2/checkpoint"
    alpha = read_meta(moved / "expo")["expo"]["alpha"]
    expo = extrapolate_checkpoints(str(s1), str(s2), str(tmp_path / "expo"), alpha).parent
    _assert_rewards(_rewards(load_reward_model(expo, name_or_path=base), load_tokenizer(base), read_eval_settings(expo), moved), "expo")
    adapter = export_adapter(s2, tmp_path / "adapter", name_or_path=base)
    model = load_exported_adapter(adapter, name_or_path=base)
    _assert_rewards(_rewards(model, load_tokenizer(base), read_eval_settings(adapter), moved), "export-adapter")
    hf = export_hf(s2, tmp_path / "hf", name_or_path=base)
    score_file(str(hf), str(moved / RECORD["texts"]), str(tmp_path / "hf.jsonl"), batch_size=RECORD["score_batch_size"])
    _assert_rewards([json.loads(line)["reward"] for line in (tmp_path / "hf.jsonl").read_text().splitlines()], "export-hf")


def test_old_run_resumes_with_the_new_code(moved, monkeypatch):
    """`fit --config <old checkpoint>/config.yaml --ckpt_path <old checkpoint>` continues the old run for a third step:
    its optimizer, scheduler, data position and RNG from the old resume.ckpt, the model as the old code's own resume
    left it (rewards of the checkpoint and of the ExPO its callback writes). The old config names moved classes
    (`rlhf.expo.ExpoCheckpoint`, `rlhf.schedules.WarmupConstantLR`): they load as the new ones, with the FutureWarning."""
    checkpoint, base = moved / "s2/checkpoint", str(moved / "base")
    config = checkpoint / "config.yaml"
    text = config.read_text()
    assert "class_path: rlhf.expo.ExpoCheckpoint" in text and "class_path: rlhf.schedules.WarmupConstantLR" in text
    assert RECORD["commit"].startswith("8912f6b") and read_meta(checkpoint)["global_step"] == 2
    config.write_text(text.replace(RECORD["generated_in"], str(moved)))
    for old in ("rlhf.expo", "rlhf.schedules"):  # imported again here, so their warning shows whatever ran before
        monkeypatch.delitem(sys.modules, old, raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cli = reward_main(["fit", "--config", str(config), "--trainer.max_steps=3", "--ckpt_path", str(checkpoint)])
    moved_warnings = {str(w.message) for w in seen if w.category is FutureWarning and " moved to " in str(w.message)}
    assert moved_warnings == {"rlhf.expo moved to rlhf.reward.expo; use the new path",
                              "rlhf.schedules moved to rlhf.training.schedules; use the new path"}
    assert any(type(cb) is ExpoCheckpoint for cb in cli.trainer.callbacks)
    assert type(cli.trainer.lr_scheduler_configs[0].scheduler) is WarmupConstantLR
    assert cli.trainer.global_step == 3 and read_meta(checkpoint)["global_step"] == 3
    tokenizer, settings = load_tokenizer(base), read_eval_settings(checkpoint)
    _assert_rewards(_rewards(load_reward_model(checkpoint), tokenizer, settings, moved), "s2-resumed")
    _assert_rewards(_rewards(load_reward_model(moved / "s2/checkpoint-expo"), tokenizer, settings, moved), "s2-resumed-expo")

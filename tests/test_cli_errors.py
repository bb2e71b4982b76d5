"""The README's bad-input table again, all 38 rows, each as a command line: `train.py`, `align.py`, `python -m
rlhf.reward.score` or `python -m rlhf.eval.rewardbench` run through `rlhf.errors.run_main` (what their `__main__` does) must print exactly one line,
`error: <the table's message>`, and exit with status 1 (2 for a parse error), with no traceback.

The inputs are the ones `tests/test_bad_inputs.py` builds (its module fixture and helpers); the rows are read from
README.md, so the table, the in-process test and this one cannot drift apart. A last test runs the real
interpreter on a few commands, to check that each `__main__` goes through `run_main`.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from rlhf.cli import align_main, reward_main
from rlhf.eval import rewardbench
from rlhf.reward import score
from tests.test_bad_inputs import PAIR, RATING, Env, _a_file, _config, _dir, _jsonl, _other_backbone, _pickled_resume_file, \
    _plain_safetensors, _raw, _small_vocab_backbone, env, readme_rows  # noqa: F401  (env: the module fixture)
from tests.test_commands import command
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]


def _fit(e: Env, *extra: str, loss: str = "bt") -> tuple[Callable, list[str]]:
    return reward_main, ["fit", *_args(e.tiny, e.synthetic, e.tmp / "cmd", loss, ("--trainer.max_steps=1", *extra))]


def _train_file(e: Env, path: Path, loss: str = "bt") -> tuple[Callable, list[str]]:
    return _fit(e, f"--data.train_path={path}", loss=loss)


def _align(e: Env, *extra: str) -> tuple[Callable, list[str]]:
    return align_main, ["fit", f"--model.backbone.name_or_path={e.tiny}", "--model.reward=rlhf.align.rewards.CharFrequencyReward",
                        f"--data.path={e.synthetic / 'preference_train.jsonl'}", "--trainer.max_steps=1", "--trainer.logger=false",
                        "--trainer.accelerator=cpu", f"--trainer.default_root_dir={e.tmp / 'align'}", *extra]


def _resume(e: Env, ckpt: Path, *extra: str) -> tuple[Callable, list[str]]:
    return reward_main, ["fit", *_args(e.tiny, e.synthetic, e.tmp / "resumed-cmd", "bt", extra), f"--ckpt_path={ckpt}"]


def _score(e: Env, path: Path, output: Path | None = None) -> tuple[Callable, list[str]]:
    return score.main, ["--model", str(e.tmp / "no-model"), "--input", str(path), "--output", str(output or e.tmp / "scored-cmd.jsonl")]


ROW = b'{"prompt": "Tell me about the cat.", "response": "A cat."}\n'
COMMANDS: dict[str, Callable[[Env], tuple[Callable, list[str]]]] = {
    "Preference strength outside -3..3": lambda e: _train_file(e, _jsonl(e, "p1.jsonl", [PAIR, {**PAIR, "preference_strength": 5}])),
    "Pair row without a response": lambda e: _train_file(e, _jsonl(e, "p2.jsonl", [{k: v for k, v in PAIR.items() if k != "response_2"}])),
    "Line that is not JSON": lambda e: _train_file(e, _jsonl(e, "p3.jsonl", [PAIR, '{"prompt": "x",'])),
    "Rating outside 0..4": lambda e: _train_file(e, _jsonl(e, "r1.jsonl", [{**RATING, "helpfulness": 7}]), loss="mse"),
    "Data file that does not exist": lambda e: _train_file(e, e.tmp / "nope.jsonl"),
    "Data file of an unknown type": lambda e: _train_file(e, _jsonl(e, "p.csv", [PAIR])),
    "Training file with no usable pair (empty, or all dropped)": lambda e: _train_file(e, _jsonl(e, "p4.jsonl", [{**PAIR, "preference_strength": 0}])),
    "Prompt row with an empty prompt (align.py)": lambda e: _align(e, f"--data.path={_jsonl(e, 'q.jsonl', [{'prompt': ' '}])}", "--data.split=null"),
    "Unknown loss name": lambda e: _fit(e, "--model.loss=hinge"),
    "Unknown key in a config file": lambda e: (reward_main, ["fit", "--config", str(_config(e, f"model:\n  backbone:\n    name_or_path: {e.tiny}\n  lr: 0.1\n"))]),
    "Config file that does not exist": lambda e: (reward_main, ["fit", "--config", str(e.tmp / "nope.yaml")]),
    "Head size with no attribute layout": lambda e: _fit(e, "--model.head.n_out=3"),
    "Loss that does not fit the data module": lambda e: (reward_main, [a.replace("--model.loss=bt", "--model.loss=mse") for a in _fit(e)[1]]),
    "Sampling temperature 0 (align.py)": lambda e: _align(e, "--model.generation.temperature=0"),
    "`init_from` a checkpoint with another head size": lambda e: _fit(e, f"--model.init_from={e.rm}", "--model.head.n_out=5"),
    "`init_from` a checkpoint of another backbone": lambda e: _fit(e, f"--model.init_from={e.rm}", f"--model.backbone.name_or_path={_other_backbone(e)}"),
    "`init_from` a checkpoint with another LoRA rank": lambda e: _fit(e, f"--model.init_from={e.rm}", "--model.backbone.lora.r=4"),
    "Checkpoint directory that does not exist": lambda e: (rewardbench.main, ["--checkpoint", str(e.tmp / "missing"), "--out", str(e.tmp / "rb")]),
    "safetensors file that is not a checkpoint of this repo": lambda e: (rewardbench.main, ["--checkpoint", str(_plain_safetensors(e)), "--out", str(e.tmp / "rb")]),
    "Tokenizer with more tokens than the model's embedding": lambda e: _fit(e, f"--model.backbone.name_or_path={_small_vocab_backbone(e)}"),
    "`--ckpt_path` directory without resume state": lambda e: _resume(e, e.tmp / "missing"),
    "`--ckpt_path` whose resume.ckpt holds pickled code": lambda e: _resume(e, _pickled_resume_file(e)),
    "`--ckpt_path` of a run with another head size": lambda e: _resume(e, e.rm, "--model.head.n_out=5"),
    "Bytes that are not UTF-8 (rlhf.reward.score)": lambda e: _score(e, _raw(e, "latin1.jsonl", ROW + b'{"prompt": "caf\xe9", "response": "x"}\n')),
    "gzip file named .jsonl (rlhf.reward.score)": lambda e: _score(e, _raw(e, "packed.jsonl", gzip.compress(ROW))),
    "Duplicate key in a row (train.py)": lambda e: _train_file(e, _jsonl(e, "dup.jsonl", ['{"prompt": "P", "response_1": "A", "response_2": "B", "preference_strength": 2, "preference_strength": -2}'])),
    "NaN or Infinity literal (rlhf.eval.rewardbench --scores)": lambda e: (rewardbench.main, ["--scores", str(_jsonl(e, "nan.jsonl", ['{"id": 1, "subset": "alpacaeval-easy", "score_chosen": NaN, "score_rejected": 0}'])), "--out", str(e.tmp / "rb-cmd")]),
    "Unpaired surrogate in a text field (rlhf.reward.score)": lambda e: _score(e, _jsonl(e, "surrogate.jsonl", ['{"prompt": "hi \\ud800", "response": "x"}'])),
    "A directory given as a data file (rlhf.reward.score)": lambda e: _score(e, _dir(e, "rows.jsonl")),
    "Empty or whitespace-only data file (rlhf.reward.score)": lambda e: _score(e, _raw(e, "blank.jsonl", b"  \n\n")),
    "Pretty-printed JSON array in a .jsonl (rlhf.reward.score)": lambda e: _score(e, _raw(e, "array.jsonl", b'[\n  ' + ROW.strip() + b'\n]\n')),
    "Prompt of zero-width and space characters only (align.py)": lambda e: _align(e, f"--data.path={_jsonl(e, 'zw.jsonl', [{'prompt': chr(0x200b) + ' ' + chr(0x3000) + chr(0x200d)}])}", "--data.split=null"),
    "`rlhf.reward.score --output` equal to `--input`": lambda e: _score(e, _raw(e, "same.jsonl", ROW), e.tmp / "same.jsonl"),
    "`rlhf.reward.score --output` that cannot be written": lambda e: _score(e, _raw(e, "ok.jsonl", ROW), _a_file(e) / "scored.jsonl"),
    "`checkpoint.dirpath` that cannot be written": lambda e: _fit(e, f"--checkpoint.dirpath={_a_file(e) / 'ckpt'}"),
    "New run into a finished checkpoint of another config": lambda e: (reward_main, ["fit", *_args(e.tiny, e.synthetic, e.tmp / "rm", "bt", ("--trainer.max_steps=3",))]),
    "hh-rlhf pair whose transcripts differ before the last reply": lambda e: _train_file(e, _jsonl(e, "hh.jsonl", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hey\n\nAssistant: Go"}])),
    "Conversational message with an unknown role": lambda e: _train_file(e, _jsonl(e, "c.jsonl", [{"chosen": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "A"}],
                                                                                                  "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "B"}]}])),
}
PREFIX_ONLY = {"`--ckpt_path` whose resume.ckpt holds pickled code", "New run into a finished checkpoint of another config"}  # the table shows the start
ROWS = {kind: (error, message) for kind, error, message in readme_rows()}


def test_every_table_row_has_a_command():
    assert set(COMMANDS) == set(ROWS) and len(COMMANDS) == 38


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_bad_input_as_a_command_line(kind, env, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    main, argv = COMMANDS[kind](env)
    error, message = ROWS[kind]
    code, _, err = command(main, argv, capsys)
    assert code == (2 if error == "exit 2" else 1), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    expected = "error: " + message.replace("<tmp>", str(env.tmp))
    assert err.startswith(expected) if kind in PREFIX_ONLY else err == expected + "\n", f"\n{err}{expected}"


def test_real_commands_print_one_line(tmp_path):
    """Through the interpreter, as a user types them: an expected error is one line and status 1 (or 2 to parse)."""
    missing = tmp_path / "nope.jsonl"
    cases = {
        ("-m", "rlhf.reward.score", "--model", str(tmp_path), "--input", str(missing), "--output", str(tmp_path / "o.jsonl")): (1, f"error: {missing}: no such file"),
        ("train.py", "fit", "--config", str(tmp_path / "nope.yaml")): (2, f"error: Parser key \"config\": File does not exist: '{tmp_path / 'nope.yaml'}'"),
        ("-m", "rlhf.reward.expo", "--weak", "a"): (2, "error: the following arguments are required: --strong, --out (see python -m rlhf.reward.expo --help)"),
    }
    env = {**os.environ, "WANDB_MODE": "offline"}
    procs = {case: subprocess.Popen([sys.executable, *case], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for case in cases}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, err) == (cases[case][0], cases[case][1] + "\n"), (case, out, err)

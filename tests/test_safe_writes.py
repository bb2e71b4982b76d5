"""Writes that cannot lose work, and the input-file rules every reader shares, through the command lines.

- A full disk (RLIMIT_FSIZE in a subprocess) while `rlhf.reward.score` writes leaves no output and no temporary file, and
  `--output` equal to `--input` is refused before the input is touched.
- The atomic helper keeps the old file when the writer fails; a failed resume-state save leaves no `.resume.ckpt.tmp`.
- A second fit of the same config into a finished checkpoint is refused (the checkpoint is left as it was) unless
  `--checkpoint.overwrite true`.
- Each input rule gives the same error through every reader (`rlhf.reward.score`, `rlhf.eval.rewardbench --data/--scores`,
  train.py's and align.py's data modules); a BOM and `.jsonl.gz` are read like the plain file.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.cli import reward_main
from rlhf.data.datamodules import PreferenceDataModule
from rlhf.data.prompts import PromptDataModule
from rlhf.eval import rewardbench
from rlhf.models.heads import HeadSpec
from rlhf.reward import score
from rlhf.training.checkpoint import read_meta
from tests.test_reward_module import _args
from tests.test_serve import _save_rm

REPO = Path(__file__).resolve().parents[1]
ROWS = [{"prompt": f"Tell me about the cat number {i}.", "response": "The cat is soft. " * 3} for i in range(40)]


@pytest.fixture(scope="module")
def rm(tiny_llama_dir, tmp_path_factory) -> Path:
    return _save_rm(tiny_llama_dir, tmp_path_factory.mktemp("safe-rm") / "checkpoint", HeadSpec(), seed=5)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _score_with_disk_limit(rm: Path, inp: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    def limit_files() -> None:  # writes past `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "rlhf.reward.score", "--model", str(rm), "--input", str(inp), "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, preexec_fn=limit_files, capture_output=True, text=True, timeout=300)


def test_full_disk_leaves_no_half_written_output_and_input_is_never_the_output(rm, tmp_path):
    inp = _jsonl(tmp_path / "rows.jsonl", ROWS)
    size = inp.stat().st_size
    before = inp.read_bytes()
    done = _score_with_disk_limit(rm, inp, tmp_path / "out" / "scored.jsonl", size + 500)  # the output is longer than the input
    assert done.returncode != 0 and "File too large" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out" / "scored.jsonl").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # the temporary file was removed too

    same = _score_with_disk_limit(rm, inp, inp, size + 500)
    assert same.returncode != 0 and "is also the input" in same.stderr, same.stderr[-2000:]
    assert inp.read_bytes() == before


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from rlhf.files import write_with

    target = tmp_path / "results.json"
    target.write_text('{"old": true}\n')

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"new": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_with(target, half_then_fail)
    assert target.read_text() == '{"old": true}\n' and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_failed_resume_state_save_leaves_no_partial_file(tiny_llama_dir, synthetic_dir, tmp_path, monkeypatch):
    from lightning.pytorch import Trainer

    def partial_save(self, path, weights_only=False, storage_options=None):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Trainer, "save_checkpoint", partial_save)
    with pytest.raises(OSError, match="No space left"):
        reward_main(["fit", *_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--trainer.max_steps=1",))])
    assert not list((tmp_path / "checkpoint").glob("*.tmp*")) and not (tmp_path / "checkpoint" / "resume.ckpt").exists()


def test_a_finished_checkpoint_is_kept_unless_overwrite_is_given(tiny_llama_dir, synthetic_dir, tmp_path):
    args = ["fit", *_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--trainer.max_steps=1",))]
    reward_main(args)
    ckpt = tmp_path / "checkpoint"
    weights = (ckpt / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match=r"holds a finished checkpoint of this config at step 1, later than this run's start "
                                              r"\(step 0\); not overwriting it\. Resume it with --ckpt_path .*--checkpoint\.overwrite true"):
        reward_main(args)
    assert (ckpt / "model.safetensors").read_bytes() == weights
    reward_main([*args[:-1], "--trainer.max_steps=2", "--checkpoint.overwrite=true"])
    assert read_meta(ckpt)["global_step"] == 2


ROW = b'{"prompt": "Tell me about the cat.", "response": "A cat.", "response_1": "A", "response_2": "B", "preference_strength": 2, "id": 1, "subset": "alpacaeval-easy", "chosen": "A", "rejected": "B", "score_chosen": 1, "score_rejected": 0}'
RULES = {  # name: (file name, bytes, message fragment)
    "not-utf8": ("latin1.jsonl", ROW + b'\n{"prompt": "caf\xe9"}\n', "line 2: not valid UTF-8 (byte 0xe9 at column 16)"),
    "gzip-named-jsonl": ("packed.jsonl", gzip.compress(ROW + b"\n"), "packed.jsonl: is gzip-compressed"),
    "duplicate-key": ("dup.jsonl", ROW[:-1] + b', "preference_strength": -2}\n', "line 1: duplicate key 'preference_strength'"),
    "nan": ("nan.jsonl", ROW[:-1] + b', "x": NaN}\n', "line 1: NaN is not valid JSON"),
    "infinity": ("inf.jsonl", ROW[:-1] + b', "x": -Infinity}\n', "line 1: -Infinity is not valid JSON"),
    "surrogate": ("sur.jsonl", ROW.replace(b"the cat.", b"the cat \\udc00") + b"\n", "line 1, field 'prompt': unpaired surrogate \\udc00"),
    "directory": ("dir.jsonl", None, "dir.jsonl: is a directory"),
    "empty": ("empty.jsonl", b" \n\t\n", "empty.jsonl: empty file (no rows)"),
    "json-array": ("array.jsonl", b"[\n  " + ROW + b"\n]\n", "JSON Lines needs one JSON object per line"),
}
READERS = {
    "rlhf.reward.score": lambda p, t, tiny: score.main(["--model", str(t / "no-model"), "--input", str(p), "--output", str(t / "o.jsonl")]),
    "rlhf.eval.rewardbench --data": lambda p, t, tiny: rewardbench.main(["--checkpoint", str(t / "no-model"), "--data", str(p), "--out", str(t / "rb")]),
    "rlhf.eval.rewardbench --scores": lambda p, t, tiny: rewardbench.main(["--scores", str(p), "--out", str(t / "rb")]),
    "train.py data": lambda p, t, tiny: PreferenceDataModule(train_path=str(p), val_path=str(p), tokenizer=str(tiny)).setup("fit"),
    "align.py prompts": lambda p, t, tiny: PromptDataModule(path=str(p), split=None, tokenizer=str(tiny)).setup("fit"),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("rule", list(RULES))
def test_every_reader_applies_the_same_input_rules(rule, reader, tiny_llama_dir, tmp_path):
    name, data, fragment = RULES[rule]
    path = tmp_path / name
    path.mkdir() if data is None else path.write_bytes(data)
    with pytest.raises(ValueError if rule not in ("directory",) else IsADirectoryError) as caught:
        READERS[reader](path, tmp_path, tiny_llama_dir)
    assert str(caught.value).startswith(str(path)) and fragment in str(caught.value), str(caught.value)


def test_bom_and_jsonl_gz_read_like_the_plain_file(rm, tmp_path):
    plain = _jsonl(tmp_path / "plain.jsonl", ROWS[:3])
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    outputs = []
    for name in ("plain.jsonl", "bom.jsonl", "rows.jsonl.gz"):
        score.main(["--model", str(rm), "--input", str(tmp_path / name), "--output", str(tmp_path / f"{name}.out")])
        outputs.append((tmp_path / f"{name}.out").read_text())
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0].splitlines()) == 3

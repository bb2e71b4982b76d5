"""The README's bad-input table, one test per row: each bad input goes through the path a user takes (the CLI, a data
module's setup, a module's configure_model, a resumed fit) and must stop with exactly the error the table shows.

`BAD_INPUTS` is the table: (kind, error type, message, trigger). `<tmp>` in a message stands for this module's
temporary directory. CLI parse errors exit with status 2 and print `error: <message>`; the table gives that message.
`test_readme_table_matches` checks that README.md lists the same rows in the same order.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from rlhf.cli import align_main, reward_main
from rlhf.data.datamodules import PreferenceDataModule, RatingDataModule
from rlhf.data.prompts import PromptDataModule
from rlhf.eval import rewardbench
from rlhf.reward import score
from rlhf.training.checkpoint import load_reward_model
from tests.test_reward_module import _args

REPO = Path(__file__).resolve().parents[1]
PAIR = {"prompt": "Tell me about the cat.", "response_1": "A", "response_2": "B", "preference_strength": -2}
RATING = {"prompt": "P", "response": "R", "helpfulness": 3, "correctness": 4, "coherence": 2, "complexity": 1, "verbosity": 0}


@dataclass
class Env:
    tmp: Path
    tiny: Path
    synthetic: Path
    rm: Path  # a 1-step reward-model run: checkpoint with resume.ckpt, 1-output head, LoRA r=8


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_llama_dir, synthetic_dir) -> Env:
    tmp = tmp_path_factory.mktemp("bad")
    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp / "rm", "bt", ("--trainer.max_steps=1",)), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return Env(tmp, tiny_llama_dir, synthetic_dir, tmp / "rm" / "checkpoint")


def _jsonl(env: Env, name: str, rows: list) -> Path:
    path = env.tmp / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _pairs(env: Env, train: Path) -> None:
    data = PreferenceDataModule(train_path=str(train), val_path=str(env.synthetic / "preference_val.jsonl"), tokenizer=str(env.tiny))
    data.setup("fit")
    data.train_dataloader()


def _ratings(env: Env, train: Path) -> None:
    RatingDataModule(train_path=str(train), val_path=str(env.synthetic / "ratings_val.jsonl"), tokenizer=str(env.tiny)).setup("fit")


def _rm(env: Env, *extra: str, out: str = "run") -> None:
    """train.py fit through the CLI, with the model built (configure_model) but no training step."""
    cli = reward_main(_args(env.tiny, env.synthetic, env.tmp / out, "bt", extra), run=False)
    cli.model.configure_model()


def _config(env: Env, text: str) -> Path:
    path = env.tmp / "bad.yaml"
    path.write_text(text)
    return path


def _other_backbone(env: Env) -> Path:
    """The tiny Llama with twice the hidden size (same tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = env.tmp / "wide-llama"
    config = json.loads((env.tiny / "config.json").read_text())
    LlamaForCausalLM(LlamaConfig(**{**config, "hidden_size": 64, "intermediate_size": 128})).save_pretrained(out)
    for f in env.tiny.iterdir():
        if "token" in f.name:
            shutil.copy(f, out / f.name)
    return out


def _small_vocab_backbone(env: Env) -> Path:
    """The tiny Llama's config with a 64-row embedding, next to the 105-token tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = env.tmp / "small-vocab-llama"
    config = json.loads((env.tiny / "config.json").read_text())
    LlamaForCausalLM(LlamaConfig(**{**config, "vocab_size": 64, "pad_token_id": 0})).save_pretrained(out)
    for f in env.tiny.iterdir():
        if "token" in f.name:
            shutil.copy(f, out / f.name)
    return out


def _wrong_data_for_loss(env: Env) -> None:
    cli = reward_main([a.replace("--model.loss=bt", "--model.loss=mse") for a in _args(env.tiny, env.synthetic, env.tmp / "mse", "bt")], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def _resume(env: Env, ckpt: Path, *extra: str) -> None:
    reward_main(["fit", *_args(env.tiny, env.synthetic, env.tmp / "resumed", "bt", extra), f"--ckpt_path={ckpt}"])


def _pickled_resume_file(env: Env) -> Path:
    out = env.tmp / "pickled"
    out.mkdir(exist_ok=True)
    torch.save({"state_dict": {}, "callback": print}, out / "resume.ckpt")  # a pickled function: code, not data
    return out


def _plain_safetensors(env: Env) -> Path:
    out = env.tmp / "plain"
    out.mkdir(exist_ok=True)
    save_file({"w": torch.zeros(2)}, str(out / "model.safetensors"))
    return out


def _dir(env: Env, name: str) -> Path:
    (env.tmp / name).mkdir(exist_ok=True)
    return env.tmp / name


def _raw(env: Env, name: str, data: bytes) -> Path:
    path = env.tmp / name
    path.write_bytes(data)
    return path


def _score(env: Env, path: Path, output: Path | None = None) -> None:
    """python -m rlhf.reward.score with a model that does not exist: the input and output must fail first, before any load."""
    score.main(["--model", str(env.tmp / "no-model"), "--input", str(path), "--output", str(output or env.tmp / "scored.jsonl")])


def _a_file(env: Env) -> Path:
    return _raw(env, "a-file", b"not a directory")


def _align(env: Env, *extra: str) -> None:
    align_main([f"--model.backbone.name_or_path={env.tiny}", "--model.reward=rlhf.align.rewards.CharFrequencyReward",
                f"--data.path={env.synthetic / 'preference_train.jsonl'}", *extra], run=False)


Trigger = Callable[[Env], object]
LITERAL = "typing.Literal['mse', 'bt', 'margin_bt', 'scaled_bt', 'mean_var']"
BAD_INPUTS: list[tuple[str, str, str, Trigger]] = [
    # data rows and files
    ("Preference strength outside -3..3", "BadRowError",
     "<tmp>/p1.jsonl, line 2, field 'preference_strength': expected an integer in -3..3, got 5",
     lambda e: _pairs(e, _jsonl(e, "p1.jsonl", [PAIR, {**PAIR, "preference_strength": 5}]))),
    ("Pair row without a response", "BadRowError", "<tmp>/p2.jsonl, line 1, field 'response_2': missing",
     lambda e: _pairs(e, _jsonl(e, "p2.jsonl", [{k: v for k, v in PAIR.items() if k != "response_2"}]))),
    ("Line that is not JSON", "BadRowError", "<tmp>/p3.jsonl, line 2: invalid JSON (Expecting property name enclosed in double quotes at column 16)",
     lambda e: _pairs(e, _jsonl(e, "p3.jsonl", [PAIR, '{"prompt": "x",']))),
    ("Rating outside 0..4", "BadRowError", "<tmp>/r1.jsonl, line 1, field 'helpfulness': expected an integer in 0..4, got 7",
     lambda e: _ratings(e, _jsonl(e, "r1.jsonl", [{**RATING, "helpfulness": 7}]))),
    ("Data file that does not exist", "FileNotFoundError", "<tmp>/nope.jsonl: no such file",
     lambda e: _pairs(e, e.tmp / "nope.jsonl")),
    ("Data file of an unknown type", "ValueError", "<tmp>/p.csv: unknown file type '.csv'; expected .jsonl or .parquet",
     lambda e: _pairs(e, _jsonl(e, "p.csv", [PAIR]))),
    ("Training file with no usable pair (empty, or all dropped)", "ValueError",
     "PreferenceDataModule: no examples left to load (all dropped or the file is empty)",
     lambda e: _pairs(e, _jsonl(e, "p4.jsonl", [{**PAIR, "preference_strength": 0}]))),
    ("Prompt row with an empty prompt (align.py)", "BadRowError",
     "<tmp>/q.jsonl, line 1, field 'prompt': expected a non-empty string, got an empty or whitespace-only string",
     lambda e: PromptDataModule(path=str(_jsonl(e, "q.jsonl", [{"prompt": " "}])), split=None, tokenizer=str(e.tiny)).setup("fit")),
    # input files: every reader (training, scoring, prompts, RewardBench) shares these rules, checked before any model loads
    ("Bytes that are not UTF-8 (rlhf.reward.score)", "BadRowError", "<tmp>/latin1.jsonl, line 2: not valid UTF-8 (byte 0xe9 at column 16)",
     lambda e: _score(e, _raw(e, "latin1.jsonl", b'{"prompt": "Tell me about the cat.", "response": "A cat."}\n{"prompt": "caf\xe9", "response": "x"}\n'))),
    ("gzip file named .jsonl (rlhf.reward.score)", "ValueError",
     "<tmp>/packed.jsonl: is gzip-compressed; name it packed.jsonl.gz (read directly) or decompress it",
     lambda e: _score(e, _raw(e, "packed.jsonl", gzip.compress(b'{"prompt": "Tell me about the cat.", "response": "A cat."}\n')))),
    ("Duplicate key in a row (train.py)", "BadRowError",
     "<tmp>/dup.jsonl, line 1: duplicate key 'preference_strength' (JSON keeps only the last; fix the row)",
     lambda e: _pairs(e, _jsonl(e, "dup.jsonl", ['{"prompt": "P", "response_1": "A", "response_2": "B", "preference_strength": 2, "preference_strength": -2}']))),
    ("NaN or Infinity literal (rlhf.eval.rewardbench --scores)", "BadRowError",
     "<tmp>/nan.jsonl, line 1: NaN is not valid JSON (NaN and Infinity are not numbers JSON allows)",
     lambda e: rewardbench.main(["--scores", str(_jsonl(e, "nan.jsonl", ['{"id": 1, "subset": "alpacaeval-easy", "score_chosen": NaN, "score_rejected": 0}'])), "--out", str(e.tmp / "rb")])),
    ("Unpaired surrogate in a text field (rlhf.reward.score)", "BadRowError",
     "<tmp>/surrogate.jsonl, line 1, field 'prompt': unpaired surrogate \\ud800 in text (not valid Unicode)",
     lambda e: _score(e, _jsonl(e, "surrogate.jsonl", ['{"prompt": "hi \\ud800", "response": "x"}']))),
    ("A directory given as a data file (rlhf.reward.score)", "IsADirectoryError", "<tmp>/rows.jsonl: is a directory, not a .jsonl file",
     lambda e: _score(e, _dir(e, "rows.jsonl"))),
    ("Empty or whitespace-only data file (rlhf.reward.score)", "BadRowError", "<tmp>/blank.jsonl: empty file (no rows)",
     lambda e: _score(e, _raw(e, "blank.jsonl", b"  \n\n")),),
    ("Pretty-printed JSON array in a .jsonl (rlhf.reward.score)", "BadRowError",
     "<tmp>/array.jsonl, line 1: invalid JSON (Expecting value at column 2); JSON Lines needs one JSON object per line (is this a pretty-printed JSON file?)",
     lambda e: _score(e, _raw(e, "array.jsonl", b'[\n  {"prompt": "Tell me about the cat.", "response": "A cat."}\n]\n'))),
    ("Prompt of zero-width and space characters only (align.py)", "BadRowError",
     "<tmp>/zw.jsonl, line 1, field 'prompt': expected a non-empty string, got an empty or whitespace-only string",
     lambda e: PromptDataModule(path=str(_jsonl(e, "zw.jsonl", [{"prompt": "\u200b \u3000\u200d"}])), split=None, tokenizer=str(e.tiny)).setup("fit")),
    # outputs: checked before any model loads; nothing is overwritten without being asked
    ("`rlhf.reward.score --output` equal to `--input`", "ValueError",
     "<tmp>/same.jsonl: is also the input <tmp>/same.jsonl; write the output elsewhere (the input would be lost)",
     lambda e: _score(e, _raw(e, "same.jsonl", b'{"prompt": "Tell me about the cat.", "response": "A cat."}\n'), e.tmp / "same.jsonl")),
    ("`rlhf.reward.score --output` that cannot be written", "NotADirectoryError",
     "<tmp>/a-file/scored.jsonl: cannot be written, <tmp>/a-file is a file, not a directory",
     lambda e: _score(e, _raw(e, "ok.jsonl", b'{"prompt": "Tell me about the cat.", "response": "A cat."}\n'), _a_file(e) / "scored.jsonl")),
    ("`checkpoint.dirpath` that cannot be written", "NotADirectoryError",
     "<tmp>/a-file/ckpt: cannot be written, <tmp>/a-file is a file, not a directory",
     lambda e: reward_main(["fit", *_args(e.tiny, e.synthetic, e.tmp / "unwritable", "bt", (f"--checkpoint.dirpath={_a_file(e) / 'ckpt'}",))])),
    ("New run into a finished checkpoint of another config", "FileExistsError",
     "<tmp>/rm/checkpoint holds a finished checkpoint from another config (hash ",
     lambda e: reward_main(["fit", *_args(e.tiny, e.synthetic, e.tmp / "rm", "bt", ("--trainer.max_steps=3",))])),
    # configs
    ("Unknown loss name", "exit 2", f'Parser key "model.loss": Expected a {LITERAL}. Got value: hinge',
     lambda e: _rm(e, "--model.loss=hinge")),
    ("Unknown key in a config file", "exit 2", "Subcommand 'fit' does not accept option 'model.lr'",
     lambda e: reward_main(["fit", "--config", str(_config(e, f"model:\n  backbone:\n    name_or_path: {e.tiny}\n  lr: 0.1\n"))])),
    ("Config file that does not exist", "exit 2", "Parser key \"config\": File does not exist: '<tmp>/nope.yaml'",
     lambda e: reward_main(["--config", str(e.tmp / "nope.yaml")], run=False)),
    ("Head size with no attribute layout", "ValueError", "head n_out must be one of [1, 5, 9], got 3",
     lambda e: _rm(e, "--model.head.n_out=3")),
    ("Loss that does not fit the data module", "TypeError",
     "loss 'mse' trains on ratings (RatingDataModule), but the data module gives preference pairs", _wrong_data_for_loss),
    ("Sampling temperature 0 (align.py)", "ValueError",
     "generation.temperature must be > 0, got 0.0",
     lambda e: _align(e, "--model.generation.temperature=0")),
    # checkpoints, backbones, tokenizers
    ("`init_from` a checkpoint with another head size", "ValueError", "init_from <tmp>/rm/checkpoint has a 1-output head, this model 5",
     lambda e: _rm(e, f"--model.init_from={e.rm}", "--model.head.n_out=5")),
    ("`init_from` a checkpoint of another backbone", "ValueError",
     "<tmp>/rm/checkpoint/model.safetensors: tensor 'backbone.base_model.model.layers.0.mlp.down_proj.lora_A.default.weight' "
     "has shape (16, 64), the model expects (16, 128)",
     lambda e: _rm(e, f"--model.init_from={e.rm}", f"--model.backbone.name_or_path={_other_backbone(e)}")),
    ("`init_from` a checkpoint with another LoRA rank", "ValueError",
     "init_from <tmp>/rm/checkpoint: its LoRA has r=16, alpha=32, this model r=4, alpha=32; set model.backbone.lora to match "
     "(an ExPO checkpoint has r and alpha doubled)",
     lambda e: _rm(e, f"--model.init_from={e.rm}", "--model.backbone.lora.r=4")),
    ("Checkpoint directory that does not exist", "FileNotFoundError",
     "no checkpoint at <tmp>/missing (expected a directory holding model.safetensors)",
     lambda e: load_reward_model(e.tmp / "missing")),
    ("safetensors file that is not a checkpoint of this repo", "ValueError",
     "<tmp>/plain/model.safetensors is not an rlhf checkpoint (no 'rlhf' metadata)",
     lambda e: load_reward_model(_plain_safetensors(e))),
    ("Tokenizer with more tokens than the model's embedding", "ValueError",
     "<tmp>/small-vocab-llama: the tokenizer has 105 tokens but the model's embedding table has 64 rows (a tokenizer of another model?)",
     lambda e: _rm(e, f"--model.backbone.name_or_path={_small_vocab_backbone(e)}")),
    # resuming
    ("`--ckpt_path` directory without resume state", "FileNotFoundError",
     "cannot resume: no resume.ckpt at <tmp>/missing (give the checkpoint directory of a run saved with "
     "checkpoint.save_resume_state=true)",
     lambda e: _resume(e, e.tmp / "missing")),
    ("`--ckpt_path` whose resume.ckpt holds pickled code", "UnpicklingError", "Weights only load failed.",
     lambda e: _resume(e, _pickled_resume_file(e))),
    ("`--ckpt_path` of a run with another head size", "ValueError",
     "resume.ckpt: tensor 'model.head.linear.weight' has shape (1, 32), the model expects (5, 32)",
     lambda e: _resume(e, e.rm, "--model.head.n_out=5")),
    # pair formats (rlhf.data.formats)
    ("hh-rlhf pair whose transcripts differ before the last reply", "BadRowError",
     "<tmp>/hh.jsonl, line 1, field 'rejected': mismatched shared turns: turn 1 differs from 'chosen' (1 vs 1 turns before the last reply)",
     lambda e: _pairs(e, _jsonl(e, "hh.jsonl", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hey\n\nAssistant: Go"}]))),
    ("Conversational message with an unknown role", "BadRowError",
     "<tmp>/c.jsonl, line 1, field 'chosen[1].role': unknown role 'bot'; expected 'user' or 'assistant'",
     lambda e: _pairs(e, _jsonl(e, "c.jsonl", [{"chosen": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "A"}],
                                               "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "B"}]}]))),
]


def _outcome(trigger: Trigger, env: Env, capsys) -> tuple[str, str]:
    """(error type, message with whitespace runs collapsed and the temporary directory written as <tmp>)."""
    try:
        trigger(env)
    except SystemExit as e:
        err = capsys.readouterr().err
        kind, text = f"exit {e.code}", err[err.rindex("error: ") + len("error: "):]
    except Exception as e:  # noqa: BLE001  (the type is what the test checks)
        kind, text = type(e).__name__, str(e)
    else:
        return "no error", ""
    return kind, " ".join(text.split()).replace(str(env.tmp), "<tmp>")


@pytest.mark.parametrize(("kind", "error", "message", "trigger"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(kind, error, message, trigger, env, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    got_error, got_message = _outcome(trigger, env, capsys)
    assert got_error == error, got_message
    assert got_message.startswith(message), f"\n{got_message}\n{message}"


def readme_rows() -> list[tuple[str, str, str]]:
    """The rows of README.md's bad-input table: (kind, error type, message)."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("<!-- bad-inputs -->"): text.index("<!-- /bad-inputs -->")]
    rows = []
    for line in table.splitlines():
        m = re.fullmatch(r"\| \d+ \| (.+) \| `(.+?)` \| `(.+)` \|", line)
        if m:
            rows.append((m[1], m[2], m[3]))
    return rows


def test_readme_table_matches():
    assert len(BAD_INPUTS) >= 15
    assert readme_rows() == [(kind, error, message) for kind, error, message, _ in BAD_INPUTS]

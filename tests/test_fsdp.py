"""FSDP2 on CPU: 2 gloo processes (ModelParallelStrategy + fully_shard) train 2 steps and match one process.

`loader.shuffle: false` holds on every rank: the repo's sampler gives rank r pairs r, r + 2, ..., so rank r's
micro-batch s holds pairs 4s + r, 4s + r + 2, and the single-process run, 4 pairs per batch in file order, sees the
same pairs per step. Scaled-BT is a mean over pairs and FSDP averages gradients over ranks, so
the rank-averaged loss of both steps (step 2 after one AdamW update) and the saved LoRA + head weights must agree.
A REINFORCE run (policy and reward model both sharded; generation with synced_gpus, packed RM scoring, chunked
log-probs) trains 2 steps over 2 processes and saves full (gathered) LoRA tensors; sampling makes it a smoke test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from rlhf.cli import reward_main
from tests.fsdp_worker import LossRecorder

REPO = Path(__file__).resolve().parents[1]


def _args(tiny_llama_dir, synthetic_dir, root: Path, batch_size: int) -> list[str]:
    return [
        f"--model.backbone.name_or_path={tiny_llama_dir}", "--model.backbone.attn_implementation=sdpa",
        "--model.backbone.lora.r=4", "--model.backbone.lora.target_modules=[q_proj,v_proj]",
        "--model.loss=scaled_bt", "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.01",
        "--trainer.max_steps=2", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={root}", f"--checkpoint.dirpath={root}/checkpoint", "--seed_everything=0",
        "--data=rlhf.data.datamodules.PreferenceDataModule", f"--data.train_path={synthetic_dir}/preference_train.jsonl",
        f"--data.val_path={synthetic_dir}/preference_val.jsonl", "--data.template.system=", "--data.max_length=256",
        f"--data.loader.batch_size={batch_size}", "--data.loader.shuffle=false",
    ]


def _run_sharded(entry: str, out: Path, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "tests/fsdp_worker.py"), entry, str(out), "2", *args]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_two_process_fsdp_matches_single_process(tiny_llama_dir, synthetic_dir, tmp_path):
    out = tmp_path / "sharded.json"
    sharded = _run_sharded("reward", out, _args(tiny_llama_dir, synthetic_dir, tmp_path / "sharded", 2))
    assert sharded["world_size"] == 2 and sharded["fsdp_modules"] == 3  # 2 decoder layers + the root

    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path / "single", 4) + ["--trainer.accelerator=cpu", "--trainer.devices=1"], run=False)
    recorder = LossRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    assert len(sharded["losses"]) == len(recorder.losses) == 2
    torch.testing.assert_close(torch.tensor(sharded["losses"]), torch.tensor(recorder.losses), atol=1e-5, rtol=0)
    assert abs(recorder.losses[1] - recorder.losses[0]) > 1e-4  # step 2 ran on updated weights
    a, b = load_file(tmp_path / "sharded/checkpoint/model.safetensors"), load_file(tmp_path / "single/checkpoint/model.safetensors")
    assert a.keys() == b.keys() and any("lora_" in k for k in a) and any(k.startswith("head.") for k in a)
    for key in a:
        assert a[key].shape == b[key].shape  # full tensors, not one rank's shard
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=0)


def test_two_process_fsdp_reinforce(tiny_llama_dir, synthetic_dir, tmp_path):
    rm = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path / "rm", 4) + ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=1"], run=False)
    rm.trainer.fit(rm.model, datamodule=rm.datamodule)
    args = [
        "--config", "configs/align/demo_tiny.yaml", f"--model.backbone.name_or_path={tiny_llama_dir}", "--model.backbone.lora.r=4",
        f"--model.reward.init_args.path={tmp_path}/rm/checkpoint", "--model.reward.init_args.batch_size=3",
        "--model.reward.init_args.packing=true", "--model.generation.max_new_tokens=6", "--model.logprob_chunk_tokens=5",
        "--model.sample_table_every_n_steps=1", "--trainer.max_steps=2", "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path}/align", f"--checkpoint.dirpath={tmp_path}/align/checkpoint",
        f"--data.path={synthetic_dir}/preference_train.jsonl", "--data.batch_size=2",
    ]
    result = _run_sharded("align", tmp_path / "align.json", args)
    assert result["world_size"] == 2 and result["fsdp_modules"] == 6  # policy and RM: 2 layers + root each
    assert len(result["losses"]) == 2 and all(math.isfinite(x) for x in result["losses"])
    state = load_file(tmp_path / "align/checkpoint/model.safetensors")
    q_a = [v for k, v in state.items() if "q_proj.lora_A" in k]
    assert q_a and all(v.shape == (4, 32) for v in q_a)  # whole (r, hidden) tensors, not half-row shards
    assert any(v.abs().sum() > 0 for k, v in state.items() if "lora_B" in k)  # trained away from B = 0

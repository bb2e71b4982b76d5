"""`summary.json`: the pure pieces (config hash, metric conversion) and the file a train.py fit leaves next to its
checkpoint. align.py and dpo.py fits check theirs in tests/test_reinforce_module.py and tests/test_dpo.py.
"""

from __future__ import annotations

import hashlib
import json
import math

import torch

from rlhf.cli import reward_main
from rlhf.training.summary import config_hash, final_metrics, run_summary
from tests.test_reward_module import _args


def test_config_hash_is_the_sha256_prefix_of_the_text():
    assert config_hash("a: 1\n") == hashlib.sha256(b"a: 1\n").hexdigest()[:16]
    assert config_hash("a: 1\n") != config_hash("a: 2\n") and config_hash(None) is None


def test_final_metrics_are_sorted_floats_with_nan_as_null():
    metrics = {"val/b": torch.tensor(0.5), "train/a": 2, "bad": torch.tensor(float("nan")), "vector": torch.ones(3)}
    assert final_metrics(metrics) == {"bad": None, "train/a": 2.0, "val/b": 0.5}
    summary = run_summary("x: 1\n", metrics, 7, 1.23456)
    assert summary["global_step"] == 7 and summary["wall_time_s"] == 1.235 and summary["peak_rss_bytes"] > 0
    json.dumps(summary, allow_nan=False)  # valid JSON, no NaN


def test_train_py_writes_summary_next_to_the_checkpoint(tiny_llama_dir, synthetic_dir, tmp_path):
    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--trainer.val_check_interval=2",)), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = tmp_path / "checkpoint"
    summary = json.loads((ckpt / "summary.json").read_text())
    assert summary["config_hash"] == config_hash((ckpt / "config.yaml").read_text())
    assert summary["global_step"] == 2 and summary["wall_time_s"] > 0 and summary["peak_rss_bytes"] > 0
    assert math.isclose(summary["metrics"]["train/loss"], float(cli.trainer.callback_metrics["train/loss"]))
    assert {"val/accuracy", "val/loss"} <= set(summary["metrics"])

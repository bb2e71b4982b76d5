"""`rlhf.results.smollm2.run` wired end to end with its heavy steps faked (no SmolLM2 forward pass): every stage is
trained through `train.py`'s CLI with its config, every RM and the zero-shot baseline are scored, and REINFORCE gets
the best RM and the held-out prompt file. Guards the glue between the stages, which only the 1-2 h results run and
the 15-minute demo exercise for real (a positional argument once went to `max_steps` after the demo ran 30 minutes).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from rlhf.results import smollm2

REPO = Path(__file__).resolve().parents[1]


def test_run_wires_every_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    trained, aligned = [], {}

    def fake_fit(argv):
        config = Path(argv[argv.index("--config") + 1])
        trained.append(config.stem)
        text = config.read_text()
        for line in text.splitlines():  # the checkpoint directory (and ExPO's) the config names, inside the work dir
            if "dirpath:" in line:
                path = Path(line.split("dirpath:")[1].strip())
                assert str(path).startswith(str(tmp_path)), line
                path.mkdir(parents=True, exist_ok=True)
                (path / "model.safetensors").write_bytes(b"")

    def fake_align(out, config, **kwargs):
        aligned.update(out=out, config=config, **kwargs)
        assert "max_steps" not in kwargs
        return {"steps": 4, "eval_prompts": 16, "before": {}, "after": {}, "generations": {}, "seconds_per_step": {}, "curves": {}, "plot": "p.png"}

    bench = SimpleNamespace(overall=0.5, sections={"Chat": 0.5}, n_pairs=4, n_truncated=0, model="m")
    scores = {"hh_val": {"accuracy": 0.6}, "hs2p_test": {"accuracy": 0.5}}
    monkeypatch.setattr(smollm2, "convert_smollm2", lambda path: path)
    monkeypatch.setattr(smollm2, "reward_main", fake_fit)
    monkeypatch.setattr(smollm2, "_zero_shot", lambda files, pairs, length: ({**scores}, bench))
    monkeypatch.setattr(smollm2, "_score_rm", lambda path, files, work: {**scores})
    monkeypatch.setattr(smollm2, "evaluate_checkpoint", lambda path, pairs, name, batch_size: [bench])
    monkeypatch.setattr(smollm2, "write_report", lambda results, out, title: {"png": out / "rb.png"})
    monkeypatch.setattr(smollm2, "run_align_demo", fake_align)

    results = smollm2.run(tmp_path, smollm2.DEMO)
    assert trained == ["stage1_regression", *smollm2.DEMO.variants]
    assert aligned["eval_prompts"] == str(tmp_path / "data" / "prompts_eval.jsonl") and Path(aligned["eval_prompts"]).is_file()
    assert aligned["n_eval_prompts"] == smollm2.DEMO.eval_prompts
    assert results["best_rm_path"] in Path(aligned["config"]).read_text()  # REINFORCE is scored by the best RM
    assert json.loads((tmp_path / "results.json").read_text())["best_rm"] == results["best_rm"]

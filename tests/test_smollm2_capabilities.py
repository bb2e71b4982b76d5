"""Every capability on the real SmolLM2-135M-Instruct, in one step each on short sequences of the synthetic data.

Reward-model fits with `template: chat` for each loss family (regression, BT family with init_from, mean-variance),
ExPO, HF and adapter export with reward parity, the serving API, a REINFORCE step whose samples end with
`<|im_end|>` under the paper's rule (unended samples get no advantage), a DPO step and nf4 QLoRA on CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from rlhf.align.rewards import RewardModelScore
from rlhf.cli import align_main, dpo_main, reward_main
from rlhf.training.checkpoint import read_meta

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CHAT = ["--data.template.name=chat", "--data.template.system="]  # the model's own system line
FAST = ["--trainer.max_steps=1", "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0", "--trainer.accelerator=cpu", "--seed_everything=0",
        "--model.backbone.lora.r=4", "--model.backbone.lora.alpha=8", "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.001"]
PROMPTS = ["Say hello in one word.", "What is 2 + 2? Reply with the number only.", "Name a colour. One word."]


class Recorder(L.Callback):
    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _rm_fit(smollm2_dir: Path, synthetic_dir: Path, out: Path, loss: str, extra: tuple[str, ...] = ()) -> Path:
    if loss == "mse":
        data = ["--data=rlhf.data.datamodules.RatingDataModule", f"--data.train_path={synthetic_dir}/ratings_train.jsonl",
                f"--data.val_path={synthetic_dir}/ratings_val.jsonl", f"--data.val_pairs_path={synthetic_dir}/preference_val.jsonl",
                "--data.helpfulness_only=true"]
    else:
        module = "rlhf.data.disagreement_data.DisagreementDataModule" if loss == "mean_var" else "rlhf.data.datamodules.PreferenceDataModule"
        data = [f"--data={module}", f"--data.train_path={synthetic_dir}/preference_train.jsonl", f"--data.val_path={synthetic_dir}/preference_val.jsonl"]
    head = ["--model.head.kind=mean_var"] if loss == "mean_var" else []
    cli = reward_main([f"--model.backbone.name_or_path={smollm2_dir}", f"--model.loss={loss}", *FAST, *head, *data, *CHAT,
                       "--data.max_length=96", "--data.loader.batch_size=2", f"--trainer.default_root_dir={out}",
                       f"--checkpoint.dirpath={out / 'checkpoint'}", *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1 and math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    assert "name: chat" in (out / "checkpoint" / "config.yaml").read_text()
    return out / "checkpoint"


@pytest.fixture(scope="module")
def stage1(smollm2_dir, synthetic_dir, tmp_path_factory) -> Path:
    return _rm_fit(smollm2_dir, synthetic_dir, tmp_path_factory.mktemp("stage1"), "mse")


@pytest.fixture(scope="module")
def stage2(smollm2_dir, synthetic_dir, stage1, tmp_path_factory) -> Path:
    return _rm_fit(smollm2_dir, synthetic_dir, tmp_path_factory.mktemp("stage2"), "scaled_bt", (f"--model.init_from={stage1}",))


def test_bt_from_regression_and_mean_variance_fit(stage2, smollm2_dir, synthetic_dir, tmp_path):
    assert read_meta(stage2)["global_step"] == 1
    _rm_fit(smollm2_dir, synthetic_dir, tmp_path, "mean_var")


def test_expo_and_exports_keep_the_rewards(stage1, stage2, tmp_path):
    from rlhf.reward.expo import extrapolate_checkpoints
    from rlhf.reward.export import export_adapter, export_hf
    from rlhf.serve.api import RewardAPI

    expo = extrapolate_checkpoints(str(stage1), str(stage2), str(tmp_path / "expo"), alpha=0.5).parent
    prompts = ["What is a moon like?", "Tell me about the cat."]
    responses = ["The moon is a rock in the sky.", "A cat is a small furry animal.<|im_end|> not an end"]
    base = RewardModelScore(str(expo), batch_size=2)
    base.build()
    expected = base.score(prompts, responses)
    ids = base.encode(prompts[:1], responses[:1])[0]
    assert ids[-2:] == base.encoder.tokenizer("<|im_end|>\n")["input_ids"] and ids.count(2) == 3  # system, user, assistant turns
    for export in (export_hf(expo, tmp_path / "hf"), export_adapter(expo, tmp_path / "adapter")):
        source = RewardModelScore(str(export), batch_size=2)
        source.build()
        torch.testing.assert_close(source.score(prompts, responses), expected, atol=1e-4, rtol=1e-4)
    api = RewardAPI(str(expo), max_batch_size=1)
    api.setup("cpu")
    answer = api.predict(api.decode_request([{"prompt": p, "response": r} for p, r in zip(prompts, responses)]))
    torch.testing.assert_close(torch.tensor([it["reward"] for it in answer["results"]]), expected, atol=1e-5, rtol=0)


def _prompts(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def test_reinforce_step_samples_end_with_im_end_and_rloo_uses_ended_samples(smollm2_dir, stage2, tmp_path):
    cli = align_main([
        f"--model.backbone.name_or_path={smollm2_dir}", *FAST[:8], "--model.backbone.lora.r=4", "--model.backbone.lora.alpha=8",
        "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.0001",
        "--model.reward=rlhf.align.rewards.RewardModelScore", f"--model.reward.path={stage2}",
        "--model.generation.num_samples=3", "--model.generation.max_new_tokens=24", "--model.generation.temperature=0.7",
        "--model.sample_table_every_n_steps=1", f"--data.path={_prompts(tmp_path)}", "--data.split=null", *CHAT,
        "--data.max_prompt_length=96", "--data.batch_size=2", "--data.shuffle=false",
        f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path / 'checkpoint'}",
    ], run=False)
    assert cli.model.objective.unended_penalty is None  # the paper's rule
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    step = recorder.steps[0]
    assert step["rollout/ended_fraction"] > 0 and math.isfinite(step["train/loss"])
    samples = (tmp_path / "samples.csv").read_text()
    assert "<|im_end|>" not in samples and "<|im_start|>" not in samples  # the RM got the text without the eos


def test_dpo_step(smollm2_dir, synthetic_dir, tmp_path):
    cli = dpo_main([
        f"--model.backbone.name_or_path={smollm2_dir}", *FAST, "--model.loss=scaled_dpo",
        f"--data.train_path={synthetic_dir / 'preference_train.jsonl'}", f"--data.val_path={synthetic_dir / 'preference_val.jsonl'}",
        *CHAT, "--data.max_length=96", "--data.loader.batch_size=2", "--trainer.val_check_interval=1",
        f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path / 'checkpoint'}",
    ], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1 and math.isfinite(float(cli.trainer.callback_metrics["val/loss"]))
    pair = cli.datamodule._train[0]
    assert pair.chosen_ids[-1] == 2 and pair.chosen_ids[-2] != 2  # response + one <|im_end|>, as the policy samples it


def test_qlora_nf4_on_cpu(smollm2_dir):
    import bitsandbytes as bnb

    from rlhf.models.backbone import BackboneSpec, LoraSpec
    from rlhf.models.heads import HeadSpec
    from rlhf.models.reward_model import build_reward_model

    model = build_reward_model(BackboneSpec(str(smollm2_dir), quantize="nf4", lora=LoraSpec(r=4, alpha=8)), HeadSpec())
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    ids = torch.tensor([[1, 4093, 198, 19556, 30, 2]])
    rewards = model.reward(model(ids, torch.ones_like(ids, dtype=torch.bool)))
    rewards.sum().backward()
    assert torch.isfinite(rewards).all()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n)

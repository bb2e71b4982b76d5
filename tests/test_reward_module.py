"""End-to-end CPU fits of RewardModelModule through the CLI: 2 steps per loss on a tiny random Llama.

Each fit asserts a finite loss, changed LoRA and head weights, bit-identical base weights and a checkpoint holding
exactly the adapter and head tensors; reload gives bit-identical rewards; init_from carries the head over.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from rlhf.cli import reward_main
from rlhf.data.collate import pad
from rlhf.training.checkpoint import load_reward_model, read_meta
from tests.weight_checks import assert_only_trained_weights_changed


def _args(tiny_llama_dir, synthetic_dir, tmp_path, loss: str, extra: tuple[str, ...] = ()) -> list[str]:
    common = [
        f"--model.backbone.name_or_path={tiny_llama_dir}",
        "--model.backbone.attn_implementation=sdpa",
        f"--model.loss={loss}",
        "--model.optimizer=torch.optim.AdamW",
        "--model.optimizer.lr=0.01",
        "--trainer.max_steps=2",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        "--seed_everything=0",
    ]
    if loss == "mse":
        data = ["--data=rlhf.data.datamodules.RatingDataModule", f"--data.train_path={synthetic_dir}/ratings_train.jsonl",
                f"--data.val_path={synthetic_dir}/ratings_val.jsonl", f"--data.val_pairs_path={synthetic_dir}/preference_val.jsonl",
                "--data.helpfulness_only=true"]
    else:
        data = ["--data=rlhf.data.datamodules.PreferenceDataModule", f"--data.train_path={synthetic_dir}/preference_train.jsonl",
                f"--data.val_path={synthetic_dir}/preference_val.jsonl"]
    return common + data + ["--data.template.system=", "--data.max_length=256", "--data.loader.batch_size=4"] + list(extra)


def _fit(args: list[str]):
    cli = reward_main(args, run=False)
    cli.model.configure_model()  # build now, to snapshot the initial weights; the trainer's call is then a no-op
    before = {n: p.detach().clone() for n, p in cli.model.model.named_parameters()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli, before


@pytest.mark.parametrize("loss", ["mse", "bt", "margin_bt", "scaled_bt"])
def test_two_step_fit(loss, tiny_llama_dir, synthetic_dir, tmp_path):
    cli, before = _fit(_args(tiny_llama_dir, synthetic_dir, tmp_path, loss))
    assert cli.trainer.global_step == 2
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    after = dict(cli.model.model.named_parameters())
    trained = {n for n, p in after.items() if p.requires_grad}
    assert any("lora_B" in n for n in trained) and any(n.startswith("head.") for n in trained)
    assert all("lora_" in n or n.startswith("head.") for n in trained)
    assert_only_trained_weights_changed(cli.model.model, before, moved=("lora_B", "head.linear.weight"))
    ckpt = tmp_path / "checkpoint"
    assert set(load_file(str(ckpt / "model.safetensors"))) == trained
    assert (ckpt / "config.yaml").read_text().count(f"loss: {loss}") == 1
    assert read_meta(ckpt)["global_step"] == 2


def test_reload_gives_bit_identical_rewards(tiny_llama_dir, synthetic_dir, tmp_path):
    cli, _ = _fit(_args(tiny_llama_dir, synthetic_dir, tmp_path, "scaled_bt"))
    trained = cli.model.model.eval()
    reloaded = load_reward_model(tmp_path / "checkpoint")
    ids, mask = pad([[1, 5, 6, 7, 8], [1, 9, 10], [1, 11, 12, 13, 14, 15, 16]], pad_id=0)
    with torch.no_grad():
        assert torch.equal(trained(ids, mask), reloaded(ids, mask))


def test_init_from_carries_lora_and_head(tiny_llama_dir, synthetic_dir, tmp_path):
    stage1 = tmp_path / "stage1"
    _fit(_args(tiny_llama_dir, synthetic_dir, stage1, "mse"))
    stage2 = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path / "stage2", "scaled_bt", (f"--model.init_from={stage1 / 'checkpoint'}",)), run=False)
    stage2.model.configure_model()
    saved = load_file(str(stage1 / "checkpoint" / "model.safetensors"))
    own = dict(stage2.model.model.named_parameters())
    assert saved.keys() == {n for n, p in own.items() if p.requires_grad}
    for name, tensor in saved.items():
        assert torch.equal(own[name].detach(), tensor), name


def test_init_from_with_other_head_size_fails(tiny_llama_dir, synthetic_dir, tmp_path):
    _fit(_args(tiny_llama_dir, synthetic_dir, tmp_path / "s1", "mse"))
    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path / "s2", "mse", ("--model.head.n_out=5", f"--model.init_from={tmp_path / 's1' / 'checkpoint'}")), run=False)
    with pytest.raises(ValueError, match="1-output head, this model 5"):
        cli.model.configure_model()


def test_wrong_data_for_loss_fails_clearly(tiny_llama_dir, synthetic_dir, tmp_path):
    args = _args(tiny_llama_dir, synthetic_dir, tmp_path, "mse")
    args = [a.replace("--model.loss=mse", "--model.loss=bt") for a in args]
    with pytest.raises(TypeError, match="trains on preference pairs"):
        _fit(args)


def test_head_lr_scale_puts_the_head_in_its_own_group(tiny_llama_dir, synthetic_dir, tmp_path):
    cli = reward_main(_args(tiny_llama_dir, synthetic_dir, tmp_path, "bt", ("--model.head_lr_scale=10",)), run=False)
    cli.model.configure_model()
    optimizer = cli.model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    body, head = optimizer.param_groups
    assert body["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    assert {id(p) for p in head["params"]} == {id(p) for p in cli.model.model.head.parameters()}
    assert len(body["params"]) + len(head["params"]) == sum(p.requires_grad for p in cli.model.parameters())

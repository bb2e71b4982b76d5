"""Export of trained checkpoints: the merged HF sequence classifier and the peft adapter + head directory.

Two 2-step CLI fits on the tiny random Llama (a 1-output BT head and a 5-output MSE head), with lora_B then perturbed
so that LoRA visibly moves the rewards (a missed merge fails parity). Checked: HF rewards equal ours to 1e-5 on
right-padded rows of different lengths (and left-padded with explicit position ids), config fields, the
nonzero-bias error, the bit-identical adapter round trip, loading the adapter with plain peft, and the CLI.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from rlhf.cli import reward_main
from rlhf.data.collate import pad
from rlhf.models.backbone import load_tokenizer
from rlhf.models.heads import HEAD_LAYOUTS, last_token_index
from rlhf.models.reward_model import position_ids_from_mask
from rlhf.reward.export import HEAD_FILE, SPEC_FILE, _export_pad, export_adapter, export_hf, load_exported_adapter, main
from rlhf.training.checkpoint import CONFIG_NAME, load_reward_model, read_meta, save_trained, weights_path

TEXTS = ["Once upon a time there was a cat.", "Hi", "The little dog ran to the park and played with a red ball all day."]


def _fit_args(model_dir, data_dir, root, n_out: int) -> list[str]:
    args = [
        "fit", f"--model.backbone.name_or_path={model_dir}", "--model.backbone.attn_implementation=sdpa",
        "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.01", "--trainer.max_steps=2",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={root}", "--seed_everything=0",
        "--data.template.system=", "--data.max_length=256", "--data.loader.batch_size=4",
    ]
    if n_out == 1:
        return args + ["--model.loss=bt", "--data=rlhf.data.datamodules.PreferenceDataModule",
                       f"--data.train_path={data_dir}/preference_train.jsonl", f"--data.val_path={data_dir}/preference_val.jsonl"]
    return args + ["--model.loss=mse", f"--model.head.n_out={n_out}", "--data=rlhf.data.datamodules.RatingDataModule",
                   f"--data.train_path={data_dir}/ratings_train.jsonl", f"--data.val_path={data_dir}/ratings_val.jsonl",
                   f"--data.val_pairs_path={data_dir}/preference_val.jsonl", "--data.helpfulness_only=false"]


@pytest.fixture(scope="module")
def checkpoints(tiny_llama_dir, synthetic_dir, tmp_path_factory) -> dict:
    """{n_out: checkpoint dir} after a 2-step fit, with lora_B perturbed (N(0, 0.3²)) so LoRA changes rewards clearly."""
    out = {}
    for n_out in (1, 5):
        root = tmp_path_factory.mktemp(f"fit{n_out}")
        reward_main(_fit_args(tiny_llama_dir, synthetic_dir, root, n_out))
        ckpt = root / "checkpoint"
        state, meta = load_file(str(weights_path(ckpt))), read_meta(ckpt)
        gen = torch.Generator().manual_seed(n_out)
        for name in [n for n in state if "lora_B" in n]:
            state[name] = state[name] + 0.3 * torch.randn(state[name].shape, generator=gen)
        save_trained(ckpt, state, meta, (ckpt / CONFIG_NAME).read_text())
        out[n_out] = ckpt
    return out


def _batch(tokenizer, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    assert len({len(x) for x in ids}) == len(ids) and all(tokenizer.pad_token_id not in x for x in ids)
    return pad(ids, tokenizer.pad_token_id, side)


@pytest.mark.parametrize("n_out", [1, 5])
def test_hf_export_matches_reward_model(n_out, checkpoints, tiny_llama_dir, tmp_path):
    ckpt = checkpoints[n_out]
    ours = load_reward_model(ckpt)
    out = export_hf(ckpt, tmp_path / "hf")
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(hf).__name__ == "LlamaForSequenceClassification" and hf.dtype == torch.float32
    assert hf.config.num_labels == n_out and hf.config.id2label == dict(enumerate(HEAD_LAYOUTS[n_out]))
    assert hf.config.reward_slot == ours.reward_slot and hf.config.id2label[hf.config.reward_slot] == "helpfulness"
    assert hf.config.pad_token_id == tokenizer.pad_token_id == 0 and tokenizer.padding_side == "right"
    assert torch.equal(hf.score.weight, ours.head.linear.weight)
    assert [tokenizer(t)["input_ids"] for t in TEXTS] == [AutoTokenizer.from_pretrained(tiny_llama_dir)(t)["input_ids"] for t in TEXTS]
    assert {"config.yaml", "README.md", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert "logits[:, 0]" in card and card.startswith("---\nlicense: other\nbase_model: ")  # the model card's Hub header

    ids, mask = _batch(tokenizer)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], ids) and torch.equal(batch["attention_mask"].bool(), mask)
    with torch.no_grad():
        expected = ours(ids, mask)  # (B, n_out)
        got = hf(**batch).logits
        left_ids, left_mask = _batch(tokenizer, "left")
        got_left = hf(input_ids=left_ids, attention_mask=left_mask.long(), position_ids=position_ids_from_mask(left_mask)).logits
        with ours.backbone.disable_adapter():
            without_lora = ours(ids, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_left, expected, rtol=0, atol=1e-5)
    assert (without_lora - expected).abs().max() > 1e-2  # LoRA matters, so a missed merge would fail above


def test_export_pad_moves_off_eos(tiny_llama_dir):
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    tokenizer.pad_token = tokenizer.eos_token  # as for a tokenizer without unk: HF would pool before a trailing eos
    assert "use the mask-based index" not in _export_pad(tokenizer)
    assert tokenizer.pad_token == "<unk>" and tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.bos_token_id)


def test_hf_export_rejects_nonzero_bias_and_drops_zero_bias(checkpoints, tmp_path):
    src = checkpoints[1]
    state, meta = load_file(str(weights_path(src))), read_meta(src)
    meta["head"]["bias"] = True
    save_trained(tmp_path / "zero", {**state, "head.linear.bias": torch.zeros(1)}, meta)
    save_trained(tmp_path / "biased", {**state, "head.linear.bias": torch.tensor([0.25])}, meta)
    with pytest.raises(ValueError, match=r"(?s)biased.*nonzero bias.*score layer has no bias"):
        export_hf(tmp_path / "biased", tmp_path / "out-biased")
    out = export_hf(tmp_path / "zero", tmp_path / "out-zero")
    assert set(load_file(str(out / "model.safetensors"))) >= {"score.weight"}
    assert not any(k.startswith("score.") and k != "score.weight" for k in load_file(str(out / "model.safetensors")))
    adapter = export_adapter(tmp_path / "biased", tmp_path / "adapter-biased")  # the adapter format keeps a bias
    assert load_file(str(adapter / HEAD_FILE))["bias"].item() == 0.25


@pytest.mark.parametrize("n_out", [1, 5])
def test_adapter_round_trip_is_exact(n_out, checkpoints, tiny_llama_dir, tmp_path):
    ckpt = checkpoints[n_out]
    ours = load_reward_model(ckpt)
    out = export_adapter(ckpt, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", HEAD_FILE, SPEC_FILE, "config.yaml", "README.md"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / SPEC_FILE).read_text())["head"]["n_out"] == n_out
    reloaded = load_exported_adapter(out)
    ids, mask = pad([[1, 5, 6, 7, 8], [1, 9, 10], [1, 11, 12, 13, 14, 15, 16]], pad_id=0)
    with torch.no_grad():
        expected = ours(ids, mask)
        assert torch.equal(reloaded(ids, mask), expected)
        body = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_llama_dir), str(out)).eval()  # as other tools would
        hidden = body(input_ids=ids, attention_mask=mask.long(), position_ids=position_ids_from_mask(mask)).last_hidden_state
        last = hidden[torch.arange(len(hidden)), last_token_index(mask)]
        outside = last @ load_file(str(out / HEAD_FILE))["weight"].T
    torch.testing.assert_close(outside, expected, rtol=0, atol=1e-6)


def test_cli_writes_both_formats(checkpoints, tmp_path, capsys):
    ckpt = checkpoints[5]
    main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "hf"), "--dtype", "bfloat16"])
    printed = capsys.readouterr().out
    assert "model.safetensors" in printed and "config.json" in printed and str(tmp_path / "hf") in printed
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and len(config["id2label"]) == 5
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["reward_slot"] == 0
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert hf.dtype == torch.bfloat16 and all(math.isfinite(v) for v in hf.score.weight.float().flatten().tolist())
    main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "adapter"), "--format", "adapter"])
    assert "adapter_model.safetensors" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "x"), "--format", "adapter", "--dtype", "bfloat16"])

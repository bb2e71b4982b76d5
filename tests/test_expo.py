"""ExPO (rlhf/reward/expo.py) on effective weights: merged(extrapolated) = θ_s + α(θ_s − θ_w) for two real LoRA checkpoints,
the callback, init_from and both exports of the result; identities and hand values on small state dicts."""

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from rlhf.cli import reward_main
from rlhf.models.backbone import load_sequence_classifier, merge_lora
from rlhf.reward.expo import coefficients, extrapolate, extrapolate_checkpoints
from rlhf.reward.export import export_adapter, export_hf, load_exported_adapter
from rlhf.reward.score import load_scorer
from rlhf.training.checkpoint import load_reward_model, read_meta, save_trained
from tests.test_reward_module import _args

SCALE = 32 / 16  # the fixtures' LoRA: default r 16, alpha 32


def _merged(path) -> dict[str, torch.Tensor]:
    """Effective weights of a checkpoint as `rlhf.reward.score` loads it: LoRA folded into the base, plus the head."""
    model = load_scorer(path)[0]
    head = {f"head.{k}": v for k, v in model.head.state_dict().items()}
    return {**{k: v.clone() for k, v in merge_lora(model.backbone).state_dict().items()}, **head}


def _expected(weak: dict, strong: dict, alpha: float, convention: str) -> dict:
    c_s, c_w = coefficients(alpha, convention)
    return {k: c_s * strong[k] + c_w * weak[k] for k in strong}


@pytest.mark.parametrize("convention,alpha", [("expo", 0.52), ("expo", 2.0), ("total", 1.52)])
def test_merged_weights_of_real_checkpoints(trained, tmp_path, convention, alpha):
    weak, strong = trained / "s1" / "checkpoint", trained / "s2" / "checkpoint"
    # these checkpoints are far enough apart that factor-wise extrapolation's extra term s·α(1+α)ΔB·ΔA shows
    w, s = load_file(str(weak / "model.safetensors")), load_file(str(strong / "model.safetensors"))
    a_key = next(k for k in s if ".lora_A." in k)
    b_key = a_key.replace(".lora_A.", ".lora_B.")
    cross = SCALE * alpha * (1 + alpha) * (s[b_key] - w[b_key]) @ (s[a_key] - w[a_key])
    assert cross.abs().max() > 1e-3
    out = tmp_path / "expo"
    extrapolate_checkpoints(str(weak), str(strong), str(out), alpha, convention)
    got, want = _merged(out), _expected(_merged(weak), _merged(strong), alpha, convention)
    assert got.keys() == want.keys()
    for name in want:
        assert_close(got[name], want[name], msg=lambda m, name=name: f"{name}: {m}")
    assert read_meta(out)["backbone"]["lora"]["r"] == 32 and read_meta(out)["backbone"]["lora"]["alpha"] == 64


def test_callback_writes_the_extrapolated_checkpoint(trained, tmp_path):
    """ExpoCheckpoint at the end of the stage-2 fit = extrapolate_checkpoints on the weights it had then."""
    callback = trained / "s2" / "checkpoint-expo"
    extrapolate_checkpoints(str(trained / "s1" / "checkpoint"), str(trained / "s2-as-trained"), str(tmp_path / "x"), 0.52)
    want, got = load_file(str(tmp_path / "x" / "model.safetensors")), load_file(str(callback / "model.safetensors"))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    meta = read_meta(callback)
    assert meta["backbone"]["lora"]["r"] == 32 and meta["expo"] == {"weak": str(trained / "s1" / "checkpoint"), "alpha": 0.52, "convention": "expo"}


def test_exports_of_an_expo_checkpoint(trained, tmp_path):
    weak, strong = trained / "s1" / "checkpoint", trained / "s2" / "checkpoint"
    extrapolate_checkpoints(str(weak), str(strong), str(tmp_path / "expo"), 1.0)
    want = _expected(_merged(weak), _merged(strong), 1.0, "expo")
    hf = load_sequence_classifier(str(export_hf(tmp_path / "expo", tmp_path / "hf")))  # merged into the base
    for name, tensor in hf.model.state_dict().items():
        assert_close(tensor, want[name])
    assert_close(hf.score.weight, want["head.linear.weight"])
    adapter = load_exported_adapter(export_adapter(tmp_path / "expo", tmp_path / "adapter"))
    ckpt = load_reward_model(tmp_path / "expo")
    ids, mask = torch.tensor([[1, 5, 6, 7, 8]]), torch.ones(1, 5, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(adapter(ids, mask), ckpt(ids, mask))


def test_init_from_an_expo_checkpoint(trained, tiny_llama_dir, synthetic_dir, tmp_path):
    extrapolate_checkpoints(str(trained / "s1" / "checkpoint"), str(trained / "s2" / "checkpoint"), str(tmp_path / "expo"), 0.52)
    base = _args(tiny_llama_dir, synthetic_dir, tmp_path, "scaled_bt", (f"--model.init_from={tmp_path / 'expo'}",))
    cli = reward_main(base + ["--model.backbone.lora.r=32", "--model.backbone.lora.alpha=64"], run=False)
    cli.model.configure_model()
    saved = load_file(str(tmp_path / "expo" / "model.safetensors"))
    own = dict(cli.model.model.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    cli = reward_main(base, run=False)  # rank 16 again: same LoRA keys, other shapes and scale
    with pytest.raises(ValueError, match=r"its LoRA has r=32, alpha=64, this model r=16, alpha=32; set model.backbone.lora to match"):
        cli.model.configure_model()


def _states():
    g = torch.Generator().manual_seed(0)
    weak = {"head.linear.weight": torch.randn(1, 4, generator=g), "q.lora_A.default.weight": torch.randn(2, 4, generator=g),
            "q.lora_B.default.weight": torch.randn(3, 2, generator=g)}
    strong = {k: v + torch.randn(v.shape, generator=g) for k, v in weak.items()}
    return weak, strong


def _product(state):
    return state["q.lora_B.default.weight"] @ state["q.lora_A.default.weight"]  # (3, 4): the LoRA update / s


@pytest.mark.parametrize("convention,alpha", [("expo", 0.0), ("expo", 0.52), ("total", 1.0), ("total", 0.0), ("total", 1.52)])
def test_lora_product_and_head_are_extrapolated(convention, alpha):
    weak, strong = _states()
    out = extrapolate(weak, strong, alpha, convention)
    base = strong if convention == "expo" else weak
    assert_close(_product(out), _product(base) + alpha * (_product(strong) - _product(weak)))
    assert_close(out["head.linear.weight"], base["head.linear.weight"] + alpha * (strong["head.linear.weight"] - weak["head.linear.weight"]))
    assert out["q.lora_A.default.weight"].shape == (4, 4) and out["q.lora_B.default.weight"].shape == (3, 4)


def test_hand_value_and_conventions_agree():
    weak, strong = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([2.0, 0.0])}
    # θ_s + 0.5(θ_s − θ_w) = [2, 0] + 0.5·[1, −2] = [2.5, −1]
    assert_close(extrapolate(weak, strong, 0.5, "expo")["w"], torch.tensor([2.5, -1.0]))
    # total factor 1.5 from the weak model is the same point
    assert_close(extrapolate(weak, strong, 1.5, "total")["w"], torch.tensor([2.5, -1.0]))
    # LoRA of rank 1: B_s A_s = [[2]], B_w A_w = [[1]]; α 0.5 → B' = [1.5·2, −0.5·1], A' = [1; 1] → B'A' = 2.5 = 2 + 0.5·(2 − 1)
    lora_w = {"x.lora_A.w": torch.tensor([[1.0]]), "x.lora_B.w": torch.tensor([[1.0]])}
    lora_s = {"x.lora_A.w": torch.tensor([[1.0]]), "x.lora_B.w": torch.tensor([[2.0]])}
    out = extrapolate(lora_w, lora_s, 0.5, "expo")
    assert_close(out["x.lora_B.w"], torch.tensor([[3.0, -0.5]]))
    assert_close(out["x.lora_B.w"] @ out["x.lora_A.w"], torch.tensor([[2.5]]))


def test_bf16_is_computed_in_fp32():
    weak = {"w": torch.tensor([1.0], dtype=torch.bfloat16)}
    strong = {"w": torch.tensor([1.0078125], dtype=torch.bfloat16)}  # one bf16 ulp above 1
    out = extrapolate(weak, strong, 2.0, "expo")["w"]
    assert out.dtype == torch.bfloat16 and out.item() == pytest.approx(1.0234375)


def test_mismatched_states_fail():
    weak, strong = _states()
    with pytest.raises(ValueError, match="different tensors"):
        extrapolate({"x": torch.zeros(1)}, strong, 1.0)
    with pytest.raises(ValueError, match="head.linear.weight"):
        extrapolate({**weak, "head.linear.weight": torch.zeros(2, 4)}, strong, 1.0)
    lone = {"q.lora_A.default.weight": torch.zeros(2, 4)}
    with pytest.raises(ValueError, match="no matching lora_B"):
        extrapolate(lone, lone, 1.0)


def test_checkpoint_level(tmp_path):
    weak, strong = _states()
    lora = {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q"]}
    save_trained(tmp_path / "w", weak, {"head": {"n_out": 1}, "backbone": {"lora": lora}})
    save_trained(tmp_path / "s", strong, {"head": {"n_out": 1}, "backbone": {"lora": lora}})
    with pytest.raises(FileNotFoundError, match="no config.yaml"):  # its settings would be unknown to every scorer
        extrapolate_checkpoints(str(tmp_path / "w"), str(tmp_path / "s"), str(tmp_path / "x"), 0.52)
    (tmp_path / "s" / "config.yaml").write_text("data:\n  init_args: {max_length: 77}\n")
    extrapolate_checkpoints(str(tmp_path / "w"), str(tmp_path / "s"), str(tmp_path / "x"), 0.52)
    meta = read_meta(tmp_path / "x")
    assert meta["expo"]["alpha"] == 0.52 and meta["head"] == {"n_out": 1} and meta["backbone"]["lora"] == {**lora, "r": 4, "alpha": 8}
    assert (tmp_path / "x" / "config.yaml").read_text() == (tmp_path / "s" / "config.yaml").read_text()
    save_trained(tmp_path / "w", weak, {"head": {"n_out": 1}, "backbone": {"lora": {**lora, "alpha": 8}}})
    with pytest.raises(ValueError, match="same LoRA in both models"):
        extrapolate_checkpoints(str(tmp_path / "w"), str(tmp_path / "s"), str(tmp_path / "y"), 0.52)

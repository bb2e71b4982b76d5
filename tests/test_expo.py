"""ExPO identities and a hand value (rlhf/expo.py)."""

import pytest
import torch
from torch.testing import assert_close

from rlhf.checkpoint import read_meta, save_trained
from rlhf.expo import extrapolate, extrapolate_checkpoints


def _states():
    g = torch.Generator().manual_seed(0)
    weak = {"head.linear.weight": torch.randn(1, 4, generator=g), "a.lora_A.weight": torch.randn(2, 4, generator=g)}
    strong = {k: v + torch.randn(v.shape, generator=g) for k, v in weak.items()}
    return weak, strong


def test_alpha_zero_is_strong_and_total_one_is_strong():
    weak, strong = _states()
    for name, value in extrapolate(weak, strong, 0.0, "expo").items():
        assert_close(value, strong[name])
    for name, value in extrapolate(weak, strong, 1.0, "total").items():
        assert_close(value, strong[name])
    for name, value in extrapolate(weak, strong, 0.0, "total").items():
        assert_close(value, weak[name])


def test_hand_value_and_conventions_agree():
    weak, strong = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([2.0, 0.0])}
    # θ_s + 0.5(θ_s − θ_w) = [2, 0] + 0.5·[1, −2] = [2.5, −1]
    assert_close(extrapolate(weak, strong, 0.5, "expo")["w"], torch.tensor([2.5, -1.0]))
    # total factor 1.5 from the weak model is the same point
    assert_close(extrapolate(weak, strong, 1.5, "total")["w"], torch.tensor([2.5, -1.0]))


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


def test_checkpoint_level(tmp_path):
    weak, strong = _states()
    save_trained(tmp_path / "w", weak, {"head": {"n_out": 1}})
    save_trained(tmp_path / "s", strong, {"head": {"n_out": 1}})
    with pytest.raises(FileNotFoundError, match="no config.yaml"):  # its settings would be unknown to every scorer
        extrapolate_checkpoints(str(tmp_path / "w"), str(tmp_path / "s"), str(tmp_path / "x"), 0.52)
    (tmp_path / "s" / "config.yaml").write_text("data:\n  init_args: {max_length: 77}\n")
    extrapolate_checkpoints(str(tmp_path / "w"), str(tmp_path / "s"), str(tmp_path / "x"), 0.52)
    meta = read_meta(tmp_path / "x")
    assert meta["expo"]["alpha"] == 0.52 and meta["head"] == {"n_out": 1}
    assert (tmp_path / "x" / "config.yaml").read_text() == (tmp_path / "s" / "config.yaml").read_text()

"""Hand values and identities for the reward-model losses (rlhf/losses.py)."""

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.losses import (
    PAIRWISE_LOSSES,
    bradley_terry,
    margin_bradley_terry,
    masked_mse,
    scaled_bradley_terry,
)


def nll(x: float) -> float:
    """−log σ(x) computed by hand."""
    return math.log1p(math.exp(-x))


def test_bt_hand_values():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    # Δ = [1, −1] → mean(−log σ(1), −log σ(−1)) = (0.31326 + 1.31326) / 2
    expected = (nll(1.0) + nll(-1.0)) / 2
    assert_close(bradley_terry(chosen, rejected, torch.tensor([1.0, 3.0])), torch.tensor(expected))
    assert expected == pytest.approx(0.813262, abs=1e-6)


def test_margin_bt_hand_values():
    chosen, rejected, m = torch.tensor([3.0, 0.5]), torch.tensor([1.0, 0.5]), torch.tensor([1.0, 2.0])
    # Δ − m = [2 − 1, 0 − 2] = [1, −2]
    expected = (nll(1.0) + nll(-2.0)) / 2
    assert_close(margin_bradley_terry(chosen, rejected, m), torch.tensor(expected))


def test_scaled_bt_hand_values():
    chosen, rejected, m = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 2.0]), torch.tensor([3.0, 1.0, 2.0])
    # m·(−log σ(Δ)) with Δ = [1, 0, −2] → [3·0.31326, 1·0.69315, 2·2.12693]
    expected = (3 * nll(1.0) + 1 * math.log(2.0) + 2 * nll(-2.0)) / 3
    assert_close(scaled_bradley_terry(chosen, rejected, m), torch.tensor(expected))


def test_identities():
    g = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(16, generator=g), torch.randn(16, generator=g)
    ones, zeros = torch.ones(16), torch.zeros(16)
    bt = bradley_terry(chosen, rejected, ones)
    assert_close(scaled_bradley_terry(chosen, rejected, ones), bt)  # scaled with m = 1 ≡ BT
    assert_close(margin_bradley_terry(chosen, rejected, zeros), bt)  # margin with m = 0 ≡ BT
    # scaled BT with constant m is m × BT
    assert_close(scaled_bradley_terry(chosen, rejected, 3 * ones), 3 * bt)


@pytest.mark.parametrize("name", sorted(PAIRWISE_LOSSES))
def test_gradient_raises_chosen_lowers_rejected(name):
    chosen = torch.tensor([0.3, -0.2], requires_grad=True)
    rejected = torch.tensor([0.1, 0.4], requires_grad=True)
    PAIRWISE_LOSSES[name](chosen, rejected, torch.tensor([1.0, 2.0])).backward()
    assert (chosen.grad < 0).all()  # gradient descent increases chosen rewards
    assert (rejected.grad > 0).all()  # and decreases rejected ones


def test_masked_mse_hand_values():
    pred = torch.tensor([[1.0, 2.0], [0.0, 5.0]])
    labels = torch.tensor([[2.0, -9.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [True, True]])
    # (1−2)² + (0−3)² + (5−4)² = 1 + 9 + 1 = 11 over 3 entries; the masked −9 is ignored
    assert_close(masked_mse(pred, labels, mask), torch.tensor(11.0 / 3))


def test_masked_mse_rejects_empty_mask_and_bad_shapes():
    with pytest.raises(ValueError, match="no True entry"):
        masked_mse(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="shapes differ"):
        masked_mse(torch.zeros(2, 1), torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))


def test_pairwise_losses_are_shard_invariant():
    """Mean over pairs: the loss of a batch is the average of the losses of its two equal halves."""
    g = torch.Generator().manual_seed(1)
    c, r, m = torch.randn(8, generator=g), torch.randn(8, generator=g), torch.randint(1, 4, (8,), generator=g).float()
    for fn in PAIRWISE_LOSSES.values():
        halves = (fn(c[:4], r[:4], m[:4]) + fn(c[4:], r[4:], m[4:])) / 2
        assert_close(fn(c, r, m), halves)

"""Hand values for the mean-variance RM losses (rlhf/losses.py) and the divergence metrics (rlhf/metrics.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.data.disagreement import strength_class
from rlhf.losses import (
    MEAN_VAR_CLASSES,
    interval_log_probabilities,
    interval_probabilities,
    mean_var_kl_loss,
    mean_var_nll_loss,
    pair_sd,
)
from rlhf.metrics import auroc, mean_var_divergence, scalar_divergence


def phi(x: float) -> float:
    """Standard normal CDF by hand."""
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def hand_probs(mu: float, sd: float, edges=(-1.5, -0.5, 0.5, 1.5)) -> list[float]:
    cdf = [0.0] + [phi((e - mu) / sd) for e in edges] + [1.0]
    return [b - a for a, b in itertools.pairwise(cdf)]


def test_interval_probabilities_standard_normal():
    p = interval_probabilities(torch.tensor([0.0]), torch.tensor([1.0]))[0]
    # tie = Φ(0.5) − Φ(−0.5); slight = Φ(1.5) − Φ(0.5); significant = 1 − Φ(1.5)
    assert_close(p, torch.tensor([0.066807, 0.241730, 0.382925, 0.241730, 0.066807]), atol=1e-6, rtol=0)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)


def test_interval_probabilities_shifted_and_custom_edges():
    mu, sd = torch.tensor([1.0, -0.3]), torch.tensor([1.0, 2.0])
    p = interval_probabilities(mu, sd)
    assert_close(p[0], torch.tensor([0.0062097, 0.0605975, 0.2417303, 0.3829249, 0.3085375]), atol=1e-6, rtol=0)
    assert_close(p[1], torch.tensor(hand_probs(-0.3, 2.0)), atol=1e-6, rtol=0)
    assert_close(p.sum(-1), torch.ones(2))
    q = interval_probabilities(torch.tensor([0.0]), torch.tensor([1.0]), edges=(-1.0, 1.0))
    assert q.shape == (1, 3)
    assert_close(q[0], torch.tensor(hand_probs(0.0, 1.0, (-1.0, 1.0))), atol=1e-6, rtol=0)


def test_orientation_matches_strength_classes():
    # μ_A ≫ μ_B is "A (response_1) significantly better": class 4, which strength −3 maps to; the reverse class 0.
    p = interval_probabilities(torch.tensor([5.0, -5.0]), torch.tensor([0.5, 0.5]))
    assert int(p[0].argmax()) == strength_class(-3) == 4 == MEAN_VAR_CLASSES.index("a_significant")
    assert int(p[1].argmax()) == strength_class(3) == 0 == MEAN_VAR_CLASSES.index("b_significant")


def test_pair_sd_rho():
    one = torch.tensor([1.0])
    assert_close(pair_sd(one, one, 0.0), torch.tensor([math.sqrt(2)]))
    assert_close(pair_sd(one, one, torch.tensor(0.5)), torch.tensor([1.0]))
    assert_close(pair_sd(one, one, torch.tensor(-0.5)), torch.tensor([math.sqrt(3)]))
    assert float(pair_sd(one, one, torch.tensor(1.0))) > 0  # clamped, not 0


def test_rho_changes_the_loss_through_the_sd():
    mu_a, mu_b, s = torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0])
    target = interval_probabilities(mu_a - mu_b, torch.tensor([1.0]))  # sd 1 ↔ ρ = 0.5 with σ_A = σ_B = 1
    assert float(mean_var_kl_loss(mu_a, s, mu_b, s, target, rho=torch.tensor(0.5))) == pytest.approx(0.0, abs=1e-6)
    assert float(mean_var_kl_loss(mu_a, s, mu_b, s, target, rho=0.0)) > 1e-3


def test_kl_zero_at_target_and_positive_otherwise():
    mu_a, mu_b = torch.tensor([0.7, -1.2, 2.0]), torch.tensor([0.1, 0.3, -1.0])
    s_a, s_b = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([0.8, 0.2, 1.0])
    target = interval_probabilities(mu_a - mu_b, pair_sd(s_a, s_b))
    assert float(mean_var_kl_loss(mu_a, s_a, mu_b, s_b, target)) == pytest.approx(0.0, abs=1e-6)
    off = mean_var_kl_loss(mu_a + 0.5, s_a, mu_b, s_b, target)
    assert float(off) > 1e-3
    # hand value for one pair: q one-hot on "tie", p standard ⇒ KL = −log p_tie (the q·log q term is 0)
    q = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    z, r = torch.tensor([0.0]), torch.tensor([math.sqrt(0.5)])  # sd = sqrt(0.5 + 0.5) = 1
    assert float(mean_var_kl_loss(z, r, z, r, q)) == pytest.approx(-math.log(0.382925), abs=1e-5)


def test_nll_is_cross_entropy_kl_plus_entropy():
    mu_a, mu_b = torch.tensor([0.4, -0.5]), torch.tensor([0.0, 0.5])
    s_a, s_b = torch.tensor([1.0, 0.6]), torch.tensor([0.5, 0.9])
    q = torch.tensor([[0.0, 0.25, 0.25, 0.5, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    entropy = -(q * torch.log(q.clamp(min=1e-30))).sum(-1).mean()
    kl = mean_var_kl_loss(mu_a, s_a, mu_b, s_b, q, rho=0.0)
    assert_close(mean_var_nll_loss(mu_a, s_a, mu_b, s_b, q), kl + entropy, atol=1e-5, rtol=0)
    p = interval_probabilities(mu_a - mu_b, pair_sd(s_a, s_b))
    assert_close(mean_var_nll_loss(mu_a, s_a, mu_b, s_b, q), -(q * p.log()).sum(-1).mean(), atol=1e-6, rtol=0)


def test_gradients_finite_including_learned_rho():
    mu_a = torch.tensor([8.0, 0.0, -0.2], requires_grad=True)
    mu_b = torch.tensor([-8.0, 0.1, 0.3], requires_grad=True)
    raw_sd = torch.tensor([0.1, -3.0, 1.0], requires_grad=True)
    raw_rho = torch.tensor(0.3, requires_grad=True)
    sigma = torch.nn.functional.softplus(raw_sd)
    q = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0], [0.25, 0.25, 0, 0.25, 0.25]])
    loss = mean_var_kl_loss(mu_a, sigma, mu_b, sigma.flip(0), q, rho=torch.tanh(raw_rho))
    loss = loss + mean_var_nll_loss(mu_a, sigma, mu_b, sigma.flip(0), q)
    loss.backward()
    assert torch.isfinite(loss)
    for t in (mu_a, mu_b, raw_sd, raw_rho):  # per row: row 0 (μ_A − μ_B = 16, target "B significant") must not be dead
        assert torch.isfinite(t.grad).all() and (t.grad.abs() > 1e-3).all(), t.grad


def log_phi(x: float) -> float:
    """log Φ(x) by hand in float64 (erfc keeps the far tail: Φ(−15) ≈ 3.7e-51)."""
    return math.log(0.5 * math.erfc(-x / math.sqrt(2)))


def test_log_probabilities_in_the_far_tails():
    # μ_A − μ_B = ±3, sd 0.3: z = (edges − 3)/0.3 = (−15, −11.67, −8.33, −5); fp32 CDF differences give 0 below ~1e-45
    z = [(e - 3.0) / 0.3 for e in (-1.5, -0.5, 0.5, 1.5)]
    phis = [0.5 * math.erfc(-x / math.sqrt(2)) for x in z]
    want = [log_phi(z[0])] + [math.log(b - a) for a, b in itertools.pairwise(phis)] + [log_phi(-z[-1])]
    got = interval_log_probabilities(torch.tensor([3.0, -3.0]), torch.tensor([0.3, 0.3]))
    assert_close(got[0], torch.tensor(want), rtol=1e-5, atol=1e-5)  # class 0 ≈ −115.9
    assert_close(got[1], torch.tensor(want[::-1]), rtol=1e-5, atol=1e-5)  # the mirror pair: the survival side
    assert_close(got.exp().sum(-1), torch.ones(2))


@pytest.mark.parametrize("loss_fn", ["kl", "nll"])
def test_every_row_gets_a_gradient_including_confidently_wrong_pairs(loss_fn):
    # rows: μ_A − μ_B = 3 with target "B significant" (p_0 = Φ(−15)), its mirror (−3, target "A significant"),
    # a tie target far from the mean (p_tie = Φ(−8.3) − Φ(−11.7)) and an ordinary pair
    mu_a = torch.tensor([3.0, -3.0, 3.0, 0.2], requires_grad=True)
    mu_b = torch.zeros(4)
    sigma = torch.full((4,), 0.3 / math.sqrt(2))  # ρ = 0: sd of the difference 0.3
    q = torch.eye(5)[[0, 4, 2, 3]]
    if loss_fn == "kl":
        loss = mean_var_kl_loss(mu_a, sigma, mu_b, sigma, q)
    else:
        loss = mean_var_nll_loss(mu_a, sigma, mu_b, sigma, q)
    loss.backward()
    assert loss.item() > 100 / 4  # row 0 alone contributes −log Φ(−15) / 4 ≈ 29
    grad = mu_a.grad
    assert torch.isfinite(grad).all() and (grad.abs() > 1e-2).all(), grad
    assert grad[0] > 0 and grad[1] < 0 and grad[2] > 0  # descent moves each μ_A towards its target class


def test_kl_gradient_pulls_mean_towards_target():
    mu_a = torch.tensor([0.0], requires_grad=True)
    z, s = torch.tensor([0.0]), torch.tensor([0.5])
    q = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])  # A significantly better
    mean_var_kl_loss(mu_a, s, z, s, q).backward()
    assert float(mu_a.grad) < 0  # descent raises μ_A


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),  # perfect
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),  # reversed
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),  # all tied
        ([1.0, 2.0, 1.0, 2.0], [0, 0, 1, 1], 0.5),  # each positive ties one negative, beats/loses the other
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # 0.35 > 0.1, 0.35 < 0.4, 0.8 > both: 3 of 4
        ([1.0, 2.0, 2.0, 3.0], [0, 1, 0, 1], 0.875),  # 2 vs {1, 2} = 1 + ½, 3 vs {1, 2} = 2: 3.5 / 4
    ],
)
def test_auroc_hand_cases(scores, labels, expected):
    assert float(auroc(torch.tensor(scores), torch.tensor(labels))) == pytest.approx(expected)


def test_auroc_matches_pair_count_and_handles_empty_class():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40,), generator=g).float()
    labels = torch.rand(40, generator=g) > 0.6
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()).mean()
    assert float(auroc(scores, labels)) == pytest.approx(float(brute), abs=1e-6)
    assert math.isnan(float(auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))))


def test_divergence_scores():
    mu_a, mu_b = torch.tensor([1.0, 0.2, 0.2]), torch.tensor([0.0, 0.0, 0.0])
    s_a = s_b = torch.tensor([0.5, 1.0, 0.1])
    score = mean_var_divergence(mu_a, s_a, mu_b, s_b, lam=0.5)
    assert_close(score, torch.tensor([-0.5, 0.8, -0.1]))  # −(|Δμ| − 0.5(σA + σB))
    assert score.argsort().tolist() == [0, 2, 1]  # same gap, wider sds → more likely diverging
    assert_close(mean_var_divergence(mu_a, s_a, mu_b, s_b, lam=0.0), scalar_divergence(mu_a, mu_b))
    assert_close(scalar_divergence(torch.tensor([1.0, -2.0]), torch.tensor([3.0, -2.5])), torch.tensor([-2.0, -0.5]))


def test_mean_var_head_shapes_init_and_grad():
    from rlhf.models.heads import MeanVarHead

    torch.manual_seed(0)
    head = MeanVarHead(hidden_size=8)
    x = torch.randn(4, 8)
    mu, sigma = head(x)
    assert mu.shape == sigma.shape == (4,)
    assert_close(sigma, torch.ones(4), atol=1e-5, rtol=0)  # σ starts at 1
    assert mu.abs().sum() > 0
    q = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0]]).expand(2, -1)
    mean_var_kl_loss(mu[:2], sigma[:2], mu[2:], sigma[2:], q).backward()
    assert torch.isfinite(head.linear.weight.grad).all() and head.linear.weight.grad.abs().sum() > 0
    zero_mu, _ = MeanVarHead(hidden_size=8, init="zeros")(x)
    assert_close(zero_mu, torch.zeros(4))

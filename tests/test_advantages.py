"""Hand values for the REINFORCE math: RLOO advantages, the unended-sample rule, KL estimators, the loss.

Every expected number is derived in the comments; tolerances are the `assert_close` defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.advantages import counted_samples, kl_penalised_reward, rloo_advantages, whiten
from rlhf.losses import kl_estimate, masked_mean, reinforce_loss, sequence_kl

T, F = True, False


def test_rloo_2x4_all_ended():
    # group 0: r = [1, 2, 3, 6], sum 12. b_i = (12 − r_i)/3 → [11/3, 10/3, 3, 2]; A = r − b = [−8/3, −4/3, 0, 4]
    #   (equivalently K/(K−1)·(r − mean) = 4/3·(r − 3))
    # group 1: r = [0.5, −1, 2, 10], sum 11.5. b = (11.5 − r)/3 = [11/3, 12.5/3, 9.5/3, 1.5/3]
    #   A = [0.5 − 11/3, −1 − 12.5/3, 2 − 9.5/3, 10 − 0.5] = [−19/6, −31/6, −7/6, 9.5]
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.5, -1.0, 2.0, 10.0])
    ended = torch.ones(8, dtype=torch.bool)
    expected = torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0, -19 / 6, -31 / 6, -7 / 6, 9.5])
    assert_close(rloo_advantages(rewards, ended, group_size=4), expected)


def test_rloo_excludes_unended_samples():
    # group 0: all ended, as above → [−8/3, −4/3, 0, 4]
    # group 1: the 4th (r = 10) did not end: counted = first three, n = 3, baseline over the other two counted:
    #   A_0 = 0.5 − (−1 + 2)/2 = 0;  A_1 = −1 − (0.5 + 2)/2 = −2.25;  A_2 = 2 − (0.5 − 1)/2 = 2.25;  A_3 = 0 (not counted)
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.5, -1.0, 2.0, 10.0])
    ended = torch.tensor([T, T, T, T, T, T, T, F])
    expected = torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0, 0.0, -2.25, 2.25, 0.0])
    assert_close(rloo_advantages(rewards, ended, group_size=4), expected)
    assert counted_samples(ended, 4).tolist() == [T, T, T, T, T, T, T, F]


def test_rloo_unended_penalty_includes_them_at_reduced_reward():
    # group 1 with penalty 1: r' = [0.5, −1, 2, 10 − 1 = 9], all counted, mean 2.625
    #   A = 4/3·(r' − 2.625) = [−17/6, −29/6, −5/6, 8.5]
    rewards = torch.tensor([0.5, -1.0, 2.0, 10.0])
    ended = torch.tensor([T, T, T, F])
    expected = torch.tensor([-17 / 6, -29 / 6, -5 / 6, 8.5])
    assert_close(rloo_advantages(rewards, ended, group_size=4, unended_penalty=1.0), expected)
    assert counted_samples(ended, 4, unended_penalty=1.0).all()


def test_rloo_one_or_no_ended_sample_gives_zero_advantage():
    rewards = torch.tensor([5.0, 1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0])
    ended = torch.tensor([T, F, F, F, F, F, F, F])  # 1 ended in group 0, none in group 1
    assert torch.equal(rloo_advantages(rewards, ended, group_size=4), torch.zeros(8))
    assert not counted_samples(ended, 4).any()


def test_equal_rewards_give_zero_advantage():
    rewards = torch.full((8,), 0.37)
    assert torch.equal(rloo_advantages(rewards, torch.ones(8, dtype=torch.bool), group_size=4), torch.zeros(8))


def test_rloo_k2_is_the_reward_difference():
    # K = 2: A_0 = r_0 − r_1, A_1 = r_1 − r_0
    assert_close(rloo_advantages(torch.tensor([3.0, 1.0]), torch.tensor([T, T]), group_size=2), torch.tensor([2.0, -2.0]))


def test_rloo_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of K"):
        rloo_advantages(torch.zeros(6), torch.ones(6, dtype=torch.bool), group_size=4)


def test_kl_penalised_reward():
    # r̃ = r − β·KL: [1 − 0.1·0.5, 2 − 0.1·1] = [0.95, 1.9]; no gradient reaches the KL
    kl = torch.tensor([0.5, 1.0], requires_grad=True)
    out = kl_penalised_reward(torch.tensor([1.0, 2.0]), kl, 0.1)
    assert_close(out, torch.tensor([0.95, 1.9]))
    assert not out.requires_grad


def test_kl_estimators_hand_values():
    # π = [0.5, 0.25], π_ref = [0.25, 0.5] at the two sampled tokens
    # k1 = log π − log π_ref = [log 2, −log 2]; abs = [log 2, log 2]
    # k3 with ρ = π_ref/π = [0.5, 2]: (ρ − 1) − log ρ = [−0.5 + log 2, 1 − log 2] = [0.19315, 0.30685]
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    ln2 = math.log(2)
    assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([[ln2, -ln2]]))
    assert_close(kl_estimate(logp, ref, "abs"), torch.tensor([[ln2, ln2]]))
    assert_close(kl_estimate(logp, ref, "k3"), torch.tensor([[-0.5 + ln2, 1 - ln2]]))
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(logp, ref, "k2")  # type: ignore[arg-type]


def test_kl_estimators_are_zero_when_policies_agree():
    logp = torch.log(torch.tensor([[0.3, 0.9, 0.01]]))
    for estimator in ("k1", "abs", "k3"):
        assert torch.equal(kl_estimate(logp, logp.clone(), estimator), torch.zeros(1, 3))


def test_sequence_kl_mean_and_sum_over_the_response_mask():
    # row 0 tokens [log 2, −log 2, 5 (masked out)]; row 1 [log 2, masked, masked]
    # mean: abs → [log 2, log 2]; k1 → [0, log 2];  sum: abs → [2 log 2, log 2]; k1 → [0, log 2]
    ln2 = math.log(2)
    logp = torch.tensor([[ln2, 0.0, 5.0], [ln2, 1.0, 1.0]])
    ref = torch.tensor([[0.0, ln2, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[T, T, F], [T, F, F]])
    assert_close(sequence_kl(logp, ref, mask, "abs", "mean"), torch.tensor([ln2, ln2]))
    assert_close(sequence_kl(logp, ref, mask, "k1", "mean"), torch.tensor([0.0, ln2]))
    assert_close(sequence_kl(logp, ref, mask, "abs", "sum"), torch.tensor([2 * ln2, ln2]))
    assert_close(sequence_kl(logp, ref, mask, "k1", "sum"), torch.tensor([0.0, ln2]))


def test_reinforce_loss_is_a_global_token_mean_and_its_gradient():
    # logp [[−1, −2, −3], [−0.5, −1.5, 0]], mask [[T, T, F], [T, T, T]], A = [2, −1]
    # terms −logp·A: row 0: 2, 4 (third masked); row 1: −0.5, −1.5, 0 → sum 4 over 5 tokens = 0.8
    # d loss / d logp_it = −A_i / 5 on counted tokens, 0 elsewhere
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[T, T, F], [T, T, T]])
    loss = reinforce_loss(logp, torch.tensor([2.0, -1.0]), mask, torch.tensor([T, T]))
    assert_close(loss, torch.tensor(0.8))
    loss.backward()
    assert_close(logp.grad, torch.tensor([[-0.4, -0.4, 0.0], [0.2, 0.2, 0.2]]))


def test_uncounted_samples_stay_out_of_the_denominator():
    # row 0 counted (A = 2, 2 tokens: terms 2, 4), row 1 not counted (unended: A = 0, 3 tokens)
    # → (2 + 4) / 2 = 3, not 6 / 5: the step must not shrink because a sample did not end
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.5, -1.0]], requires_grad=True)
    mask = torch.tensor([[T, T, F], [T, T, T]])
    ended = torch.tensor([T, F, T, T])  # K = 2: group 0 = rows 0, 1 (one ended → n = 1: nothing counted), group 1 = rows 2, 3
    assert counted_samples(ended, 2).tolist() == [F, F, T, T]
    loss = reinforce_loss(logp, torch.tensor([2.0, 0.0]), mask, torch.tensor([T, F]))
    assert_close(loss, torch.tensor(3.0))
    loss.backward()
    assert_close(logp.grad, torch.tensor([[-1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]))
    nothing = torch.zeros(1, 2, requires_grad=True)
    assert reinforce_loss(nothing, torch.zeros(1), torch.ones(1, 2, dtype=torch.bool), torch.tensor([F])).item() == 0.0


def test_positive_advantage_raises_the_sampled_log_prob():
    logp = torch.zeros(1, 2, requires_grad=True)
    reinforce_loss(logp, torch.tensor([1.0]), torch.ones(1, 2, dtype=torch.bool), torch.tensor([T])).backward()
    assert (logp.grad < 0).all()  # gradient descent increases log π of the sampled tokens


def test_whiten_over_counted_samples():
    # counted [1, 2, 3]: mean 2, population std sqrt(2/3) → [−1.2247, 0, 1.2247]; the uncounted entry becomes 0
    out = whiten(torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([T, T, T, F]))
    s = math.sqrt(2 / 3)
    assert_close(out, torch.tensor([-1 / s, 0.0, 1 / s, 0.0]))


def test_masked_mean_of_an_empty_row_is_zero():
    assert_close(masked_mean(torch.ones(2, 3), torch.tensor([[T, F, F], [F, F, F]]), dim=1), torch.tensor([1.0, 0.0]))

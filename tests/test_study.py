"""The reproduction study: its world (two disagreeing groups on contested prompts), truth metrics on hand values,
the report's orderings, and a smoke run of `python -m rlhf.study` on a tiny world with 1-step trainings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rlhf.data.disagreement import divergence_label
from rlhf.data.synthetic import PROMPTS
from rlhf.metrics import auroc
from rlhf.study.evaluate import PairRewards, TruthPairs, item_runs, truth_metrics, tune_lambda
from rlhf.study.policies import POLICY_RMS
from rlhf.study.report import intervals, markdown, orderings, sigma_target, summarise
from rlhf.study.variants import EXPO_ALPHAS, VARIANTS, variant
from rlhf.study.world import CONTESTED_PROMPTS, WorldSpec, _tastes, make_study_world, write_study_world

REPO = Path(__file__).resolve().parents[1]


def _family(prompt: str, templates: tuple[str, ...]) -> bool:
    return any(prompt.startswith(t.split("{s}")[0]) and prompt.endswith(t.split("{s}")[1]) for t in templates)


def test_world_is_deterministic(tmp_path):
    spec = WorldSpec(n_train=20, n_val=5, n_test=5)
    a, b = write_study_world(tmp_path / "a", spec), write_study_world(tmp_path / "b", spec)
    for stem in a:
        assert a[stem].read_bytes() == b[stem].read_bytes(), stem
    assert json.loads(a["world"].read_text())["contested_share"] == spec.contested_share


def test_contested_items_use_their_own_prompts_and_diverge_more():
    items = make_study_world(WorldSpec(n_train=300, n_val=1, n_test=1))["train"]
    contested = [s for s in items if s.contested]
    agreed = [s for s in items if not s.contested]
    assert 0.2 < len(contested) / len(items) < 0.4
    assert all(_family(s.item.prompt, CONTESTED_PROMPTS) for s in contested)
    assert all(_family(s.item.prompt, PROMPTS) for s in agreed)
    assert all(abs(s.item.responses[0].features["detail"] - s.item.responses[1].features["detail"]) >= 0.5 for s in contested)

    def diverging_share(group):
        labels = [divergence_label(s.item.strengths) for s in group]
        return labels.count("diverging") / len(labels)

    assert diverging_share(contested) > 2 * diverging_share(agreed)


def test_both_groups_sit_on_every_contested_panel():
    import random

    rng = random.Random(0)
    for n in (3, 4, 5):
        tastes = _tastes(n, 2.0, rng)
        assert {math.copysign(1, t) for t in tastes} == {1.0, -1.0} and all(abs(t) == 2.0 for t in tastes)


def _truth(q, contested, signs, divergence):
    return TruthPairs(torch.tensor(q, dtype=torch.float64), torch.tensor(contested), torch.tensor(signs), torch.tensor(divergence))


def test_truth_metrics_hand_values():
    # pair 0: q2 > q1 by 1, r agrees; pair 1: q1 > q2 by 2, r disagrees; pair 2: |Δq| = 0.1 < 0.25 (left out of
    # truth accuracy); pair 3: q2 > q1, a reward tie (wrong).
    truth = _truth([[0.0, 1.0], [3.0, 1.0], [2.0, 2.1], [1.0, 2.0]], [False, True, True, False], [1, 1, 0, -1], [0, 1, -1, 0])
    rewards = PairRewards(torch.tensor([[0.0, 2.0], [0.0, 0.5], [1.0, 1.0], [0.3, 0.3]]))
    m = truth_metrics(rewards, truth)
    assert m["truth_accuracy"] == pytest.approx(1 / 3)  # pairs 0, 1, 3: only pair 0 right
    assert m["truth_accuracy_contested"] == pytest.approx(0.0)  # pair 1
    assert m["truth_accuracy_agreed"] == pytest.approx(0.5)  # pairs 0 and 3
    assert m["label_accuracy"] == pytest.approx(2 / 3)  # labels +1, +1, −1 on pairs 0, 1, 3: pairs 0, 1 right
    # divergence score −|r1 − r2| = [−2, −0.5, 0, 0]; contested = pairs 1, 2. Positives {−0.5, 0} vs negatives {−2, 0}:
    # (−0.5 > −2) + (−0.5 < 0) + (0 > −2) + (0 = 0 → ½) = 2.5 of 4.
    assert m["auroc_contested"] == pytest.approx(2.5 / 4)
    # labelled pairs 0 (agree), 1 (diverging), 3 (agree): −0.5 beats −2, loses to 0 → ½.
    assert m["auroc_labels"] == pytest.approx(0.5)
    q = truth.q.flatten()
    r = rewards.reward.double().flatten()
    expected = torch.corrcoef(torch.stack([q, r]))[0, 1]
    assert m["pearson_q"] == pytest.approx(float(expected))


def test_mean_var_lambda_is_tuned_and_used():
    # Equal μ gaps everywhere; only σ tells the contested pairs (1, 2) apart, so λ = 0 gives AUROC ½ and λ > 0 gives 1.
    truth = _truth([[0.0, 1.0]] * 4, [False, True, True, False], [1, 1, 1, 1], [0, 1, 1, 0])
    rewards = PairRewards(torch.tensor([[0.0, 1.0]] * 4), torch.tensor([[0.1, 0.1], [1.0, 1.0], [0.9, 0.9], [0.2, 0.2]]))
    lam = tune_lambda(rewards, truth, grid=(0.0, 0.5, 1.0))
    assert lam == 0.5  # the first λ reaching the best AUROC
    m = truth_metrics(rewards, truth, lam)
    assert m["auroc_contested"] == pytest.approx(1.0)
    assert m["auroc_contested_scalar"] == pytest.approx(0.5)
    assert m["lambda"] == 0.5
    assert m["sigma_ratio_contested"] == pytest.approx(0.95 / 0.15)


def _runs_with_accuracy(acc: float, n: int, seeds: int) -> list[dict]:
    """Item runs of a fake variant: the first round(acc·n) items right, every metric's data the same shape as item_runs."""
    from rlhf.study.bootstrap import accuracy_stat, auroc_stat

    correct = torch.arange(n) < round(acc * n)
    scores = torch.linspace(0, 1, n)
    return [{m: accuracy_stat(correct, torch.ones(n, dtype=torch.bool)) for m in ("truth_accuracy", "truth_accuracy_contested", "label_accuracy")}
            | {"auroc_contested": auroc_stat(scores, torch.arange(n) % 2 == 0), "auroc_labels": auroc_stat(scores, torch.arange(n) % 2 == 0)} for _ in range(seeds)]


def test_orderings_table_and_verdicts():
    from rlhf.study.report import CLAIMS

    names = [v.name for v in VARIANTS]
    runs = {name: _runs_with_accuracy(0.6 + 0.05 * i, 100, 2) for i, name in enumerate(names)}
    runs["scaled-bt-init-expo"] = _runs_with_accuracy(0.5, 100, 2)
    table = intervals(runs, 100, n_boot=50)
    assert table["bt"]["truth_accuracy"].estimate == pytest.approx(0.7)
    checks = {c["claim"]: c for c in orderings(runs, 100, n_boot=50)}
    assert len(checks) == len(CLAIMS) == 13
    # accuracy rises with the index in VARIANTS (every claim compares a later row with an earlier one), except ExPO
    assert checks["Helpfulness-only regression beats 5-attribute regression (93.0 vs 92.4)"]["verdict"] == "held"
    assert checks["ExPO on top adds (94.1 vs 93.7)"]["verdict"] == "reversed"
    assert checks["Mean-Var divergence AUROC beats BT's, against the contested truth"]["verdict"] == "unresolved"  # same scores
    target = sigma_target(runs, table, 100, n_boot=50)
    assert target["difference"] == [0.0, 0.0, 0.0] and not target["met"]
    text = markdown(table, list(checks.values()), summarise({"bt": [{"alpha": 1.0}]}), target)
    assert "| BT from scratch, regular | 91.5 | 0.482 | 70.0 [" in text
    assert text.count("**held**") + text.count("**reversed**") + text.count("**unresolved**") == 13


def test_paired_bootstrap_interval_matches_the_normal_approximation():
    """One seed, paired per-item differences d ∈ {−1, 0, 1}: the interval is ≈ mean ± 1.96·sd(d)/√N."""
    from rlhf.study.bootstrap import accuracy, accuracy_stat, paired_interval

    g = torch.Generator().manual_seed(0)
    n = 4000
    a = torch.rand(n, generator=g) < 0.72
    b = torch.where(torch.rand(n, generator=g) < 0.8, a, torch.rand(n, generator=g) < 0.5)  # mostly the same items right
    ones = torch.ones(n, dtype=torch.bool)
    iv = paired_interval(accuracy, [accuracy_stat(a, ones)], [accuracy_stat(b, ones)], n, n_boot=2000)
    d = a.double() - b.double()
    half = 1.96 * float(d.std()) / math.sqrt(n)
    assert iv.estimate == pytest.approx(float(d.mean()))
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.1)
    assert iv.low < iv.estimate < iv.high


def test_paired_bootstrap_resamples_seeds_and_gives_verdicts():
    """A statistic that ignores the items and is 0.1 (seed 0) or 0.3 (seed 1) above B: replicates are 0.1, 0.2, 0.3."""
    from rlhf.study.bootstrap import Interval, paired_interval

    constant = lambda run, idx: torch.full((idx.shape[0],), run, dtype=torch.float64)  # noqa: E731
    iv = paired_interval(constant, [0.6, 0.8], [0.5, 0.5], 100, n_boot=500)
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((0.2, 0.1, 0.3))
    assert iv.verdict == "held"
    assert Interval(-0.2, -0.3, -0.1).verdict == "reversed" and Interval(0.1, -0.1, 0.3).verdict == "unresolved"


def test_item_runs_give_truth_metrics_on_all_items():
    from rlhf.study.bootstrap import paired_interval
    from rlhf.study.report import STATS

    g = torch.Generator().manual_seed(1)
    n = 60
    truth = _truth(torch.rand(n, 2, generator=g).mul(4).tolist(), (torch.rand(n, generator=g) < 0.3).tolist(), torch.randint(-1, 2, (n,), generator=g).tolist(), torch.randint(-1, 2, (n,), generator=g).tolist())
    rewards = PairRewards(torch.randn(n, 2, generator=g), torch.rand(n, 2, generator=g))
    expected = truth_metrics(rewards, truth, 0.5)
    for metric, run in item_runs(rewards, truth, 0.5).items():
        assert paired_interval(STATS[metric], [run], None, n, n_boot=10).estimate == pytest.approx(expected[metric], abs=1e-6), metric


def test_variants_reference_each_other():
    names = {v.name for v in VARIANTS}
    assert len(VARIANTS) == 10 and len(names) == 10
    for v in VARIANTS:
        assert v.init_from is None or v.init_from in names
        assert v.expo_of is None or set(v.expo_of) <= names
        assert (REPO / f"configs/study/{v.config}.yaml").is_file()
    with pytest.raises(KeyError, match="unknown study variant 'nope'"):
        variant("nope")


def test_study_smoke(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    """The whole command on a 24/8/8-prompt world with one training step per variant: every variant is trained (or
    extrapolated), scored and reported."""
    from rlhf.study.__main__ import main

    monkeypatch.chdir(REPO)
    results = main(["--seeds", "0", "--out", str(tmp_path / "run"), "--results", str(tmp_path / "results"), "--model", str(tiny_llama_dir), "--world-size", "24", "8", "8", "--max-steps", "1", "--n-boot", "20", "--policy-prompts", "2", "--kl-coefs", "0.1", "--dpo-losses", "dpo"])
    assert set(results["per_seed"]) == {v.name for v in VARIANTS}
    for name, runs in results["per_seed"].items():
        assert len(runs) == 1 and 0.0 <= runs[0]["truth_accuracy"] <= 1.0, name
        assert math.isfinite(runs[0]["pearson_q"]) and math.isfinite(runs[0]["auroc_contested"]), name
    assert results["per_seed"]["scaled-bt-init-expo"][0]["alpha"] in EXPO_ALPHAS
    assert "lambda" in results["per_seed"]["mean-var"][0]
    assert (tmp_path / "run/seed0/margin-bt-init/checkpoint/model.safetensors").is_file()
    assert (tmp_path / "results/study.png").stat().st_size > 10_000
    assert "Orderings of the paper" in (tmp_path / "results/study.md").read_text()
    assert {c["verdict"] for c in results["orderings"]} <= {"held", "reversed", "unresolved"} and len(results["orderings"]) == 13
    from safetensors.torch import load_file

    scores = load_file(tmp_path / "results/scores.safetensors")
    assert scores["bt.seed0.reward"].shape == (8, 2) and scores["mean-var.seed0.sigma"].shape == (8, 2)
    policies = results["policies"]["policies"]
    assert set(policies) == {"base", "dpo-dpo"} | {f"reinforce-{rm}-kl0.1" for rm in POLICY_RMS}
    assert all(0.0 <= p["gold"][0] <= 4.0 and math.isfinite(p["kl"]) for p in policies.values())
    assert results["policies"]["best_rm_at_matched_kl"] in POLICY_RMS
    assert (tmp_path / "results/policies.png").stat().st_size > 10_000 and (tmp_path / "run/seed0/scaled-bt-init-expo/checkpoint/config.yaml").is_file()
    # a stopped study resumes: every RM and policy trained with the same arguments is reused, not trained again
    capsys.readouterr()
    again = main(["--seeds", "0", "--out", str(tmp_path / "run"), "--results", str(tmp_path / "again"), "--model", str(tiny_llama_dir), "--world-size", "24", "8", "8", "--max-steps", "1", "--n-boot", "20", "--policy-prompts", "2", "--kl-coefs", "0.1", "--dpo-losses", "dpo"])
    assert again["reused_runs"] == len(VARIANTS) - 1 and capsys.readouterr().out.count("[study] reusing") == len(VARIANTS) - 1 + len(policies) - 1
    assert again["per_seed"] == results["per_seed"] | {k: [v[0] | {"seconds": again["per_seed"][k][0]["seconds"]}] for k, v in results["per_seed"].items()}


def test_sigma_head_learns_a_trivially_visible_disagreement():
    """Unit-sized σ check: pooled features carry a "contested" flag (dim 0) and the quality gap (dim 1). Contested
    pairs' annotators split between the two extreme classes, agreed pairs' all pick the class of the gap. A
    MeanVarHead trained with the KL loss and learned ρ must give contested responses a clearly larger σ."""
    from rlhf.losses import mean_var_kl_loss
    from rlhf.models.heads import MeanVarHead

    torch.manual_seed(0)
    n = 128
    contested = torch.arange(n) % 2 == 0
    gap = torch.randint(0, 5, (n,))  # the agreed class, 0..4
    noise = torch.randn(n, 2, 6) * 0.1
    feats = torch.cat([contested.float()[:, None, None].expand(n, 2, 1), torch.stack([torch.zeros(n), (gap.float() - 2) / 2], 1)[..., None], noise], -1)
    target = torch.nn.functional.one_hot(gap, 5).double()
    target[contested] = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    head = MeanVarHead(8, learned_rho=True).double()
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(150):
        mu, sigma = head(feats.reshape(2 * n, 8).double())
        mu, sigma = mu.view(n, 2), sigma.view(n, 2)
        loss = mean_var_kl_loss(mu[:, 0], sigma[:, 0], mu[:, 1], sigma[:, 1], target, head.rho())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, sigma = head(feats.reshape(2 * n, 8).double())
        sigma = sigma.view(n, 2).mean(1)
    assert float(sigma[contested].mean() / sigma[~contested].mean()) > 2.0
    assert float(auroc(sigma, contested)) == 1.0


def test_gold_scorer_reads_the_generators_quality_from_the_text():
    """Every generated response of a study world: the generator's q is one of the scorer's readings of the text,
    and it is the scorer's q whenever the text determines it (most responses; cut-off fragments can hide a fact)."""
    from rlhf.study.gold import gold_quality

    world = make_study_world(WorldSpec(n_train=400, n_val=0, n_test=0))["train"]
    determined = 0
    for s in world:
        for r in s.item.responses:
            g = gold_quality(s.item.prompt, r.text)
            assert any(abs(c - r.quality) < 1e-9 for c in g.candidates), (s.item.prompt, r.text, r.features)
            if g.determined:
                determined += 1
                assert g.quality == pytest.approx(r.quality, abs=1e-9), (s.item.prompt, r.text, r.features)
    assert determined / (2 * len(world)) > 0.75


def test_gold_scorer_hand_values():
    from rlhf.study.gold import gold_quality

    # on topic, right, fluent, no repeat, complete, 2 facts (detail ½): 4·(0.25 + 0.10 + 0.25 + 0.15 + 0.15 + 0.05)
    assert gold_quality("Tell me about the cat.", "The cat says meow. It has soft fur.").quality == pytest.approx(3.8)
    # the same text for a question about the dog: off topic, so its facts do not count either
    assert gold_quality("Tell me about the dog.", "The cat says meow. It has soft fur.").quality == pytest.approx(4 * (0.25 + 0.15 + 0.15 + 0.05))
    # shuffled second sentence, repeated fact: fluent ½, no_repeat 0, detail 0
    g = gold_quality("Tell me about the cat.", "The cat says meow. Meow says it.")
    assert g.determined and g.quality == pytest.approx(4 * (0.25 + 0.10 + 0.125 + 0.15))
    # free text states no fact: only "no repetition" counts; without a final period it is not complete either
    assert gold_quality("Tell me about the cat.", "Once upon a time there was a girl").quality == pytest.approx(0.6)


def test_matched_gold_interpolates_at_the_smallest_largest_kl():
    from rlhf.study.policies import matched_gold

    kl, gold = matched_gold({"a": [(0.0, 1.0), (2.0, 3.0), (4.0, 2.0)], "b": [(0.0, 1.0), (1.0, 1.5)]})
    assert kl == 1.0 and gold == pytest.approx({"a": 2.0, "b": 1.5})


def test_a_run_is_reused_only_with_the_same_arguments_and_inputs(tmp_path):
    """rlhf.training.reuse: same argv and input bytes → reused; an edited input file (or --retrain) → trained again."""
    from rlhf.training.reuse import train_once

    data, run_dir, calls = tmp_path / "train.jsonl", tmp_path / "run", []
    data.write_text('{"a": 1}\n')

    def fit(argv):
        calls.append(argv)
        (run_dir / "checkpoint").mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoint" / "model.safetensors").write_bytes(b"w")

    argv = ["fit", f"--data.train_path={data}", f"--checkpoint.dirpath={run_dir / 'checkpoint'}"]
    assert train_once(fit, argv, run_dir) is None and len(calls) == 1
    assert train_once(fit, argv, run_dir) is not None and len(calls) == 1  # the output checkpoint is not an input
    data.write_text('{"a": 2}\n')
    assert train_once(fit, argv, run_dir) is None and len(calls) == 2
    assert train_once(fit, argv, run_dir, retrain=True) is None and len(calls) == 3
    assert train_once(fit, [*argv, "--trainer.max_steps=3"], run_dir) is None and len(calls) == 4

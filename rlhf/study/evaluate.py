"""Score a trained RM on the study world's pairs and measure it against the latent truth.

`score_truth_pairs` renders every pair of a truth file with the RM's own template under evaluation's "truncate" rule
(nothing is dropped) and returns r and, for a mean-variance RM, σ of both responses. `truth_metrics` is pure:
- truth_accuracy: sign(r2 − r1) = sign(q2 − q1) over pairs with |q2 − q1| ≥ `min_gap` (ties wrong), also split into
  contested and agreed prompts;
- label_accuracy: against the sign of the aggregated annotator strength (the paper's "preference accuracy"), over
  pairs whose aggregate is decided;
- pearson_q: Pearson correlation between rewards and q over all responses;
- divergence AUROC with the scalar score −|r1 − r2| (and, with σ, −(|μ1 − μ2| − λ(σ1 + σ2))): `auroc_contested`
  separates the world's contested prompts from the others (the truth), `auroc_labels` separates "diverging" from
  "high_agreement" pairs by the annotation rule (the paper's protocol);
- for a mean-variance RM, sigma_ratio_contested: mean σ on contested pairs over mean σ on the others (> 1: σ
  learned where the groups disagree).
Left out: RewardBench (the tiny model's 256-character context; the demo reports it separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf.data.aggregation import aggregate_strengths
from rlhf.data.disagreement import DivergenceRule, divergence_label
from rlhf.data.disagreement_data import LABEL_CODES, row_strengths
from rlhf.data.encode import Encoder
from rlhf.data.rows import Row
from rlhf.eval.rewardbench_data import BenchPair
from rlhf.eval.score_pairs import encode_pairs, pad_id_of, score_sequences
from rlhf.metrics import LAMBDA_GRID, auroc, best_lambda, mean_var_divergence, pearson, scalar_divergence

STUDY_LAMBDA_GRID: tuple[float, ...] = LAMBDA_GRID + (8.0, 16.0, 64.0)
"""λ values the study tries for the mean-variance divergence score: the repo's grid plus large λ, where σ dominates."""


@dataclass(frozen=True)
class TruthPairs:
    """N pairs with their hidden truth and annotation labels: q (N, 2), contested (N,) bool, aggregate sign (N,)
    in {−1, 0, 1} (0: undecided), divergence (N,) in {1 diverging, 0 high agreement, −1 neither}."""

    q: Tensor
    contested: Tensor
    label_sign: Tensor
    divergence: Tensor


@dataclass(frozen=True)
class PairRewards:
    """Rewards (N, 2) of both responses; sigma (N, 2) for a mean-variance RM, else None."""

    reward: Tensor
    sigma: Tensor | None = None


def truth_pairs(truth_rows: list[Row], preference_rows: list[Row], rule: DivergenceRule = DivergenceRule()) -> TruthPairs:
    """Align a truth file with its preference file (same order) into tensors."""
    if len(truth_rows) != len(preference_rows):
        raise ValueError(f"truth has {len(truth_rows)} rows, preferences {len(preference_rows)}")
    signs, labels = [], []
    for t, p in zip(truth_rows, preference_rows):
        if (t.data["response_1"], t.data["response_2"]) != (p.data["response_1"], p.data["response_2"]):
            raise ValueError(f"{t.source} and {p.source} are not the same pair")
        strengths = row_strengths(p)
        agg = aggregate_strengths(strengths)
        signs.append(0 if not agg else (1 if agg > 0 else -1))
        labels.append(LABEL_CODES[divergence_label(strengths, rule)])
    return TruthPairs(
        q=torch.tensor([[t.data["q_1"], t.data["q_2"]] for t in truth_rows], dtype=torch.float64),
        contested=torch.tensor([bool(t.data["contested"]) for t in truth_rows]),
        label_sign=torch.tensor(signs),
        divergence=torch.tensor(labels),
    )


def _accuracy(reward: Tensor, target_sign: Tensor, keep: Tensor) -> float:
    if not keep.any():
        return float("nan")
    predicted = torch.sign(reward[:, 1] - reward[:, 0])
    return float((predicted[keep] == target_sign[keep]).double().mean())


def divergence_scores(rewards: PairRewards, lam: float | None) -> Tensor:
    """(N,) higher = more likely diverging: −|r1 − r2|, or the mean-variance score with λ when σ is known."""
    r = rewards.reward
    if rewards.sigma is None or lam is None:
        return scalar_divergence(r[:, 0], r[:, 1])
    return mean_var_divergence(r[:, 0], rewards.sigma[:, 0], r[:, 1], rewards.sigma[:, 1], lam)


def tune_lambda(rewards: PairRewards, truth: TruthPairs, grid: tuple[float, ...] = LAMBDA_GRID) -> float:
    """The λ of `grid` with the best contested-vs-agreed AUROC on these (validation) pairs; first best on ties."""
    r, sigma = rewards.reward, rewards.sigma
    return best_lambda(r[:, 0], sigma[:, 0], r[:, 1], sigma[:, 1], truth.contested, grid)[0]


ITEM_METRICS: tuple[str, ...] = ("truth_accuracy", "truth_accuracy_contested", "label_accuracy", "auroc_contested", "auroc_labels")
"""The metrics `item_runs` builds per item, for the paired bootstrap (`rlhf.study.bootstrap`)."""


def item_runs(rewards: PairRewards, truth: TruthPairs, lam: float | None = None, min_gap: float = 0.25) -> dict[str, tuple]:
    """Per-item data of each `ITEM_METRICS` metric: (2, N) [correct, counts] for accuracies (`bootstrap.accuracy`),
    (scores, labels, counts) for AUROCs (`bootstrap.resampled_auroc`). On all items they give `truth_metrics`."""
    from rlhf.study.bootstrap import accuracy_stat, auroc_stat

    q, r = truth.q, rewards.reward.double()
    q_sign = torch.sign(q[:, 1] - q[:, 0]).long()
    predicted = torch.sign(r[:, 1] - r[:, 0]).long()
    clear = (q[:, 1] - q[:, 0]).abs() >= min_gap
    score = divergence_scores(rewards, lam)
    return {
        "truth_accuracy": accuracy_stat(predicted == q_sign, clear),
        "truth_accuracy_contested": accuracy_stat(predicted == q_sign, clear & truth.contested),
        "label_accuracy": accuracy_stat(predicted == truth.label_sign, truth.label_sign != 0),
        "auroc_contested": auroc_stat(score, truth.contested),
        "auroc_labels": auroc_stat(score, truth.divergence == 1, truth.divergence >= 0),
    }


def truth_metrics(rewards: PairRewards, truth: TruthPairs, lam: float | None = None, min_gap: float = 0.25) -> dict[str, float]:
    """The study's metrics for one RM on one split (see the module docstring)."""
    q = truth.q
    q_sign = torch.sign(q[:, 1] - q[:, 0]).long()
    clear = (q[:, 1] - q[:, 0]).abs() >= min_gap
    r = rewards.reward.double()
    labelled = truth.divergence >= 0
    score = divergence_scores(rewards, lam)
    out = {
        "truth_accuracy": _accuracy(r, q_sign, clear),
        "truth_accuracy_contested": _accuracy(r, q_sign, clear & truth.contested),
        "truth_accuracy_agreed": _accuracy(r, q_sign, clear & ~truth.contested),
        "label_accuracy": _accuracy(r, truth.label_sign, truth.label_sign != 0),
        "pearson_q": float(pearson(r.flatten(), q.flatten())),
        "auroc_contested": float(auroc(score, truth.contested)),
        "auroc_labels": float(auroc(score[labelled], truth.divergence[labelled] == 1)),
    }
    if rewards.sigma is not None:
        out["auroc_contested_scalar"] = float(auroc(divergence_scores(rewards, None), truth.contested))
        out["lambda"] = float(lam) if lam is not None else float("nan")
        pair_sigma = rewards.sigma.double().mean(dim=1)  # (N,) mean σ of the two responses
        out["sigma_ratio_contested"] = float(pair_sigma[truth.contested].mean() / pair_sigma[~truth.contested].mean())
    return out


@torch.no_grad()
def score_truth_pairs(model, tokenizer, settings, truth_rows: list[Row], batch_size: int = 64) -> PairRewards:
    """Score both responses of every truth row with a loaded scorer (`rlhf.reward.score.load_scorer`)."""
    from rlhf.models.reward_model import has_sigma

    pairs = [BenchPair("study", t.source, t.data["prompt"], t.data["response_1"], t.data["response_2"]) for t in truth_rows]
    encoded = encode_pairs(Encoder(tokenizer, settings.template, settings.max_length), pairs)
    outputs = score_sequences(model, encoded.chosen + encoded.rejected, pad_id_of(tokenizer), batch_size, all_outputs=True)
    n = len(pairs)
    reward = model.reward(outputs).float()
    pair = lambda x: torch.stack([x[:n], x[n:]], dim=1)  # noqa: E731 — (2N,) → (N, 2)
    sigma = pair(model.sigma(outputs).float()) if has_sigma(model) else None
    return PairRewards(pair(reward), sigma)


"""The reward objectives (rlhf/reward/objectives.py) on hand-made model outputs, without a backbone.

A scripted model scores row i of a batch as `table[input_ids[i, 0]]`, so each loss is checked against values
derived by hand in the comments; the registry covers every `loss` value; a data module of the wrong kind is refused
at setup with the messages training_step used to raise; validation metrics over several batches equal those over one
batch of the same rows; and RewardModelModule.training_step stays a few lines.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from rlhf.data.collate import pack
from rlhf.data.datamodules import LoaderSpec, PreferenceDataModule, RatingDataModule
from rlhf.data.disagreement_data import DisagreementDataModule
from rlhf.data.dpo_data import DPODataModule
from rlhf.losses import PAIRWISE_LOSSES, LossName
from rlhf.models.backbone import BackboneSpec
from rlhf.models.heads import HeadSpec
from rlhf.reward.module import RewardModelModule
from rlhf.reward.objectives import OBJECTIVES, MeanVariance, MeanVarSpec, Pairwise, Regression
from rlhf.types import DisagreementBatch, PackedPreferenceBatch, PreferenceBatch, RatingBatch

ROOT = Path(__file__).resolve().parents[1]


class Scripted(nn.Module):
    """Row i scores `table[input_ids[i, 0]]` ((M, n_out) outputs chosen by hand); column 0 is the reward (μ) and, for
    the mean-variance objective, column 1 is σ itself. `rho_raw` set: ρ = tanh(rho_raw)."""

    def __init__(self, table: list[list[float]], rho_raw: float | None = None):
        super().__init__()
        self.table = torch.tensor(table)
        self.head = SimpleNamespace(rho_raw=None if rho_raw is None else torch.tensor(rho_raw))
        self.head.rho = lambda: 0.0 if self.head.rho_raw is None else torch.tanh(self.head.rho_raw)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.table[input_ids[:, 0]]

    def forward_packed(self, tokens) -> Tensor:
        return self.table[tokens.input_ids[0, tokens.cu_seqlens[:-1].long()]]

    def reward(self, outputs: Tensor) -> Tensor:
        return outputs[:, 0]

    def sigma(self, outputs: Tensor) -> Tensor:
        return outputs[:, 1]


def _ids(rows: list[int]) -> tuple[Tensor, Tensor]:
    ids = torch.tensor(rows).unsqueeze(1)
    return ids, torch.ones_like(ids, dtype=torch.bool)


def pairs(chosen: list[int], rejected: list[int], margin: list[float]) -> PreferenceBatch:
    return PreferenceBatch(*_ids(chosen + rejected), torch.tensor(margin))


def ratings(rows: list[int], labels: list[list[float]], mask: list[list[bool]]) -> RatingBatch:
    return RatingBatch(*_ids(rows), torch.tensor(labels), torch.tensor(mask))


def disagreements(a: list[int], b: list[int], target: list[list[float]], diverging: list[int]) -> DisagreementBatch:
    return DisagreementBatch(*_ids(a + b), torch.tensor(target), torch.tensor(diverging))


def build(loss: str, n_out: int = 1, mean_var: MeanVarSpec = MeanVarSpec()):
    return OBJECTIVES[loss](loss, HeadSpec(n_out=n_out), mean_var)


def nll(x: float) -> float:
    """−log σ(x), by hand."""
    return math.log1p(math.exp(-x))


def phi(x: float) -> float:
    """Standard normal CDF Φ(x), by hand."""
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# --- the registry ---

def test_registry_covers_every_loss_value():
    assert set(OBJECTIVES) == set(get_args(LossName))
    assert {name: cls for name, cls in OBJECTIVES.items() if cls is Pairwise}.keys() == PAIRWISE_LOSSES.keys()
    assert (OBJECTIVES["mse"], OBJECTIVES["mean_var"]) == (Regression, MeanVariance)
    for name in get_args(LossName):
        assert build(name).name == name


# --- hand values of each loss ---

@pytest.mark.parametrize("loss, expected", [
    ("bt", (nll(1.0) + nll(0.0)) / 2),                # Δ = r_c − r_r = [1, 0]
    ("margin_bt", (nll(1.0 - 1.0) + nll(0.0 - 2.0)) / 2),  # Δ − m = [0, −2]
    ("scaled_bt", (1.0 * nll(1.0) + 2.0 * nll(0.0)) / 2),  # m · (−log σ(Δ)), averaged over pairs (not over Σm)
])
def test_pairwise_hand_values(loss, expected):
    model = Scripted([[1.0], [0.0], [0.0], [0.0]])  # chosen rows 0, 1 score 1, 0; rejected rows 2, 3 score 0, 0
    step = build(loss).loss(model, pairs([0, 1], [2, 3], [1.0, 2.0]))
    assert_close(step.loss, torch.tensor(expected))
    assert (step.units, step.rows) == (2, 2)  # every pair weighs the same
    assert_close(step.stats["accuracy"], torch.tensor(0.5))  # 1 > 0 counts, the tie 0 = 0 does not
    assert_close(step.stats["margin"], torch.tensor(0.5))  # mean of [1, 0]


def test_pairwise_packed_equals_padded():
    model = Scripted([[1.0], [0.0], [0.5], [2.0]])
    padded = build("scaled_bt").loss(model, pairs([0, 1], [2, 3], [1.0, 3.0]))
    packed = build("scaled_bt").loss(model, PackedPreferenceBatch(pack([[0, 9], [1], [2, 9, 9], [3]]), torch.tensor([1.0, 3.0])))
    assert_close(packed.loss, padded.loss)
    assert_close(packed.loss, torch.tensor((1.0 * nll(0.5) + 3.0 * nll(-2.0)) / 2))  # Δ = [0.5, −2]


def test_regression_hand_values():
    model = Scripted([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    batch = ratings([0, 1], [[2.0, 2.0, 3.0, 4.0, 4.0], [1.0, 0.0, 0.0, 0.0, 0.0]],
                    [[True, False, True, False, True], [True, False, False, False, False]])
    step = build("mse", n_out=5).loss(model, batch)
    # counted squared errors: row 0 helpfulness (1−2)² = 1, coherence (3−3)² = 0, verbosity (5−4)² = 1; row 1 (0−1)² = 1
    assert_close(step.loss, torch.tensor(3.0 / 4))
    assert (step.units, step.rows, step.stats) == (4, 2, {})  # every labelled attribute weighs the same


def test_regression_refuses_labels_the_head_has_no_slot_for():
    batch = ratings([0], [[1.0, 2.0, 0.0, 0.0, 0.0]], [[True, True, False, False, False]])
    with pytest.raises(ValueError, match=r"the data labels \['correctness', 'coherence', 'complexity', 'verbosity'\] but a 1-output head"):
        build("mse").loss(Scripted([[1.0]]), batch)


S = 1 / math.sqrt(2)  # σ_A = σ_B = 1/√2 with ρ = 0: r_A − r_B ~ N(μ_A − μ_B, 1)
TIE = phi(0.5) - phi(-0.5)  # P(−0.5 ≤ d < 0.5) for d ~ N(0, 1) = 0.38292
SLIGHT = phi(1.5) - phi(0.5)  # P(0.5 ≤ d < 1.5) = 0.24173 ("A slightly better")


def test_mean_var_hand_values():
    model = Scripted([[0.0, S]] * 4)  # every μ = 0, σ = 1/√2
    batch = disagreements([0, 1], [2, 3], [[0, 0, 1, 0, 0], [0, 0, 0.5, 0.5, 0]], [0, 1])
    step = build("mean_var").loss(model, batch)
    # KL(q‖p): pair 1 all on "tie" → −log p_tie; pair 2 half tie, half "A slightly" → ½ log(½/p_tie) + ½ log(½/p_slight)
    kl = (-math.log(TIE) + 0.5 * math.log(0.5 / TIE) + 0.5 * math.log(0.5 / SLIGHT)) / 2
    assert_close(step.loss, torch.tensor(kl))
    assert (step.units, step.rows, set(step.stats)) == (2, 2, {"sigma"})
    assert_close(step.stats["sigma"], torch.tensor(S))
    nll_step = build("mean_var", mean_var=MeanVarSpec(nll_baseline=True)).loss(model, batch)
    # cross-entropy −Σ q log p = KL + H(q): H = 0 for pair 1 and log 2 for pair 2
    assert_close(nll_step.loss, torch.tensor(kl + math.log(2) / 2))


def test_mean_var_learned_rho_hand_values():
    model = Scripted([[0.0, S]] * 2, rho_raw=math.atanh(0.5))  # ρ = 0.5
    step = build("mean_var", mean_var=MeanVarSpec(rho="learned")).loss(model, disagreements([0], [1], [[0, 0, 1, 0, 0]], [0]))
    # sd² = σ_A² + σ_B² − 2ρσ_Aσ_B = ½ + ½ − ½ = ½, so p_tie = Φ(0.5√2) − Φ(−0.5√2) = erf(0.5)
    assert_close(step.loss, torch.tensor(-math.log(math.erf(0.5))))
    assert_close(step.stats["rho"], torch.tensor(0.5))


def test_mean_var_settings_are_checked_by_the_objective():
    with pytest.raises(ValueError, match="cannot be combined with mean_var.rho=learned"):
        build("mean_var", mean_var=MeanVarSpec(rho="learned", nll_baseline=True))
    with pytest.raises(ValueError, match="must be 4 ascending values"):
        build("mean_var", mean_var=MeanVarSpec(edges=(1.0, 0.0, 2.0, 3.0)))
    assert build("mean_var").head(HeadSpec()).kind == "mean_var"
    with pytest.raises(ValueError, match="head.kind 'mean_var' needs loss 'mean_var', not 'bt'"):
        build("bt").head(HeadSpec(kind="mean_var"))


# --- validation metrics: several batches give what one batch of the same rows gives ---

def _table(n: int, cols: int) -> list[list[float]]:
    g = torch.Generator().manual_seed(0)
    out = torch.randn(n, cols, generator=g)
    out[:, -1] = out[:, -1].abs() + 0.1  # σ > 0 when the last column is σ
    return out.tolist()


LABELS = [[float((i * 7 + j) % 5) for j in range(5)] for i in range(6)]
MASK = [[(i + j) % 3 != 0 for j in range(5)] for i in range(6)]
TARGETS = [[0.2, 0.2, 0.2, 0.2, 0.2], [0, 0, 1, 0, 0], [0.5, 0, 0, 0, 0.5], [0, 0.25, 0.25, 0.5, 0], [1, 0, 0, 0, 0]]


def _batches(kind: str, split: bool) -> list:
    """Validation batches of rows 0..; `split` gives the same rows as two batches instead of one."""
    cut = [(0, 2), (2, 5)] if split else [(0, 5)]
    if kind == "pairs":  # pair p: chosen row p, rejected row 10 + p
        return [pairs(list(range(a, b)), list(range(10 + a, 10 + b)), [1.0 + p for p in range(a, b)]) for a, b in cut]
    if kind == "ratings":  # response i: row i
        return [ratings(list(range(a, b)), LABELS[a:b], MASK[a:b]) for a, b in ([(0, 2), (2, 6)] if split else [(0, 6)])]
    return [disagreements(list(range(a, b)), list(range(10 + a, 10 + b)), TARGETS[a:b], [1, 0, -1, 1, 0][a:b]) for a, b in cut]


@pytest.mark.parametrize("loss, n_out, kinds, names", [
    ("bt", 1, ("pairs",), {"val/loss", "val/accuracy", "val/margin"}),
    ("mse", 5, ("pairs", "ratings"), {"val/loss", "val/accuracy", "val/margin"} | {f"val/{m}/{a}" for m in ("mse", "pearson")
                                      for a in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")}),
    ("mean_var", 1, ("disagreements",), {"val/loss", "val/sigma", "val/accuracy", "val/divergence_auroc", "val/divergence_auroc_scalar",
                                         "val/divergence_auroc_best", "val/divergence_lambda_best"}),
])
def test_validation_metrics_over_batches_equal_one_batch(loss, n_out, kinds, names):
    model = Scripted(_table(20, max(n_out, 2)))
    results = []
    for split in (False, True):
        objective = build(loss, n_out)
        for kind in kinds:
            for batch in _batches(kind, split):
                objective.validation_update(model, batch)
        results.append(objective.validation_metrics(model, gather=lambda rows: rows))
        assert objective.validation_metrics(model, gather=lambda rows: rows) == {}  # the stored rows are forgotten
    one, several = results
    assert set(one) == names and set(several) == names
    for name in names:
        assert_close(several[name], one[name], msg=name)


def test_validation_loss_is_the_objectives_own():
    model = Scripted(_table(20, 2))
    batch = pairs([0, 1], [10, 11], [1.0, 2.0])
    for loss in ("bt", "margin_bt", "scaled_bt"):
        objective = build(loss)
        objective.validation_update(model, batch)
        chosen, rejected = model.table[[0, 1], 0], model.table[[10, 11], 0]
        assert_close(objective.validation_metrics(model, lambda rows: rows)["val/loss"], PAIRWISE_LOSSES[loss](chosen, rejected, batch.margin))
    regression = build("mse")  # pairs validate a regression model (val_pairs_path) without a pairwise val/loss
    regression.validation_update(model, batch)
    assert set(regression.validation_metrics(model, lambda rows: rows)) == {"val/accuracy", "val/margin"}


# --- a data module of the wrong kind is refused at setup, with the messages training_step raised before ---

WRONG = [  # (loss, data module, stage, the message today's training_step / validation_step raised)
    ("mse", PreferenceDataModule, "fit", "loss 'mse' trains on ratings (RatingDataModule), but the data module gives preference pairs"),
    ("mse", DisagreementDataModule, "fit", "loss 'mse' does not train on annotator distributions (DisagreementDataModule); use loss 'mean_var'"),
    *[(bt, RatingDataModule, "fit", f"loss '{bt}' trains on preference pairs, but the data module gives ratings") for bt in PAIRWISE_LOSSES],
    *[(bt, DisagreementDataModule, "fit", f"loss '{bt}' does not train on annotator distributions (DisagreementDataModule); use loss 'mean_var'")
      for bt in PAIRWISE_LOSSES],
    ("mean_var", RatingDataModule, "fit", "loss 'mean_var' trains on annotator distributions (DisagreementDataModule), but the data module gives ratings"),
    ("mean_var", PreferenceDataModule, "fit",
     "loss 'mean_var' trains on annotator distributions (DisagreementDataModule), but the data module gives preference pairs"),
    ("bt", DisagreementDataModule, "validate", "loss 'bt' cannot validate on annotator distributions (DisagreementDataModule); use loss 'mean_var'"),
    ("mse", DisagreementDataModule, "validate", "loss 'mse' cannot validate on annotator distributions (DisagreementDataModule); use loss 'mean_var'"),
]
RIGHT = [("mse", RatingDataModule, "fit"), ("mean_var", DisagreementDataModule, "fit"), ("mse", PreferenceDataModule, "validate"),
         ("bt", RatingDataModule, "validate"), ("mean_var", PreferenceDataModule, "validate"),
         *[(bt, PreferenceDataModule, "fit") for bt in PAIRWISE_LOSSES]]


def _module_on(loss: str, data) -> RewardModelModule:
    module = RewardModelModule(BackboneSpec(name_or_path="never-loaded"), loss=loss)
    module.trainer = SimpleNamespace(datamodule=data)
    return module


@pytest.mark.parametrize("loss, data_module, stage, message", WRONG, ids=[f"{w[0]}-{w[1].__name__}-{w[2]}" for w in WRONG])
def test_wrong_data_module_is_refused_at_setup(loss, data_module, stage, message):
    with pytest.raises(TypeError) as raised:
        _module_on(loss, data_module()).setup(stage)
    assert str(raised.value) == message


@pytest.mark.parametrize("loss, data_module, stage", RIGHT, ids=[f"{r[0]}-{r[1].__name__}-{r[2]}" for r in RIGHT])
def test_fitting_data_module_passes_setup(loss, data_module, stage):
    _module_on(loss, data_module()).setup(stage)


def test_packing_and_direct_loaders_pass_setup():
    _module_on("bt", PreferenceDataModule(loader=LoaderSpec(packing=True))).setup("fit")  # packed batches: the same kind
    _module_on("mse", None).setup("fit")  # trainer.fit(model, train_dataloaders=...): nothing declared, nothing checked


def test_a_data_module_of_another_kind_is_refused_by_its_batch_type():
    with pytest.raises(TypeError, match="^loss 'bt' trains on preference pairs, but the data module gives DPOBatch batches$"):
        _module_on("bt", DPODataModule()).setup("fit")  # DPO rows: prompt up to the assistant turn, response, EOS


# --- the module stays thin ---

def _method_lines(name: str) -> int:
    tree = ast.parse((ROOT / "rlhf/reward/module.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RewardModelModule")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return fn.end_lineno - fn.lineno + 1


def test_training_and_validation_steps_are_a_few_lines():
    assert _method_lines("training_step") < 15
    assert _method_lines("validation_step") < 15
    assert _method_lines("on_validation_epoch_end") < 15

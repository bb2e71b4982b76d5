"""The study's reward-model variants: the nine rows of the paper's RewardBench table (spec §5.1) plus the
mean-variance RM (spec §7.2), each as a configs/study YAML and the CLI overrides that make it that variant.

`paper` holds the paper's numbers for the row (RewardBench overall on Llama-3.1-70B; for the distributional
paper, HelpSteer2 divergence AUROC of BT (Agg) and Mean-Var (KL) on Llama-3-8B). Left out: the Pairwise Justifier
rows, the classification (KL) RM and the independent-NLL mean-variance baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    """One row of the study.

    Attributes:
        name: short id, also the run directory name.
        label: the paper's "model type / variant" wording.
        config: configs/study/<config>.yaml.
        overrides: CLI arguments applied on top of the YAML.
        init_from: the variant (same seed) whose checkpoint initialises this one, head included.
        expo_of: (weak, strong) variants to extrapolate instead of training (ExPO).
        paper: the paper's numbers for this row, by metric name.
    """

    name: str
    label: str
    config: str = "pairwise"
    overrides: tuple[str, ...] = ()
    init_from: str | None = None
    expo_of: tuple[str, str] | None = None
    paper: dict[str, float] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    Variant("regression-5attr", "SteerLM regression, 5 attributes", "regression", ("--model.head.n_out=5", "--data.init_args.helpfulness_only=false"), paper={"rewardbench": 92.4}),
    Variant("regression-helpfulness", "SteerLM regression, helpfulness only", "regression", paper={"rewardbench": 93.0}),
    Variant("bt", "BT from scratch, regular", overrides=("--model.loss=bt",), paper={"rewardbench": 91.5, "auroc_labels": 0.482}),
    Variant("margin-bt", "BT from scratch, margin", overrides=("--model.loss=margin_bt",), paper={"rewardbench": 91.5}),
    Variant("scaled-bt", "BT from scratch, scaled", overrides=("--model.loss=scaled_bt",), paper={"rewardbench": 92.7}),
    Variant("bt-init", "BT init. helpfulness regression, regular", overrides=("--model.loss=bt",), init_from="regression-helpfulness", paper={"rewardbench": 92.7}),
    Variant("margin-bt-init", "BT init. helpfulness regression, margin", overrides=("--model.loss=margin_bt",), init_from="regression-helpfulness", paper={"rewardbench": 93.0}),
    Variant("scaled-bt-init", "BT init. helpfulness regression, scaled", overrides=("--model.loss=scaled_bt",), init_from="regression-helpfulness", paper={"rewardbench": 93.7}),
    Variant("scaled-bt-init-expo", "BT init. helpfulness regression, scaled + ExPO", expo_of=("regression-helpfulness", "scaled-bt-init"), paper={"rewardbench": 94.1}),
    Variant("mean-var", "Mean-Var (KL), learned rho", "mean_var", paper={"auroc_labels": 0.582}),
)

EXPO_ALPHAS: tuple[float, ...] = (0.1, 0.25, 0.52, 1.0, 1.52)
"""ExPO α grid (θ_s + α(θ_s − θ_w), the official convention); α is picked on the validation split's truth accuracy."""


def variant(name: str) -> Variant:
    """The variant called `name`; a clear error listing the names otherwise."""
    for v in VARIANTS:
        if v.name == name:
            return v
    raise KeyError(f"unknown study variant {name!r}; expected one of {[v.name for v in VARIANTS]}")

"""The reproduction study (`python -m rlhf.study`, `make study`): `world` (annotation world with two disagreeing
annotator groups), `variants` (the paper's nine RM rows + the mean-variance RM), `evaluate` (scores against the latent
truth), `report` (mean ± std, the paper's orderings, markdown and PNG)."""

"""The reproduction study (`python -m rlhf.study`, `make study`): `world` (annotation world with two disagreeing
annotator groups), `variants` (the paper's nine RM rows + the mean-variance RM), `evaluate` (scores against the latent
truth, per-item data), `bootstrap` (paired intervals over test items and seeds, verdicts), `report` (table, orderings,
PNG), `gold` (the latent quality read back from any response text) and `policies` (REINFORCE and DPO judged by it)."""

"""Reward models: the LightningModule (`module`) with its objectives (regression, pairwise BT, mean-variance), ExPO,
export to Hugging Face directories with a model card, and `python -m rlhf.reward.score`.
Imports: `rlhf.eval`, `rlhf.data`, `rlhf.training`, `rlhf.models` and the top level.
"""

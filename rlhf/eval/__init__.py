"""Evaluation of reward models: RewardBench scoring (pure section weights, row loaders, the `python -m rlhf.eval.rewardbench`
command, the training-time callback), batched padding-invariant pair scoring, reports and plots.
Imports: `rlhf.data`, `rlhf.training`, `rlhf.models` and the top level.
"""

"""Evaluation of trained reward models: RewardBench (Lambert et al., 2024) scoring, data, model scoring, reports.

`rewardbench_scores` holds the pure section weighting, `rewardbench_data` the row loaders, `score_pairs` the
batched, padding-invariant model scoring and `report` the JSON / markdown / PNG outputs. The command line is
`python -m rlhf.rewardbench`; the training-time hook is `rlhf.callbacks.RewardBenchCallback`.
"""

"""REINFORCE with an RLOO baseline: `ReinforceModule`, rollouts, the KL-regularised rewards from a local or remote RM,
and `python -m rlhf.align.compare` (policies judged by a reward model).
Imports: `rlhf.reward` and the layers below it; not dpo or serve.
"""

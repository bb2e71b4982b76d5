"""Run machinery shared by every trainer: trained-weights checkpoints and their callback, exact resume, run summaries,
CSV/wandb run logs, LR schedules, sweeps, memory plans, distributed helpers, and reuse of finished runs.
Imports: `rlhf.models` and the top level; never data, eval, or a trainer.
"""

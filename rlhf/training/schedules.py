"""Learning-rate schedules used by the paper's recipes.

`WarmupConstantLR`: linear warm-up from `start_factor`·lr to lr over `warmup_steps` optimizer steps, then constant
(NeMo-Aligner's "CosineAnnealing with min_lr = lr", spec §4). Decay schedules are left to torch's own classes.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupConstantLR(LambdaLR):
    """Linear warm-up, then a constant learning rate.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: number of optimizer steps to reach the full learning rate (0: none).
        start_factor: fraction of the learning rate used at step 0.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 10, start_factor: float = 0.0):
        if warmup_steps < 0 or not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"need warmup_steps >= 0 and 0 <= start_factor <= 1, got {warmup_steps}, {start_factor}")
        self.warmup_steps, self.start_factor = warmup_steps, start_factor
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        if step >= self.warmup_steps:
            return 1.0
        return self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps

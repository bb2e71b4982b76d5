"""Worker for tests/test_fsdp.py: a reward-model fit through train.py's CLI, sharded with FSDP2 over CPU processes.

`python tests/fsdp_worker.py reward|align OUT.json DEVICES ARG...` runs `reward_main` or `align_main` with ARG... and
ModelParallelStrategy on DEVICES gloo processes; Lightning re-launches this script once per extra rank. Rank 0 writes
the rank-averaged training loss of every step to OUT.json. Not a test module itself (no `test_` prefix).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class LossRecorder(Callback):
    """The training loss of each step, averaged over ranks."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")))


def sharded_args(devices: int) -> list[str]:
    return [
        "--trainer.accelerator=cpu", f"--trainer.devices={devices}",
        "--trainer.strategy=lightning.pytorch.strategies.ModelParallelStrategy",
        f"--trainer.strategy.data_parallel_size={devices}", "--trainer.strategy.tensor_parallel_size=1",
        "--trainer.strategy.process_group_backend=gloo",
    ]


def main() -> None:
    from rlhf.cli import align_main, reward_main

    entry, out, devices, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    cli = {"reward": reward_main, "align": align_main}[entry](args + sharded_args(devices), run=False)
    recorder = LossRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if cli.trainer.is_global_zero:
        from torch.distributed.fsdp import FSDPModule

        sharded = sum(isinstance(m, FSDPModule) for m in cli.model.modules())
        Path(out).write_text(json.dumps({"losses": recorder.losses, "fsdp_modules": sharded, "world_size": cli.trainer.world_size}))


if __name__ == "__main__":
    main()

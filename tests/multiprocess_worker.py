"""Worker for tests/test_multiprocess.py: one rank of a 2-process gloo run that executes a list of jobs in turn.

`python tests/multiprocess_worker.py PLAN.json OUT.json` with MASTER_ADDR/MASTER_PORT/NODE_RANK/LOCAL_RANK set by the
test (two "nodes" of one process each: Lightning's own environment detection, no launcher). Each job is a
`reward_main` fit or validate (optionally resumed, with an ExPO callback, or with a NaN loss injected on one rank),
or an FSDP1 gather of the trained tensors;
the process group is created by the first job and reused by the rest, so the imports are paid once. Every job records
this rank's per-step training losses, its final callback metrics and the error message it stopped with (if any).
Not a test module itself (no `test_` prefix).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class LocalLosses(Callback):
    """This rank's training loss at every batch (not reduced over ranks)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def inject_nan(module, rank: int, step: int) -> None:
    """Make the training loss NaN on `rank` at optimizer step `step` (1-based)."""
    step_fn = module.training_step

    def training_step(batch, batch_idx):
        loss = step_fn(batch, batch_idx)
        if module.global_rank == rank and module.trainer.global_step + 1 == step:
            loss = loss * float("nan")
        return loss

    module.training_step = training_step


def fsdp1_gather(args: list[str]) -> dict:
    """FSDP1 (the wrapping Lightning's FSDPStrategy does, which needs GPUs) on CPU: wrap the whole module with each
    decoder layer its own unit, and compare `trained_state_dict` through the wrapper with the unwrapped tensors."""
    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from rlhf.cli import reward_main
    from rlhf.models.sharding import decoder_layers
    from rlhf.training.checkpoint import trained_state_dict

    if not torch.distributed.is_initialized():  # when no fit ran before in this process
        torch.distributed.init_process_group("gloo", rank=int(os.environ["NODE_RANK"]), world_size=2)
    module = reward_main(args, run=False).model
    module.configure_model()
    with torch.no_grad():  # LoRA B starts at 0: give every trained tensor distinct values
        for i, p in enumerate(q for q in module.model.parameters() if q.requires_grad):
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (i + 1))
    expected = trained_state_dict(module.model)
    policy = ModuleWrapPolicy({type(decoder_layers(module.model)[0])})
    wrapped = FullyShardedDataParallel(module, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
    got = trained_state_dict(module.model, wrapped)
    same = got.keys() == expected.keys() and all(got[k].shape == v.shape and torch.equal(got[k], v) for k, v in expected.items())
    return {"keys": len(expected), "same": same, "shapes": {k: list(v.shape) for k, v in list(got.items())[:3]}}


def run_job(job: dict) -> dict:
    from rlhf.cli import reward_main

    if job.get("fsdp1"):
        return {"fsdp1": fsdp1_gather(job["args"]), "error": None}
    from rlhf.reward.expo import ExpoCheckpoint
    from rlhf.training.resume import resume_file

    cli = reward_main(job["args"], run=False)
    recorder = LocalLosses()
    cli.trainer.callbacks.append(recorder)
    if job.get("expo_weak"):
        cli.trainer.callbacks.append(ExpoCheckpoint(job["expo_weak"], alpha=0.5, dirpath=job["expo_dir"]))
    if job.get("nan_at"):
        inject_nan(cli.model, *job["nan_at"])
    error = None
    try:
        if job.get("validate"):
            cli.trainer.validate(cli.model, datamodule=cli.datamodule)
        else:
            ckpt = str(resume_file(job["resume"])) if job.get("resume") else None
            cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True)
    except Exception as e:  # noqa: BLE001  (recorded: the test checks the message on every rank)
        error = f"{type(e).__name__}: {e}"
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    return {"losses": recorder.losses, "metrics": metrics, "error": error, "world_size": cli.trainer.world_size}


def main() -> None:
    plan, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    results = {}
    for job in plan:
        results[job["name"]] = run_job(job)
        out.write_text(json.dumps(results))  # after every job: a hang later still leaves the earlier results


if __name__ == "__main__":
    main()

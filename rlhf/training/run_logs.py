"""A run's logs across commands, for the LightningCLI entry points (`rlhf.cli`).

- `record_logger_ids`: at the start of a fit, `<checkpoint dir>/loggers.json` records each wandb run's id.
- `continue_logs`: a resumed fit (`--ckpt_path`) continues the same wandb run (same id) and keeps the old
  `metrics.csv` rows logged before the resumed step (Lightning's CSVLogger deletes the file when it starts).
- `finish_loggers`: each wandb run is finished when its command ends, so a second fit in the same process (`make
  demo`'s stage 2) gets a run of its own in its own directory.
- `EvaluateTrainedWeights`: validate/test/predict load exactly a checkpoint's trained tensors and say which.
Not covered: TensorBoard and other loggers (they start afresh on resume).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger

LOGGERS_NAME = "loggers.json"


def _wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def _quiet_init(logger: WandbLogger) -> None:
    """wandb warns that the `anonymous` setting is deprecated whenever it is passed, even as None."""
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)


def record_logger_ids(trainer: Trainer, checkpoint_dir: str | Path) -> None:
    """Start each wandb run now and write their ids next to the checkpoint (a resume reads them back)."""
    loggers = _wandb_loggers(trainer)
    for logger in loggers:
        _quiet_init(logger)
    if not loggers or not trainer.is_global_zero:
        return
    ids = [logger.experiment.id for logger in loggers]
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{LOGGERS_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"wandb_run_ids": ids}))
    os.replace(tmp, directory / LOGGERS_NAME)


def continue_logs(trainer: Trainer, checkpoint_dir: str | Path) -> None:
    """Before a resumed fit: reuse the recorded wandb run ids and keep the CSV rows logged before the resumed step."""
    from rlhf.training.checkpoint import WEIGHTS_NAME, read_meta

    recorded = Path(checkpoint_dir) / LOGGERS_NAME
    ids = json.loads(recorded.read_text()).get("wandb_run_ids", []) if recorded.is_file() else []
    for logger, run_id in zip(_wandb_loggers(trainer), ids):
        logger._wandb_init.update(id=run_id, resume="allow")
        logger._id = run_id
    if not (Path(checkpoint_dir) / WEIGHTS_NAME).is_file():
        return  # nothing to continue from; the resume itself says what is missing
    step = int(read_meta(checkpoint_dir).get("global_step", 0))
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger) and trainer.is_global_zero:
            _continue_csv(logger, step)


def _continue_csv(logger: CSVLogger, step: int) -> None:
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        keys, rows = list(reader.fieldnames or []), list(reader)
    kept = [row for row in rows if _logged_before(row, step)]
    writer = logger.experiment  # creating the writer deletes the old file: write the kept rows back
    writer.metrics_keys = sorted(keys)
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=writer.metrics_keys)
        out.writeheader()
        out.writerows(kept)


def _logged_before(row: dict[str, str], step: int) -> bool:
    """Rows of steps before the resumed one, and the old run's validation at that step (the resumed run repeats neither)."""
    logged = int(float(row.get("step") or 0))
    if logged < step:
        return True
    keys = [k for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch")]
    return logged == step and all(k.startswith("val") for k in keys)


def finish_loggers(trainer: Trainer) -> None:
    """Finish every wandb run this trainer started (its files are complete and the next command starts its own)."""
    for logger in _wandb_loggers(trainer):
        if logger._experiment is not None:
            logger._experiment.finish()
            logger._experiment = None


class EvaluateTrainedWeights(Callback):
    """Load a checkpoint's trained tensors (LoRA + head) into `pl_module.model` before validate/test/predict starts.

    Args:
        weights: the checkpoint's model.safetensors.
        stage: the subcommand, for the line that says which weights are evaluated.
    """

    def __init__(self, weights: Path, stage: str):
        self.weights, self.stage = Path(weights), stage

    def _load(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from rlhf.training.checkpoint import load_trained, read_meta

        load_trained(pl_module.model, self.weights)
        if trainer.is_global_zero:
            step = read_meta(self.weights).get("global_step", "?")
            print(f"{self.stage}: evaluating the trained weights of {self.weights.parent} (step {step})", flush=True)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._load(trainer, pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._load(trainer, pl_module)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._load(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {}

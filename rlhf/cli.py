"""LightningCLI entry points. `reward_main` backs `train.py` (reward models: fit/validate/test/predict).

The typed `__init__` signatures of `RewardModelModule`, the data modules and the specs are the config schema.
The tokenizer path is given once, linked from `model.backbone.name_or_path`. The trained-weights checkpoint
(LoRA + head, safetensors) is always on, configurable under `checkpoint:`, and receives the resolved config.
`align_main` backs `align.py` (REINFORCE/RLOO policy training: `ReinforceModule` + `PromptDataModule`); there the
checkpoint holds the policy's LoRA weights and the prompt tokenizer is linked from the policy backbone.
`dpo_main` backs `dpo.py` (offline DPO: `DPOModule` + `DPODataModule`), checkpointed and linked like align_main.
`fit --ckpt_path <checkpoint dir>` resumes a run from the directory's `resume.ckpt`, always loaded with
`weights_only=True` (`rlhf.training.resume`), and continues its CSV and wandb logs (`rlhf.training.run_logs`). `validate`, `test` and
`predict` evaluate exactly the trained weights of `--ckpt_path <checkpoint dir>` (default: the config's checkpoint
directory), say which, and leave the fit's logs and config.yaml alone. Each wandb run is finished when its command ends.
"""

from __future__ import annotations

import logging
import sys
import warnings

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback

from rlhf.align.module import ReinforceModule
from rlhf.data.dpo_data import DPODataModule
from rlhf.data.loaders import TokenizedDataModule
from rlhf.data.prompts import PromptDataModule
from rlhf.dpo.module import DPOModule
from rlhf.errors import one_line
from rlhf.reward.expo import ExpoCheckpoint
from rlhf.reward.module import RewardModelModule
from rlhf.training.checkpoint import weights_path
from rlhf.training.checkpoint_callback import TrainedWeightsCheckpoint
from rlhf.training.resume import resume_file
from rlhf.training.run_logs import EvaluateTrainedWeights, continue_logs, finish_loggers, record_logger_ids

# Quiet at the source: Lightning's own pytree helper builds the deprecated LeafSpec at every step, and its logger
# connector advertises a cloud logger at every Trainer start.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)


class _NoAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdvert())


class ConfigToCheckpoint(SaveConfigCallback):
    """Also hands the resolved config to the checkpoint callbacks, which write it next to the weights."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":  # validate/test/predict never replace the fit's config.yaml
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        text = self.text()
        for cb in trainer.callbacks:
            if isinstance(cb, (TrainedWeightsCheckpoint, ExpoCheckpoint)):
                cb.config_yaml = text

    def text(self) -> str:
        return self.parser.dump(self.config, skip_none=False)


class OneLineErrorParser(LightningArgumentParser):
    """A parse error is one line, `error: <message>`, and exit status 2 (jsonargparse prints usage and a tip first)."""

    def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"error: {one_line(ValueError(message))}\n")
        raise SystemExit(2)


class _RLHFCLI(LightningCLI):
    """Adds the always-on trained-weights checkpoint and links the tokenizer to `model.backbone.name_or_path`."""

    tokenizer_key = "data.init_args.tokenizer"  # where the data module takes the tokenizer path

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TrainedWeightsCheckpoint, "checkpoint")
        parser.link_arguments("model.backbone.name_or_path", self.tokenizer_key)

    def before_fit(self) -> None:
        """`--ckpt_path` may name a checkpoint directory; resume state is only ever loaded with weights_only=True, and
        the resumed run appends to the old run's logs."""
        kwargs = self.config_init[self.subcommand]
        config = next((cb.text() for cb in self.trainer.callbacks if isinstance(cb, ConfigToCheckpoint)), None)
        for cb in self.trainer.callbacks:
            if isinstance(cb, TrainedWeightsCheckpoint):  # on every rank, so the overwrite check in setup agrees
                cb.resuming = bool(kwargs.get("ckpt_path"))  # a resume may write over the checkpoint it continues
                cb.config_yaml = config
        checkpoint = self._checkpoint_callback()
        if kwargs.get("ckpt_path"):
            directory = kwargs["ckpt_path"]
            kwargs["ckpt_path"] = str(resume_file(directory))
            kwargs["weights_only"] = True
            continue_logs(self.trainer, directory)
        record_logger_ids(self.trainer, checkpoint.resolve_dir(self.trainer))

    def after_fit(self) -> None:
        finish_loggers(self.trainer)

    def _checkpoint_callback(self) -> TrainedWeightsCheckpoint:
        return next(cb for cb in self.trainer.callbacks if isinstance(cb, TrainedWeightsCheckpoint))

    def _evaluate_trained_weights(self) -> None:
        """validate/test/predict: load `--ckpt_path` (a checkpoint directory; default the config's) into the built
        model, not the fit's loggers: their results print, and the fit's metrics.csv and wandb run stay as they were."""
        kwargs = self.config_init[self.subcommand]
        directory = kwargs.get("ckpt_path") or str(self._checkpoint_callback().resolve_dir(self.trainer))
        kwargs["ckpt_path"] = None  # the weights are loaded by the callback, never as a Lightning checkpoint
        self.trainer.callbacks.append(EvaluateTrainedWeights(weights_path(directory), self.subcommand))
        self.trainer.loggers = []

    before_validate = before_test = before_predict = _evaluate_trained_weights


class RewardCLI(_RLHFCLI):
    tokenizer_key = "data.init_args.tokenizer"  # data modules are chosen by class_path


class AlignCLI(_RLHFCLI):
    tokenizer_key = "data.tokenizer"  # one prompt data module


class DPOCLI(_RLHFCLI):
    tokenizer_key = "data.tokenizer"  # one pair data module


def _shared_settings() -> dict:
    return {
        "save_config_callback": ConfigToCheckpoint,
        "parser_class": OneLineErrorParser,
        "save_config_kwargs": {"overwrite": True},
        # the data modules shard over ranks themselves (rlhf.training.distributed, rlhf.training.resume.EpochSampler)
        "trainer_defaults": {"enable_checkpointing": False, "use_distributed_sampler": False},
        "auto_configure_optimizers": False,
    }


def reward_main(args: ArgsType = None, run: bool = True) -> RewardCLI:
    """Run the reward-model CLI (`python train.py fit --config configs/reward/X.yaml`)."""
    return RewardCLI(RewardModelModule, TokenizedDataModule, subclass_mode_data=True, args=args, run=run, **_shared_settings())


def align_main(args: ArgsType = None, run: bool = True) -> AlignCLI:
    """Run the policy-training CLI (`python align.py fit --config configs/align/X.yaml`)."""
    return AlignCLI(ReinforceModule, PromptDataModule, args=args, run=run, **_shared_settings())


def dpo_main(args: ArgsType = None, run: bool = True) -> DPOCLI:
    """Run the offline DPO CLI (`python dpo.py fit --config configs/dpo/X.yaml`)."""
    return DPOCLI(DPOModule, DPODataModule, args=args, run=run, **_shared_settings())

"""LightningCLI entry points. `reward_main` backs `train.py` (reward models: fit/validate/test/predict).

The typed `__init__` signatures of `RewardModelModule`, the data modules and the specs are the config schema.
The tokenizer path is given once, linked from `model.backbone.name_or_path`. The trained-weights checkpoint
(LoRA + head, safetensors) is always on, configurable under `checkpoint:`, and receives the resolved config.
`align_main` backs `align.py` (REINFORCE/RLOO policy training: `ReinforceModule` + `PromptDataModule`); there the
checkpoint holds the policy's LoRA weights and the prompt tokenizer is linked from the policy backbone.
`dpo_main` backs `dpo.py` (offline DPO: `DPOModule` + `DPODataModule`), checkpointed and linked like align_main.
`fit --ckpt_path <checkpoint dir>` resumes a run from the directory's `resume.ckpt`, always loaded with
`weights_only=True` (`rlhf.resume`).
"""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback

from rlhf.checkpoint import TrainedWeightsCheckpoint
from rlhf.data.datamodules import TokenizedDataModule
from rlhf.data.dpo_data import DPODataModule
from rlhf.data.prompts import PromptDataModule
from rlhf.dpo_module import DPOModule
from rlhf.expo import ExpoCheckpoint
from rlhf.reinforce_module import ReinforceModule
from rlhf.resume import resume_file
from rlhf.reward_module import RewardModelModule


class ConfigToCheckpoint(SaveConfigCallback):
    """Also hands the resolved config to the checkpoint callbacks, which write it next to the weights."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        text = self.text()
        for cb in trainer.callbacks:
            if isinstance(cb, (TrainedWeightsCheckpoint, ExpoCheckpoint)):
                cb.config_yaml = text

    def text(self) -> str:
        return self.parser.dump(self.config, skip_none=False)


class _RLHFCLI(LightningCLI):
    """Adds the always-on trained-weights checkpoint and links the tokenizer to `model.backbone.name_or_path`."""

    tokenizer_key = "data.init_args.tokenizer"  # where the data module takes the tokenizer path

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TrainedWeightsCheckpoint, "checkpoint")
        parser.link_arguments("model.backbone.name_or_path", self.tokenizer_key)

    def before_fit(self) -> None:
        """`--ckpt_path` may name a checkpoint directory; resume state is only ever loaded with weights_only=True."""
        kwargs = self.config_init[self.subcommand]
        config = next((cb.text() for cb in self.trainer.callbacks if isinstance(cb, ConfigToCheckpoint)), None)
        for cb in self.trainer.callbacks:
            if isinstance(cb, TrainedWeightsCheckpoint):  # on every rank, so the overwrite check in setup agrees
                cb.resuming = bool(kwargs.get("ckpt_path"))  # a resume may write over the checkpoint it continues
                cb.config_yaml = config
        if kwargs.get("ckpt_path"):
            kwargs["ckpt_path"] = str(resume_file(kwargs["ckpt_path"]))
            kwargs["weights_only"] = True


class RewardCLI(_RLHFCLI):
    tokenizer_key = "data.init_args.tokenizer"  # data modules are chosen by class_path


class AlignCLI(_RLHFCLI):
    tokenizer_key = "data.tokenizer"  # one prompt data module


class DPOCLI(_RLHFCLI):
    tokenizer_key = "data.tokenizer"  # one pair data module


def _shared_settings() -> dict:
    return {
        "save_config_callback": ConfigToCheckpoint,
        "save_config_kwargs": {"overwrite": True},
        # the data modules shard over ranks themselves (rlhf.distributed, rlhf.resume.EpochSampler)
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

"""Checkpoints of exactly what is trained: LoRA weights and the reward head, in safetensors, plus the resolved config.

`model.safetensors` holds every parameter with `requires_grad` (keys as in the RewardModel's state dict) and, in
its metadata, the JSON needed to rebuild the model (`BackboneSpec`, head size and bias, reward slot). Files are
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint. Loading checks keys
and shapes and names the first mismatch. Optimizer/scheduler state for resuming is left out here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rlhf.models.backbone import BackboneSpec, LoraSpec
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import RewardModel, build_reward_model

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"
META_KEY = "rlhf"


def trained_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Detached CPU copies of the parameters that require grad (LoRA + head).

    FSDP2-sharded parameters are all-gathered first (a collective: every rank must call this).
    """
    return {n: _full(p).detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def _full(p: Tensor) -> Tensor:
    return p.full_tensor() if hasattr(p, "full_tensor") else p  # a DTensor shard → the whole tensor


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def save_trained(directory: str | Path, state: dict[str, Tensor], meta: dict[str, Any], config_yaml: str | None = None) -> Path:
    """Write `directory/model.safetensors` (state + JSON meta) and, if given, `directory/config.yaml`, atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {META_KEY: json.dumps(meta, default=_jsonable)}
    _atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata=metadata))
    if config_yaml is not None:
        _atomic_write(directory / CONFIG_NAME, lambda p: p.write_text(config_yaml))
    return directory / WEIGHTS_NAME


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


def weights_path(path: str | Path) -> Path:
    """Accept a checkpoint directory or the safetensors file itself."""
    path = Path(path)
    path = path / WEIGHTS_NAME if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (expected a directory holding {WEIGHTS_NAME})")
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored with a checkpoint."""
    with safe_open(str(weights_path(path)), framework="pt") as f:
        meta = f.metadata() or {}
    if META_KEY not in meta:
        raise ValueError(f"{weights_path(path)} is not an rlhf checkpoint (no '{META_KEY}' metadata)")
    return json.loads(meta[META_KEY])


def load_trained(model: nn.Module, path: str | Path) -> None:
    """Copy a checkpoint's tensors into `model`; every key must exist in the model with the same shape."""
    file = weights_path(path)
    load_trained_state(model, load_file(str(file)), str(file))


def load_trained_state(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Copy `state` (e.g. an extrapolated one) into `model`'s parameters; `source` names it in errors."""
    own = dict(model.named_parameters())
    for name, tensor in state.items():
        if name not in own:
            raise ValueError(f"{source}: tensor '{name}' has no counterpart in the model (different LoRA targets or head?)")
        if own[name].shape != tensor.shape:
            raise ValueError(f"{source}: tensor '{name}' has shape {tuple(tensor.shape)}, the model expects {tuple(own[name].shape)}")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor.to(device=own[name].device, dtype=own[name].dtype))


class TrainedWeightsCheckpoint(Callback):
    """Saves `pl_module.model`'s LoRA + head (safetensors) and the resolved config at the end of fit (and every N steps).

    Args:
        dirpath: where to write; defaults to `<trainer.default_root_dir>/checkpoint`.
        every_n_train_steps: also save every N optimizer steps (0: only at the end).
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0):
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps
        self.config_yaml: str | None = None  # filled in by the CLI with the resolved config

    def resolve_dir(self, trainer: Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoint"

    def save(self, trainer: Trainer, pl_module: LightningModule) -> Path | None:
        state = trained_state_dict(pl_module.model)  # every rank: gathering sharded weights is a collective
        if not trainer.is_global_zero:
            return None
        meta = {**pl_module.checkpoint_meta(), "global_step": trainer.global_step}
        return save_trained(self.resolve_dir(trainer), state, meta, self.config_yaml)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer, pl_module)


def specs_from_meta(meta: dict[str, Any]) -> tuple[BackboneSpec, HeadSpec]:
    """Rebuild the backbone and head specs stored in a checkpoint's metadata."""
    backbone = dict(meta["backbone"])
    lora = backbone.pop("lora")
    lora_spec = None if lora is None else LoraSpec(**{**lora, "target_modules": tuple(lora["target_modules"])})
    return BackboneSpec(**backbone, lora=lora_spec), HeadSpec(**meta["head"])


def load_reward_model(path: str | Path, name_or_path: str | None = None) -> RewardModel:
    """Rebuild a RewardModel from a checkpoint: load its backbone, then its LoRA + head tensors.

    Args:
        path: checkpoint directory (or its model.safetensors).
        name_or_path: use this backbone location instead of the stored one (e.g. the model moved).
    """
    backbone_spec, head_spec = specs_from_meta(read_meta(path))
    if name_or_path is not None:
        backbone_spec = dataclasses.replace(backbone_spec, name_or_path=name_or_path)
    model = build_reward_model(backbone_spec, head_spec)
    load_trained(model, path)
    return model.eval()

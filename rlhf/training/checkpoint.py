"""Checkpoints of exactly what is trained: LoRA weights and the reward head, in safetensors, plus the resolved config.

`model.safetensors` holds every parameter with `requires_grad` (keys as in the RewardModel's state dict) and, in
its metadata, the JSON needed to rebuild the model (`BackboneSpec` with a local backbone as an absolute path, head
size and bias, reward slot). Files are written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint. Loading checks keys and shapes and names the first mismatch. The callback that writes
them during a fit, with the resume state and the run's guards, is `rlhf.training.checkpoint_callback`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rlhf.files import write_text, write_with
from rlhf.models.backbone import BackboneSpec, LoraSpec
from rlhf.models.heads import HeadSpec
from rlhf.models.reward_model import RewardModel, build_reward_model

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"
META_KEY = "rlhf"


def trained_state_dict(model: nn.Module, root: nn.Module | None = None) -> dict[str, Tensor]:
    """Detached CPU copies of the parameters that require grad (LoRA + head), named as in the unwrapped model.

    Sharded parameters are gathered first, a collective (every rank must call this): FSDP2 DTensors one by one;
    FSDP1 (Lightning's `FSDPStrategy`, `use_orig_params=True`) by unsharding every FSDP unit of `root`, the outermost
    wrapper (`trainer.strategy.model`, which may wrap `model` from outside), for the duration of the copy.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    root = model if root is None else root
    if not any(isinstance(m, FullyShardedDataParallel) for m in root.modules()):
        return {n: _full(p).detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}
    from torch.distributed.fsdp._common_utils import clean_tensor_name

    with FullyShardedDataParallel.summon_full_params(root, writeback=False):
        state = {clean_tensor_name(n): p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}
    flat = next((n for n in state if "_flat_param" in n), None)
    if flat is not None:
        raise ValueError(f"checkpoint: FSDP1 without use_orig_params hides the trained tensors in '{flat}'; set use_orig_params: true")
    return state


def _full(p: Tensor) -> Tensor:
    return p.full_tensor() if hasattr(p, "full_tensor") else p  # a DTensor shard → the whole tensor


def save_trained(directory: str | Path, state: dict[str, Tensor], meta: dict[str, Any], config_yaml: str | None = None) -> Path:
    """Write `directory/model.safetensors` (state + JSON meta) and, if given, `directory/config.yaml`, atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {META_KEY: json.dumps(_absolute_backbone(meta), default=_jsonable)}
    write_with(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata=metadata))
    if config_yaml is not None:
        write_text(directory / CONFIG_NAME, config_yaml)
    return directory / WEIGHTS_NAME


def _absolute_backbone(meta: dict[str, Any]) -> dict[str, Any]:
    """A backbone given as a local directory is stored as an absolute path, so the checkpoint loads from any working
    directory (a hub id stays as it is; `load_reward_model(..., name_or_path=...)` overrides a moved backbone)."""
    backbone = meta.get("backbone")
    if backbone is None:
        return meta
    spec = dataclasses.asdict(backbone) if dataclasses.is_dataclass(backbone) else dict(backbone)
    if "name_or_path" in spec and Path(spec["name_or_path"]).is_dir():
        spec["name_or_path"] = str(Path(spec["name_or_path"]).resolve())
    return {**meta, "backbone": spec}


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


def specs_from_meta(meta: dict[str, Any]) -> tuple[BackboneSpec, HeadSpec]:
    """Rebuild the backbone and head specs stored in a checkpoint's metadata."""
    backbone = dict(meta["backbone"])
    lora = backbone.pop("lora")
    lora_spec = None if lora is None else LoraSpec(**{**lora, "target_modules": tuple(lora["target_modules"])})
    return BackboneSpec(**backbone, lora=lora_spec), HeadSpec(**meta["head"])


def lora_signature(lora: dict[str, Any] | None) -> tuple | None:
    """(r, alpha, target_modules) of a stored LoRA spec: what must agree for LoRA tensors to mean the same weights."""
    return None if lora is None else (lora["r"], lora["alpha"], tuple(lora["target_modules"]))


def load_reward_model(path: str | Path, name_or_path: str | None = None) -> RewardModel:
    """Rebuild a RewardModel from a checkpoint: load its backbone, then its LoRA + head tensors.

    Args:
        path: checkpoint directory (or its model.safetensors).
        name_or_path: use this backbone location instead of the stored one (e.g. the model moved).
    """
    model = reward_model_from_meta(read_meta(path), name_or_path)
    load_trained(model, path)
    return model.eval()


def reward_model_from_meta(meta: dict[str, Any], name_or_path: str | None = None) -> RewardModel:
    """The RewardModel a checkpoint's metadata describes (base loaded, LoRA and head freshly initialised)."""
    backbone_spec, head_spec = specs_from_meta(meta)
    if name_or_path is not None:
        backbone_spec = dataclasses.replace(backbone_spec, name_or_path=name_or_path)
    return build_reward_model(backbone_spec, head_spec)


def __getattr__(name: str) -> Any:  # `rlhf.checkpoint.TrainedWeightsCheckpoint` (the old layout) still resolves
    if name == "TrainedWeightsCheckpoint":
        from rlhf.training.checkpoint_callback import TrainedWeightsCheckpoint

        return TrainedWeightsCheckpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

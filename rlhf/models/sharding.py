"""FSDP2 (`fully_shard`) sharding of a Hugging Face model, for Lightning's `ModelParallelStrategy`.

Each decoder layer becomes one FSDP unit and the root module (embeddings, final norm, heads) another, over
the strategy's "data_parallel" mesh dimension: parameters, gradients and optimizer state are split across ranks and
a layer's weights are all-gathered only while it runs. Frozen base weights and trainable LoRA weights share units
(FSDP2 shards per parameter, so mixed `requires_grad` is fine). With a 16-bit `param_dtype` the mixed-precision
policy computes in that dtype and reduces gradients in fp32. A module is sharded once; a second call is a no-op.
The root unit must be a module whose forward every call path runs (FSDP gathers a unit's own weights in its forward
hook): for a peft model that is the wrapped Hugging Face model, since `generate` bypasses the peft wrapper's forward.
Left out: tensor parallelism (the mesh's other dimension must be 1) and CPU offload.
"""

from __future__ import annotations

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks (modules whose class name ends in "DecoderLayer"), in order."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def shard_model(model: nn.Module, mesh, param_dtype: torch.dtype = torch.float32) -> nn.Module:
    """Apply `fully_shard` to every decoder layer and then to the root (`model`, or a peft model's base), in place.

    Args:
        model: a (peft-wrapped) Hugging Face model, or a module holding one (e.g. `RewardModel`).
        mesh: a `DeviceMesh`: Lightning's `device_mesh` (its "data_parallel" dimension is used) or a 1-D mesh.
        param_dtype: compute dtype of the all-gathered parameters; gradients are reduced in fp32.
    """
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    root = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: the HF model generate calls
    if isinstance(root, FSDPModule):
        return model
    if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names:
        if "tensor_parallel" in mesh.mesh_dim_names and mesh["tensor_parallel"].size() != 1:
            raise ValueError("shard_model: tensor parallelism is not supported; set tensor_parallel_size: 1")
        mesh = mesh["data_parallel"]
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"shard_model: found no *DecoderLayer modules in {type(model).__name__}")
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32) if param_dtype != torch.float32 else MixedPrecisionPolicy()
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(root, mesh=mesh, mp_policy=policy)
    return model

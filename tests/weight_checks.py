"""Shared by the fit tests: after training, LoRA B (and any head) moved and every frozen weight is bit-identical."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def assert_only_trained_weights_changed(model: nn.Module, before: dict[str, Tensor], moved: tuple[str, ...] = ("lora_B",)) -> None:
    """Parameters whose name contains one of `moved` changed; parameters without requires_grad did not."""
    for name, p in model.named_parameters():
        if p.requires_grad and any(key in name for key in moved):
            assert not torch.equal(p.detach(), before[name]), f"{name} did not change"
        if not p.requires_grad:
            assert torch.equal(p.detach(), before[name]), f"frozen {name} changed"

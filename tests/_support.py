"""Helpers shared by several test modules (importable because conftest puts tests/ on sys.path)."""
from __future__ import annotations

import torch
from torch import nn


def randomise_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics so eval mode is not an identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model

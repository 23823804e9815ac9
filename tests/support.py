"""Helpers shared by several test modules (importable because conftest puts tests/ on sys.path)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

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


def derm_maps_and_masks(seed: int = 0, b: int = 12, s: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """A stack of ``s`` random maps ``[s, b, 8, 8]``, brighter roughly where the lesion is, and the
    lesion masks ``[b, 32, 32]`` (one rectangle): the derm studies' and figures' test input."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(b, 32, 32, dtype=torch.bool)
    masks[:, 8:24, 10:26] = True
    maps = torch.rand(s, b, 8, 8, generator=g)
    maps[..., 2:6, 3:7] += 1.0  # roughly where the lesion is
    return maps, masks


def book_extension():
    """The book's Sphinx extension ``book/_ext/uqxai_book.py``, loaded as a module (it is not a package)."""
    path = Path(__file__).resolve().parents[1] / "book" / "_ext" / "uqxai_book.py"
    spec = importlib.util.spec_from_file_location("uqxai_book", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

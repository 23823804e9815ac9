"""A small 3-D CNN with dropout after every block, for the synthetic brain volumes.

Architecture::

    x [B, C_in, D, H, W]
      -> blocks.0 .. blocks.{n-1}: Conv3d(3, same) - BatchNorm3d - ReLU - [MaxPool3d(2) except last] - Dropout3d(p)
      -> global average pooling -> Linear                                            # [B, n_classes]

The Grad-CAM layer is the last block's ReLU output *before* its dropout (``model.cam_layer_name``,
``"blocks.{n-1}.act"``), and ``model.fc`` is the linear head right after global average pooling of
that activation in eval mode, so Grad-CAM and the closed forms of the Rashomon sampler apply
(:func:`uqxai_lib.samplers.rashomon` with ``head=model.fc``). No ReLU is in-place. Channel-wise
``Dropout3d`` after each block makes MC dropout vary whole feature maps, as in the 2-D ResNet-MC.

>>> m = CNN3D().eval()
>>> tuple(m(torch.zeros(2, 1, 32, 32, 32)).shape), m.cam_layer_name
((2, 4), 'blocks.2.act')
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch  # noqa: F401 - used by the doctests
from torch import Tensor, nn

__all__ = ["CNN3D"]


class CNN3D(nn.Module):
    """Conv3d blocks with dropout -> global average pooling -> linear.

    Parameters
    ----------
    in_channels, n_classes : int
    channels : sequence of int
        Output channels of the blocks; a MaxPool3d(2) follows every block but the last.
    p : float
        Dropout3d rate after every block (0 keeps the modules, inactive).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 4, channels: Sequence[int] = (8, 16, 32),
                 p: float = 0.2) -> None:
        super().__init__()
        if len(channels) < 1 or not 0.0 <= p < 1.0:
            raise ValueError(f"need >= 1 block and a dropout rate in [0, 1), got {channels}, {p}")
        blocks = []
        c = in_channels
        for i, k in enumerate(channels):
            parts = [("conv", nn.Conv3d(c, int(k), 3, padding=1, bias=False)), ("bn", nn.BatchNorm3d(int(k))),
                     ("act", nn.ReLU(inplace=False))]
            if i < len(channels) - 1:
                parts.append(("pool", nn.MaxPool3d(2)))
            parts.append(("drop", nn.Dropout3d(p)))
            blocks.append(nn.Sequential(OrderedDict(parts)))
            c = int(k)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)
        self.cam_layer_name = f"blocks.{len(channels) - 1}.act"
        self.config = dict(arch="cnn3d", in_channels=in_channels, n_classes=n_classes,
                           channels=list(map(int, channels)), p=float(p))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"CNN3D expects [B, C, D, H, W], got {tuple(x.shape)}")
        return self.fc(self.blocks(x).mean(dim=(2, 3, 4)))

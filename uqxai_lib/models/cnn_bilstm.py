"""CNN-BiLSTM for single-lead ECG windows (the ``ecg_sue`` chapter's classifier).

Architecture (after the CNN-BiLSTM of Seoni et al. 2024, scaled down for CPU)::

    x [B, C_in, L]
      -> features: block0 (Conv1d-BN-ReLU) -> MaxPool(2) -> block1 -> MaxPool(2) -> block2   # [B, K, L/4]
      -> MaxPool(lstm_pool=4) -> bidirectional LSTM over time                             # [B, L/16, 2H]
      -> mean over time -> Dropout -> Linear                                              # [B, n_classes]

``features.4`` (block2, the last Conv1d block, output after its ReLU) is the Grad-CAM layer; its
name is ``model.cam_layer_name`` and the module is ``model.last_conv``. No ReLU is in-place, so
hooked activations are never overwritten.

>>> m = CNNBiLSTM()
>>> m(torch.zeros(2, 1, 500)).shape
torch.Size([2, 2])
>>> m.cam_layer_name, m.get_submodule(m.cam_layer_name) is m.last_conv
('features.4', True)
"""
from __future__ import annotations

from typing import Sequence

import torch  # noqa: F401 - used by the doctests
from torch import Tensor, nn

__all__ = ["CNNBiLSTM", "conv_block"]


def conv_block(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """Conv1d (same padding, no bias) -> BatchNorm1d -> ReLU (not in-place)."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=False),
    )


class CNNBiLSTM(nn.Module):
    """Conv1d blocks -> bidirectional LSTM -> linear.

    Parameters
    ----------
    in_channels : int
        ECG leads (1 here).
    n_classes : int
        Output classes (2: healthy, CAD).
    channels : sequence of int
        Output channels of the Conv1d blocks; a MaxPool(2) follows every block.
    kernel_size : int
        Odd Conv1d kernel size.
    hidden : int
        LSTM hidden size per direction.
    dropout : float
        Dropout before the linear layer.
    lstm_pool : int
        MaxPool factor between the last Conv1d block and the LSTM (fewer, cheaper LSTM steps).
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        channels: Sequence[int] = (16, 32, 32),
        kernel_size: int = 7,
        hidden: int = 32,
        dropout: float = 0.2,
        lstm_pool: int = 4,
    ) -> None:
        super().__init__()
        if len(channels) < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"need >= 1 conv block and an odd kernel_size, got {channels}, {kernel_size}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, k in enumerate(channels):
            if i:
                layers.append(nn.MaxPool1d(2))
            layers.append(conv_block(c, int(k), kernel_size))
            c = int(k)
        self.features = nn.Sequential(*layers)
        self.cam_layer_name = f"features.{len(layers) - 1}"
        self.pool = nn.MaxPool1d(lstm_pool)
        self.lstm = nn.LSTM(c, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden, n_classes)
        self.config = dict(
            in_channels=in_channels, n_classes=n_classes, channels=list(map(int, channels)),
            kernel_size=kernel_size, hidden=hidden, dropout=dropout, lstm_pool=lstm_pool,
        )

    @property
    def last_conv(self) -> nn.Module:
        """The last Conv1d block (Grad-CAM layer)."""
        return self.features[-1]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"CNNBiLSTM expects [B, C, L], got {tuple(x.shape)}")
        h = self.pool(self.features(x))  # [B, K, T]
        out, _ = self.lstm(h.transpose(1, 2))  # [B, T, 2H]
        return self.fc(self.dropout(out.mean(1)))

"""ResNet with a dropout layer after every residual block, for Monte Carlo (MC) dropout.

Salvi et al. (2025, section 4.2) add "dropout layers (rate = 0.5) after each residual block in
the ResNet50 architecture" and run 20 stochastic passes at test time. :func:`build_resnet_mc`
builds exactly that from torchvision's blocks: every ``BasicBlock`` / ``Bottleneck`` is followed
by an :class:`torch.nn.Dropout` (16 for ResNet50, 8 for ResNet18), so a sampler finds them by
type and switches only them on.

The same builder makes the small models of the quick profiles: a shallower ``arch``, a narrower
``width`` and a ``small_input`` stem (3x3 convolution, stride 1, no max-pool) that keeps
``layer4`` at ``size / 8`` pixels for small images. ``arch="resnet50", width=64,
small_input=False`` is torchvision's ResNet50 with identical parameter names, so a local
torchvision state dict (``weights=path``) loads into it (the new dropout layers have no
parameters; a 1000-class ``fc`` from ImageNet is skipped and replaced by a fresh head).

Grad-CAM is taken at the last block of ``layer4`` (:data:`GRADCAM_LAYER`), by default *before*
its dropout (:func:`explained_layer`, point ``"pre_dropout"``): the dropout then acts after the
hooked activation, so the gradient, and with it Grad-CAM's channel weights, changes with each
pass's mask. Hooking ``layer4`` itself (point ``"post_dropout"``) explains the dropped-out
activation: under global average pooling and one linear layer the gradient is then the same in
every pass and only the zeroed-and-rescaled activation varies. Nothing after the hooked point
works in place (dropout, pooling, flatten, ``fc``), so the captured activations stay intact.

>>> m = build_resnet_mc("resnet18", num_classes=4, width=8, small_input=True)
>>> len(dropout_layers(m)), m(torch.zeros(2, 3, 32, 32)).shape
(8, torch.Size([2, 4]))
>>> set_dropout(m, 0.2); sorted({d.p for d in dropout_layers(m)})
8
[0.2]
"""
from __future__ import annotations

import hashlib
import os
from typing import Type

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from uqxai_lib.utils import load_state_file

__all__ = [
    "ARCHS",
    "GRADCAM_LAYER",
    "DropoutBasicBlock",
    "DropoutBottleneck",
    "EXPLAIN_POINTS",
    "ResNetMC",
    "build_resnet_mc",
    "dropout_layers",
    "explained_layer",
    "set_dropout",
    "weights_fingerprint",
]

#: The stage whose last block Grad-CAM explains (7x7 for ResNet50 at 224x224).
GRADCAM_LAYER = "layer4"
#: Where in the last block of a stage the explained activation is taken: before its dropout (the
#: default: the block's output, the "last convolutional layer" of the paper) or after it (the
#: stage's output, which is the dropout's output).
EXPLAIN_POINTS = ("pre_dropout", "post_dropout")
#: Residual blocks per stage.
ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


class _DropoutAfterBlock:
    """Mixin: the torchvision block it precedes in the bases, followed by ``nn.Dropout`` (same
    parameters, same names; ``expansion`` comes from the block).

    The block's output passes an ``nn.Identity`` named ``pre_dropout`` before the dropout, so a
    hook can take the activation *before* the dropout mask (``layerK.<last>.pre_dropout``) and the
    gradient of the logit then flows back through that pass's mask; hooking the stage
    (``layerK``) takes it *after* the mask. The identity has no parameters, so state dicts are
    unchanged.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pre_dropout = nn.Identity()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.pre_dropout(super().forward(x)))


class DropoutBasicBlock(_DropoutAfterBlock, BasicBlock):
    """torchvision ``BasicBlock`` followed by ``nn.Dropout``."""


class DropoutBottleneck(_DropoutAfterBlock, Bottleneck):
    """torchvision ``Bottleneck`` followed by ``nn.Dropout``."""


class ResNetMC(ResNet):
    """torchvision ``ResNet`` with a settable stem and width; blocks carry their dropout.

    Only ``__init__`` differs from torchvision (``forward`` is inherited), following its
    initialisation (Kaiming-normal convolutions, BatchNorm weight 1 and bias 0).
    """

    def __init__(
        self,
        block: Type[DropoutBasicBlock] | Type[DropoutBottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int,
        *,
        width: int = 64,
        small_input: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        if small_input:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def build_resnet_mc(
    arch: str = "resnet50",
    *,
    num_classes: int = 4,
    p: float = 0.5,
    width: int = 64,
    small_input: bool = False,
    weights: str | os.PathLike | None = None,
    seed: int | None = None,
) -> ResNetMC:
    """Build a ResNet with ``nn.Dropout(p)`` after every residual block.

    Parameters
    ----------
    arch:
        ``"resnet50"`` (16 bottleneck blocks, the paper's model), ``"resnet34"`` or
        ``"resnet18"`` (8 basic blocks, for quick profiles).
    num_classes:
        Output classes (4 for SARTAJ).
    p:
        Dropout rate of every block (0.5 in the paper); change later with :func:`set_dropout`.
    width:
        Channels of ``layer1`` (64 in torchvision; 8-32 for CPU profiles).
    small_input:
        Use a 3x3 stride-1 stem without max-pool (``layer4`` at ``size / 8``) instead of
        torchvision's 7x7 stride-2 stem and max-pool (``layer4`` at ``size / 32``).
    weights:
        Optional path of a local torchvision state dict (e.g. ImageNet ResNet50). Requires the
        torchvision layout (``width=64``, ``small_input=False``); an ``fc`` of another shape is
        left freshly initialised. Nothing is downloaded.
    seed:
        If given, initialise the weights from this seed (global RNG state restored afterwards).
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
    kind, layers = ARCHS[arch]
    block = DropoutBasicBlock if kind == "basic" else DropoutBottleneck
    if seed is None:
        model = ResNetMC(block, layers, num_classes, width=width, small_input=small_input)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = ResNetMC(block, layers, num_classes, width=width, small_input=small_input)
    if weights is not None:
        _load_local_weights(model, weights)
    set_dropout(model, p)
    return model


def _load_local_weights(model: ResNetMC, path: str | os.PathLike) -> None:
    """Load a torchvision-layout state dict from ``path``; skip an ``fc`` of another shape."""
    state = load_state_file(path, if_missing="pass the path of a local torchvision state dict "
                            "(e.g. resnet50-*.pth) or weights=None for random initialisation")
    own = model.state_dict()
    for k in ("fc.weight", "fc.bias"):
        if k in state and state[k].shape != own[k].shape:
            del state[k]
    hint = "local weights need torchvision names and shapes: the same arch, width=64, small_input=False"
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        first = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
        raise ValueError(f"weights in {os.fspath(path)!r} do not fit this model ({first}); {hint}") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"weights in {os.fspath(path)!r} do not fit this model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); {hint}"
        )


def explained_layer(model: nn.Module, stage: str = GRADCAM_LAYER, point: str = "pre_dropout") -> str:
    """Name of the module whose output Grad-CAM explains: the last block of ``stage`` before
    (``point="pre_dropout"``) or after (``"post_dropout"``) its dropout.

    >>> m = build_resnet_mc("resnet18", num_classes=4, width=8, small_input=True)
    >>> explained_layer(m), explained_layer(m, "layer2", "post_dropout")
    ('layer4.1.pre_dropout', 'layer2')
    """
    if point not in EXPLAIN_POINTS:
        raise ValueError(f"point must be one of {EXPLAIN_POINTS}, got {point!r}")
    try:
        blocks = model.get_submodule(stage)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} has no stage {stage!r}; use layer1 .. layer4") from None
    if point == "post_dropout":
        return stage
    last = len(blocks) - 1
    if not hasattr(blocks[last], "pre_dropout"):
        raise ValueError(f"{stage}.{last} has no pre_dropout point; build the model with build_resnet_mc")
    return f"{stage}.{last}.pre_dropout"


def dropout_layers(model: nn.Module) -> list[nn.Dropout]:
    """All ``nn.Dropout`` modules of ``model`` in definition order."""
    return [m for m in model.modules() if isinstance(m, nn.Dropout)]


def set_dropout(model: nn.Module, p: float) -> int:
    """Set the rate of every ``nn.Dropout`` in ``model`` to ``p``; return how many were set.

    Modes are left alone: the rate only acts when a dropout module is in training mode.
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    layers = dropout_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Dropout layers; build it with build_resnet_mc")
    for d in layers:
        d.p = float(p)
    return len(layers)


def weights_fingerprint(model: nn.Module) -> str:
    """Short sha256 (16 hex characters) of every tensor in ``model.state_dict()`` (names, shapes, bytes).

    For cache keys of results computed from a trained model: the same weights give the same key
    on any device, any change of a single weight gives another one.

    >>> m = build_resnet_mc("resnet18", num_classes=4, width=8, small_input=True, seed=0)
    >>> weights_fingerprint(m) == weights_fingerprint(build_resnet_mc("resnet18", num_classes=4, width=8,
    ...                                                                small_input=True, seed=0))
    True
    """
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())
    return h.hexdigest()[:16]

"""Dermoscopy classifiers with one structure: ``features -> pool -> classifier``.

Every architecture is wrapped in :class:`DermClassifier`:

* ``model.features``: all convolutional layers; its output is the *post-activation* feature map of
  the last convolution (the layer explained by Grad-CAM++ and pruned by the Rashomon sampler);
* ``model.pool``: global average pooling;
* ``model.dropout``: dropout, active in training only (identity in ``eval()``);
* ``model.classifier``: one ``nn.Linear``.

So in eval mode ``logits = classifier(GAP(features(x)))`` exactly, which is what the closed forms of
:func:`uqxai_lib.samplers.rashomon` / ``rashomon_maps`` need (pass ``head=model.classifier``).

Architectures (``arch``):

* ``"efficientnet_b0"``: torchvision EfficientNet-B0; its last block is Conv 1x1 + BN + SiLU, so the
  features already end in an activation (1280 channels).
* ``"densenet121"``: torchvision DenseNet121; torchvision applies ``F.relu(inplace=True)`` after
  ``features`` in ``forward``; we append an ``nn.ReLU(inplace=False)`` to ``features`` instead, so
  a hook on ``features`` sees the post-ReLU map and no hooked tensor is overwritten (1024 channels).
* ``"small"``: a 4-stage CNN (conv-BN-ReLU), for CPU profiles where EfficientNet-B0 from scratch
  is too slow to train in minutes (128 channels by default).

Pretrained weights are never downloaded (``weights=None``); pass ``weights_path`` to a local
torchvision state dict (whole model, as saved by torchvision) or to a :class:`DermClassifier` state dict.

>>> m = build_derm_classifier("small", num_classes=2).eval()
>>> x = torch.randn(2, 3, 32, 32)
>>> bool(torch.allclose(m(x), m.classifier(m.pool(m.features(x)).flatten(1)), atol=1e-6))
True
"""
from __future__ import annotations

import os
from typing import Literal

import torch
from torch import Tensor, nn

from uqxai_lib.utils import load_state_file

__all__ = ["ARCHS", "FEATURE_LAYER", "PRUNE_SITES", "DermClassifier", "build_derm_classifier", "prune_sites",
           "site_suffix", "cascade_groups", "small_cnn",
           "derm_augment"]

ARCHS = ("efficientnet_b0", "densenet121", "small")
#: Name of the explained / pruned layer in every :class:`DermClassifier`.
FEATURE_LAYER = "features"


class DermClassifier(nn.Module):
    """``classifier(dropout(flatten(pool(features(x)))))``.

    Parameters
    ----------
    features:
        Module mapping images [B, 3, H, W] to a post-activation feature map [B, K, h, w].
    num_features:
        K, the channel count of that map.
    num_classes:
        Output logits.
    dropout:
        Dropout probability before the linear head (training only).
    """

    def __init__(self, features: nn.Module, num_features: int, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_features, num_classes)
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


def small_cnn(width: int = 32, num_features: int = 128) -> nn.Sequential:
    """Four conv-BN-ReLU stages (three 2x poolings) ending in a conv with ``num_features`` channels + ReLU.

    A 64x64 image gives an 8x8 feature map.
    """

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=False)]

    layers: list[nn.Module] = []
    layers += block(3, width) + [nn.MaxPool2d(2)]
    layers += block(width, 2 * width) + [nn.MaxPool2d(2)]
    layers += block(2 * width, 4 * width) + [nn.MaxPool2d(2)]
    layers += block(4 * width, num_features)
    return nn.Sequential(*layers)


def _load_weights(model: DermClassifier, tv_model: nn.Module | None, path: str | os.PathLike, arch: str) -> None:
    """Load a DermClassifier state dict, else a torchvision one (its features only; the head stays new)."""
    state = load_state_file(path, if_missing="pass weights_path=None to train from scratch (nothing is downloaded)")
    try:
        model.load_state_dict(state, strict=True)
        return
    except RuntimeError:
        pass
    if tv_model is not None:
        body = {k: v for k, v in state.items() if not k.startswith("classifier")}
        missing, unexpected = tv_model.load_state_dict(body, strict=False)
        if not unexpected and all(m.startswith("classifier") for m in missing):
            return
    raise ValueError(
        f"weights file {path!s} fits neither a DermClassifier({arch!r}) state dict nor torchvision's "
        f"{arch} state dict; check the architecture"
    )


def build_derm_classifier(
    arch: Literal["efficientnet_b0", "densenet121", "small"] = "efficientnet_b0",
    *,
    num_classes: int = 2,
    dropout: float | None = None,
    weights_path: str | os.PathLike | None = None,
    small_width: int = 32,
    small_features: int = 128,
) -> DermClassifier:
    """Build a :class:`DermClassifier`.

    Parameters
    ----------
    arch:
        ``"efficientnet_b0"``, ``"densenet121"`` or ``"small"``.
    num_classes:
        Number of logits (2: benign, malignant).
    dropout:
        Dropout before the head in training; default 0.2 (EfficientNet-B0, as torchvision),
        0.0 otherwise.
    weights_path:
        Optional local state dict. For the torchvision archs an ImageNet state dict of the torchvision
        model is accepted (its ``classifier`` is skipped since the class count differs); a state dict
        of a :class:`DermClassifier` is accepted for every arch.
    small_width, small_features:
        Width and last-layer channels of the ``"small"`` CNN.
    """
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {ARCHS}")
    if arch == "efficientnet_b0":
        net = torchvision.models.efficientnet_b0(weights=None)
        tv_model, features, k = net, net.features, net.classifier[1].in_features
        p = 0.2 if dropout is None else dropout
    elif arch == "densenet121":
        net = torchvision.models.densenet121(weights=None)
        tv_model = net
        # post-ReLU output without torchvision's in-place F.relu in forward
        features, k = nn.Sequential(net.features, nn.ReLU(inplace=False)), net.classifier.in_features
        p = 0.0 if dropout is None else dropout
    else:
        tv_model = None
        features, k = small_cnn(small_width, small_features), small_features
        p = 0.0 if dropout is None else dropout
    model = DermClassifier(features, k, num_classes=num_classes, dropout=p)
    if weights_path is not None:
        _load_weights(model, tv_model, weights_path, arch)
    return model


#: The three pruning sites of the VIC variants (the explained layer is always ``FEATURE_LAYER``).
PRUNE_SITES = ("post_activation", "pre_bn", "earlier_block")


def prune_sites(model: DermClassifier) -> dict[str, str]:
    """Module names of the three pruning sites of ``model`` (keys :data:`PRUNE_SITES`).

    * ``"post_activation"``: the explained feature map itself (``"features"``, after the last
      activation): a pruned channel is zero there, the closed forms of the samplers apply;
    * ``"pre_bn"``: the output channels of the last convolution, *before* its BatchNorm and
      activation: a pruned channel becomes the constant ``act(beta - gamma * mu / sigma)``;
    * ``"earlier_block"``: the output of the block before the last one, so the explained feature
      map itself changes (non-linearly) with the mask.

    Small CNN: ``features.<last conv>`` and the previous stage's ReLU; EfficientNet-B0: ``features.8.0``
    (the 1x1 conv of the last Conv-BN-SiLU) and ``features.7``; DenseNet121: ``features.0.denseblock4``
    (before ``norm5``) and ``features.0.transition3``.

    >>> prune_sites(build_derm_classifier("small", small_width=4, small_features=8))
    {'post_activation': 'features', 'pre_bn': 'features.12', 'earlier_block': 'features.10'}
    """
    f = model.features
    names = dict(model.named_modules())
    if "features.8.0" in names and "features.7" in names and isinstance(names["features.8.0"], nn.Conv2d):
        return {"post_activation": FEATURE_LAYER, "pre_bn": "features.8.0", "earlier_block": "features.7"}
    if "features.0.denseblock4" in names:
        return {"post_activation": FEATURE_LAYER, "pre_bn": "features.0.denseblock4",
                "earlier_block": "features.0.transition3"}
    convs = [i for i, m in enumerate(f) if isinstance(m, nn.Conv2d)] if isinstance(f, nn.Sequential) else []
    if len(convs) >= 2 and isinstance(f[convs[-1] + 1], nn.BatchNorm2d) and isinstance(f[convs[-2] + 2], nn.ReLU):
        return {"post_activation": FEATURE_LAYER, "pre_bn": f"features.{convs[-1]}",
                "earlier_block": f"features.{convs[-2] + 2}"}
    raise ValueError(f"no pruning sites known for features of type {type(f).__name__}; build the model with "
                     "build_derm_classifier")


def site_suffix(model: DermClassifier, site: str) -> tuple[nn.Module, nn.Module]:
    """The rest of ``model`` after the module ``site`` (a name inside nested ``nn.Sequential`` features),
    and the module inside it whose output is the explained feature map.

    ``suffix(output of site) == model(x)`` in eval mode, so a masked candidate can be evaluated from
    the site's cached output without re-running the layers before it (``samplers.rashomon(...,
    suffix=...)``). Returns ``(suffix, explained_module)``.

    >>> m = build_derm_classifier("small", small_width=4, small_features=8).eval()
    >>> suffix, explained = site_suffix(m, "features.10")
    >>> x = torch.randn(2, 3, 32, 32)
    >>> bool(torch.allclose(suffix(m.features[:11](x)), m(x), atol=1e-6)), explained is m.features[-1]
    (True, True)
    """
    parts = site.split(".")
    if parts[0] != FEATURE_LAYER or len(parts) < 2:
        raise ValueError(f"site must name a module inside {FEATURE_LAYER!r} (e.g. 'features.10'), got {site!r}")
    rest: list[nn.Module] = []
    node: nn.Module = model.features
    chain = []
    for name in parts[1:]:
        if not isinstance(node, nn.Sequential):
            raise ValueError(f"site_suffix needs nested nn.Sequential modules down to {site!r}")
        names = [n for n, _ in node.named_children()]
        if name not in names:
            raise ValueError(f"{site!r}: no child {name!r} in {type(node).__name__}")
        i = names.index(name)
        chain.append([c for _, c in list(node.named_children())[i + 1:]])
        node = getattr(node, name)
    for later in reversed(chain):  # innermost remainder first
        rest += later
    explained = model.features
    while isinstance(explained, nn.Sequential) and len(explained):
        explained = explained[-1]
    suffix = nn.Sequential(*rest, model.pool, nn.Flatten(1), model.dropout, model.classifier)
    if not any(m is explained for m in suffix.modules()):
        raise ValueError(f"the explained layer does not lie after {site!r}")
    return suffix, explained


def cascade_groups(model: DermClassifier) -> list[list[str]]:
    """Module groups for cascading randomisation, from the head down: ``[["classifier"], [last conv,
    its BatchNorm], ...]`` for the small CNN; the classifier, then the children of ``features`` from
    the last one down for the torchvision architectures.

    >>> cascade_groups(build_derm_classifier("small", small_width=4, small_features=8))[:3]
    [['classifier'], ['features.12', 'features.13'], ['features.8', 'features.9']]
    """
    f = model.features
    groups = [["classifier"]]
    convs = [i for i, m in enumerate(f) if isinstance(m, nn.Conv2d)] if isinstance(f, nn.Sequential) else []
    if convs and all(isinstance(f[i + 1], nn.BatchNorm2d) for i in convs):
        return groups + [[f"features.{i}", f"features.{i + 1}"] for i in reversed(convs)]
    body = f[0] if isinstance(f, nn.Sequential) and len(f) == 2 and isinstance(f[1], nn.ReLU) else f
    prefix = "features.0" if body is not f else "features"
    return groups + [[f"{prefix}.{n}"] for n, _ in reversed(list(body.named_children()))]


def derm_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Training augmentation for dermoscopy (lesions have no up, down, left or right): a random
    one of the 8 flips / quarter turns of the square, per image. For ``train.fit(augment=...)``.

    >>> x = torch.arange(8.).view(2, 1, 2, 2)
    >>> y = derm_augment(x, torch.Generator().manual_seed(0))
    >>> y.shape == x.shape and sorted(y[0].flatten().tolist()) == [0., 1., 2., 3.]
    True
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"derm_augment needs square images, got {tuple(x.shape[-2:])}")
    code = torch.randint(0, 8, (len(x),), generator=generator).to(x.device)
    out = x.clone()
    for c in range(8):
        rows = code == c
        if not rows.any():
            continue
        v = x[rows]
        if c & 4:
            v = v.flip(-1)
        out[rows] = torch.rot90(v, c & 3, dims=(-2, -1))
    return out

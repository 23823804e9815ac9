"""Grad-CAM / Grad-CAM++ against independent oracles: pytorch-grad-cam (2-D), captum (1-D),
float64 hand computations (1-D, 2-D, 3-D), plus the engine's behavioural guarantees."""
from __future__ import annotations

import copy
import gc
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from support import randomise_bn
from torch import nn

from uqxai_lib import saliency

torch.set_num_threads(2)


def _seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


@pytest.fixture(scope="module")
def resnet18():
    return randomise_bn(_seeded(lambda: torchvision.models.resnet18(weights=None, num_classes=5))).eval()


@pytest.fixture(scope="module")
def densenet121():
    return randomise_bn(_seeded(lambda: torchvision.models.densenet121(weights=None, num_classes=4))).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))


# --------------------------------------------------------------------------- float64 reference
def _reference_cam(acts: np.ndarray, grads: np.ndarray, method: str) -> np.ndarray:
    """Textbook formulas in float64 NumPy, one sample and one channel at a time."""
    b, k = acts.shape[:2]
    cams = np.zeros((b,) + acts.shape[2:])
    for i in range(b):
        for c in range(k):
            a, g = acts[i, c], grads[i, c]
            if method == "grad_cam":
                w = g.mean()
            else:
                s = a.sum()
                alpha = np.zeros_like(g)
                nz = g != 0
                alpha[nz] = g[nz] ** 2 / (2 * g[nz] ** 2 + s * g[nz] ** 3 + 1e-6)
                w = (alpha * np.maximum(g, 0)).sum()
            cams[i] += w * a
    return np.maximum(cams, 0)


def _reference_from_split(body, head, x, target, method):
    """Split the network by hand: acts = body(x) in float64, full autograd through head."""
    with torch.enable_grad():
        acts = body(x.double()).detach().requires_grad_(True)
        logits = head(acts)
        t = logits.argmax(1) if target is None else target
        (grads,) = torch.autograd.grad(logits[torch.arange(len(t)), t].sum(), acts)
    return _reference_cam(acts.detach().numpy(), grads.numpy(), method)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_resnet_maps_equal_float64_reference(resnet18, images, method):
    m64 = _seeded(lambda: torchvision.models.resnet18(weights=None, num_classes=5))
    m64.load_state_dict(resnet18.state_dict())
    m64 = m64.double().eval()
    body = nn.Sequential(*list(m64.children())[:-2])
    head = lambda a: m64.fc(torch.flatten(m64.avgpool(a), 1))  # noqa: E731
    ref = _reference_from_split(body, head, images, None, method)
    ours = saliency.explain(resnet18, images, "layer4", method=method)
    assert ours.dtype == torch.float32 and ours.shape == (3, 2, 2)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-4, atol=1e-5 * ref.max())


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_densenet_maps_survive_inplace_relu_and_equal_float64_reference(densenet121, images, method):
    # torchvision's DenseNet applies relu(inplace=True) to the output of `features`: the engine must
    # keep the pre-ReLU activations intact (pytorch-grad-cam's stored activations get overwritten).
    m64 = _seeded(lambda: torchvision.models.densenet121(weights=None, num_classes=4))
    m64.load_state_dict(densenet121.state_dict())
    m64 = m64.double().eval()
    head = lambda a: m64.classifier(torch.flatten(F.adaptive_avg_pool2d(F.relu(a), 1), 1))  # noqa: E731
    target = torch.tensor([0, 3, 1])
    ref = _reference_from_split(m64.features, head, images, target, method)
    ours = saliency.explain(densenet121, images, "features", target=target, method=method)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-4, atol=1e-5 * max(ref.max(), 1e-12))


# --------------------------------------------------------------------------- pytorch-grad-cam
@pytest.mark.parametrize("arch,layer", [("resnet18", "layer4"), ("densenet121", "features.denseblock4")])
@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_maps_equal_pytorch_grad_cam(request, images, arch, layer, method):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.image import scale_cam_image

    model = request.getfixturevalue(arch)
    cls = GradCAM if method == "grad_cam" else GradCAMPlusPlus
    with cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        theirs = cam(input_tensor=images, targets=None)
    ours = saliency.explain(model, images, layer, method=method).numpy()
    # pytorch-grad-cam min-max normalises, resizes to the input (cv2), then normalises again
    size = (images.shape[-1], images.shape[-2])
    expected = scale_cam_image(scale_cam_image(ours, size))
    np.testing.assert_allclose(theirs, expected, atol=2e-4)
    assert np.ptp(theirs) > 0.5  # a non-trivial map was compared


# --------------------------------------------------------------------------- captum, 1-D
class ConvBiLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(1, 8, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
        )
        self.lstm = nn.LSTM(16, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 2)

    def forward(self, x):
        h, _ = self.lstm(self.conv(x).transpose(1, 2))
        return self.fc(h.mean(1))


def test_1d_grad_cam_equals_captum_layer_grad_cam_on_conv_bilstm():
    from captum.attr import LayerGradCam

    model = randomise_bn(_seeded(ConvBiLSTM)).eval()
    x = torch.randn(4, 1, 120, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([0, 1, 1, 0])
    theirs = LayerGradCam(model, model.conv).attribute(x, target=target, relu_attributions=True)
    ours = saliency.grad_cam(model, x, "conv", target=target)
    assert ours.shape == (4, 60)
    torch.testing.assert_close(ours, theirs.squeeze(1).detach(), rtol=1e-4, atol=1e-6)
    assert ours.max() > 0


def test_3d_maps_equal_float64_reference():
    body = _seeded(lambda: nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 6, 3, padding=1)))
    fc = _seeded(lambda: nn.Linear(6, 3), 1)
    model = nn.Sequential(body, nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), fc).eval()
    x = torch.randn(2, 1, 6, 7, 8, generator=torch.Generator().manual_seed(2))
    m64 = copy.deepcopy(model).double()
    # reference: same weights in float64, split after `body`
    for method in ("grad_cam", "grad_cam_pp"):
        ref = _reference_from_split(m64[0], lambda a: m64[1:](a), x, None, method)
        ours = saliency.explain(model, x, model[0], method=method)
        assert ours.shape == (2, 6, 7, 8)
        np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-4, atol=1e-6)


# --------------------------------------------------------------------------- behaviour
class Probe(nn.Module):
    """Records whether autograd was on when it ran."""

    def __init__(self, log, name):
        super().__init__()
        self.log, self.name = log, name

    def forward(self, x):
        self.log.append((self.name, torch.is_grad_enabled()))
        return x


def _small(log=None, dropout=True):
    log = [] if log is None else log
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), Probe(log, "below"), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),  # index 4: explained layer
        nn.ReLU(inplace=True), Probe(log, "above"), nn.Dropout(0.5) if dropout else nn.Identity(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )


def test_autograd_only_above_the_layer_and_inside_no_grad():
    log = []
    model = _seeded(lambda: _small(log)).eval()
    x = torch.randn(2, 3, 8, 8)
    saliency.grad_cam(model, x, "4")
    assert log == [("below", False), ("above", True)]
    log.clear()
    with torch.no_grad():
        m = saliency.grad_cam(model, x, "4")
        assert not torch.is_grad_enabled()
    assert log == [("below", False), ("above", True)] and m.shape == (2, 8, 8)
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_modes_untouched_and_dropout_stays_on():
    model = _seeded(lambda: _small()).eval()
    model[7].train()  # caller switched MC dropout on
    modes = [m.training for m in model.modules()]
    x = torch.randn(4, 3, 8, 8)
    maps = [saliency.grad_cam(model, x, "4", target=1) for _ in range(2)]
    assert [m.training for m in model.modules()] == modes
    assert not torch.equal(maps[0], maps[1])  # dropout was active during both calls


def test_parameters_without_grad_work():
    model = _seeded(lambda: _small()).eval().requires_grad_(False)
    m = saliency.grad_cam_pp(model, torch.randn(2, 3, 8, 8), "4")
    assert m.shape == (2, 8, 8) and torch.isfinite(m).all()


def test_target_int_tensor_and_none():
    model = _seeded(lambda: _small()).eval()
    x = torch.randn(3, 3, 8, 8)
    cap = saliency.activations_and_gradients(model, x, "4")
    torch.testing.assert_close(cap.target, cap.logits.argmax(1))
    a = saliency.grad_cam(model, x, "4", target=2)
    b = saliency.grad_cam(model, x, "4", target=torch.tensor([2, 2, 2]))
    torch.testing.assert_close(a, b)


def test_hooks_removed_even_when_forward_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Boom())
    with pytest.raises(RuntimeError, match="boom"):
        saliency.grad_cam(model, torch.randn(1, 3, 8, 8), "0")
    assert not model[0]._forward_hooks


def test_bad_inputs_raise_clear_errors():
    model = _seeded(lambda: _small()).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="not a submodule"):
        saliency.grad_cam(model, x, "nope")
    with pytest.raises(ValueError, match="not inside the model"):
        saliency.grad_cam(model, x, nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match=r"lie in \[0, 2\]"):
        saliency.grad_cam(model, x, "4", target=3)
    with pytest.raises(ValueError, match="shape"):
        saliency.grad_cam(model, x, "4", target=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        saliency.grad_cam(model, torch.full_like(x, float("nan")), "4")
    with pytest.raises(ValueError, match="unknown method"):
        saliency.explain(model, x, "4", method="lime")
    lstm = nn.LSTM(4, 4, batch_first=True)
    with pytest.raises(TypeError, match="must return a tensor"):
        saliency.grad_cam(nn.Sequential(lstm), torch.randn(1, 3, 4), "0")
    conv = nn.Conv2d(3, 3, 1)
    twice = nn.Sequential(conv, conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(RuntimeError, match="ran twice"):
        saliency.grad_cam(twice, torch.randn(1, 3, 4, 4), conv)
    assert not conv._forward_hooks


def test_thousand_calls_leave_no_hooks_and_no_memory_growth():
    model = _seeded(lambda: _small(dropout=False)).eval()
    x = torch.randn(2, 3, 8, 8)
    for _ in range(50):  # warm-up
        saliency.grad_cam_pp(model, x, "4")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(1000):
        saliency.grad_cam_pp(model, x, "4")
    gc.collect()
    growth = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert growth < 256 * 1024, f"python heap grew by {growth} bytes over 1000 calls"
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_upsample_keeps_leading_dims_and_matches_interpolate():
    maps = torch.rand(5, 2, 3, 4)  # [S, B, H, W]
    up = saliency.upsample(maps, (6, 8))
    ref = F.interpolate(maps.reshape(10, 1, 3, 4), size=(6, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, ref.reshape(5, 2, 6, 8))
    assert saliency.upsample(torch.rand(2, 7), 500).shape == (2, 500)
    with pytest.raises(ValueError):
        saliency.upsample(torch.rand(3), (4, 4))


def test_normalize_per_map():
    maps = torch.stack([torch.arange(6.0).reshape(2, 3), torch.full((2, 3), 2.0)])
    n = saliency.normalize(maps)
    assert n[0].min() == 0 and n[0].max() == 1 and (n[1] == 0).all()

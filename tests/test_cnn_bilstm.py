"""Tests for the CNN-BiLSTM ECG classifier."""
import pytest
import torch
from torch import nn

from uqxai_lib import saliency
from uqxai_lib.models.cnn_bilstm import CNNBiLSTM


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CNNBiLSTM().eval()


def test_forward_gives_logits_per_class(model):
    assert model(torch.randn(3, 1, 500)).shape == (3, 2)
    assert CNNBiLSTM(n_classes=4, channels=(4, 8))(torch.randn(2, 1, 256)).shape == (2, 4)


def test_cam_layer_is_the_last_conv1d_block(model):
    layer = model.get_submodule(model.cam_layer_name)
    assert layer is model.last_conv
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert convs[-1] is layer[0]
    assert saliency.resolve_layer(model, model.cam_layer_name) is layer


def test_no_in_place_relu(model):
    assert all(not m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


def test_grad_cam_at_cam_layer_matches_captum(model):
    captum = pytest.importorskip("captum.attr")
    x = torch.randn(4, 1, 500, generator=torch.Generator().manual_seed(1))
    ours = saliency.grad_cam(model, x, model.cam_layer_name, target=1)
    assert ours.shape == (4, 125)  # 500 / 4: two MaxPool(2) before the last block
    ref = captum.LayerGradCam(model, model.last_conv).attribute(x, target=1, relu_attributions=True)
    assert torch.allclose(ours, ref[:, 0], atol=1e-5, rtol=1e-4)
    up = saliency.upsample(ours, 500)
    assert up.shape == (4, 500)


def test_bad_input_shape_raises(model):
    with pytest.raises(ValueError, match=r"\[B, C, L\]"):
        model(torch.randn(500))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="odd kernel_size"):
        CNNBiLSTM(kernel_size=4)


def test_learns_synthetic_ecg_quickly():
    from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg

    torch.manual_seed(0)
    d = make_synthetic_ecg(n_subjects=60, windows_per_subject=4, cad_fraction=0.5, mild_fraction=0.0, seed=0)
    m = CNNBiLSTM(channels=(8, 16, 16), hidden=16)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for _ in range(12):
        for idx in torch.randperm(len(d), generator=torch.Generator().manual_seed(0)).split(40):
            loss = nn.functional.cross_entropy(m(d.x[idx]), d.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    test = make_synthetic_ecg(n_subjects=20, windows_per_subject=4, cad_fraction=0.5, mild_fraction=0.0, seed=1)
    with torch.no_grad():
        acc = (m(test.x).argmax(1) == test.y).float().mean().item()
    assert acc > 0.85

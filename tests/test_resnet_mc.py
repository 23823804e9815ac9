"""Tests of the MC-dropout ResNet builder (uqxai_lib.models.resnet_mc)."""
import pytest
import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from uqxai_lib.models.resnet_mc import (
    GRADCAM_LAYER,
    build_resnet_mc,
    dropout_layers,
    set_dropout,
    weights_fingerprint,
)


@pytest.fixture(scope="module")
def small():
    return build_resnet_mc("resnet18", num_classes=4, width=8, small_input=True, seed=0).eval()


def test_forward_shapes_and_layer4_resolution(small):
    x = torch.randn(2, 3, 32, 32)
    assert small(x).shape == (2, 4)
    acts = {}
    h = small.get_submodule(GRADCAM_LAYER).register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    small(x)
    h.remove()
    assert acts["a"].shape == (2, 64, 4, 4)  # small-input stem: layer4 at size / 8


def test_one_dropout_after_every_residual_block():
    assert len(dropout_layers(build_resnet_mc("resnet18", width=4, small_input=True))) == 8
    m50 = build_resnet_mc("resnet50", width=4)
    drops = dropout_layers(m50)
    assert len(drops) == 16 and all(type(d) is nn.Dropout for d in drops)
    assert all(d.p == 0.5 for d in drops)  # the paper's rate is the default
    # each dropout is the last step of its block: the block's output is the dropout's output
    blocks = [b for layer in (m50.layer1, m50.layer2, m50.layer3, m50.layer4) for b in layer]
    assert [b.dropout for b in blocks] == drops


def test_set_dropout_changes_every_rate_and_no_mode(small):
    small.eval()
    assert set_dropout(small, 0.2) == 8
    assert {d.p for d in dropout_layers(small)} == {0.2}
    assert not any(m.training for m in small.modules())
    set_dropout(small, 0.5)
    with pytest.raises(ValueError, match="dropout rate"):
        set_dropout(small, 1.0)
    with pytest.raises(ValueError, match="no nn.Dropout"):
        set_dropout(nn.Linear(2, 2), 0.1)


def test_dropout_on_makes_passes_differ_and_eval_is_deterministic(small):
    x = torch.randn(3, 3, 32, 32)
    small.eval()
    with torch.no_grad():
        a, b = small(x), small(x)
        assert torch.equal(a, b)
        for d in dropout_layers(small):
            d.train()
        c, e = small(x), small(x)
    small.eval()
    assert not torch.allclose(c, e)


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    a = build_resnet_mc("resnet18", width=4, small_input=True, seed=3)
    assert torch.equal(torch.rand(2), expected)
    b = build_resnet_mc("resnet18", width=4, small_input=True, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("arch, ref", [("resnet18", resnet18), ("resnet50", resnet50)])
def test_full_width_model_matches_torchvision_and_loads_its_weights(arch, ref, tmp_path):
    tv = ref(weights=None, num_classes=4).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(tv.state_dict(), path)
    ours = build_resnet_mc(arch, num_classes=4, weights=path).eval()
    assert set(ours.state_dict()) == set(tv.state_dict())  # same names, dropouts add none
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv(x), atol=1e-5)


def test_imagenet_head_is_skipped_when_classes_differ(tmp_path):
    tv = resnet18(weights=None)  # 1000 classes
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    ours = build_resnet_mc("resnet18", num_classes=4, weights=path)
    assert ours.fc.out_features == 4
    assert torch.equal(ours.conv1.weight, tv.conv1.weight)


def test_bad_arguments_and_weights_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="arch"):
        build_resnet_mc("vgg16")
    with pytest.raises(ValueError, match="num_classes"):
        build_resnet_mc("resnet18", num_classes=1)
    with pytest.raises(FileNotFoundError, match="weights file"):
        build_resnet_mc("resnet18", weights=tmp_path / "missing.pth")
    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        build_resnet_mc("resnet18", width=16, weights=path)


def test_weights_fingerprint_changes_with_any_weight_and_ignores_modes():
    a = build_resnet_mc("resnet18", num_classes=4, width=4, small_input=True, seed=0)
    fp = weights_fingerprint(a)
    assert len(fp) == 16 and fp == weights_fingerprint(a.train())
    with torch.no_grad():
        a.layer3[0].conv1.weight[0, 0, 0, 0] += 1e-6
    assert weights_fingerprint(a) != fp
    assert weights_fingerprint(build_resnet_mc("resnet18", num_classes=4, width=4, small_input=True, seed=1)) != fp


def test_pre_dropout_point_sees_the_mask_in_the_gradient_post_dropout_does_not():
    from uqxai_lib import saliency, samplers
    from uqxai_lib.models.resnet_mc import explained_layer

    m = build_resnet_mc("resnet18", num_classes=4, width=8, small_input=True, seed=1, p=0.5).eval()
    assert explained_layer(m) == "layer4.1.pre_dropout" and explained_layer(m, point="post_dropout") == "layer4"
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # dropout off: both points are the same activation, so the maps agree
    assert torch.allclose(saliency.grad_cam(m, x, "layer4.1.pre_dropout"), saliency.grad_cam(m, x, "layer4"))
    with samplers.dropout_enabled(m):
        torch.manual_seed(3)
        pre = saliency.activations_and_gradients(m, x, "layer4.1.pre_dropout", 0)
        torch.manual_seed(3)
        post = saliency.activations_and_gradients(m, x, "layer4", 0)
    # float64 oracle: logit = fc(mean(drop(A))) -> dlogit/dA = w_c * mask / ((1 - p) HW) before the
    # dropout, and w_c / HW (constant over passes and positions) after it
    w = m.fc.weight[0].double()
    hw = post.activations.shape[-1] * post.activations.shape[-2]
    assert torch.allclose(post.gradients.double(), (w / hw)[None, :, None, None].expand_as(post.gradients), atol=1e-6)
    want = (w / hw)[None, :, None, None] * (post.activations.double() != 0) / 0.5
    nz = pre.activations != 0
    assert torch.allclose(pre.gradients.double()[nz], want.expand_as(pre.gradients)[nz], atol=1e-6)
    with pytest.raises(ValueError, match="point"):
        explained_layer(m, point="inside")

"""Tests of the dermoscopy classifier wrapper (uqxai_lib.models.derm_classifier)."""
import pytest
import torch
from torch import nn

from uqxai_lib.models.derm_classifier import ARCHS, FEATURE_LAYER, DermClassifier, build_derm_classifier


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    torch.manual_seed(0)
    return build_derm_classifier(request.param).eval()


def test_forward_equals_linear_head_on_global_average_pool(model):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.features(x)
        manual = feats.double().mean((2, 3)) @ model.classifier.weight.double().T + model.classifier.bias.double()
        out = model(x)
    assert out.shape == (2, 2)
    assert torch.allclose(out.double(), manual, atol=1e-5)


def test_feature_layer_is_named_features_and_is_post_activation(model):
    assert isinstance(model, DermClassifier) and FEATURE_LAYER == "features"
    assert dict(model.named_modules())[FEATURE_LAYER] is model.features
    assert isinstance(model.classifier, nn.Linear) and isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert model.classifier.in_features == model.num_features
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.features(x)
    assert feats.shape[1] == model.num_features
    if not isinstance(model.features[-1], nn.Sequential) and hasattr(model.features[-1], "inplace"):
        assert model.features[-1].inplace is False


def test_no_inplace_relu_after_the_hooked_layer():
    m = build_derm_classifier("densenet121").eval()
    assert isinstance(m.features[-1], nn.ReLU) and not m.features[-1].inplace
    captured = {}

    def hook(mod, inputs, output):
        captured["out"] = output  # a reference: an in-place op downstream would change it

    h = m.features[0].register_forward_hook(hook)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        m(x)
        pre = m.features[0](x).clone()  # torchvision's features end at norm5 (pre-ReLU)
        out = m.features(x)
    h.remove()
    assert (pre < 0).any() and (out >= 0).all()
    assert torch.equal(captured["out"], pre)  # not overwritten by a ReLU in place


def test_dropout_only_in_training():
    m = build_derm_classifier("efficientnet_b0")
    assert m.dropout.p == 0.2
    m.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


def test_weights_file_roundtrip_and_torchvision_checkpoint(tmp_path):
    import torchvision

    a = build_derm_classifier("small").eval()
    p = tmp_path / "small.pt"
    torch.save(a.state_dict(), p)
    b = build_derm_classifier("small", weights_path=p).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    tv = torchvision.models.efficientnet_b0(weights=None)
    q = tmp_path / "effnet_tv.pt"
    torch.save(tv.state_dict(), q)
    c = build_derm_classifier("efficientnet_b0", weights_path=q)
    w = dict(c.named_parameters())["features.0.0.weight"]
    assert torch.equal(w, tv.features[0][0].weight)


def test_bad_arch_and_missing_or_wrong_weights_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown arch"):
        build_derm_classifier("resnet")
    with pytest.raises(FileNotFoundError, match="nope.pt.*does not exist; pass weights_path=None"):
        build_derm_classifier("small", weights_path=tmp_path / "nope.pt")
    p = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(1)}, p)
    with pytest.raises(ValueError, match="fits neither"):
        build_derm_classifier("small", weights_path=p)


@pytest.mark.parametrize("arch", ["small", "efficientnet_b0", "densenet121"])
def test_prune_sites_name_the_last_conv_before_its_norm_and_an_earlier_block(arch):
    from uqxai_lib.models.derm_classifier import PRUNE_SITES, prune_sites

    m = build_derm_classifier(arch, small_width=4, small_features=8).eval()
    sites = prune_sites(m)
    assert tuple(sites) == PRUNE_SITES and sites["post_activation"] == "features"
    names = dict(m.named_modules())
    seen = []
    hooks = [names[n].register_forward_hook(lambda mod, i, o, n=n: seen.append(n)) for n in sites.values()]
    with torch.no_grad():
        m(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    # all three run once, the earlier block first, the explained layer last
    assert seen == [sites["earlier_block"], sites["pre_bn"], "features"]
    if arch == "small":
        assert isinstance(names[sites["pre_bn"]], torch.nn.Conv2d)


@pytest.mark.parametrize("arch", ["small", "efficientnet_b0", "densenet121"])
def test_site_suffix_reproduces_the_model_from_each_sites_output_and_cascade_groups_resolve(arch):
    from uqxai_lib.models.derm_classifier import cascade_groups, prune_sites, site_suffix

    m = build_derm_classifier(arch, small_width=4, small_features=8).eval()
    names = dict(m.named_modules())
    x = torch.randn(2, 3, 64, 64)
    for site in ("pre_bn", "earlier_block"):
        name = prune_sites(m)[site]
        suffix, explained = site_suffix(m, name)
        out = {}
        h = names[name].register_forward_hook(lambda mod, i, o: out.setdefault("a", o.clone()))
        with torch.no_grad():
            y = m(x)
        h.remove()
        with torch.no_grad():
            torch.testing.assert_close(suffix(out["a"]), y, rtol=1e-5, atol=1e-5)
        assert any(mod is explained for mod in suffix.modules())
    groups = cascade_groups(m)
    assert groups[0] == ["classifier"] and len(groups) >= 3
    assert all(n in names for g in groups for n in g)
    with pytest.raises(ValueError, match="site"):
        site_suffix(m, "classifier")

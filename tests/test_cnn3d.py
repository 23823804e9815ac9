"""Tests of the small 3-D CNN (uqxai_lib.models.cnn3d)."""
import pytest
import torch
from torch import nn

from uqxai_lib import saliency, samplers
from uqxai_lib.models.cnn3d import CNN3D


def test_shapes_layer_and_one_dropout_after_every_block():
    m = CNN3D(channels=(4, 8, 8), p=0.3).eval()
    assert m(torch.randn(2, 1, 16, 16, 16)).shape == (2, 4)
    drops = samplers.dropout_modules(m)
    assert len(drops) == 3 and all(isinstance(d, nn.Dropout3d) and d.p == 0.3 for d in drops)
    assert [list(b.children())[-1] for b in m.blocks] == drops
    assert isinstance(m.get_submodule(m.cam_layer_name), nn.ReLU)
    with pytest.raises(ValueError, match="D, H, W"):
        m(torch.randn(2, 1, 16, 16))


def test_head_is_linear_after_global_average_pooling_of_the_cam_layer():
    m = CNN3D(channels=(4, 6)).eval()
    x = torch.randn(3, 1, 12, 12, 12)
    acts = {}
    h = m.get_submodule(m.cam_layer_name).register_forward_hook(lambda mod, i, o: acts.setdefault("a", o))
    logits = m(x)
    h.remove()
    torch.testing.assert_close(m.fc(acts["a"].mean((2, 3, 4))), logits)


def test_grad_cam_at_the_cam_layer_is_3d_and_mc_dropout_passes_differ():
    m = CNN3D(channels=(4, 6), p=0.5).eval()
    x = torch.randn(2, 1, 12, 12, 12)
    maps = saliency.explain(m, x, m.cam_layer_name, torch.tensor([0, 1]))
    assert maps.shape == (2, 6, 6, 6)
    st = samplers.mc_dropout(m, x, m.cam_layer_name, 3, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(st.probs[0], st.probs[1]) and not m.blocks[0].drop.training


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="dropout rate"):
        CNN3D(p=1.0)

"""Tests of the primer chapter's figures (uqxai_lib.viz.primer): they draw, and draw what they are given."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from uqxai_lib.viz import primer as vp


def _case(n: int = 5, size: int = 16):
    """n random 4×4 maps and square masks of ``size``² px (what the studies layer hands to viz)."""
    maps = torch.rand(n, 4, 4, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    mask[:, size // 8: size // 2, size // 4: size * 5 // 8] = True
    return maps, mask


def test_figures_are_returned():
    maps, mask = _case()
    x = torch.randn(5, 3, 16, 16)
    fig = vp.plot_examples(x[:2], mask[:2], {"m": maps[:2]}, titles=["a", "b"])
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 6
    fig = vp.plot_weights({"a": torch.randn(8), "b": torch.rand(8)})
    assert len(fig.axes) == 1
    assert vp.display_image(x[0]).shape == (16, 16, 3)


def test_threshold_frame_shades_exactly_the_given_region():
    maps, mask = _case()
    x = torch.zeros(3, 3, 16, 16)
    region = torch.zeros(3, 16, 16, dtype=torch.bool)
    region[:, :4, :5] = True
    fig = vp.threshold_frame(x, mask[:3], region, 0.5, 0.42, name="m")
    assert "0.420" in fig._suptitle.get_text()
    shade = fig.axes[0].images[1].get_array()
    assert np.array_equal(np.asarray(shade)[..., 3] > 0, region[0].numpy())


def test_viz_primer_computes_nothing():
    import inspect

    src = inspect.getsource(vp)
    for word in ("saliency", "metrics", "samplers", "train.", "scipy"):
        assert word not in src.replace("uqxai_lib.studies.primer", ""), word

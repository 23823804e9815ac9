"""Tests for uqxai_lib.viz.common: shapes, resizing, Agg rendering, clear errors."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from uqxai_lib.viz import common  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())


def test_normalize01_matches_min_max_and_zeroes_constant_maps():
    a = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    np.testing.assert_allclose(common.normalize01(a), (a.numpy() - 2) / 8)
    assert not common.normalize01(torch.full((3, 3), 5.0)).any()


def test_resize_map_matches_torch_interpolate():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(4, 5, generator=g, dtype=torch.float64)
    ref = F.interpolate(m[None, None], size=(16, 20), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(common.resize_map(m, (16, 20)), ref.numpy())
    s = torch.rand(7, generator=g, dtype=torch.float64)
    ref1 = F.interpolate(s[None, None], size=30, mode="linear", align_corners=False)[0, 0]
    np.testing.assert_allclose(common.resize_map(s, 30), ref1.numpy())
    with pytest.raises(ValueError, match="cannot be resized"):
        common.resize_map(m, 10)


def test_overlay_map_2d_upsamples_the_map_to_the_image_and_draws_into_given_ax():
    fig, axes = plt.subplots(1, 2)
    image = torch.rand(3, 24, 32)  # channels first
    out = common.overlay_map_2d(image, torch.rand(3, 4), ax=axes[1], title="cam")
    assert out is fig
    imgs = axes[1].get_images()
    assert len(imgs) == 2
    assert imgs[0].get_array().shape == (24, 32, 3)
    assert imgs[1].get_array().shape == (24, 32)
    assert 0.0 <= imgs[1].get_array().min() and imgs[1].get_array().max() <= 1.0
    assert axes[1].get_title() == "cam"
    _render(fig)


def test_overlay_map_2d_rejects_batched_maps():
    with pytest.raises(ValueError, match="pick one sample"):
        common.overlay_map_2d(torch.rand(8, 8), torch.rand(2, 4, 4))


def test_overlay_map_1d_band_spans_the_trace_in_seconds():
    sig = torch.sin(torch.linspace(0, 6.28, 250))
    fig = common.overlay_map_1d(sig, torch.rand(16), fs=250.0)
    ax = fig.axes[0]
    (band,) = ax.get_images()
    assert band.get_array().shape == (1, 250)
    assert ax.get_xlabel() == "time (s)"
    assert ax.lines[0].get_xdata()[-1] == pytest.approx(249 / 250)
    _render(fig)


def test_group_distributions_by_keys_and_by_mapping():
    g = torch.Generator().manual_seed(1)
    v = torch.rand(40, generator=g)
    groups = torch.arange(40) % 2 == 0
    fig = common.group_distributions(v, groups, {True: "AF", False: "normal"}, ylabel="SUE")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AF", "normal"]
    # jittered points: one scatter per group with the group's values
    offsets = [c.get_offsets()[:, 1] for c in ax.collections if c.get_offsets().shape[0] == 20]
    np.testing.assert_allclose(sorted(offsets[0]), sorted(v[groups].numpy()), rtol=1e-6)
    fig2 = common.group_distributions({"a": [1.0, 2.0, 3.0], "b": [2.0, 2.0]}, kind="box")
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["a", "b"]
    _render(fig)


def test_group_distributions_bad_input():
    with pytest.raises(ValueError, match="has 3 entries but groups has 2"):
        common.group_distributions([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="no values for group"):
        common.group_distributions([1.0, 2.0], [0, 0], {0: "a", 1: "b"})
    with pytest.raises(ValueError, match="kind must be"):
        common.group_distributions([1.0], [0], kind="bar")


def test_show_maps_row_maps_alone_and_as_overlays():
    maps = [torch.rand(6, 6) for _ in range(3)]
    fig = common.show_maps_row(maps, ["mean", "std", "ref"], colorbar=True)
    assert len(fig.axes) == 6  # 3 panels + 3 colour bars
    assert [a.get_title() for a in fig.axes[:3]] == ["mean", "std", "ref"]
    imgs = [torch.rand(12, 12) for _ in range(2)]
    fig2 = common.show_maps_row(imgs, maps=maps[:2], suptitle="overlay")
    assert all(len(a.get_images()) == 2 for a in fig2.axes)
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        common.show_maps_row(maps, ["a", "b"])


def test_show_maps_row_raw_scale_shares_the_colour_range():
    maps = [torch.zeros(4, 4), torch.full((4, 4), 3.0)]
    fig = common.show_maps_row(maps, normalize=False)
    assert {a.get_images()[0].get_clim() for a in fig.axes} == {(0.0, 3.0)}


def test_mid_slice_and_trend():
    vol = torch.arange(5 * 3 * 4, dtype=torch.float64).reshape(5, 3, 4)
    np.testing.assert_array_equal(common.mid_slice(vol), vol[2].numpy())
    np.testing.assert_array_equal(common.mid_slice(vol, axis=2, index=1), vol[:, :, 1].numpy())
    fig = common.trend([1, 2, 3], [0.5, 0.6, 0.7], yerr=[0.1, 0.1, 0.1], label="SUE", xlabel="SNR")
    assert fig.axes[0].get_xlabel() == "SNR"
    with pytest.raises(ValueError, match="x has 2 points but y has 3"):
        common.trend([1, 2], [1, 2, 3])

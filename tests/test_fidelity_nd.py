"""Tests of uqxai_lib.fidelity (N-D pointing game, deletion/insertion curves, cascading randomisation)
against plain float64 loops."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from uqxai_lib import fidelity as F


def _model(c_in=1, n=16, nd=1):
    torch.manual_seed(0)
    conv = nn.Conv1d(c_in, 3, 3, padding=1) if nd == 1 else nn.Conv2d(c_in, 3, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * n, 2)).double().eval()


def _loop_curve(model, x, maps, target, patch, insert):
    """float64 loop: sort patches by summed map (stable, most salient first), zero them one by one."""
    b, spatial = x.shape[0], x.shape[2:]
    out = []
    for i in range(b):
        m = maps[i].numpy()
        if len(spatial) == 1:
            blocks = [(slice(k * patch, (k + 1) * patch),) for k in range(spatial[0] // patch)]
        else:
            blocks = [(slice(r * patch, (r + 1) * patch), slice(c * patch, (c + 1) * patch))
                      for r in range(spatial[0] // patch) for c in range(spatial[1] // patch)]
        scores = [float(m[bl].sum()) for bl in blocks]
        order = sorted(range(len(blocks)), key=lambda k: (-scores[k], k))
        row = []
        for c in range(len(blocks) + 1):
            xi = x[i].clone() if not insert else torch.zeros_like(x[i])
            for k in order[:c]:
                if insert:
                    xi[(slice(None),) + blocks[k]] = x[i][(slice(None),) + blocks[k]]
                else:
                    xi[(slice(None),) + blocks[k]] = 0.0
            with torch.no_grad():
                row.append(float(torch.softmax(model(xi[None]), -1)[0, target[i]]))
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("insert", [False, True])
def test_deletion_and_insertion_curves_match_a_loop_in_1d_and_2d(insert):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1, 16, generator=g, dtype=torch.float64)
    maps = torch.rand(4, 16, generator=g, dtype=torch.float64)
    tgt = torch.tensor([0, 1, 1, 0])
    fn = F.insertion_curve if insert else F.deletion_curve
    np.testing.assert_allclose(fn(_model(), x, maps, tgt, patch=4, batch=3).numpy(),
                               _loop_curve(_model(), x, maps, tgt, 4, insert), atol=1e-12)
    x2 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    m2 = torch.rand(3, 4, 4, generator=g, dtype=torch.float64)
    model2 = _model(c_in=2, n=16, nd=2)
    np.testing.assert_allclose(fn(model2, x2, m2, tgt[:3], patch=2).numpy(),
                               _loop_curve(model2, x2, m2, tgt[:3], 2, insert), atol=1e-12)


def test_curves_start_and_end_where_they_must_and_random_order_is_a_permutation():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, 16, generator=g, dtype=torch.float64)
    maps = torch.rand(5, 16, generator=g, dtype=torch.float64)
    tgt = torch.zeros(5, dtype=torch.long)
    m = _model()
    with torch.no_grad():
        p_full = torch.softmax(m(x), -1)[:, 0]
        p_empty = torch.softmax(m(torch.zeros_like(x)), -1)[:, 0]
    d = F.deletion_curve(m, x, maps, tgt, patch=4, order="random", generator=torch.Generator().manual_seed(0))
    i = F.insertion_curve(m, x, maps, tgt, patch=4, steps=2)
    assert torch.allclose(d[:, 0], p_full) and torch.allclose(d[:, -1], p_empty)
    assert i.shape == (5, 3) and torch.allclose(i[:, 0], p_empty) and torch.allclose(i[:, -1], p_full)
    o = F.patch_order(maps, 4, order="random", generator=torch.Generator().manual_seed(3))
    assert all(sorted(r) == [0, 1, 2, 3] for r in o.tolist())
    with pytest.raises(ValueError, match="not divisible"):
        F.deletion_curve(m, x, maps, tgt, patch=5)
    with pytest.raises(ValueError, match="'map' or 'random'"):
        F.patch_order(maps, 4, order="best")


def test_curve_auc_is_the_trapezoid_area_on_the_unit_interval():
    c = torch.tensor([[1.0, 0.8, 0.2, 0.0], [0.5, 0.5, 0.5, 0.5]])
    want = [np.trapezoid(r, np.linspace(0, 1, 4)) for r in c.numpy()]
    np.testing.assert_allclose(F.curve_auc(c).numpy(), want, atol=1e-12)
    with pytest.raises(ValueError, match="n >= 2"):
        F.curve_auc(torch.ones(2, 1))


def test_pointing_game_matches_a_loop_and_gives_nan_for_empty_maps():
    g = torch.Generator().manual_seed(4)
    maps = torch.rand(6, 5, 7, generator=g)
    maps[2] = 0.0
    mask = torch.rand(6, 5, 7, generator=g) > 0.6
    got = F.pointing_game(maps, mask)
    for b in range(6):
        if b == 2:
            assert math.isnan(float(got[b]))
            continue
        r, c = np.unravel_index(int(np.argmax(maps[b].numpy())), (5, 7))
        assert float(got[b]) == float(mask[b, r, c])


def test_randomise_from_resets_the_head_first_and_leaves_the_model_untouched():
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.Flatten(), nn.Linear(12, 2))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    order = ["3", "1", "0"]
    r1 = F.randomise_from(m, order, "3", seed=0)
    r2 = F.randomise_from(m, order, "0", seed=0)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(r1[3].weight, m[3].weight) and torch.equal(r1[0].weight, m[0].weight)
    assert not torch.equal(r2[0].weight, m[0].weight)
    assert torch.equal(F.randomise_from(m, order, "3", seed=0)[3].weight, r1[3].weight)
    with pytest.raises(ValueError, match="not in the randomisation order"):
        F.randomise_from(m, order, "2")

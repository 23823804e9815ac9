"""metrics: every function against an independent oracle (scipy, sklearn, numpy, plain-python float64 loops)."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from uqxai_lib import metrics


def _tied_maps(shape, seed, decimals=1):
    """ReLU of rounded Gaussian noise: many exact zeros and many ties elsewhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(shape, generator=g, dtype=torch.float64)).mul(10 ** decimals).round() / 10 ** decimals


def _scipy_rho(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-input warning
        return scipy.stats.spearmanr(np.ravel(a), np.ravel(b)).statistic


# ---------------------------------------------------------------------------------------- ranks / spearman
def test_rankdata_matches_scipy_with_many_ties():
    x = _tied_maps((7, 300), 0, decimals=0)
    r = metrics.rankdata(x)
    np.testing.assert_array_equal(r.numpy(), scipy.stats.rankdata(x.numpy(), axis=-1))


def test_spearman_matches_scipy_on_1d_maps_with_many_ties():
    for seed in range(5):
        a, b = _tied_maps((200,), seed), _tied_maps((200,), 100 + seed)
        b = b + 0.5 * a  # correlated
        rho = metrics.spearman(a, b)
        assert rho.shape == ()
        assert float(rho) == pytest.approx(_scipy_rho(a, b), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spearman_matches_scipy_on_batched_2d_maps_and_keeps_dtype(dtype):
    a = _tied_maps((3, 4, 12, 9), 1).to(dtype)
    b = (_tied_maps((3, 4, 12, 9), 2) + a).to(dtype)
    rho = metrics.spearman(a, b, ndim_spatial=2)
    assert rho.shape == (3, 4) and rho.dtype == dtype
    ref = np.array([[_scipy_rho(a[i, j], b[i, j]) for j in range(4)] for i in range(3)])
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    np.testing.assert_allclose(rho.double().numpy(), ref, atol=tol)


def test_spearman_default_treats_all_but_first_dim_as_spatial():
    a, b = _tied_maps((5, 8, 8), 3), _tied_maps((5, 8, 8), 4)
    np.testing.assert_allclose(metrics.spearman(a, b).numpy(),
                               [_scipy_rho(a[i], b[i]) for i in range(5)], atol=1e-12)


def test_spearman_broadcasts_a_stack_against_a_reference():
    s, r = _tied_maps((4, 3, 50), 5), _tied_maps((3, 50), 6)
    rho = metrics.spearman(s, r, ndim_spatial=1)
    ref = [[_scipy_rho(s[i, j], r[j]) for j in range(3)] for i in range(4)]
    np.testing.assert_allclose(rho.numpy(), ref, atol=1e-12)


def test_spearman_is_nan_exactly_where_scipy_is():
    a = torch.stack([torch.zeros(30), torch.full((30,), 2.0), _tied_maps((30,), 7).float(),
                     _tied_maps((30,), 8).float()])
    b = torch.stack([_tied_maps((30,), 9).float(), _tied_maps((30,), 10).float(), torch.ones(30),
                     _tied_maps((30,), 11).float()])
    rho = metrics.spearman(a, b)
    ref = np.array([_scipy_rho(a[i], b[i]) for i in range(4)])
    np.testing.assert_array_equal(np.isnan(rho.numpy()), np.isnan(ref))
    assert np.isnan(ref[:3]).all() and not np.isnan(ref[3])
    np.testing.assert_allclose(rho.numpy()[3], ref[3], atol=1e-6)


def test_spearman_propagates_nan_input_like_scipy():
    a, b = _tied_maps((2, 20), 12), _tied_maps((2, 20), 13)
    a[0, 3] = math.nan
    rho = metrics.spearman(a, b)
    assert math.isnan(rho[0]) and math.isnan(_scipy_rho(a[0], b[0]))
    assert not math.isnan(rho[1])


def test_spearman_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="broadcast"):
        metrics.spearman(torch.zeros(2, 5), torch.zeros(3, 5))


def test_repeatability_is_nanmean_of_scipy_rhos():
    maps = _tied_maps((6, 3, 10, 10), 14)
    maps[2, 0] = 0.0  # a constant sampled map: skipped
    ref = _tied_maps((3, 10, 10), 15) + maps.mean(0)
    rep = metrics.repeatability(maps, ref)
    assert rep.shape == (3,)
    expected = [np.nanmean([_scipy_rho(maps[s, b], ref[b]) for s in range(6)]) for b in range(3)]
    np.testing.assert_allclose(rep.numpy(), expected, atol=1e-12)


def test_repeatability_is_nan_when_reference_is_constant_and_checks_shapes():
    maps = _tied_maps((3, 2, 16), 16)
    ref = _tied_maps((2, 16), 17)
    ref[1] = 0.0
    rep = metrics.repeatability(maps, ref)
    assert not math.isnan(rep[0]) and math.isnan(rep[1])
    with pytest.raises(ValueError, match=r"\[S, \*reference.shape\]"):
        metrics.repeatability(maps, ref[:1])


# ---------------------------------------------------------------------------------------- SUE
def _regions_loop(maps: np.ndarray, q: float):
    """float64 loop: the top region of every map of a stack [S, B, ...] as sets ([B][S])."""
    s_n, b_n = maps.shape[:2]
    out = []
    for b in range(b_n):
        row = []
        for s in range(s_n):
            m = maps[s, b].ravel().astype(np.float64)
            thr = np.quantile(m, q)
            row.append({i for i, v in enumerate(m) if v >= thr and v > 0})
        out.append(row)
    return out


def _sue_reference(maps: np.ndarray, q: float) -> list[float]:
    """Plain-python float64 SUE: regions by numpy.quantile, Jaccard of every pair."""
    out = []
    for regions in _regions_loop(maps, q):
        vals = []
        for s, t in itertools.combinations(range(len(regions)), 2):
            u = regions[s] | regions[t]
            vals.append(1.0 if not u else len(regions[s] & regions[t]) / len(u))
        out.append(sum(vals) / len(vals))
    return out


@pytest.mark.parametrize("q", [0.5, 0.8, 0.9])
def test_sue_matches_python_loop_on_1d_and_2d_stacks(q):
    m1 = _tied_maps((5, 4, 60), 20)
    np.testing.assert_allclose(metrics.sue(m1, quantile=q).numpy(), _sue_reference(m1.numpy(), q), atol=1e-12)
    m2 = _tied_maps((4, 3, 9, 7), 21, decimals=0)  # very coarse: big ties at the quantile
    np.testing.assert_allclose(metrics.sue(m2, quantile=q).numpy(), _sue_reference(m2.numpy(), q), atol=1e-12)


def test_sue_float32_matches_and_keeps_dtype():
    m = _tied_maps((3, 5, 40), 22).float()
    out = metrics.sue(m)
    assert out.dtype == torch.float32 and out.shape == (5,)
    np.testing.assert_allclose(out.numpy(), _sue_reference(m.double().numpy(), 0.9), atol=1e-6)


def test_sue_is_one_for_identical_maps_and_handles_empty_regions():
    m = _tied_maps((1, 2, 30), 23).expand(4, 2, 30).clone()
    assert torch.allclose(metrics.sue(m), torch.ones(2, dtype=m.dtype))
    z = torch.zeros(3, 1, 10, dtype=torch.float64)
    assert float(metrics.sue(z)[0]) == 1.0  # all empty: identical
    z[0, 0, 4] = 1.0  # one non-empty vs two empty: pairs 0,0,1
    assert float(metrics.sue(z)[0]) == pytest.approx(1 / 3)
    assert (metrics.sue(_tied_maps((6, 8, 25), 24)) <= 1).all()


def _jac(a, b):
    u = a | b
    return 1.0 if not u else len(a & b) / len(u)


@pytest.mark.parametrize("q", [0.7, 0.9, 0.95])
def test_sue_to_a_reference_map_matches_python_loop(q):
    maps = _tied_maps((5, 4, 60), 30)
    ref = _tied_maps((4, 60), 31)
    regions = _regions_loop(maps.numpy(), q)
    ref_regions = [r[0] for r in _regions_loop(ref.numpy()[None], q)]
    want = [np.mean([_jac(regions[b][s], ref_regions[b]) for s in range(5)]) for b in range(4)]
    np.testing.assert_allclose(metrics.sue(maps, quantile=q, reference=ref).numpy(), want, atol=1e-12)
    m2 = _tied_maps((4, 3, 9, 7), 32, decimals=0)
    r2 = _tied_maps((3, 9, 7), 33, decimals=0)
    regions = _regions_loop(m2.numpy(), q)
    ref_regions = [r[0] for r in _regions_loop(r2.numpy()[None], q)]
    want = [np.mean([_jac(regions[b][s], ref_regions[b]) for s in range(4)]) for b in range(3)]
    np.testing.assert_allclose(metrics.sue(m2, quantile=q, reference=r2).numpy(), want, atol=1e-12)
    with pytest.raises(ValueError, match=r"reference must be \[B, \*spatial\]"):
        metrics.sue(maps, reference=ref[:2])


def test_sue_empty_nan_excludes_inputs_with_an_all_zero_map_and_leaves_others_bit_identical():
    maps = _tied_maps((4, 5, 30), 34)
    maps[2, 1] = 0.0  # window 1: one all-zero draw
    maps[:, 3] = 0.0  # window 3: all draws zero (the default scores it J = 1)
    ref = _tied_maps((5, 30), 35)
    ref[4] = 0.0  # window 4: empty reference
    default = metrics.sue(maps)
    nan = metrics.sue(maps, empty="nan")
    assert float(default[3]) == 1.0 and math.isnan(float(nan[3])) and math.isnan(float(nan[1]))
    keep = torch.tensor([True, False, True, False, True])
    assert torch.equal(nan[keep], default[keep])
    assert metrics.empty_regions(maps).tolist() == [False, True, False, True, False]
    to_ref = metrics.sue(maps, reference=ref, empty="nan")
    assert [math.isnan(v) for v in to_ref.tolist()] == [False, True, False, True, True]
    regions = _regions_loop(maps.numpy(), 0.9)
    ref_regions = [r[0] for r in _regions_loop(ref.numpy()[None], 0.9)]
    want0 = np.mean([_jac(regions[0][s], ref_regions[0]) for s in range(4)])
    assert float(to_ref[0]) == pytest.approx(want0, abs=1e-12)
    with pytest.raises(ValueError, match="empty must be"):
        metrics.sue(maps, empty="ignore")


def test_sue_needs_two_samples_and_rejects_nan():
    with pytest.raises(ValueError, match="S=2"):
        metrics.sue(torch.rand(1, 3, 10))
    bad = torch.rand(2, 3, 10)
    bad[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.sue(bad)
    with pytest.raises(ValueError, match="quantile"):
        metrics.sue(torch.rand(2, 3, 10), quantile=1.5)


# ---------------------------------------------------------------------------------------- binarize / overlap
def test_quantile_threshold_matches_numpy():
    m = _tied_maps((4, 37), 25)
    for q in (0.0, 0.33, 0.5, 0.9, 0.95, 1.0):
        np.testing.assert_allclose(metrics.quantile_threshold(m, q).numpy(), np.quantile(m.numpy(), q, axis=-1), rtol=0,
                                   atol=0)


def _otsu_variances(x: np.ndarray, bins=256):
    """Between-class variance of every histogram split (skimage.filters.threshold_otsu's criterion), as a loop."""
    lo, hi = x.min(), x.max()
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    var = []
    for k in range(bins - 1):
        w0, w1 = counts[: k + 1].sum(), counts[k + 1:].sum()
        if w0 == 0 or w1 == 0:
            var.append(0.0)
            continue
        m0 = (counts[: k + 1] * centers[: k + 1]).sum() / w0
        m1 = (counts[k + 1:] * centers[k + 1:]).sum() / w1
        var.append(w0 * w1 * (m0 - m1) ** 2)
    return np.array(var), centers


def test_otsu_threshold_maximises_between_class_variance_like_skimage():
    g = torch.Generator().manual_seed(26)
    low = 0.25 + 0.1 * torch.randn(5, 300, generator=g, dtype=torch.float64)
    high = 0.7 + 0.1 * torch.randn(5, 80, generator=g, dtype=torch.float64)
    m = torch.cat([low, high], -1)
    thr = metrics.otsu_threshold(m)
    pred = metrics.binarize(m, "otsu")
    for i in range(5):
        var, centers = _otsu_variances(m[i].numpy())
        k = int(np.argmin(np.abs(centers - float(thr[i]))))
        assert abs(centers[k] - float(thr[i])) < 1e-9  # a bin centre ...
        assert var[k] == pytest.approx(var.max(), rel=1e-9)  # ... with maximal between-class variance
        np.testing.assert_array_equal(pred[i].numpy(), m[i].numpy() > float(thr[i]))
        assert 0.35 < float(thr[i]) < 0.6
    const = torch.full((1, 10), 3.0)
    assert float(metrics.otsu_threshold(const)[0]) == 3.0 and not metrics.binarize(const, "otsu").any()


def test_binarize_rules_and_errors():
    m = _tied_maps((3, 6, 6), 27)
    q = metrics.binarize(m, ("quantile", 0.8))
    ref = np.stack([(x >= np.quantile(x, 0.8)) & (x > 0) for x in m.numpy()])
    np.testing.assert_array_equal(q.numpy(), ref)
    f = metrics.binarize(m, ["fraction_of_max", 0.5])  # YAML lists accepted
    np.testing.assert_array_equal(f.numpy(), np.stack([(x >= 0.5 * x.max()) & (x > 0) for x in m.numpy()]))
    stack = _tied_maps((2, 3, 6, 6), 28)
    np.testing.assert_array_equal(metrics.binarize(stack, ("quantile", 0.8), ndim_spatial=2)[1].numpy(),
                                  metrics.binarize(stack[1], ("quantile", 0.8)).numpy())
    assert not metrics.binarize(torch.zeros(2, 5), ("quantile", 0.9)).any()
    with pytest.raises(ValueError, match="unknown binarisation rule"):
        metrics.binarize(m, "median")
    with pytest.raises(ValueError, match="fraction_of_max"):
        metrics.binarize(m, ("fraction_of_max", 0.0))


def test_iou_and_dice_match_numpy_set_arithmetic():
    g = torch.Generator().manual_seed(29)
    p = torch.rand(6, 8, 8, generator=g) > 0.6
    t = torch.rand(6, 8, 8, generator=g) > 0.5
    p[5] = False
    t[5] = False  # empty vs empty
    i, d = metrics.iou(p, t), metrics.dice(p, t)
    for k in range(6):
        a, b = set(np.flatnonzero(p[k].numpy())), set(np.flatnonzero(t[k].numpy()))
        exp_i = len(a & b) / len(a | b) if a | b else 1.0
        exp_d = 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0
        assert float(i[k]) == pytest.approx(exp_i, abs=1e-7)
        assert float(d[k]) == pytest.approx(exp_d, abs=1e-7)


def test_dice_equals_two_iou_over_one_plus_iou_for_binarised_maps():
    m = _tied_maps((4, 3, 10, 10), 30)
    mask = _tied_maps((3, 10, 10), 31) > 0
    pred = metrics.binarize(m, ("quantile", 0.7), ndim_spatial=2)
    i = metrics.iou(pred, mask)  # stack against a mask: broadcast
    assert i.shape == (4, 3)
    torch.testing.assert_close(metrics.dice(pred, mask), 2 * i / (1 + i))


def test_overlap_metrics_require_bool_masks():
    with pytest.raises(TypeError, match="binarize"):
        metrics.iou(torch.rand(2, 4), torch.rand(2, 4) > 0.5)


def test_mass_in_mask_matches_numpy_and_flags_bad_maps():
    m = _tied_maps((3, 7, 7), 32)
    mask = _tied_maps((3, 7, 7), 33) > 0
    m[2] = 0.0
    out = metrics.mass_in_mask(m, mask)
    for k in range(2):
        x, k_ = m[k].numpy(), mask[k].numpy()
        assert float(out[k]) == pytest.approx(x[k_].sum() / x.sum(), abs=1e-12)
    assert math.isnan(out[2])
    assert metrics.mass_in_mask(m.unsqueeze(0).expand(2, 3, 7, 7), mask).shape == (2, 3)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.mass_in_mask(-m - 1, mask)
    with pytest.raises(TypeError, match="bool"):
        metrics.mass_in_mask(m, mask.float())


# ---------------------------------------------------------------------------------------- AUROC / groups
def _auroc_bruteforce(s, y):
    pos, neg = s[y == 1], s[y == 0]
    tot = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return tot / (len(pos) * len(neg))


def test_auroc_equals_mann_whitney_relation_and_pairwise_count_with_ties():
    g = torch.Generator().manual_seed(34)
    for trial in range(5):
        s = torch.randint(0, 6, (80,), generator=g).double() / 5  # heavy ties
        y = torch.rand(80, generator=g) < 0.3
        u = scipy.stats.mannwhitneyu(s[y].numpy(), s[~y].numpy()).statistic
        a = float(metrics.auroc(s, y))
        assert a == pytest.approx(u / (int(y.sum()) * int((~y).sum())), abs=1e-12)
        assert a == pytest.approx(_auroc_bruteforce(s.numpy(), y.numpy().astype(int)), abs=1e-12)


def test_auroc_is_batched_keeps_dtype_and_nan_for_one_class():
    s = torch.rand(3, 40, generator=torch.Generator().manual_seed(35))
    y = torch.arange(40) % 2
    out = metrics.auroc(s, y)
    assert out.shape == (3,) and out.dtype == torch.float32
    for k in range(3):
        assert float(out[k]) == pytest.approx(_auroc_bruteforce(s[k].double().numpy(), y.numpy()), abs=1e-6)
    assert math.isnan(metrics.auroc(s[0], torch.ones(40, dtype=torch.long)))
    with pytest.raises(ValueError, match="0/1"):
        metrics.auroc(s[0], torch.full((40,), 2))


def test_compare_groups_matches_scipy_and_numpy():
    g = torch.Generator().manual_seed(36)
    v = torch.rand(50, generator=g, dtype=torch.float64)
    a = torch.rand(50, generator=g) < 0.4
    v[a] += 0.3
    v[3] = math.nan  # dropped
    res = metrics.compare_groups(v, a)
    keep = ~np.isnan(v.numpy())
    va, vb = v.numpy()[keep & a.numpy()], v.numpy()[keep & ~a.numpy()]
    assert (res.n_a, res.n_b) == (len(va), len(vb))
    assert res.mean_a == pytest.approx(va.mean()) and res.sd_a == pytest.approx(va.std(ddof=1))
    assert res.mean_b == pytest.approx(vb.mean()) and res.sd_b == pytest.approx(vb.std(ddof=1))
    assert res.mwu_p == pytest.approx(scipy.stats.mannwhitneyu(va, vb, alternative="two-sided").pvalue)
    assert res.auroc == pytest.approx(_auroc_bruteforce(np.r_[va, vb], np.r_[np.ones(len(va)), np.zeros(len(vb))]))
    assert res.auroc > 0.5
    flipped = metrics.compare_groups(v, a, higher_in="b")
    assert flipped.auroc == pytest.approx(1 - res.auroc)
    d = res.as_dict()
    assert list(d) == ["mean_a", "sd_a", "n_a", "mean_b", "sd_b", "n_b", "mwu_p", "auroc"]


def test_compare_groups_with_an_empty_group_gives_nan_statistics():
    res = metrics.compare_groups(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([True, True, True]))
    assert res.n_b == 0 and math.isnan(res.mean_b) and math.isnan(res.mwu_p) and math.isnan(res.auroc)
    assert res.n_a == 3 and res.sd_a == pytest.approx(0.1)
    with pytest.raises(ValueError, match="higher_in"):
        metrics.compare_groups(torch.tensor([0.1]), torch.tensor([True]), higher_in="c")


# ---------------------------------------------------------------------------------------- classification / uncertainty
def test_classification_summary_matches_sklearn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

    g = torch.Generator().manual_seed(37)
    for c in (2, 4):
        probs = torch.softmax(torch.randn(60, c, generator=g), -1)
        y = torch.randint(0, c, (60,), generator=g)
        s = metrics.classification_summary(probs, y, positive=1)
        pred = probs.argmax(-1).numpy()
        assert s["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
        yb, pb = (y.numpy() == 1), (pred == 1)
        assert s["sensitivity"] == pytest.approx(recall_score(yb, pb))
        assert s["specificity"] == pytest.approx(recall_score(~yb, ~pb))
        assert s["confusion"] == confusion_matrix(y, pred, labels=list(range(c))).tolist()
    with pytest.raises(ValueError, match="labels"):
        metrics.classification_summary(torch.rand(3, 2), torch.tensor([0, 1, 2]))


def test_predictive_entropy_and_mutual_information_match_numpy():
    g = torch.Generator().manual_seed(38)
    p = torch.softmax(torch.randn(7, 5, 3, generator=g, dtype=torch.float64) * 3, -1)
    p[:, 4] = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # zeros: 0 log 0 = 0
    pn = p.numpy()

    def h(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nansum(np.where(x > 0, x * np.log(x), 0.0), axis=-1)

    pe = metrics.predictive_entropy(p)
    mi = metrics.mutual_information(p)
    np.testing.assert_allclose(pe.numpy(), h(pn.mean(0)), atol=1e-12)
    np.testing.assert_allclose(mi.numpy(), h(pn.mean(0)) - h(pn).mean(0), atol=1e-12)
    assert pe.dtype == torch.float64 and float(mi[4]) == 0.0 and (mi >= 0).all()
    with pytest.raises(ValueError, match=r"\[S, B, C\]"):
        metrics.predictive_entropy(p[0])


def test_risk_coverage_and_aurc_match_bruteforce_with_ties():
    g = torch.Generator().manual_seed(39)
    conf = torch.randint(0, 10, (50,), generator=g).double() / 10
    correct = torch.rand(50, generator=g) < conf  # confident ones more often right
    cov, risk = metrics.risk_coverage(correct, conf)
    levels = sorted(set(conf.tolist()), reverse=True)
    exp_cov, exp_risk = [], []
    for t in levels:
        acc = [bool(c) for c, s in zip(correct.tolist(), conf.tolist()) if s >= t]
        exp_cov.append(len(acc) / 50)
        exp_risk.append(1 - sum(acc) / len(acc))
    np.testing.assert_allclose(cov.numpy(), exp_cov, atol=1e-12)
    np.testing.assert_allclose(risk.numpy(), exp_risk, atol=1e-12)
    area = sum(r * (c - c0) for r, c, c0 in zip(exp_risk, exp_cov, [0.0] + exp_cov[:-1]))
    assert metrics.aurc(correct, conf) == pytest.approx(area, abs=1e-12)


def test_aurc_without_ties_is_mean_risk_over_accepted_prefixes():
    conf = torch.randperm(30, generator=torch.Generator().manual_seed(40)).double()
    correct = torch.rand(30, generator=torch.Generator().manual_seed(41)) < 0.7
    order = np.argsort(-conf.numpy())
    c = correct.numpy()[order]
    expected = np.mean([1 - c[: k + 1].mean() for k in range(30)])
    assert metrics.aurc(correct, conf) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="equal length"):
        metrics.risk_coverage(correct[:3], conf)


def test_rank_average_matches_scipy_ranks_and_rejects_bad_input():
    from scipy.stats import rankdata as sp_rankdata

    a = torch.tensor([0.3, 0.1, 0.9, 0.1])
    b = torch.tensor([2.0, 5.0, 1.0, 3.0])
    want = ((sp_rankdata(a.numpy()) - 1) / 3 + (sp_rankdata(b.numpy()) - 1) / 3) / 2
    got = metrics.rank_average(a, b)
    assert got.dtype == torch.float32 and np.allclose(got.numpy(), want)
    assert torch.equal(metrics.rank_average(a * 10 + 3, torch.exp(b)), got)  # monotone-invariant
    assert metrics.rank_average(torch.tensor([4.0])).tolist() == [0.5]
    with pytest.raises(ValueError, match="same length"):
        metrics.rank_average(a, b[:2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.rank_average(torch.tensor([0.1, float("nan")]))


def test_pointing_game_matches_a_float64_loop():
    g = torch.Generator().manual_seed(11)
    maps = torch.relu(torch.randn(30, 5, 6, generator=g, dtype=torch.float64)).round(decimals=1)
    maps[3] = 0.0  # points nowhere
    mask = torch.rand(30, 5, 6, generator=g) > 0.7
    mask[4] = False  # empty mask
    got = metrics.pointing_game(maps, mask)
    for b in range(30):
        m, k = maps[b].numpy().ravel(), mask[b].numpy().ravel()
        if m.max() <= 0 or not k.any():
            assert math.isnan(float(got[b]))
            continue
        want = any(m[i] == m.max() and k[i] for i in range(m.size))
        assert float(got[b]) == float(want)
    # a stack against one mask per image broadcasts
    assert metrics.pointing_game(maps[None].expand(2, -1, -1, -1), mask).shape == (2, 30)
    with pytest.raises(TypeError, match="bool"):
        metrics.pointing_game(maps, mask.float())


def test_pointing_game_first_tie_is_the_argmax_and_nowhere_sets_the_score_of_empty_maps():
    g = torch.Generator().manual_seed(4)
    maps = torch.rand(6, 5, 7, generator=g).round(decimals=1)  # coarse values: ties at the maximum
    maps[2] = 0.0
    mask = torch.rand(6, 5, 7, generator=g) > 0.6
    got = metrics.pointing_game(maps, mask, ties="first", ndim_spatial=2)
    for b in range(6):
        if b == 2:
            assert math.isnan(float(got[b]))
            continue
        r, c = np.unravel_index(int(np.argmax(maps[b].numpy())), (5, 7))  # NumPy: the first maximum
        assert float(got[b]) == float(mask[b, r, c])
    sig = torch.tensor([[0.0, 2.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])  # 1-D, two maxima; an all-zero map
    m1 = torch.tensor([[False, False, False, True], [True, True, False, False]])
    assert metrics.pointing_game(sig, m1, ties="first").tolist()[0] == 0.0
    assert metrics.pointing_game(sig, m1).tolist()[0] == 1.0  # "any": the second maximum is inside
    assert metrics.pointing_game(sig, m1, nowhere=0.0).tolist() == [1.0, 0.0]
    assert math.isnan(float(metrics.pointing_game(sig[:1], torch.zeros(1, 4, dtype=torch.bool), nowhere=0.0)[0]))
    with pytest.raises(ValueError, match="ties"):
        metrics.pointing_game(sig, m1, ties="last")

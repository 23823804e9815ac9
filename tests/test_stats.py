"""stats: intervals, comparisons, Holm and verdicts, checked on simulated data with known answers."""
import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm, wilcoxon

from uqxai_lib import stats


def test_auroc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 60).astype(float)
    y = rng.random(60) < 0.4
    pos, neg = s[y], s[~y]
    want = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert stats.auroc(s, y) == pytest.approx(want, abs=1e-12)


def test_auroc_nan_without_a_class():
    assert math.isnan(stats.auroc([0.1, 0.2], [1, 1]))


def test_bootstrap_ci_of_mean_covers_truth_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    reps = 200
    for r in range(reps):
        x = rng.normal(2.0, 1.0, 80)
        lo, hi = stats.bootstrap_ci(np.mean, x, n_boot=400, seed=r)
        hits += lo <= 2.0 <= hi
    # percentile bootstrap of a mean, n=80: coverage close to 0.95; 200 reps -> SE ~0.015
    assert 0.89 <= hits / reps <= 0.99


def test_group_bootstrap_is_wider_than_item_bootstrap_for_clustered_data():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(0, 1, 20)[g] + rng.normal(0, 0.1, 200)  # strong within-group correlation
    lo_i, hi_i = stats.bootstrap_ci(np.mean, x, n_boot=500, seed=0)
    lo_g, hi_g = stats.bootstrap_ci(np.mean, x, groups=g, n_boot=500, seed=0)
    # true SE of the mean ~ 1/sqrt(20) = 0.22 -> width ~0.88; the item bootstrap pretends n=200
    assert (hi_g - lo_g) > 2 * (hi_i - lo_i)
    assert 0.5 < (hi_g - lo_g) < 1.4


def test_bootstrap_ci_is_seeded_and_checks_lengths():
    x = np.arange(30.0)
    assert stats.bootstrap_ci(np.mean, x, seed=4) == stats.bootstrap_ci(np.mean, x, seed=4)
    with pytest.raises(ValueError, match="differ in length"):
        stats.bootstrap_ci(lambda a, b: 0.0, x, x[:5])
    with pytest.raises(ValueError, match="groups has 3 entries"):
        stats.bootstrap_ci(np.mean, x, groups=[1, 2, 3])


def test_group_difference_binormal_auroc_interval_covers_phi_d_over_sqrt2():
    # scores ~ N(d, 1) in group a, N(0, 1) in b: AUROC = Phi(d / sqrt 2)
    d = 0.8
    truth = norm.cdf(d / math.sqrt(2))
    rng = np.random.default_rng(3)
    hits = 0
    reps = 60
    for r in range(reps):
        a = rng.normal(d, 1, 120)
        b = rng.normal(0, 1, 40)
        v = np.concatenate([a, b])
        flag = np.r_[np.ones(120, bool), np.zeros(40, bool)]
        res = stats.group_difference(v, flag, n_boot=300, seed=r)
        hits += res["auroc_ci95"][0] <= truth <= res["auroc_ci95"][1]
        assert res["p"] == pytest.approx(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        assert res["effect"] == pytest.approx(a.mean() - b.mean())
    assert hits / reps >= 0.85


def test_group_difference_drops_nan_and_reports_count():
    v = np.array([0.9, np.nan, 0.8, 0.1, 0.2, np.nan])
    res = stats.group_difference(v, [1, 1, 1, 0, 0, 0], n_boot=200)
    assert (res["n_a"], res["n_b"], res["n_nan"]) == (2, 2, 2)
    assert res["auroc"] == 1.0


def test_group_difference_empty_group_gives_nan_not_an_error():
    res = stats.group_difference([0.1, 0.2], [1, 1], n_boot=200)
    assert math.isnan(res["effect"]) and res["n_b"] == 0


def test_paired_difference_matches_wilcoxon_and_detects_shift():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 50)
    b = a - 0.3 + rng.normal(0, 0.1, 50)
    res = stats.paired_difference(a, b, n_boot=500)
    assert res["effect"] == pytest.approx(np.mean(a - b))
    assert res["p"] == pytest.approx(wilcoxon(a - b).pvalue)
    assert stats.verdict(res["ci95"]) == "higher"
    assert stats.paired_difference(a, a, n_boot=200)["p"] == 1.0


def _holm_bruteforce(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    for rank, i in enumerate(order):
        adj[i] = min(1.0, max((m - k) * p[order[k]] for k in range(rank + 1)))
    return adj


def test_holm_matches_definition_on_random_pvalues():
    rng = np.random.default_rng(6)
    for _ in range(50):
        p = rng.random(rng.integers(1, 9)).tolist()
        assert stats.holm(p) == pytest.approx(_holm_bruteforce(p), abs=1e-12)


def test_holm_keeps_nan_and_rejects_out_of_range():
    out = stats.holm([0.01, math.nan, 0.02])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([1.5])


@pytest.mark.parametrize("ci,want", [([0.1, 0.2], "higher"), ([-0.2, -1e-9], "lower"),
                                     ([-0.1, 0.1], "no detectable difference"), ([0.0, 0.1],
                                                                                 "no detectable difference"),
                                     ([math.nan, math.nan], "no detectable difference")])
def test_verdict_reads_the_interval(ci, want):
    assert stats.verdict(ci) == want


def test_verdict_rejects_reversed_interval():
    with pytest.raises(ValueError, match="lo > hi"):
        stats.verdict([0.3, 0.1])


def test_primary_verdict_agrees_with_its_interval_even_when_means_differ():
    comp = {"effect": 0.05, "ci95": [-0.01, 0.11], "auroc": 0.6, "auroc_ci95": [0.48, 0.7], "p": 0.09}
    rec = stats.primary("rho correct - misclassified", comp)
    assert rec["verdict"] == "no detectable difference"
    assert set(rec) == {"name", "effect", "ci95", "auroc", "auroc_ci95", "p", "verdict"}


def test_reproduction_maps_verdicts_to_the_claim():
    assert stats.reproduction("lower", expected="lower") == "reproduced"
    assert stats.reproduction("higher", expected="lower") == "reversed"
    with pytest.raises(ValueError):
        stats.reproduction("bigger")


def test_seed_summary_t_interval_matches_scipy():
    from scipy.stats import t

    e = [0.1, -0.05, 0.2, 0.15, 0.05]
    s = stats.seed_summary(e)
    lo, hi = t.interval(0.95, 4, loc=np.mean(e), scale=np.std(e, ddof=1) / math.sqrt(5))
    assert s["ci95"] == pytest.approx([lo, hi])
    assert s["sign_agreement"] == "4/5" and s["n"] == 5
    assert stats.seed_summary([0.3])["verdict"] == "no detectable difference"


def test_mean_ci_covers_the_true_mean_drops_nan_and_resamples_groups():
    rng = np.random.default_rng(5)
    hits = 0
    for rep in range(60):  # 95% intervals of the mean of N(0.3, 1), n = 80: coverage near 0.95
        v = rng.normal(0.3, 1.0, 80)
        m, (lo, hi) = stats.mean_ci(v, n_boot=400, seed=rep)
        assert m == pytest.approx(v.mean())
        hits += lo <= 0.3 <= hi
    assert 0.85 <= hits / 60 <= 1.0
    v = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    m, ci = stats.mean_ci(v, n_boot=200)
    assert m == 3.0 and ci == list(stats.bootstrap_ci(np.mean, np.array([1.0, 3.0, 5.0]), n_boot=200))
    # groups: the interval is the bootstrap over whole groups of the finite values
    g = np.array([0, 0, 1, 1, 2])
    assert stats.mean_ci(v, groups=g, n_boot=200)[1] == list(
        stats.bootstrap_ci(np.mean, np.array([1.0, 3.0, 5.0]), groups=np.array([0, 1, 2]), n_boot=200))
    assert stats.mean_ci([np.nan, np.nan]) == (pytest.approx(np.nan, nan_ok=True), [pytest.approx(np.nan,
                                                                                                  nan_ok=True)] * 2)


# ------------------------------------------------------------------ verdict-ladder statistics (issue 22)
def test_holm_labels_follow_adjusted_not_raw_p():
    # three secondaries all at raw p < 0.05; Holm keeps only the smallest
    eff, p = [0.3, 0.2, -0.1], [0.004, 0.03, 0.045]
    adj = stats.holm(p)
    labels = stats.holm_labels(eff, p)
    assert labels == ["higher" if a < 0.05 else "no detectable difference" for a in adj]
    assert labels == ["higher", "no detectable difference", "no detectable difference"]
    assert stats.holm_labels([-0.2, float("nan")], [0.001, 0.2]) == ["lower", "undefined"]


def test_mde_gives_80_percent_power_in_simulation():
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(3)
    na, nb, sd = 40, 12, 0.2
    v0 = np.r_[rng.normal(0, sd, na), rng.normal(0, sd, nb)]
    a = np.r_[np.ones(na, bool), np.zeros(nb, bool)]
    d = stats.mde(v0, a)
    # closed form with the true SD is the oracle within sampling noise of the SD estimate
    want = (norm.ppf(0.975) + norm.ppf(0.8)) * sd * math.sqrt(1 / na + 1 / nb)
    assert d == pytest.approx(want, rel=0.3)
    hits, reps = 0, 600
    for _ in range(reps):
        x, y = rng.normal(want, sd, na), rng.normal(0, sd, nb)
        hits += ttest_ind(x, y, equal_var=False).pvalue < 0.05
    assert 0.72 <= hits / reps <= 0.86  # normal approximation; Welch at n=12 is a little below 0.8
    assert math.isnan(stats.mde([1.0, 2.0, 3.0], [1, 0, 0]))


def test_stratified_auroc_is_half_when_score_only_tracks_predicted_class():
    rng = np.random.default_rng(4)
    n = 2000
    pred = rng.random(n) < 0.5
    # errors are much more common in class 1, and the score is high in class 0: pooled AUROC >> 0.5
    correct = np.where(pred, rng.random(n) < 0.6, rng.random(n) < 0.85)
    score = np.where(pred, 0.0, 1.0) + rng.normal(0, 0.1, n)
    # within a class the score is noise independent of correctness
    assert stats.auroc(score, correct) > 0.6
    r = stats.stratified_auroc(score, correct, pred, n_boot=300)
    assert r["ci95"][0] < 0.5 < r["ci95"][1]
    assert abs(r["auroc"] - 0.5) < 0.04  # SE about 0.015 with ~550 errors
    assert r["verdict"] == "no detectable difference"


def test_stratified_auroc_matches_pair_count_within_strata_and_detects_a_real_effect():
    rng = np.random.default_rng(5)
    n = 300
    st = rng.integers(0, 3, n)
    correct = rng.random(n) < 0.7
    score = correct * 0.8 + st * 2.0 + rng.normal(0, 1, n)
    num = den = 0
    for k in range(3):
        m = st == k
        for p in score[m & correct]:
            for q in score[m & ~correct]:
                num += (p > q) + 0.5 * (p == q)
                den += 1
    r = stats.stratified_auroc(score, correct, st, n_boot=300)
    assert r["auroc"] == pytest.approx(num / den, abs=1e-12)
    assert r["n_pairs"] == den
    assert r["verdict"] == "higher" and r["ci95"][0] > 0.5


def test_stratified_auroc_undefined_with_too_few_errors_in_shared_strata():
    correct = np.r_[np.ones(20, bool), np.zeros(3, bool), np.zeros(10, bool)]
    st = np.r_[np.zeros(23), np.ones(10)]  # stratum 1 has only errors: no pairs there
    r = stats.stratified_auroc(np.arange(33.0), correct, st, n_boot=200)
    assert r["verdict"] == "undefined" and "3 negative" in r["reason"]


def test_out_of_fold_probability_groups_never_share_folds_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(6)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=(180, 2))
    y = x[:, 0] + rng.normal(0, 1, 180) > 0
    p = stats.out_of_fold_probability(x, y, groups=g, folds=5, seed=1)
    # oracle: the same folds by hand, standardised on each training fold
    want = np.empty(180)
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=1).split(x, y, g):
        mu, sd = x[tr].mean(0), x[tr].std(0)
        clf = LogisticRegression(max_iter=1000).fit((x[tr] - mu) / sd, y[tr])
        want[te] = clf.predict_proba((x[te] - mu) / sd)[:, 1]
    assert np.allclose(p, want, atol=1e-6)
    assert np.isnan(stats.out_of_fold_probability(x[:5], [1, 1, 1, 1, 0])).all()


def test_added_value_about_zero_for_a_noisy_copy_of_a_baseline():
    rng = np.random.default_rng(7)
    n = 400
    correct = rng.random(n) < 0.75
    entropy = -1.5 * correct + rng.normal(0, 1, n)      # strong baseline
    margin = 0.3 * correct + rng.normal(0, 1, n)        # weak baseline
    score = entropy + rng.normal(0, 1.0, n)             # the "explanation score": a noisy copy of entropy
    r = stats.added_value(score, {"entropy": entropy, "margin": margin}, correct, n_boot=400)
    assert r["strongest"] in ("entropy", "combination")
    assert r["auroc_strongest"] == pytest.approx(max(r["auroc_single"]["entropy"], r["auroc_combination"]))
    assert r["delta_ci95"][0] < 0 < r["delta_ci95"][1]
    assert abs(r["delta"]) < 0.03
    assert r["verdict"] == "no detectable difference"


def test_added_value_detects_an_independent_signal_and_uses_the_strongest_baseline():
    rng = np.random.default_rng(8)
    n = 400
    correct = rng.random(n) < 0.7
    entropy = -1.0 * correct + rng.normal(0, 1, n)
    junk = rng.normal(0, 1, (n, 6))                     # noise baselines weaken a combination a little
    score = 1.5 * correct + rng.normal(0, 1, n)         # independent information
    base = {"entropy": entropy, **{f"junk{i}": junk[:, i] for i in range(6)}}
    r = stats.added_value(score, base, correct, n_boot=400)
    pool = {**r["auroc_single"], "combination": r["auroc_combination"]}
    assert r["strongest"] == max(pool, key=pool.get)
    assert r["verdict"] == "higher" and r["delta_ci95"][0] > 0.05


def test_added_value_undefined_with_few_errors():
    c = np.r_[np.ones(50, bool), np.zeros(4, bool)]
    r = stats.added_value(np.arange(54.0), {"e": np.arange(54.0)}, c)
    assert r["verdict"] == "undefined" and "4 misclassified" in r["reason"]


def test_auroc_difference_interval_covers_zero_for_identical_scores_and_not_for_a_better_one():
    rng = np.random.default_rng(9)
    y = rng.random(300) < 0.6
    a = y + rng.normal(0, 1.5, 300)
    same = stats.auroc_difference(a, a, y, n_boot=200)
    assert same["delta"] == 0 and same["delta_ci95"] == [0.0, 0.0]
    better = stats.auroc_difference(a, y + rng.normal(0, 0.3, 300), y, n_boot=300)
    assert better["verdict"] == "higher"


def test_stratified_auroc_and_auroc_difference_p_agrees_with_their_interval():
    rng = np.random.default_rng(10)
    for shift in (0.0, 0.15, 0.4):
        y = rng.random(200) < 0.6
        st = rng.integers(0, 2, 200)
        s = shift * y + rng.normal(0, 1, 200)
        r = stats.stratified_auroc(s, y, st, n_boot=300, seed=1)
        assert (r["p"] < 0.05) == (r["ci95"][0] > 0.5 or r["ci95"][1] < 0.5)
        d = stats.auroc_difference(rng.normal(size=200), s, y, n_boot=300, seed=1)
        assert (d["p"] < 0.05) == (d["delta_ci95"][0] > 0 or d["delta_ci95"][1] < 0)


def _resample_loop(rng, n, groups, strata):
    """The plain definition: whole groups drawn with replacement, each group's items ascending."""
    if groups is not None:
        uniq, inv = np.unique(groups, return_inverse=True)
        pick = rng.integers(0, uniq.size, uniq.size)
        return np.concatenate([np.flatnonzero(inv == g) for g in pick])
    if strata is not None:
        return np.concatenate([np.flatnonzero(strata == s)[rng.integers(0, (strata == s).sum(), (strata == s).sum())]
                               for s in np.unique(strata)])
    return rng.integers(0, n, n)


@pytest.mark.parametrize("kind", ["groups", "strata", "items"])
def test_resampler_draws_the_same_indices_as_the_per_resample_definition(kind):
    """The precomputed resampler (built once per bootstrap call) gives, resample by resample, the
    indices of the plain per-resample definition from the same generator: intervals are unchanged."""
    from uqxai_lib import stats as S

    gen = np.random.default_rng(3)
    n = 97
    labels = gen.integers(0, 13, n) * 7 - 20  # unsorted, negative and gappy group ids
    g, st = (labels, None) if kind == "groups" else (None, labels % 3) if kind == "strata" else (None, None)
    draw = S._resampler(n, g, st)
    r1, r2 = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(50):
        assert np.array_equal(draw(r1), _resample_loop(r2, n, g, st))

"""conformal: the Learn-then-Test abstention threshold keeps its guarantee on simulated data."""
import math
from fractions import Fraction

import numpy as np
import pytest

from uqxai_lib import conformal


def _tail_bruteforce(k, n, p):
    p = Fraction(p)
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


@pytest.mark.parametrize("k,n,p", [(0, 22, 0.1), (3, 40, 0.1), (10, 50, 0.25), (7, 7, 0.3), (0, 1, 0.5)])
def test_binomial_lower_tail_matches_exact_sum(k, n, p):
    assert conformal.binomial_lower_tail(k, n, p) == pytest.approx(_tail_bruteforce(k, n, p), rel=1e-10)


# Simulated population: score ~ U(0, 1), P(error | s) = (1 - s)^2 / 2, so the selective risk of
# answering s > t is R(t) = (1 - t)^2 / 6 (t in [0, 1]); R(t) <= 0.1 iff t >= 1 - sqrt(0.6).
def _population_risk(t):
    if t == math.inf:
        return 0.0  # answers nothing: vacuous, within any alpha
    t = max(t, 0.0)
    return (1 - t) ** 2 / 6


def _draw(rng, n):
    s = rng.random(n)
    correct = rng.random(n) >= (1 - s) ** 2 / 2
    return s, correct


def _naive_threshold(s, c, alpha):
    """Largest answered set whose *empirical* risk is <= alpha (no finite-sample correction)."""
    order = np.argsort(-s)
    err = np.cumsum(~c[order]) / np.arange(1, s.size + 1)
    ok = np.flatnonzero(err <= alpha)
    j = int(ok.max()) + 1 if ok.size else 0
    return s[order][j] if j < s.size else -math.inf


def test_ltt_threshold_controls_population_risk_with_probability_one_minus_delta():
    alpha, delta, reps, n = 0.1, 0.1, 800, 300
    rng = np.random.default_rng(0)
    within, cover, naive_within = 0, [], 0
    for _ in range(reps):
        s, c = _draw(rng, n)
        t = conformal.ltt_threshold(s, c, alpha=alpha, delta=delta)
        within += _population_risk(t.threshold) <= alpha
        cover.append(1 - min(max(t.threshold, 0.0), 1.0) if t.threshold != math.inf else 0.0)
        naive_within += _population_risk(_naive_threshold(s, c, alpha)) <= alpha
    frac = within / reps
    se = math.sqrt(delta * (1 - delta) / reps)
    assert frac >= 1 - delta - 3 * se, frac
    # not trivially conservative: the best coverage within alpha is sqrt(0.6) = 0.775
    assert 0.45 < np.mean(cover) < 0.775
    # and the check has teeth: the uncorrected empirical rule misses the guarantee badly
    assert naive_within / reps < 1 - delta - 3 * se


def test_ltt_threshold_abstains_when_nothing_can_be_certified():
    s = np.linspace(1, 0, 15)  # fewer than (1 - alpha)^j <= delta needs: j >= 22
    t = conformal.ltt_threshold(s, np.ones(15, bool), alpha=0.1, delta=0.1)
    assert t.threshold == math.inf and t.n_answered == 0
    risk, cov = conformal.selective_risk(s, np.ones(15, bool), t.threshold)
    assert math.isnan(risk) and cov == 0.0


def test_ltt_threshold_answers_everything_when_all_correct_and_enough_items():
    s = np.linspace(1, 0, 100)
    t = conformal.ltt_threshold(s, np.ones(100, bool), alpha=0.1, delta=0.1)
    assert t.threshold == -math.inf and t.n_answered == 100


def test_ltt_threshold_never_splits_ties():
    s = np.r_[np.ones(30), np.zeros(30)]
    c = np.r_[np.ones(30, bool), np.r_[np.ones(20, bool), np.zeros(10, bool)]]
    t = conformal.ltt_threshold(s, c, alpha=0.1, delta=0.1)
    risk, cov = conformal.selective_risk(s, c, t.threshold)
    assert t.n_answered == round(cov * 60)  # the set the rule answers is the one that was certified
    assert t.n_answered in (30, 60)


def test_repeated_splits_summary_is_consistent_and_seeded():
    rng = np.random.default_rng(1)
    s, c = _draw(rng, 600)
    a = conformal.repeated_splits(s, c, n_splits=50, seed=3)
    b = conformal.repeated_splits(s, c, n_splits=50, seed=3)
    assert a == b
    assert a["n_splits"] == 50 and 0 <= a["fraction_risk_le_alpha"] <= 1
    lo, hi = a["fraction_ci95"]
    assert lo <= a["fraction_risk_le_alpha"] <= hi
    assert 0 < a["mean_coverage"] < 1


@pytest.mark.parametrize("kw,msg", [({"alpha": 0}, "alpha"), ({"delta": 1.5}, "delta")])
def test_bad_levels_are_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        conformal.ltt_threshold([0.1, 0.2], [1, 0], **kw)


def test_nan_scores_are_refused_with_advice():
    with pytest.raises(ValueError, match="NaN"):
        conformal.ltt_threshold([0.1, float("nan")], [1, 0])


# ------------------------------------------------------------------ honest abstention (issue 22)
def _certify_bruteforce(r, alpha, delta):
    """First m at which r*m expected errors pass the binomial test (the tail at a real count, by the
    regularised incomplete beta of scipy.stats.beta's cdf; an exact binomial sum at integer counts)."""
    from scipy.stats import beta

    m = 1
    while beta.cdf(1 - alpha, m - r * m, r * m + 1) > delta:
        m += 1
    return m


@pytest.mark.parametrize("r", [0.0, 0.02, 0.05, 0.08])
def test_certifiable_size_matches_the_first_passing_binomial_test(r):
    alpha, delta = 0.1, 0.1
    pts = {"risk": np.array([r]), "coverage": np.array([1.0])}
    got = conformal.certifiable_size(pts, alpha=alpha, delta=delta)["n_needed"]
    assert got == _certify_bruteforce(r, alpha, delta)
    if r == 0.0:  # error-free: the first size with (1 - alpha)^m <= delta
        assert got == math.ceil(math.log(delta) / math.log(1 - alpha))
    # a cheaper point at half coverage needs twice the items
    half = conformal.certifiable_size({"risk": np.array([r]), "coverage": np.array([0.5])}, alpha=alpha, delta=delta)
    assert half["n_needed"] == 2 * got


def test_rows_carry_base_and_oracle_coverage_on_a_population_with_known_risk():
    rng = np.random.default_rng(11)
    s, c = _draw(rng, 4000)          # base risk 1/6; the best coverage within alpha = 0.1 is sqrt(0.6)
    r = conformal.repeated_splits(s, c, alpha=0.1, delta=0.1, n_splits=20, seed=0)
    assert r["base_risk"] == pytest.approx(1 / 6, abs=0.02)
    assert r["oracle_coverage"] == pytest.approx(math.sqrt(0.6), abs=0.04)
    assert 0.5 < r["coverage_at_guarantee"] < r["oracle_coverage"]
    assert r["trivial"] is None
    assert r["n_needed"] is not None and r["n_needed"] <= r["n_calibration"]


def test_trivial_flags_name_base_risk_below_alpha_and_abstaining_on_all():
    rng = np.random.default_rng(12)
    s, c = _draw(rng, 600)
    easy = conformal.repeated_splits(s, c, alpha=0.25, delta=0.1, n_splits=20)
    assert easy["base_risk"] <= 0.25 and easy["trivial"] == conformal.TRIVIAL_BASE
    s2, c2 = _draw(rng, 40)          # 20 calibration items: nothing can be certified at alpha 0.05
    tiny = conformal.repeated_splits(s2, c2, alpha=0.05, delta=0.1, n_splits=20)
    assert tiny["n_abstain_all"] == 20 and tiny["trivial"] == conformal.TRIVIAL_ABSTAIN
    summ = conformal.summary([{**tiny, "score": "entropy"}])
    assert summ["certifiable"] is False and summ["best_rule"] == "entropy"
    assert summ["n_needed"] > summ["n_calibration"]


def test_n_needed_calibration_items_certify_a_guarantee_about_half_the_time():
    alpha, delta = 0.1, 0.1
    rng = np.random.default_rng(13)
    s, c = _draw(rng, 20000)
    need = conformal.certifiable_size(conformal.oracle_operating_points(s, c, alpha=alpha), alpha=alpha, delta=delta)
    n = need["n_needed"]
    hits_at, hits_quarter = 0, 0
    for _ in range(200):
        ss, cc = _draw(rng, n)
        hits_at += conformal.ltt_threshold(ss, cc, alpha=alpha, delta=delta).n_answered > 0
        ss, cc = _draw(rng, max(1, n // 4))
        hits_quarter += conformal.ltt_threshold(ss, cc, alpha=alpha, delta=delta).n_answered > 0
    assert hits_at / 200 >= 0.35
    assert hits_quarter < hits_at


def test_summary_picks_the_best_non_trivial_rule_and_choose_alpha_lies_below_the_base_error():
    rng = np.random.default_rng(14)
    s, c = _draw(rng, 1000)
    alpha = conformal.choose_alpha(c)
    assert alpha == pytest.approx((~c).mean() / 2)
    good = {**conformal.repeated_splits(s, c, alpha=alpha, n_splits=20), "score": "good"}
    noise = {**conformal.repeated_splits(rng.random(1000), c, alpha=alpha, n_splits=20), "score": "noise"}
    summ = conformal.summary([noise, good])
    assert summ["certifiable"] and summ["best_rule"] == "good"
    assert summ["coverage"] == pytest.approx(good["coverage_at_guarantee"])
    with pytest.raises(ValueError, match="no error"):
        conformal.choose_alpha(np.ones(10, bool))

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

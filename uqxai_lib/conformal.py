r"""Abstention with a finite-sample guarantee: Learn-then-Test on the selective risk.

A score :math:`s` (higher = more trustworthy: a repeatability score, a negated entropy, a margin)
decides which predictions to answer. For a threshold :math:`t` the model answers when
:math:`s > t`; its *selective risk* is :math:`R(t) = P(\text{error} \mid s > t)`. On a calibration
split we choose :math:`\hat t` so that

.. math:: P\big(R(\hat t) \le \alpha\big) \ge 1 - \delta

over the draw of the calibration set (Learn then Test, Angelopoulos, Bates, Candès, Jordan & Lei
2021, arXiv:2110.01052; the selective-classification setting of Geifman & El-Yaniv 2017).

How. Sort the calibration scores in decreasing order :math:`s_{(1)} \ge s_{(2)} \ge \dots`.
Candidate :math:`j` answers the :math:`j` most trusted items, i.e. uses the threshold
:math:`t_j = s_{(j+1)}` (strict ``>``; :math:`t_n = -\infty`). Given :math:`t_j`, the :math:`j`
answered calibration items are i.i.d. draws of the items with :math:`s > t_j`, so their error
count :math:`k_j` is Binomial(:math:`j, R(t_j)`), and

.. math:: p_j = P\big(\mathrm{Bin}(j, \alpha) \le k_j\big)

is a valid p-value for the null :math:`R(t_j) > \alpha`. The candidates are tested in the fixed
order :math:`j = j_0, j_0 + 1, \dots, n` (growing coverage, fixed before seeing any error), each
at level :math:`\delta`, stopping at the first :math:`p_j > \delta` (fixed-sequence testing,
LTT section 4); the last rejected candidate is returned. :math:`j_0` is the smallest :math:`j`
for which an error-free set could be certified at all, :math:`(1 - \alpha)^{j} \le \delta`.
If no candidate is rejected the model abstains on everything (coverage 0).

Ties in the scores: items tied with :math:`s_{(j+1)}` are not answered at :math:`t_j`; candidates
are therefore taken only at positions where the score strictly drops, so the calibration set that
the test sees is exactly the set ``s > t``.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SelectiveThreshold", "binomial_lower_tail", "certifiable_size", "choose_alpha", "ltt_threshold",
           "oracle_operating_points", "repeated_splits", "selective_risk", "summary"]

#: The two ways a held guarantee can be vacuous (the ``trivial`` flag of a row).
TRIVIAL_BASE = "base risk <= alpha"
TRIVIAL_ABSTAIN = "abstains on all"


class SelectiveThreshold(NamedTuple):
    """The threshold chosen on a calibration split (answer when ``score > threshold``)."""

    threshold: float
    n_answered: int
    n_errors: int
    p_value: float
    alpha: float
    delta: float


def binomial_lower_tail(k: Any, n: Any, p: float) -> Any:
    """:math:`P(\\mathrm{Bin}(n, p) \\le k)` (``scipy.stats.binom.cdf``), elementwise over arrays of
    ``k`` and ``n``; 1 where ``n = 0``. Returns a float for scalar input.

    >>> round(binomial_lower_tail(0, 22, 0.1), 4)
    0.0985
    """
    from scipy.stats import binom

    k_a, n_a = np.asarray(k), np.asarray(n)
    if np.any(n_a < 0) or np.any(k_a < 0) or not 0 <= p <= 1:
        raise ValueError(f"binomial_lower_tail: need n >= 0, k >= 0, 0 <= p <= 1; got k={k}, n={n}, p={p}")
    out = np.where(n_a == 0, 1.0, binom.cdf(k_a, n_a, p))
    return float(out) if out.ndim == 0 else out


def _check(scores: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(correct).reshape(-1)
    if s.shape != c.shape:
        raise ValueError(f"scores ({s.size}) and correct ({c.size}) differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf: give every item a finite score (e.g. rank NaN lowest)")
    if c.dtype != bool:
        if not np.all((c == 0) | (c == 1)):
            raise ValueError("correct must be bool or 0/1")
        c = c == 1
    return s, c


def _check_levels(alpha: float, delta: float) -> None:
    for name, v in (("alpha", alpha), ("delta", delta)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v}")


def ltt_threshold(scores: Any, correct: Any, *, alpha: float = 0.1, delta: float = 0.1) -> SelectiveThreshold:
    """Choose the threshold on a calibration split (see the module docstring).

    Returns a :class:`SelectiveThreshold`; ``threshold = +inf`` (answer nothing) when no
    candidate can be certified, ``-inf`` when every item may be answered.

    >>> s = np.linspace(1, 0, 200); ok = np.r_[np.ones(150, bool), np.zeros(50, bool)]
    >>> t = ltt_threshold(s, ok, alpha=0.1, delta=0.1)
    >>> t.n_errors <= 0.1 * t.n_answered, 150 <= t.n_answered < 200
    (True, True)
    """
    _check_levels(alpha, delta)
    s, c = _check(scores, correct)
    n = s.size
    order = np.argsort(-s, kind="stable")
    ss, err = s[order], (~c[order]).astype(np.int64)
    cum_err = np.cumsum(err)
    j0 = max(1, math.ceil(math.log(delta) / math.log1p(-alpha)))
    j = np.arange(j0, n + 1)
    # candidates only where the score drops after position j (or at the end)
    drop = np.ones(j.size, dtype=bool)
    inner = j < n
    drop[inner] = ss[j[inner]] != ss[j[inner] - 1]
    j = j[drop]
    if j.size == 0:
        return SelectiveThreshold(math.inf, 0, 0, math.nan, alpha, delta)
    k = cum_err[j - 1]
    p = binomial_lower_tail(k, j, alpha)
    fail = np.flatnonzero(p > delta)
    last = (fail[0] if fail.size else j.size) - 1  # fixed sequence: stop at the first non-rejection
    if last < 0:
        return SelectiveThreshold(math.inf, 0, 0, math.nan, alpha, delta)
    jj = int(j[last])
    return SelectiveThreshold(float(ss[jj]) if jj < n else -math.inf, jj, int(k[last]), float(p[last]), alpha, delta)


def selective_risk(scores: Any, correct: Any, threshold: float) -> tuple[float, float]:
    """``(risk, coverage)`` of answering ``score > threshold``: error rate among the answered
    (NaN when none is answered) and their share of all items.

    >>> selective_risk([0.9, 0.8, 0.1], [1, 0, 1], 0.5)
    (0.5, 0.6666666666666666)
    """
    s, c = _check(scores, correct)
    ans = s > threshold
    m = int(ans.sum())
    risk = float((~c[ans]).mean()) if m else math.nan
    return risk, m / s.size


def repeated_splits(scores: Any, correct: Any, *, alpha: float = 0.1, delta: float = 0.1, n_splits: int = 200,
                    calibration_fraction: float = 0.5, seed: int = 0) -> dict:
    """Calibrate on a random part, test on the rest, ``n_splits`` times (seeded).

    Returns ``n_splits, fraction_risk_le_alpha`` (share of splits whose realised test risk is
    ≤ α; a split that answers nothing counts as within α, its risk being vacuous),
    ``fraction_ci95`` (Clopper–Pearson interval of that share — splits overlap, so read it as a
    rough guide), ``mean_coverage``, ``mean_risk`` (over splits that answered something),
    ``n_abstain_all`` and the per-split arrays ``risks``, ``coverages``, ``thresholds``; and, so that
    a vacuous guarantee reads as one: ``base_risk`` (error rate answering everything),
    ``coverage_at_guarantee`` (= ``mean_coverage``), ``oracle_coverage`` (the largest share of all
    items a threshold on this score answers with empirical risk ≤ α, labels known:
    :func:`oracle_operating_points`), ``trivial`` (``"base risk <= alpha"``: answering everything
    already meets α; ``"abstains on all"``: no split answers anything; else None), ``n_needed``
    and ``n_needed_coverage`` (:func:`certifiable_size`) and ``n_calibration``.

    The guarantee is about the population risk; a finite test split adds its own sampling noise,
    so the realised fraction can fall somewhat below ``1 − δ`` even when the guarantee holds.
    """
    from scipy.stats import beta

    _check_levels(alpha, delta)
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must lie in (0, 1), got {calibration_fraction}")
    if int(n_splits) < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    s, c = _check(scores, correct)
    n = s.size
    n_cal = int(round(calibration_fraction * n))
    if n_cal < 1 or n - n_cal < 1:
        raise ValueError(f"{n} items cannot be split into calibration ({n_cal}) and test parts")
    rng = np.random.default_rng(seed)
    risks, covs, ths = [], [], []
    for _ in range(int(n_splits)):
        perm = rng.permutation(n)
        cal, test = perm[:n_cal], perm[n_cal:]
        t = ltt_threshold(s[cal], c[cal], alpha=alpha, delta=delta)
        r, cov = selective_risk(s[test], c[test], t.threshold)
        risks.append(r)
        covs.append(cov)
        ths.append(t.threshold)
    risks_a = np.asarray(risks)
    ok = np.where(np.isnan(risks_a), True, risks_a <= alpha)
    k, m = int(ok.sum()), ok.size
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, m - k + 1))
    hi = 1.0 if k == m else float(beta.ppf(0.975, k + 1, m - k))
    answered = ~np.isnan(risks_a)
    base_risk = float((~c).mean())
    oracle = oracle_operating_points(s, c, alpha=alpha)
    n_need = certifiable_size(oracle, alpha=alpha, delta=delta)
    n_abstain = int((~answered).sum())
    trivial = TRIVIAL_BASE if base_risk <= alpha else TRIVIAL_ABSTAIN if n_abstain == m else None
    return {"n_splits": m, "fraction_risk_le_alpha": k / m, "fraction_ci95": [lo, hi],
            "mean_coverage": float(np.mean(covs)),
            "mean_risk": float(risks_a[answered].mean()) if answered.any() else math.nan,
            "n_abstain_all": n_abstain, "alpha": alpha, "delta": delta,
            "base_risk": base_risk, "coverage_at_guarantee": float(np.mean(covs)),
            "oracle_coverage": oracle["coverage_at_alpha"], "trivial": trivial,
            "n_needed": n_need["n_needed"], "n_needed_coverage": n_need["coverage"], "n_calibration": n_cal,
            "risks": risks_a.tolist(), "coverages": covs, "thresholds": ths}


def oracle_operating_points(scores: Any, correct: Any, *, alpha: float) -> dict:
    """What a threshold on this score can do when the labels are known (all items, no split): the
    answered sets "the j highest scores" at each position where the score drops, with their
    empirical risk and coverage, and ``coverage_at_alpha``, the largest coverage whose empirical
    risk is ≤ ``alpha`` (0 when none): the oracle coverage at the guarantee's risk.

    >>> o = oracle_operating_points([0.9, 0.8, 0.7, 0.1], [1, 1, 0, 1], alpha=0.3)
    >>> o["coverage_at_alpha"], o["n_answered"].tolist()
    (1.0, [1, 2, 3, 4])
    """
    s, c = _check(scores, correct)
    n = s.size
    order = np.argsort(-s, kind="stable")
    ss, err = s[order], (~c[order]).astype(np.int64)
    j = np.arange(1, n + 1)
    drop = np.ones(n, dtype=bool)
    drop[:-1] = ss[1:] != ss[:-1]
    j = j[drop]
    k = np.cumsum(err)[j - 1]
    risk = k / j
    ok = risk <= alpha
    return {"n_answered": j, "n_errors": k, "risk": risk, "coverage": j / n,
            "coverage_at_alpha": float((j[ok] / n).max()) if ok.any() else 0.0}


def _smooth_tail(m: np.ndarray, r: np.ndarray, alpha: float) -> np.ndarray:
    """:math:`P(\\mathrm{Bin}(m, \\alpha) \\le rm)` with the error count ``r m`` taken as a real number
    (the regularised incomplete beta :math:`I_{1-\\alpha}(m - rm, rm + 1)`, equal to the binomial
    tail at integer counts): smooth and decreasing in m for r < alpha, so it has one crossing."""
    from scipy.special import betainc

    k = r * m
    return betainc(m - k, k + 1, 1 - alpha)


def _certify_n(risk: np.ndarray, alpha: float, delta: float, n_max: int = 10**8) -> np.ndarray:
    """Smallest answered-set size m at which a set of true risk ``risk`` (< alpha), with its errors
    at their expected count ``risk * m``, passes the binomial test of :func:`ltt_threshold`
    (``P(Bin(m, alpha) <= risk m) <= delta``, :func:`_smooth_tail`). NaN where risk >= alpha."""
    risk = np.asarray(risk, dtype=np.float64)
    out = np.full(risk.shape, np.nan)
    ok = risk < alpha
    if not ok.any():
        return out
    r = risk[ok]
    lo = np.zeros(r.size)
    hi = np.ones(r.size)
    while True:
        bad = (_smooth_tail(hi, r, alpha) > delta) & (hi < n_max)
        if not bad.any():
            break
        lo[bad] = hi[bad]
        hi[bad] = np.minimum(hi[bad] * 2, n_max)
    good = _smooth_tail(hi, r, alpha) <= delta
    while np.any(hi - lo > 1):
        mid = np.floor((lo + hi) / 2)
        pm = _smooth_tail(mid, r, alpha) <= delta
        hi = np.where(pm, mid, hi)
        lo = np.where(pm, lo, mid)
    out[ok] = np.where(good, hi, np.nan)
    return out


def certifiable_size(points: dict, *, alpha: float, delta: float) -> dict:
    """The smallest calibration size at which a guarantee for this score would be certifiable.

    For each oracle operating point (:func:`oracle_operating_points`) with empirical risk r < α
    and coverage c, the binomial test needs m answered calibration items (:func:`_certify_n`: the
    size at which r m expected errors pass it), so a calibration set of ``ceil(m / c)`` items. Returns ``{"n_needed", "coverage", "risk"}`` of
    the cheapest point (``n_needed`` None when no point has risk below α).

    >>> o = oracle_operating_points(np.linspace(1, 0, 100), np.ones(100, bool), alpha=0.1)
    >>> certifiable_size(o, alpha=0.1, delta=0.1)["n_needed"]  # error-free: (0.9)^22 <= 0.1
    22
    """
    m = _certify_n(points["risk"], alpha, delta)
    need = np.ceil(m / points["coverage"])
    if not np.isfinite(need).any():
        return {"n_needed": None, "coverage": None, "risk": None}
    i = int(np.nanargmin(need))
    return {"n_needed": int(need[i]), "coverage": float(points["coverage"][i]), "risk": float(points["risk"][i])}


def choose_alpha(correct: Any, *, fraction: float = 0.5) -> float:
    """A risk level below the model's base error rate: ``fraction`` x (share of errors), so that
    answering everything does not meet it and a held guarantee means the score did some work.

    >>> choose_alpha([1, 1, 1, 0] * 25)
    0.125
    """
    c = np.asarray(correct).reshape(-1).astype(bool)
    if not 0 < fraction < 1:
        raise ValueError(f"choose_alpha: fraction must lie in (0, 1), got {fraction}")
    base = float((~c).mean()) if c.size else math.nan
    if not base > 0:
        raise ValueError("choose_alpha: the model makes no error on these items, so no risk level lies below "
                         "its base error rate; abstention has nothing to do here")
    return fraction * base


def summary(rows: list[dict]) -> dict:
    """One modality's abstention in one record: can a *useful* guarantee be certified at this size?

    ``rows``: that modality's :func:`repeated_splits` results (each with ``score``, e.g. the rows of
    ``studies.cross.conformal_rows``). A row counts only when it is not ``trivial`` (its base risk
    is above α and it does not abstain on every split) and answers something in at least half of
    the splits. ``certifiable``: such a row exists; ``best_rule``: the counted row with the highest
    ``coverage_at_guarantee`` (without one: the row that needs the fewest calibration items);
    ``coverage``: its coverage at the guarantee; ``n_needed``: its :func:`certifiable_size`
    (calibration items), to read beside ``n_calibration``.
    """
    rows = [r for r in rows if isinstance(r, dict)]
    if not rows:
        return {"certifiable": False, "best_rule": None, "coverage": 0.0, "n_needed": None, "n_calibration": None,
                "alpha": None, "reason": "no abstention rule computed"}
    counted = [r for r in rows if not r.get("trivial") and r["n_abstain_all"] <= r["n_splits"] / 2]
    if counted:
        best = max(counted, key=lambda r: r["coverage_at_guarantee"])
        reason = None
    else:
        finite = [r for r in rows if r.get("n_needed") is not None and not r.get("trivial") == TRIVIAL_BASE]
        best = min(finite, key=lambda r: r["n_needed"]) if finite else rows[0]
        reason = ("every rule is trivial (" + ", ".join(sorted({str(r.get("trivial")) for r in rows})) + ")"
                  if all(r.get("trivial") for r in rows) else "no rule answers anything in most splits at this size")
    return {"certifiable": bool(counted), "best_rule": best.get("score"),
            "coverage": float(best["coverage_at_guarantee"]),
            "n_needed": best.get("n_needed"), "n_calibration": best.get("n_calibration"), "alpha": best.get("alpha"),
            "reason": reason}

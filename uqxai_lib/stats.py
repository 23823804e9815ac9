r"""Statistics on per-item scores: bootstrap intervals, group and paired comparisons, Holm, verdicts.

Why a module beside :mod:`uqxai_lib.metrics`: ``metrics`` holds batched torch functions on *maps*
and stacks (Spearman over thousands of map pairs, IoU, SUE, AUROC), where batching on the tensor
pays. The functions here work on one vector of per-item scores at a time (a few hundred numbers),
so they use NumPy and ``scipy.stats`` directly, and every chapter draws its inferential numbers
from them: the effect with its 95% bootstrap interval (over items, or over groups such as
subjects / lesions / patients when the data have them), the AUROC with its interval, a p-value,
Holm-adjusted p-values for secondary comparisons, and the verdict word chosen from the interval.

Conventions
-----------
* Intervals are percentile bootstrap intervals (Efron & Tibshirani 1993) from ``n_boot`` seeded
  resamples. With ``groups`` the resampling unit is the group (cluster bootstrap: whole groups are
  drawn with replacement), so items of one patient never count as independent evidence. Without
  groups, a two-group comparison resamples *within* each group (stratified), keeping both group
  sizes fixed, so no resample lacks a group.
* ``verdict`` reads the interval only: "higher" when it lies above 0, "lower" when below, and
  "no detectable difference" when it contains 0. Means are never compared to pick a verdict.
* Across training seeds (:func:`seed_summary`) the interval of the mean effect is a Student-t
  interval over seeds: seeds are the units, and there are few of them.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .rules import MIN_GROUP_SIZE

__all__ = [
    "VERDICTS",
    "added_value",
    "auroc",
    "auroc_difference",
    "bootstrap_ci",
    "bootstrap_test",
    "group_difference",
    "holm",
    "holm_labels",
    "mde",
    "mde_from_se",
    "mean_ci",
    "out_of_fold_probability",
    "paired_difference",
    "primary",
    "reproduction",
    "seed_summary",
    "stratified_auroc",
    "verdict",
]

VERDICTS = ("higher", "lower", "no detectable difference")


def _vec(x: Any, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().to(torch.float64).numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        pass
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return a


def _bool(x: Any, name: str) -> np.ndarray:
    a = np.asarray(_vec(x, name))
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must be bool or 0/1, got values {np.unique(a)[:5].tolist()}")
    return a == 1


def _check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be >= 100 for a percentile interval, got {n_boot}")


def auroc(scores: Any, positive: Any) -> float:
    """AUROC of ``scores`` for the ``positive`` items (ties count 1/2); NaN if a class is absent.

    The NumPy twin of :func:`uqxai_lib.metrics.auroc` (same definition): the bootstrap calls it on
    every resample, and for one vector of a few hundred scores torch's per-call overhead made the
    torch version 12x slower here (2000 calls on 400 scores: 2.4 s vs 0.19 s).

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    from scipy.stats import rankdata

    s, pos = _vec(scores, "scores"), _bool(positive, "positive")
    if s.shape != pos.shape:
        raise ValueError(f"auroc: {s.size} scores but {pos.size} labels")
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _resampler(n: int, groups: np.ndarray | None, strata: np.ndarray | None
               ) -> Callable[[np.random.Generator], np.ndarray]:
    """``draw(rng) -> indices`` of one bootstrap resample: whole ``groups`` drawn with replacement
    (their items in ascending order, groups in the order drawn), else items within each stratum of
    ``strata`` (strata in sorted order), else ``n`` items. The group and stratum index lists are
    built once per bootstrap call, not once per resample; the draws from ``rng`` are one
    ``integers`` call per resample (per stratum), so every interval of the book is unchanged."""
    if groups is not None:
        _, inv = np.unique(groups, return_inverse=True)
        order = np.argsort(inv, kind="stable")  # each group's items, ascending, one group after another
        counts = np.bincount(inv)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_groups = counts.size

        def draw(rng: np.random.Generator) -> np.ndarray:
            pick = rng.integers(0, n_groups, n_groups)
            lengths = counts[pick]
            ends = np.cumsum(lengths)
            # position j of the resample is item (j - start of its block) of its group
            offsets = np.arange(int(ends[-1])) - np.repeat(ends - lengths, lengths)
            return order[np.repeat(starts[pick], lengths) + offsets]
        return draw
    if strata is not None:
        parts = [np.flatnonzero(strata == s) for s in np.unique(strata)]

        def draw(rng: np.random.Generator) -> np.ndarray:
            return np.concatenate([idx[rng.integers(0, idx.size, idx.size)] for idx in parts])
        return draw
    return lambda rng: rng.integers(0, n, n)


def _resampling_inputs(name: str, arrays: Sequence[Any], groups: Any, strata: Any
                       ) -> tuple[list[np.ndarray], int, np.ndarray | None, np.ndarray | None]:
    """Arrays, item count, groups and strata of a bootstrap call, checked (one place for both)."""
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError(f"{name}: give at least one array")
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"{name}: arrays differ in length {[len(a) for a in arrs]}")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    st = None if strata is None else np.asarray(strata).reshape(-1)
    for label, v in (("groups", g), ("strata", st)):
        if v is not None and v.size != n:
            raise ValueError(f"{name}: {label} has {v.size} entries for {n} items")
    return arrs, n, g, st


def bootstrap_ci(statistic: Callable[..., float], *arrays: Any, groups: Any = None, strata: Any = None,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``.

    Parameters
    ----------
    statistic : called with the resampled arrays (NumPy, same order), returns a float; resamples on
        which it is NaN (e.g. a group missing) are dropped.
    arrays : equal-length vectors (items along the only axis).
    groups : optional group id per item (subject, lesion, patient): resample whole groups.
    strata : optional stratum per item (ignored with ``groups``): resample within each stratum.
    n_boot, level, seed : number of resamples, interval level, seed of ``numpy.random.default_rng``.

    Returns ``(lo, hi)``; ``(nan, nan)`` when fewer than half of the resamples are finite.

    >>> lo, hi = bootstrap_ci(np.mean, np.arange(100.0), seed=1)
    >>> bool(lo < 49.5 < hi)
    True
    """
    _check_level(level, n_boot)
    arrs, n, g, st = _resampling_inputs("bootstrap_ci", arrays, groups, strata)
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    vals = np.empty(int(n_boot))
    draw = _resampler(n, g, st)
    for b in range(int(n_boot)):
        idx = draw(rng)
        vals[b] = statistic(*(a[idx] for a in arrs))
    vals = vals[np.isfinite(vals)]
    if vals.size < n_boot / 2:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return (float(lo), float(hi))


def bootstrap_test(statistic: Callable[..., Any], *arrays: Any, groups: Any = None, strata: Any = None,
                   null: Any = 0.0, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    r"""Estimate, percentile interval and two-sided p-value of ``statistic`` from ONE set of resamples.

    ``statistic`` returns a float or a 1-D array of floats (several statistics on the same
    resamples, e.g. a mean difference and an AUROC); ``null`` is the value each is tested against.
    Resampling as in :func:`bootstrap_ci` (whole ``groups``, else within ``strata``, else items).
    With ``m`` finite resampled values ``b_(1) <= ... <= b_(m)`` of one statistic and
    ``k = ceil((1 - level) / 2 * m)``, the interval is ``[b_(k), b_(m - k + 1)]`` and

    .. math:: p = \min\Big(1, \tfrac{2}{m} \min\big(\#\{b \le \theta_0\}, \#\{b \ge \theta_0\}\big)\Big),

    so ``p < 1 - level`` exactly when the interval excludes ``null`` (one procedure, two views of
    it). A statistic with fewer than ``n_boot / 2`` finite resamples gets a NaN interval and p.

    Returns ``{"estimate", "ci95", "p", "n_boot"}`` (lists when ``statistic`` returns an array).

    >>> r = bootstrap_test(np.mean, np.arange(1.0, 41.0), seed=1)
    >>> r["ci95"][0] > 0, r["p"] < 0.05
    (True, True)
    >>> r = bootstrap_test(np.mean, np.linspace(-1, 1, 41), seed=1)
    >>> r["ci95"][0] < 0 < r["ci95"][1], r["p"] >= 0.05
    (True, True)
    """
    _check_level(level, n_boot)
    arrs, n, g, st = _resampling_inputs("bootstrap_test", arrays, groups, strata)
    first = np.asarray(statistic(*arrs), dtype=np.float64) if n else np.asarray(math.nan)
    scalar = first.ndim == 0
    est = np.atleast_1d(first)
    k_stats = est.size
    nulls = np.broadcast_to(np.asarray(null, dtype=np.float64), (k_stats,))
    rng = np.random.default_rng(seed)
    vals = np.full((int(n_boot), k_stats), math.nan)
    if n:
        draw = _resampler(n, g, st)
        for b in range(int(n_boot)):
            idx = draw(rng)
            vals[b] = np.atleast_1d(np.asarray(statistic(*(a[idx] for a in arrs)), dtype=np.float64))
    a = (1 - level) / 2
    cis, ps = [], []
    for j in range(k_stats):
        v = np.sort(vals[np.isfinite(vals[:, j]), j])
        m = v.size
        if m < n_boot / 2 or not math.isfinite(est[j]):
            cis.append([math.nan, math.nan])
            ps.append(math.nan)
            continue
        k = max(1, math.ceil(a * m - 1e-9))
        cis.append([float(v[k - 1]), float(v[m - k])])
        c = min(int(np.sum(v <= nulls[j])), int(np.sum(v >= nulls[j])))
        ps.append(min(1.0, 2.0 * c / m))
    if scalar:
        return {"estimate": float(est[0]), "ci95": cis[0], "p": ps[0], "n_boot": int(n_boot)}
    return {"estimate": [float(e) for e in est], "ci95": cis, "p": ps, "n_boot": int(n_boot)}


def mean_ci(values: Any, *, groups: Any = None, n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> tuple[float, list[float]]:
    """Mean of the finite ``values`` and its percentile bootstrap interval (whole ``groups`` resampled
    when given): ``(mean, [lo, hi])``; ``(nan, [nan, nan])`` when no value is finite.

    >>> m, (lo, hi) = mean_ci([1.0, 2.0, float("nan"), 3.0], n_boot=200)
    >>> m, bool(1.0 <= lo <= 2.0 <= hi <= 3.0)
    (2.0, True)
    """
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float).reshape(-1)
    ok = np.isfinite(v)
    if not ok.any():
        return math.nan, [math.nan, math.nan]
    g = None if groups is None else np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups).reshape(-1)[ok]
    return float(v[ok].mean()), list(bootstrap_ci(np.mean, v[ok], groups=g, n_boot=n_boot, level=level, seed=seed))


def _mean_diff(v: np.ndarray, a: np.ndarray) -> float:
    if not a.any() or a.all():
        return math.nan
    return float(v[a].mean() - v[~a].mean())


def group_difference(values: Any, in_a: Any, *, groups: Any = None, n_boot: int = 2000,
                     level: float = 0.95, seed: int = 0) -> dict:
    """Group a vs group b of a per-item score: mean difference and AUROC, each with its interval.

    ``effect`` = mean(a) − mean(b); ``auroc`` = P(score_a > score_b) (+ ties / 2), > 0.5 when a is
    higher; ``p`` the two-sided Mann–Whitney p-value (``scipy.stats.mannwhitneyu``). NaN scores are
    dropped (counted in ``n_nan``). Both intervals come from the same resamples (stratified by group
    membership, or over ``groups``).

    Returns a dict: ``effect, ci95, auroc, auroc_ci95, p, n_a, n_b, n_nan, mean_a, mean_b``.
    """
    from scipy.stats import mannwhitneyu

    v, a = _vec(values, "values"), _bool(in_a, "in_a")
    if v.shape != a.shape:
        raise ValueError(f"group_difference: {v.size} values but {a.size} group flags")
    keep = np.isfinite(v)
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and g.size != v.size:
        raise ValueError(f"group_difference: groups has {g.size} entries for {v.size} items")
    v, a = v[keep], a[keep]
    g = None if g is None else g[keep]
    na, nb = int(a.sum()), int((~a).sum())
    out = {"n_a": na, "n_b": nb, "n_nan": int((~keep).sum()),
           "mean_a": float(v[a].mean()) if na else math.nan,
           "mean_b": float(v[~a].mean()) if nb else math.nan}
    if na == 0 or nb == 0:
        return {**out, "effect": math.nan, "ci95": [math.nan, math.nan], "auroc": math.nan,
                "auroc_ci95": [math.nan, math.nan], "p": math.nan}
    strata = None if g is not None else a
    ci = bootstrap_ci(_mean_diff, v, a, groups=g, strata=strata, n_boot=n_boot, level=level, seed=seed)
    ci_auc = bootstrap_ci(lambda vv, aa: auroc(vv, aa), v, a, groups=g, strata=strata,
                          n_boot=n_boot, level=level, seed=seed)
    p = float(mannwhitneyu(v[a], v[~a], alternative="two-sided").pvalue)
    return {**out, "effect": _mean_diff(v, a), "ci95": list(ci), "auroc": auroc(v, a),
            "auroc_ci95": list(ci_auc), "p": p}


def paired_difference(a: Any, b: Any, *, groups: Any = None, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Paired a − b per item (e.g. IoU of the VIC minus IoU of the optimal map, same image).

    ``effect`` = mean(a − b) with its bootstrap interval (over items, or over ``groups``), ``p`` the
    two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``; 1.0 when all differences are
    0). Pairs with a NaN are dropped. Returns ``effect, ci95, p, n, n_nan``.
    """
    from scipy.stats import wilcoxon

    x, y = _vec(a, "a"), _vec(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired_difference: a has {x.size} items, b has {y.size}")
    d = x - y
    keep = np.isfinite(d)
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and g.size != d.size:
        raise ValueError(f"paired_difference: groups has {g.size} entries for {d.size} items")
    d = d[keep]
    g = None if g is None else g[keep]
    out = {"n": int(d.size), "n_nan": int((~keep).sum())}
    if d.size == 0:
        return {**out, "effect": math.nan, "ci95": [math.nan, math.nan], "p": math.nan}
    ci = bootstrap_ci(np.mean, d, groups=g, n_boot=n_boot, level=level, seed=seed)
    p = 1.0 if not np.any(d != 0) else float(wilcoxon(d).pvalue)
    return {**out, "effect": float(d.mean()), "ci95": list(ci), "p": p}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(list(pvalues), dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out.tolist()
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p[ok].tolist()}")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, (m - k) * p[i])
        out[i] = min(1.0, running)
    return [float(round(v, 15)) if np.isfinite(v) else math.nan for v in out]


def verdict(ci95: Sequence[float]) -> str:
    """The verdict word of an interval for an effect (difference, or AUROC − 0.5).

    "higher" if the interval lies above 0, "lower" if below 0, else "no detectable difference"
    (also for a NaN interval: nothing was detected).

    >>> verdict([0.02, 0.11]), verdict([-0.3, -0.01]), verdict([-0.05, 0.04])
    ('higher', 'lower', 'no detectable difference')
    """
    lo, hi = (float(v) for v in ci95)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no detectable difference"
    if lo > hi:
        raise ValueError(f"verdict: interval [{lo}, {hi}] has lo > hi")
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    return "no detectable difference"


def reproduction(verdict_word: str, expected: str = "higher") -> str:
    """How a verdict stands to a paper's claimed direction: "reproduced", "not reproduced", "reversed".

    >>> reproduction("higher"), reproduction("no detectable difference"), reproduction("lower")
    ('reproduced', 'not reproduced', 'reversed')
    """
    if verdict_word not in VERDICTS or expected not in ("higher", "lower"):
        raise ValueError(f"reproduction: verdict {verdict_word!r} must be one of {VERDICTS}, "
                         f"expected {expected!r} 'higher' or 'lower'")
    if verdict_word == expected:
        return "reproduced"
    if verdict_word == "no detectable difference":
        return "not reproduced"
    return "reversed"


def primary(name: str, comparison: Mapping[str, Any]) -> dict:
    """The ``primary`` record of a chapter's results JSON from a :func:`group_difference` /
    :func:`paired_difference` result: ``name, effect, ci95, auroc, auroc_ci95, p, verdict``
    (``auroc`` keys NaN for a paired comparison). The verdict comes from ``ci95`` alone.
    """
    ci = [float(v) for v in comparison["ci95"]]
    return {"name": str(name), "effect": float(comparison["effect"]), "ci95": ci,
            "auroc": float(comparison.get("auroc", math.nan)),
            "auroc_ci95": [float(v) for v in comparison.get("auroc_ci95", [math.nan, math.nan])],
            "p": float(comparison["p"]), "verdict": verdict(ci)}


def seed_summary(effects: Sequence[float], level: float = 0.95) -> dict:
    """Across training seeds: mean effect, Student-t interval of the mean, and sign agreement.

    ``sign_agreement`` is "k/n" with k the number of seeds whose effect has the sign of the mean;
    the interval needs at least 2 finite effects (else NaN). Returns ``mean, ci95, n, sign_agreement,
    verdict``.

    >>> s = seed_summary([0.1, 0.2, 0.15])
    >>> s["sign_agreement"], s["verdict"]
    ('3/3', 'higher')
    """
    from scipy.stats import t

    e = _vec(effects, "effects")
    e = e[np.isfinite(e)]
    n = int(e.size)
    if n == 0:
        return {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "sign_agreement": "0/0",
                "verdict": "no detectable difference"}
    m = float(e.mean())
    if n >= 2:
        half = float(t.ppf(0.5 + level / 2, n - 1) * e.std(ddof=1) / math.sqrt(n))
        ci = [m - half, m + half]
    else:
        ci = [math.nan, math.nan]
    k = int(np.sum(np.sign(e) == np.sign(m))) if m != 0 else 0
    return {"mean": m, "ci95": ci, "n": n, "sign_agreement": f"{k}/{n}", "verdict": verdict(ci)}



# ----------------------------------------------------------------------------------- verdict ladder
def holm_labels(effects: Sequence[float], pvalues: Sequence[float], *, level: float = 0.05) -> list[str]:
    """Labels of secondary comparisons read from their Holm-adjusted p-values (:func:`holm`).

    "higher" / "lower" (the sign of the effect) when the adjusted p is below ``level``, else
    "no detectable difference"; a NaN effect or p is "undefined". The label never comes from the
    raw p, so a secondary at raw p 0.04 and adjusted p 0.16 is "no detectable difference".

    >>> holm_labels([0.2, -0.1, 0.05], [0.001, 0.03, 0.04])
    ['higher', 'no detectable difference', 'no detectable difference']
    """
    e = np.asarray(list(effects), dtype=np.float64)
    p = np.asarray(list(pvalues), dtype=np.float64)
    if e.shape != p.shape:
        raise ValueError(f"holm_labels: {e.size} effects but {p.size} p-values")
    adj = holm(p.tolist())
    out = []
    for ei, pi in zip(e, adj):
        if not (math.isfinite(ei) and math.isfinite(pi)):
            out.append("undefined")
        elif pi < level and ei != 0:
            out.append("higher" if ei > 0 else "lower")
        else:
            out.append("no detectable difference")
    return out


def mde_from_se(se: float, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """Minimal detectable effect for an estimate with standard error ``se``: the true effect that a
    two-sided level-``alpha`` test detects with probability ``power`` (normal approximation),
    :math:`(z_{1-\\alpha/2} + z_{\\text{power}})\\,\\mathrm{se}`.

    >>> round(mde_from_se(1.0), 3)
    2.802
    """
    from scipy.stats import norm

    if not (0 < power < 1 and 0 < alpha < 1):
        raise ValueError(f"mde: power and alpha must lie in (0, 1), got {power}, {alpha}")
    se = float(se)
    if not math.isfinite(se) or se < 0:
        return math.nan
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def mde(values: Any, in_a: Any, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """Minimal detectable mean difference between group a and group b of ``values`` at their sizes
    and spreads (80 % power, two-sided 5 % by default): :func:`mde_from_se` of
    :math:`\\sqrt{s_a^2/n_a + s_b^2/n_b}`. NaN values are dropped; NaN when a group has < 2 items.

    >>> v = np.r_[np.zeros(50), np.ones(50)] + np.tile([-1.0, 1.0], 50); a = np.r_[np.ones(50), np.zeros(50)]
    >>> round(mde(v, a), 3)  # sd 1.010 in each group of 50: 2.802 * 1.010 * sqrt(2 / 50)
    0.566
    """
    v, a = _vec(values, "values"), _bool(in_a, "in_a")
    if v.shape != a.shape:
        raise ValueError(f"mde: {v.size} values but {a.size} group flags")
    keep = np.isfinite(v)
    va, vb = v[keep & a], v[keep & ~a]
    if va.size < 2 or vb.size < 2:
        return math.nan
    se = math.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size)
    return mde_from_se(se, power=power, alpha=alpha)


def _pairs_within(s: np.ndarray, pos: np.ndarray, strata: np.ndarray) -> tuple[float, float]:
    """(concordant pairs + ties/2, number of pairs), pairs only inside a stratum."""
    from scipy.stats import rankdata

    num = den = 0.0
    for st in np.unique(strata):
        m = strata == st
        p = pos[m]
        n1, n0 = int(p.sum()), int((~p).sum())
        if n1 == 0 or n0 == 0:
            continue
        r = rankdata(s[m])
        num += float(r[p].sum()) - n1 * (n1 + 1) / 2
        den += n1 * n0
    return num, den


def stratified_auroc(scores: Any, positive: Any, strata: Any, *, groups: Any = None, n_boot: int = 2000,
                     level: float = 0.95, seed: int = 0, min_group: int = MIN_GROUP_SIZE) -> dict:
    """Class-stratified AUROC: P(score of a positive > score of a negative) over the pairs that lie
    in the *same* stratum (e.g. the same predicted class), ties 1/2, pooled over strata (each
    weighted by its number of pairs). A score that only tracks the stratum gives 0.5, so the
    stratum cannot stand in for the positive label.

    The interval is a percentile bootstrap, over ``groups`` when given, else within each
    (stratum x positive) cell. NaN scores are dropped. ``verdict`` reads the interval of
    ``auroc - 0.5`` (:func:`verdict`); "undefined" (with ``reason``) when fewer than ``min_group``
    positives or negatives lie in strata that hold both.

    Returns ``auroc, ci95, p, n_pairs, n_pos, n_neg, strata [{stratum, n_pos, n_neg, auroc}],
    verdict, reason``.

    >>> r = stratified_auroc([1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 1, 1, 1, 1], min_group=1, n_boot=200)
    >>> r["auroc"], r["n_pairs"]
    (0.75, 8)
    """
    s, pos = _vec(scores, "scores"), _bool(positive, "positive")
    st = np.asarray(strata.detach().cpu() if hasattr(strata, "detach") else strata).reshape(-1)
    if not (s.size == pos.size == st.size):
        raise ValueError(f"stratified_auroc: {s.size} scores, {pos.size} labels, {st.size} strata")
    g = None if groups is None else np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups).reshape(-1)
    if g is not None and g.size != s.size:
        raise ValueError(f"stratified_auroc: groups has {g.size} entries for {s.size} items")
    keep = np.isfinite(s)
    s, pos, st = s[keep], pos[keep], st[keep]
    g = None if g is None else g[keep]
    rows, n_pos, n_neg = [], 0, 0
    for k in np.unique(st):
        m = st == k
        n1, n0 = int(pos[m].sum()), int((~pos[m]).sum())
        rows.append({"stratum": k.item() if hasattr(k, "item") else k, "n_pos": n1, "n_neg": n0,
                     "auroc": auroc(s[m], pos[m])})
        if n1 and n0:
            n_pos, n_neg = n_pos + n1, n_neg + n0
    num, den = _pairs_within(s, pos, st)
    out = {"n_pairs": int(den), "n_pos": n_pos, "n_neg": n_neg, "strata": rows}
    if n_pos < min_group or n_neg < min_group:
        return {**out, "auroc": float(num / den) if den else math.nan, "ci95": [math.nan, math.nan],
                "p": math.nan, "verdict": "undefined",
                "reason": f"{n_pos} positive and {n_neg} negative item(s) in strata holding both "
                          f"(fewer than {min_group} in a group)"}

    # a resample is a multiset of items: with c its item counts, its concordant pairs are c' M c and its
    # pairs c' D c (M: positive-negative pairs of one stratum, 1 if ordered, 1/2 if tied) -- the same
    # numbers as ranking the resampled scores (:func:`_pairs_within`), in a matrix product
    sp, sn = s[pos], s[~pos]
    D = (st[pos][:, None] == st[~pos][None, :]).astype(np.float64)  # [positives, negatives]
    M = D * ((sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :]))

    def stat(ii):
        c = np.bincount(ii, minlength=s.size).astype(np.float64)
        cp, cn = c[pos], c[~pos]
        b = cp @ D @ cn
        return (cp @ M @ cn) / b if b else math.nan

    cells = None if g is not None else np.unique(np.stack([st.astype(str), pos.astype(str)], 1), axis=0,
                                                  return_inverse=True)[1].reshape(-1)
    bt = bootstrap_test(stat, np.arange(s.size), groups=g, strata=cells, null=0.5, n_boot=n_boot, level=level,
                        seed=seed)
    ci = bt["ci95"]
    return {**out, "auroc": float(num / den), "ci95": list(ci), "p": bt["p"],
            "verdict": verdict([ci[0] - 0.5, ci[1] - 0.5]), "reason": None}


def out_of_fold_probability(X: Any, y: Any, *, groups: Any = None, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-sample P(y) of a logistic regression on ``X`` [N, F] (a 1-D ``X`` is one feature).

    ``sklearn.model_selection.cross_val_predict`` of ``Pipeline(SimpleImputer(median),
    StandardScaler(), LogisticRegression(max_iter=1000))``: each item is scored by the model fitted
    without its fold; NaN features are imputed with the training fold's median. Folds are
    ``StratifiedGroupKFold`` over ``groups`` (no subject in two folds) when given, else
    ``StratifiedKFold``; both shuffled with ``seed``. The number of folds is
    ``min(folds, size of the smaller class, number of groups)``; below 2 every item gets NaN.

    >>> rng = np.random.default_rng(0); x = rng.normal(size=200); y = x + rng.normal(size=200) > 0
    >>> p = out_of_fold_probability(x, y)
    >>> p.shape, bool(auroc(p, y) > 0.75)
    ((200,), True)
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xa = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X, dtype=np.float64)
    if Xa.ndim == 1:
        Xa = Xa[:, None]
    yy = _bool(y, "y").astype(int)
    if Xa.ndim != 2 or Xa.shape[0] != yy.size:
        raise ValueError(f"out_of_fold_probability: X must be [N, F] with N = len(y); got {Xa.shape} and {yy.size}")
    g = None if groups is None else np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups).reshape(-1)
    if g is not None and g.size != yy.size:
        raise ValueError(f"out_of_fold_probability: groups has {g.size} entries for {yy.size} items")
    k = int(min(folds, np.bincount(yy, minlength=2).min(), np.unique(g).size if g is not None else yy.size))
    if k < 2:
        return np.full(yy.size, math.nan)
    # a column without any finite value carries no information (and SimpleImputer would drop it)
    Xa = Xa[:, np.isfinite(Xa).any(0)] if Xa.shape[1] else Xa
    if Xa.shape[1] == 0:
        return np.full(yy.size, math.nan)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000))
    if g is not None:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return cross_val_predict(model, Xa, yy, groups=g, cv=cv, method="predict_proba")[:, 1]


def auroc_difference(a: Any, b: Any, positive: Any, *, groups: Any = None, n_boot: int = 2000,
                     level: float = 0.95, seed: int = 0) -> dict:
    """Paired comparison of two scores of the same items: ``auroc_a``, ``auroc_b`` for the
    ``positive`` items, ``delta = auroc_b - auroc_a`` with its bootstrap interval (items resampled
    together; whole ``groups`` when given, else within each class), ``p`` from the same resamples
    (:func:`bootstrap_test`), ``verdict`` from the interval and ``n_nan`` (items left out because either score is NaN)."""
    x, z, pos = _vec(a, "a"), _vec(b, "b"), _bool(positive, "positive")
    if not (x.size == z.size == pos.size):
        raise ValueError(f"auroc_difference: a, b and positive need one value per item, got {x.size}, {z.size}, {pos.size}")
    keep = np.isfinite(x) & np.isfinite(z)
    g = None if groups is None else np.asarray(groups).reshape(-1)[keep]
    x, z, pos = x[keep], z[keep], pos[keep]
    if pos.all() or not pos.any():
        return {"auroc_a": math.nan, "auroc_b": math.nan, "delta": math.nan, "delta_ci95": [math.nan, math.nan],
                "p": math.nan, "verdict": "undefined", "n_nan": int((~keep).sum())}
    auc_a, auc_b = auroc(x, pos), auroc(z, pos)
    bt = bootstrap_test(lambda xx, zz, pp: auroc(zz, pp) - auroc(xx, pp), x, z, pos, groups=g,
                        strata=None if g is not None else pos, n_boot=n_boot, level=level, seed=seed)
    ci = bt["ci95"]
    return {"auroc_a": auc_a, "auroc_b": auc_b, "delta": auc_b - auc_a, "delta_ci95": list(ci), "p": bt["p"],
            "verdict": verdict(ci) if all(map(math.isfinite, ci)) else "undefined", "n_nan": int((~keep).sum())}


def added_value(score: Any, baselines: Mapping[str, Any], correct: Any, *, groups: Any = None, folds: int = 5,
                n_boot: int = 2000, level: float = 0.95, seed: int = 0, min_group: int = MIN_GROUP_SIZE) -> dict:
    """Does ``score`` add to the *strongest* prediction-only baseline, out of sample?

    Every candidate is an out-of-fold probability of "correct" (:func:`out_of_fold_probability`,
    same folds and seed): each baseline alone, the combination of all baselines, and the baselines
    plus ``score``. The strongest baseline is the candidate among the single baselines and their
    combination with the highest out-of-fold AUROC (a combination weaker than its best member is a
    fitting problem, not evidence). ``delta`` = AUROC(baselines + score) − AUROC(strongest), with a
    paired bootstrap interval (:func:`auroc_difference`; predictions held fixed, items or ``groups``
    resampled: the variation over test items, not over refits).

    Returns ``auroc_score, auroc_single {name: auroc}, auroc_combination, strongest, auroc_strongest,
    auroc_with_score, delta, delta_ci95, verdict, reason, n_correct, n_misclassified, n_nan, folds,
    grouped``; "undefined" (with ``reason``) when a class has fewer than ``min_group`` items.
    """
    c = _bool(correct, "correct")
    s = _vec(score, "score")
    if not baselines:
        raise ValueError("added_value: give at least one baseline score")
    base = {k: _vec(v, k) for k, v in baselines.items()}
    for k, v in {"score": s, **base}.items():
        if v.size != c.size:
            raise ValueError(f"added_value: {k} has {v.size} values for {c.size} items")
    g = None if groups is None else np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups).reshape(-1)
    n1, n0 = int(c.sum()), int((~c).sum())
    out = {"n_correct": n1, "n_misclassified": n0, "n_nan": int((~np.isfinite(s)).sum()),
           "folds": int(folds), "grouped": g is not None}
    nan = {"auroc_score": math.nan, "auroc_single": {k: math.nan for k in base}, "auroc_combination": math.nan,
           "strongest": None, "auroc_strongest": math.nan, "auroc_with_score": math.nan, "delta": math.nan,
           "delta_ci95": [math.nan, math.nan], "p": math.nan, "verdict": "undefined"}
    if n1 < min_group or n0 < min_group:
        return {**out, **nan,
                "reason": f"{n1} correct and {n0} misclassified item(s) (fewer than {min_group} in a group)"}

    def oof(X):
        return out_of_fold_probability(X, c, groups=g, folds=folds, seed=seed)

    B = np.stack(list(base.values()), 1)
    cand = {k: oof(v) for k, v in base.items()}
    single = {k: auroc(p, c) if np.isfinite(p).all() else math.nan for k, p in cand.items()}
    p_comb = oof(B) if len(base) > 1 else cand[next(iter(base))]
    p_with = oof(np.concatenate([B, s[:, None]], 1))
    if not (np.isfinite(p_comb).all() and np.isfinite(p_with).all()):
        return {**out, **nan, "reason": "too few items or groups per class for 2 folds"}
    auc_comb = auroc(p_comb, c)
    pool = {**single, "combination": auc_comb} if len(base) > 1 else dict(single)
    strongest = max(pool, key=lambda k: -math.inf if not math.isfinite(pool[k]) else pool[k])
    p_strong = p_comb if strongest == "combination" else cand[strongest]
    d = auroc_difference(p_strong, p_with, c, groups=g, n_boot=n_boot, level=level, seed=seed)
    p_score = oof(s)
    return {**out, "auroc_score": auroc(p_score, c) if np.isfinite(p_score).all() else math.nan,
            "auroc_single": single, "auroc_combination": auc_comb, "strongest": strongest,
            "auroc_strongest": d["auroc_a"], "auroc_with_score": d["auroc_b"], "delta": d["delta"],
            "delta_ci95": d["delta_ci95"], "p": d["p"], "verdict": d["verdict"], "reason": None}

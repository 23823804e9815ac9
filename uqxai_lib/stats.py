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

__all__ = [
    "VERDICTS",
    "auroc",
    "bootstrap_ci",
    "bootstrap_test",
    "group_difference",
    "holm",
    "mean_ci",
    "paired_difference",
    "primary",
    "reproduction",
    "seed_summary",
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


def _resample_indices(rng: np.random.Generator, n: int, groups: np.ndarray | None,
                      strata: np.ndarray | None) -> np.ndarray:
    if groups is not None:
        uniq, inv = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inv == g) for g in range(uniq.size)]
        pick = rng.integers(0, uniq.size, uniq.size)
        return np.concatenate([members[g] for g in pick])
    if strata is not None:
        parts = []
        for s in np.unique(strata):
            idx = np.flatnonzero(strata == s)
            parts.append(idx[rng.integers(0, idx.size, idx.size)])
        return np.concatenate(parts)
    return rng.integers(0, n, n)


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
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError("bootstrap_ci: give at least one array")
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"bootstrap_ci: arrays differ in length {[len(a) for a in arrs]}")
    if n == 0:
        return (math.nan, math.nan)
    g = None if groups is None else np.asarray(groups).reshape(-1)
    st = None if strata is None else np.asarray(strata).reshape(-1)
    for name, v in (("groups", g), ("strata", st)):
        if v is not None and v.size != n:
            raise ValueError(f"bootstrap_ci: {name} has {v.size} entries for {n} items")
    rng = np.random.default_rng(seed)
    vals = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        idx = _resample_indices(rng, n, g, st)
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
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError("bootstrap_test: give at least one array")
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"bootstrap_test: arrays differ in length {[len(a) for a in arrs]}")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    st = None if strata is None else np.asarray(strata).reshape(-1)
    for name, v in (("groups", g), ("strata", st)):
        if v is not None and v.size != n:
            raise ValueError(f"bootstrap_test: {name} has {v.size} entries for {n} items")
    first = np.asarray(statistic(*arrs), dtype=np.float64) if n else np.asarray(math.nan)
    scalar = first.ndim == 0
    est = np.atleast_1d(first)
    k_stats = est.size
    nulls = np.broadcast_to(np.asarray(null, dtype=np.float64), (k_stats,))
    rng = np.random.default_rng(seed)
    vals = np.full((int(n_boot), k_stats), math.nan)
    if n:
        for b in range(int(n_boot)):
            idx = _resample_indices(rng, n, g, st)
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

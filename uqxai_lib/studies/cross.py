r"""Cross-study analysis: which source of explanation uncertainty flags errors, on every modality.

Steps of the ``cross_study`` chapter as plain functions (no plotting, no models built here):

1. :func:`item_scores` turns one source's stack of explanations and predictions into per-item
   scores: two *explanation* repeatability scores (``jaccard``: SUE-style mean pairwise Jaccard
   of the top-q regions; ``spearman``: mean Spearman ρ of each sample's map with the reference
   map) and four *prediction-only* baselines of the same samples (``entropy``, ``mutual_information``,
   ``margin``, ``flip_rate``).
2. :func:`confidence` orients every score so that higher means "trust this prediction more".
3. :func:`matrix_rows` gives, per score, the AUROC for correct vs misclassified items with its
   95% bootstrap interval (grouped by subject / patient / lesion) and the AURC.
4. :func:`added_value` asks whether the explanation scores add to the baselines: out-of-fold
   predictions of a logistic model on the baselines alone vs baselines + explanation scores, and
   the paired difference of their AUROCs with a bootstrap interval.
5. :func:`conformal_rows` runs the Learn-then-Test abstention rule (:mod:`uqxai_lib.conformal`)
   on repeated calibration / test splits for every score.
6. Beyond Grad-CAM: :func:`case_control` picks the items of the method matrix (misclassified and
   correct ones in equal numbers), :func:`method_stack` samples any method of
   :mod:`uqxai_lib.attribution` (or a CAM) under each source, :func:`method_rows` turns a stack into
   matrix rows through :func:`uqxai_lib.protocol.evaluate` (AUROC with interval, AURC, added value
   over the baselines), and :func:`fidelity_row` scores each method's reference maps against the
   ground-truth masks (mass in mask vs chance).

Empty and degenerate maps are never silently counted as agreement: an item with an all-zero map
in some sample has no top-q region there, so its ``jaccard`` is NaN; a sample map that is
constant has no ranks, so it counts as ρ = 0 against a non-constant reference (it agrees with
nothing), and ``spearman`` is NaN only when the reference map itself is constant. Both counts are
returned (``n_empty``, ``n_degenerate``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import attribution, conformal, metrics, protocol, saliency, samplers, stats
from ..report import fmt_bracket

__all__ = [
    "SOURCES",
    "SourceStack",
    "BASELINE_SCORES",
    "EXPLANATION_SCORES",
    "ORIENTATION",
    "added_value",
    "case_control",
    "fidelity_row",
    "method_rows",
    "method_stack",
    "conformal_rows",
    "confidence",
    "item_scores",
    "matrix_rows",
    "operating_points",
    "reference_maps",
    "run_source",
]

SOURCES = ("test_time", "mc_dropout", "rashomon", "rashomon_finetuned", "seed_ensemble")

EXPLANATION_SCORES = ("jaccard", "spearman")
BASELINE_SCORES = ("entropy", "mutual_information", "margin", "flip_rate")
#: +1: higher = more trustworthy; -1: higher = less trustworthy (an uncertainty)
ORIENTATION = {"jaccard": 1, "spearman": 1, "entropy": -1, "mutual_information": -1, "margin": 1, "flip_rate": -1}


def item_scores(maps: Tensor, probs: Tensor, reference: Tensor, clean_pred: Tensor, *,
                quantile: float = 0.9) -> dict[str, Any]:
    """Per-item scores of one uncertainty source.

    Parameters
    ----------
    maps : ``[S, B, *spatial]`` explanations of the S samples (MC passes, perturbed draws,
        pruned models, ensemble members), S ≥ 2.
    probs : ``[S, B, C]`` softmax outputs of the same samples.
    reference : ``[B, *spatial]`` the reference map (the unperturbed model's map of the clean input).
    clean_pred : ``[B]`` the reference model's prediction on the clean input (the explained class).
    quantile : the top-q region is the top ``1 − quantile`` share of positions (0.9: top 10 %).

    Returns a dict of float64 NumPy ``[B]`` arrays for every name in :data:`EXPLANATION_SCORES`
    and :data:`BASELINE_SCORES`, plus ``n_empty`` (items without a defined Jaccard) and
    ``n_degenerate`` (constant sample maps, skipped) — the rules of :func:`uqxai_lib.protocol.stability`.
    """
    maps = torch.as_tensor(maps).detach().float().cpu()
    probs = torch.as_tensor(probs).detach().float().cpu()
    reference = torch.as_tensor(reference).detach().float().cpu()
    clean_pred = torch.as_tensor(clean_pred).detach().long().cpu()
    if maps.ndim < 3 or maps.shape[0] < 2:
        raise ValueError(f"item_scores: maps must be [S>=2, B, *spatial], got {tuple(maps.shape)}")
    s, b = maps.shape[:2]
    if probs.shape[:2] != (s, b) or reference.shape != maps.shape[1:] or clean_pred.shape != (b,):
        raise ValueError(f"item_scores: shapes disagree: maps {tuple(maps.shape)}, probs {tuple(probs.shape)}, "
                         f"reference {tuple(reference.shape)}, clean_pred {tuple(clean_pred.shape)}")
    # stability under the book's one rule book (constant maps and empty regions skipped and counted)
    stab = protocol.stability(maps, reference, q=quantile)
    jac = torch.tensor(stab["jaccard"], dtype=torch.float64)
    sp = torch.tensor(stab["rho"], dtype=torch.float64)
    mean_p = probs.double().mean(0)
    top2 = mean_p.topk(min(2, mean_p.shape[-1]), dim=-1).values
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[-1] > 1 else 0.0)
    flips = (probs.argmax(-1) != clean_pred[None]).double().mean(0)
    return {
        "jaccard": jac.numpy(),
        "spearman": sp.numpy(),
        "entropy": metrics.predictive_entropy(probs.double()).numpy(),
        "mutual_information": metrics.mutual_information(probs.double()).numpy(),
        "margin": margin.numpy(),
        "flip_rate": flips.numpy(),
        "n_empty": stab["n_undefined_jaccard"],
        "n_degenerate": stab["n_constant_samples"],
    }


def confidence(scores: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The scores oriented by :data:`ORIENTATION` (higher = more trustworthy), float64.

    >>> confidence({"entropy": [0.1, 0.7], "margin": [0.9, 0.2]})
    {'entropy': array([-0.1, -0.7]), 'margin': array([0.9, 0.2])}
    """
    names = [n for n in (names or scores) if n in ORIENTATION]
    return {n: ORIENTATION[n] * np.asarray(scores[n], dtype=np.float64) for n in names}


def _rank_nan_lowest(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    if np.isnan(out).any():
        finite = out[np.isfinite(out)]
        out[np.isnan(out)] = (finite.min() - 1.0) if finite.size else 0.0
    return out


def matrix_rows(modality: str, source: str, scores: Mapping[str, Any], correct: Any, *, groups: Any = None,
                strata: Any = None, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """One row per score: ``modality, source, score, kind ("explanation" | "baseline"), auroc,
    auroc_ci95, aurc, n_nan`` — AUROC of the oriented score for correct (positive) vs misclassified,
    with its bootstrap interval (over ``groups`` if given); AURC with NaN scores ranked lowest. With
    ``strata`` (the predicted class of each item) the explanation scores' rows also carry ``within_class_auroc`` and its interval
    (:func:`uqxai_lib.stats.stratified_auroc`: pairs within one predicted class only, so a score that
    tracks the predicted class cannot pass for an error detector), and ``within_class_reason`` when
    it is undefined."""
    ok = np.asarray(correct).astype(bool).reshape(-1)
    rows = []
    for name, conf in confidence(scores).items():
        comp = stats.group_difference(conf, ok, groups=groups, n_boot=n_boot, seed=seed)
        aurc = metrics.aurc(torch.as_tensor(ok), torch.as_tensor(_rank_nan_lowest(conf)))
        row = {"modality": modality, "source": source, "score": name,
               "kind": "explanation" if name in EXPLANATION_SCORES else "baseline",
               "auroc": comp["auroc"], "auroc_ci95": comp["auroc_ci95"], "aurc": aurc,
               "n_nan": comp["n_nan"]}
        if strata is not None and row["kind"] == "explanation":
            row.update(_within_class(conf, ok, strata, groups, n_boot=n_boot, seed=seed))
        rows.append(row)
    return rows


def _within_class(conf: Any, ok: np.ndarray, strata: Any, groups: Any, *, n_boot: int, seed: int) -> dict:
    """``within_class_auroc``, its interval and ``within_class_reason`` of an oriented score: pairs
    within one predicted class only (:func:`uqxai_lib.stats.stratified_auroc`, items with a defined score)."""
    conf = np.asarray(conf, dtype=float)
    fin = np.isfinite(conf)
    g = None if groups is None else np.asarray(groups)[fin]
    wc = stats.stratified_auroc(conf[fin], ok[fin], np.asarray(strata)[fin], groups=g, n_boot=n_boot, seed=seed)
    return {"within_class_auroc": wc["auroc"], "within_class_auroc_ci95": wc["ci95"],
            "within_class_reason": wc.get("reason")}




def added_value(scores: Mapping[str, Any], correct: Any, *, baselines: Sequence[str] = BASELINE_SCORES,
                extra: Sequence[str] = EXPLANATION_SCORES, folds: int = 5, n_boot: int = 2000,
                seed: int = 0) -> dict:
    """Do the ``extra`` (explanation) scores add to the ``baselines`` for telling errors apart?

    Out-of-fold logistic predictions (:func:`uqxai_lib.stats.out_of_fold_probability`, scikit-learn)
    of "correct" from the baselines alone and from baselines +
    extras (a NaN score is replaced by the score's median over all items; their number is
    returned as ``n_nan``). Returns
    ``auroc_baselines, auroc_combined, delta, delta_ci95`` (paired, stratified bootstrap over items
    of the two out-of-fold AUROCs) and ``verdict`` from the interval. The bootstrap holds the
    fitted models fixed, so it shows the variation over test items, not over refits.
    """
    ok = np.asarray(correct).astype(bool).reshape(-1)
    if ok.all() or not ok.any():
        return {"auroc_baselines": math.nan, "auroc_combined": math.nan, "delta": math.nan,
                "delta_ci95": [math.nan, math.nan], "verdict": "no detectable difference", "n_nan": 0}
    conf = confidence(scores, [*baselines, *extra])

    def design(names):
        cols = []
        for n in names:
            v = conf[n].copy()
            v[~np.isfinite(v)] = np.nanmedian(v) if np.isfinite(v).any() else 0.0
            cols.append(v)
        return np.stack(cols, 1)

    n_nan = int(sum((~np.isfinite(conf[n])).sum() for n in extra))
    folds = max(2, min(folds, int(ok.sum()), int((~ok).sum())))
    p_base = stats.out_of_fold_probability(design(baselines), ok, folds=folds, seed=seed)
    p_comb = stats.out_of_fold_probability(design([*baselines, *extra]), ok, folds=folds, seed=seed)
    d = stats.auroc_difference(p_base, p_comb, ok, n_boot=n_boot, seed=seed)
    return {"auroc_baselines": d["auroc_a"], "auroc_combined": d["auroc_b"], "delta": d["delta"],
            "delta_ci95": d["delta_ci95"], "verdict": d["verdict"], "n_nan": n_nan}



def conformal_rows(modality: str, source: str, scores: Mapping[str, Any], correct: Any, *, alpha: float = 0.1,
                   delta: float = 0.1, n_splits: int = 200, seed: int = 0) -> list[dict]:
    """Learn-then-Test abstention for every oriented score (NaN ranked lowest = never answered first):
    ``modality, source, score, alpha, delta, n_splits, fraction_risk_le_alpha, fraction_ci95,
    mean_coverage, mean_risk, n_abstain_all`` plus the per-split ``risks`` and ``coverages``."""
    ok = np.asarray(correct).astype(bool).reshape(-1)
    rows = []
    for name, conf in confidence(scores).items():
        res = conformal.repeated_splits(_rank_nan_lowest(conf), ok, alpha=alpha, delta=delta,
                                        n_splits=n_splits, seed=seed)
        rows.append({"modality": modality, "source": source, "score": name, **res})
    return rows


class SourceStack(NamedTuple):
    """One source's samples for the test items: maps ``[S, B, *sp]``, probs ``[S, B, C]``, and what
    built them (``info``: counts such as kept models)."""

    maps: Tensor
    probs: Tensor
    info: dict


def _empty_stack(x: Tensor, info: dict) -> SourceStack:
    """A stack of no samples (a set with fewer than 2 models): ``maps`` and ``probs`` shaped ``[0, B]``."""
    empty = x.new_zeros((0, *x.shape[:1]))
    return SourceStack(empty, empty, info)


def reference_maps(model: torch.nn.Module, x: Tensor, layer: str, method: str) -> tuple[Tensor, Tensor]:
    """The reference model's clean prediction and its map for that class: ``(pred [B], map [B, *sp])``
    (dropout off: the model is put in eval mode by the caller)."""
    with torch.no_grad():
        pred = model(x).argmax(1)
    return pred, saliency.explain(model, x, layer, pred, method).detach()


def run_source(source: str, model: torch.nn.Module, x: Tensor, target: Tensor, *, layer: str, method: str,
               perturbations: Mapping[str, Any] | None = None, draws_per_kind: int = 3, mc_passes: int = 10,
               mc_rate: float | None = None, x_val: Tensor | None = None, y_val: Tensor | None = None,
               head: torch.nn.Linear | None = None, rashomon_k: int = 40, prune_ratio: float = 0.2,
               epsilon: float = 0.05, members: Sequence[torch.nn.Module] = (),
               finetuned: Sequence[torch.nn.Module] = (), seed: int = 0) -> SourceStack:
    """The samples of one source of explanation uncertainty, every map explaining ``target``.

    ``test_time``: ``draws_per_kind`` draws of each perturbation (stacked kind after kind);
    ``mc_dropout``: ``mc_passes`` passes at rate ``mc_rate`` (``None``: the trained rates);
    ``rashomon``: the kept models of a ``rashomon_k``-candidate set at ``prune_ratio`` /
    ``epsilon`` on the validation data (closed form when ``head`` is given; fewer than 2 kept
    models give an empty stack and ``info["n_kept"]``); ``rashomon_finetuned``: the kept models of a
    fine-tuned set (``finetuned``: :attr:`uqxai_lib.finetune.FinetunedSet.kept_models`; fewer than 2
    give an empty stack); ``seed_ensemble``: the ``members``.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {SOURCES}")
    gen = torch.Generator().manual_seed(int(seed))
    if source == "test_time":
        if not perturbations:
            raise ValueError("test_time needs perturbations: a mapping name -> perturb(x, generator)")
        parts = [samplers.test_time(model, x, layer, f, draws_per_kind, method=method, target=target, generator=gen)
                 for f in perturbations.values()]
        return SourceStack(torch.cat([q.maps for q in parts]), torch.cat([q.probs for q in parts]),
                           {"kinds": list(perturbations), "draws_per_kind": int(draws_per_kind)})
    if source == "mc_dropout":
        st = samplers.mc_dropout(model, x, layer, mc_passes, p=mc_rate, method=method, target=target, generator=gen)
        return SourceStack(st.maps, st.probs, {"passes": int(mc_passes), "rate": mc_rate})
    if source == "rashomon":
        if x_val is None or y_val is None:
            raise ValueError("rashomon needs the validation data x_val, y_val for the (1 + epsilon) loss filter")
        rset = samplers.rashomon(model, layer, x_val, y_val, k=rashomon_k, prune_ratio=prune_ratio, epsilon=epsilon,
                                 generator=gen, head=head, class_weight="balanced")
        n_kept = int(rset.kept.sum())
        info = {"n_candidates": int(rashomon_k), "n_kept": n_kept, "prune_ratio": prune_ratio, "epsilon": epsilon}
        if n_kept < 2:
            return _empty_stack(x, info)
        st = samplers.rashomon_maps(model, layer, x, rset, method=method, head=head, target=target)
        return SourceStack(st.maps, st.probs, info)
    if source == "rashomon_finetuned":
        if len(finetuned) < 2:
            return _empty_stack(x, {"n_kept": len(finetuned)})
        members = finetuned
    elif len(members) < 2:
        raise ValueError(f"seed_ensemble needs at least 2 members besides the reference model, got {len(members)}")
    maps, probs = [], []
    for m in members:
        maps.append(saliency.explain(m, x, layer, target, method).detach())
        with torch.no_grad():
            probs.append(torch.softmax(m(x), -1))
    key = "n_kept" if source == "rashomon_finetuned" else "n_members"
    return SourceStack(torch.stack(maps), torch.stack(probs), {key: len(members)})


def operating_points(conf: Any, correct: Any, alphas: Sequence[float], *, delta: float = 0.1,
                     calibration_fraction: float = 0.5, seed: int = 0) -> dict:
    """One seeded calibration / test split; for each α the Learn-then-Test threshold from the
    calibration part and what it does on the test part.

    Returns ``test_index`` (items of the test part), the test part's risk–coverage curve
    (``coverage``, ``risk``; :func:`uqxai_lib.metrics.risk_coverage`) and ``points``: per α a dict
    ``alpha, threshold, n_calibration_answered, coverage, risk, answered`` (bool per test item).
    """
    conf = _rank_nan_lowest(np.asarray(conf, dtype=np.float64).reshape(-1))
    ok = np.asarray(correct).astype(bool).reshape(-1)
    if conf.size != ok.size:
        raise ValueError(f"operating_points: {conf.size} scores but {ok.size} correctness flags")
    perm = np.random.default_rng(seed).permutation(ok.size)
    n_cal = int(round(calibration_fraction * ok.size))
    cal, test = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    cov, risk = metrics.risk_coverage(torch.as_tensor(ok[test]), torch.as_tensor(conf[test]))
    points = []
    for a in alphas:
        t = conformal.ltt_threshold(conf[cal], ok[cal], alpha=float(a), delta=delta)
        r, c = conformal.selective_risk(conf[test], ok[test], t.threshold)
        points.append({"alpha": float(a), "threshold": t.threshold, "n_calibration_answered": t.n_answered,
                       "coverage": c, "risk": r, "answered": (conf[test] > t.threshold).tolist()})
    return {"test_index": test.tolist(), "coverage": cov.numpy(), "risk": risk.numpy(), "points": points}


# ----------------------------------------------------------------------------- beyond Grad-CAM
def case_control(correct: Any, n_each: int, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of up to ``n_each`` misclassified and as many correct items (seeded draw).

    The AUROC of correct vs misclassified does not depend on how many of each are sampled, so a
    case-control sample keeps the error group large enough for an interval at a fraction of the cost.

    >>> case_control([True] * 8 + [False] * 3, 2).tolist()
    [1, 2, 9, 10]
    """
    ok = np.asarray(correct).astype(bool).reshape(-1)
    rng = np.random.default_rng(seed)
    bad, good = np.flatnonzero(~ok), np.flatnonzero(ok)
    n = int(min(n_each, len(bad), len(good)))
    return np.sort(np.r_[rng.choice(bad, n, replace=False), rng.choice(good, n, replace=False)])


def method_stack(source: str, method: str, model: torch.nn.Module, x: Tensor, target: Tensor, *, layer: str,
                 perturbations: Mapping[str, Any] | None = None, draws_per_kind: int = 1, mc_passes: int = 4,
                 mc_rate: float | None = None, x_val: Tensor | None = None, y_val: Tensor | None = None,
                 head: torch.nn.Linear | None = None, rashomon_k: int = 40, prune_ratio: float = 0.2,
                 epsilon: float = 0.05, members: Sequence[torch.nn.Module] = (),
                 finetuned: Sequence[torch.nn.Module] = (), max_models: int | None = None,
                 seed: int = 0, options: Mapping[str, Any] | None = None) -> SourceStack:
    """The samples of one source for ``method``: a CAM goes through :func:`run_source`, any method of
    :mod:`uqxai_lib.attribution` through :func:`uqxai_lib.attribution.sample_stack` (maps at input
    resolution, normalised by its rule). ``layer`` is the CAM layer and the Rashomon pruning site;
    ``max_models`` caps the Rashomon models explained; ``options`` go to the method."""
    if method in saliency.METHODS:
        return run_source(source, model, x, target, layer=layer, method=method, perturbations=perturbations,
                          draws_per_kind=draws_per_kind, mc_passes=mc_passes, mc_rate=mc_rate, x_val=x_val,
                          y_val=y_val, head=head, rashomon_k=rashomon_k, prune_ratio=prune_ratio, epsilon=epsilon,
                          members=members, finetuned=finetuned, seed=seed)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {SOURCES}")
    opts = dict(options or {})
    gen = torch.Generator().manual_seed(int(seed))
    kw = dict(method=method, generator=gen, target=target, **opts)
    if source == "test_time":
        if not perturbations:
            raise ValueError("test_time needs perturbations: a mapping name -> perturb(x, generator)")
        parts = [attribution.sample_stack(model, x, source="test_time", n=draws_per_kind, perturb=f, **kw)
                 for f in perturbations.values()]
        return SourceStack(torch.cat([q.maps for q in parts]), torch.cat([q.probs for q in parts]),
                           {"kinds": list(perturbations), "draws_per_kind": int(draws_per_kind)})
    if source == "mc_dropout":
        st = attribution.sample_stack(model, x, source="mc_dropout", n=mc_passes, p=mc_rate, **kw)
        return SourceStack(st.maps, st.probs, {"passes": int(mc_passes), "rate": mc_rate})
    if source == "rashomon":
        if x_val is None or y_val is None:
            raise ValueError("rashomon needs the validation data x_val, y_val for the (1 + epsilon) loss filter")
        st = attribution.sample_stack(model, x, source="rashomon", n=rashomon_k, layer=layer, x_val=x_val, y_val=y_val,
                                      prune_ratio=prune_ratio, epsilon=epsilon, head=head, class_weight="balanced",
                                      max_models=max_models, **kw)
        return SourceStack(st.maps, st.probs, {"n_candidates": int(rashomon_k), "n_explained": int(st.maps.shape[0]),
                                               "max_models": max_models})
    if source == "rashomon_finetuned":
        kept = list(finetuned)[:max_models] if max_models else list(finetuned)
        if len(kept) < 2:
            return _empty_stack(x, {"n_kept": len(finetuned), "n_explained": 0})
        st = attribution.sample_stack(model, x, source="ensemble", models=kept, **kw)
        return SourceStack(st.maps, st.probs, {"n_kept": len(finetuned), "n_explained": len(kept)})
    if len(members) < 2:
        raise ValueError(f"seed_ensemble needs at least 2 members besides the reference model, got {len(members)}")
    st = attribution.sample_stack(model, x, source="ensemble", models=list(members), **kw)
    return SourceStack(st.maps, st.probs, {"n_members": len(members)})


#: the protocol's name of each source of this chapter
PROTOCOL_SOURCE = {"test_time": "test_time", "mc_dropout": "mc_dropout", "rashomon": "rashomon",
                   "rashomon_finetuned": "ensemble", "seed_ensemble": "ensemble"}
#: the chapter's score names -> the protocol's stability keys
STABILITY_KEYS = {"spearman": "rho", "jaccard": "jaccard"}


def method_rows(modality: str, source: str, method: str, stack: Mapping[str, Any], reference: Tensor,
                clean_probs: Tensor, y: Tensor, target: Tensor, *, groups: Any = None, quantile: float = 0.9,
                folds: int = 5, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Matrix rows of one (modality, source, method) stack, one per score of :data:`EXPLANATION_SCORES`:
    ``method, modality, source, score, auroc, auroc_ci95, verdict, reason`` (from
    :func:`uqxai_lib.protocol.evaluate`'s primary section: correct vs misclassified, one bootstrap),
    ``aurc``, ``n_nan``, and the added value of that score over the prediction-only baselines out of
    sample (``added_delta``, ``added_ci95``, ``added_verdict``, ``auroc_baselines``; :func:`added_value`),
    and the AUROC within each predicted class (``target``): ``within_class_auroc`` with its interval.
    A stack with fewer than 2 samples gives rows with NaN and the reason."""
    maps, probs = torch.as_tensor(stack["maps"]), torch.as_tensor(stack["probs"])
    base = {"method": method, "modality": modality, "source": source}
    if maps.shape[0] < 2:
        reason = f"{maps.shape[0]} sample(s): no variation to measure"
        return [{**base, "score": sc, "auroc": math.nan, "auroc_ci95": [math.nan, math.nan], "verdict": "undefined",
                 "reason": reason, "aurc": math.nan, "n_nan": int(len(y)), "added_delta": math.nan,
                 "added_ci95": [math.nan, math.nan], "added_verdict": "undefined", "auroc_baselines": math.nan,
                 "within_class_auroc": math.nan, "within_class_auroc_ci95": [math.nan, math.nan],
                 "within_class_reason": reason, "n_samples": int(maps.shape[0])} for sc in EXPLANATION_SCORES]
    rows = []
    for sc in EXPLANATION_SCORES:
        rec = protocol.evaluate(maps, reference, probs, clean_probs, y, target=target, source=PROTOCOL_SOURCE[source],
                                method=method, groups=groups, score=STABILITY_KEYS[sc], q=quantile, seed=seed,
                                n_boot=n_boot)
        prim = rec.primary
        pred = rec.prediction
        ok = np.asarray(pred["correct"], dtype=bool)  # the clean prediction vs the label, as the protocol judges it
        scores = {sc: np.asarray(rec.stability[STABILITY_KEYS[sc]], dtype=np.float64)}
        for b in BASELINE_SCORES:
            v = pred.get(b)
            if v is not None:
                scores[b] = np.asarray(v, dtype=np.float64)
        conf = confidence(scores, [sc])[sc]
        aurc = metrics.aurc(torch.as_tensor(ok), torch.as_tensor(_rank_nan_lowest(conf)))
        add = added_value(scores, ok, baselines=[b for b in BASELINE_SCORES if b in scores], extra=(sc,), folds=folds,
                          n_boot=n_boot, seed=seed)
        rows.append({**base, "score": sc, "auroc": prim["auroc"], "auroc_ci95": prim["auroc_ci95"],
                     "verdict": prim["verdict"], "reason": prim["reason"], "aurc": aurc,
                     "n_nan": int(prim["n_undefined"]), "added_delta": add["delta"], "added_ci95": add["delta_ci95"],
                     "added_verdict": add["verdict"], "auroc_baselines": add["auroc_baselines"],
                     **_within_class(conf, ok, np.asarray(target).reshape(-1), groups, n_boot=n_boot, seed=seed),
                     "n_samples": int(maps.shape[0])})
    return rows


def fidelity_row(modality: str, method: str, reference: Tensor, masks: Tensor, *, groups: Any = None,
                 quantile: float = 0.9, n_boot: int = 2000, seed: int = 0) -> dict:
    """How right a method's maps are: :func:`uqxai_lib.protocol.fidelity_section` of the reference
    maps (upsampled to the mask grid) — ``mass_in_mask`` with its interval vs ``chance`` (the masks'
    area share), their ratio ``lift``, ``pointing_game`` and ``n_items`` with a non-empty mask."""
    masks = torch.as_tensor(masks).bool().cpu()
    fid = protocol.fidelity_section(torch.as_tensor(reference).cpu(), masks, q=quantile, groups=groups,
                                    n_boot=n_boot, seed=seed)
    chance = fid["chance"]
    return {"method": method, "modality": modality, "mass_in_mask": fid["mass_in_mask"],
            "mass_in_mask_ci95": fid["mass_in_mask_ci95"], "chance": chance,
            "lift": fid["mass_in_mask"] / chance if chance and math.isfinite(chance) and chance > 0 else math.nan,
            "pointing_game": fid["pointing_game"], "n_items": int(masks.flatten(1).any(1).sum())}


# ----------------------------------------------------------------------------- the chapter's pipeline
def _pool_key(source: str, members: Sequence[torch.nn.Module], finetuned: Sequence[torch.nn.Module]) -> list | None:
    from ..models.resnet_mc import weights_fingerprint

    pool = {"seed_ensemble": members, "rashomon_finetuned": finetuned}.get(source)
    return None if pool is None else [weights_fingerprint(mm) for mm in pool]


def source_stacks(setups: Mapping[str, Any], items: Mapping[str, tuple], *, draws_per_kind: int, mc_passes: int,
                  mc_rates: Mapping[str, float], rashomon_k: int, prune_ratios: Mapping[str, float], epsilon: float,
                  ensemble_seeds: Sequence[int], finetune_k: int, finetune_epochs: int, finetune_lr_factor: float,
                  seed: int, device: Any, key: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """Every source's stack on every modality: ``(stacks, finetuned)`` with ``stacks[name, source]``
    a :class:`SourceStack` as a dict (:func:`run_source`, cached under ``cross_study/stack`` by its
    settings, the model's weights and ``key``) and ``finetuned[name]`` the modality's fine-tuned
    Rashomon set (:func:`uqxai_lib.studies.modalities.finetuned`). ``setups``: name ->
    :class:`~uqxai_lib.studies.modalities.Modality`; ``items``: name -> (test set, clean prediction)."""
    from .. import cache
    from ..models.resnet_mc import weights_fingerprint
    from . import modalities

    stacks, finetuned = {}, {}
    for name, m in setups.items():
        test, pred = items[name]
        members = modalities.members(m, ensemble_seeds)
        finetuned[name] = modalities.finetuned(m, k=finetune_k, epochs=finetune_epochs, epsilon=epsilon, seed=seed,
                                               lr_factor=finetune_lr_factor, device=device)
        kept_ft = finetuned[name].kept_models
        for source in SOURCES:
            cfg = dict(modality=name, source=source, weights=weights_fingerprint(m.model), n=len(test), seed=seed,
                       draws_per_kind=draws_per_kind, passes=mc_passes, rate=mc_rates[name], k=rashomon_k,
                       ratio=prune_ratios[name], eps=epsilon, members=_pool_key(source, members, kept_ft),
                       **dict(key or {}))
            stacks[name, source] = cache.cached("cross_study/stack", cfg, lambda: run_source(
                source, m.model, test.x, pred, layer=m.layer, method=m.method, perturbations=m.perturbations,
                draws_per_kind=draws_per_kind, mc_passes=mc_passes, mc_rate=mc_rates[name], x_val=m.val.x.to(device),
                y_val=m.val.y.to(device), head=m.head, rashomon_k=rashomon_k, prune_ratio=prune_ratios[name],
                epsilon=epsilon, members=members, finetuned=kept_ft, seed=seed)._asdict())
    return stacks, finetuned


def method_matrix(setups: Mapping[str, Any], items: Mapping[str, tuple], refs: Mapping[str, Tensor],
                  stacks: Mapping[tuple, Mapping], finetuned: Mapping[str, Any], *, methods: Sequence[str],
                  items_each: int, options: Mapping[str, Mapping], draws_per_kind: int, mc_passes: int,
                  mc_rates: Mapping[str, float], rashomon_k: int, prune_ratios: Mapping[str, float], epsilon: float,
                  ensemble_seeds: Sequence[int], max_models: int | None, quantile: float, folds: int, n_boot: int,
                  seed: int, device: Any, key: Mapping[str, Any] | None = None,
                  modality_keys: Mapping[str, Any] | None = None) -> tuple[list, list, dict]:
    """Beyond Grad-CAM: on a case-control sample of each modality (:func:`case_control`,
    ``items_each`` errors and as many correct items), the chapter's CAM (its full ``stacks``
    restricted to the sample) and every method of ``methods`` under every source
    (:func:`method_stack`, cached under ``cross_study/method_stack``), scored by :func:`method_rows`;
    the fidelity of each method's clean maps (:func:`fidelity_row`) where the modality has masks.
    Returns ``(rows, fidelity_rows, info)``, ``info[name]``: the sample's size, errors and spatial dims."""
    from .. import cache
    from ..models.resnet_mc import weights_fingerprint
    from . import modalities

    rows, fidelity_rows, info = [], [], {}
    for name, m in setups.items():
        test, pred = items[name]
        ok = (pred.cpu() == test.y.cpu()).numpy()
        idx = torch.as_tensor(case_control(ok, items_each, seed=seed))
        sub = test.subset(idx)
        x, y, tgt = sub.x, sub.y.cpu(), pred[idx.to(pred.device)]
        with torch.no_grad():
            clean_probs = m.model(x).float().softmax(-1).cpu()
        grp = None if sub.group is None else sub.group.cpu().numpy()
        members = modalities.members(m, ensemble_seeds)
        kept_ft = finetuned[name].kept_models
        info[name] = {"items": len(idx), "misclassified": int((~ok[idx.numpy()]).sum()), "spatial_dims": m.spatial_dims}
        for method in [m.method, *methods]:
            opts = dict(options.get(method, {}))
            if method in saliency.METHODS:
                ref = refs[name][idx.to(refs[name].device)].cpu()
            else:
                ref = attribution.explain(m.model, x, tgt, method, generator=torch.Generator().manual_seed(seed),
                                          **opts).cpu()
            if sub.mask is not None:
                fidelity_rows.append(fidelity_row(name, method, ref, sub.mask.cpu(), groups=grp, quantile=quantile,
                                                  n_boot=n_boot, seed=seed))
            for source in SOURCES:
                if method in saliency.METHODS:  # the chapter's CAM: its full stack, on these items
                    full = stacks[name, source]
                    st = {"maps": full["maps"][:, idx] if full["maps"].shape[0] else full["maps"],
                          "probs": full["probs"][:, idx] if full["probs"].shape[0] else full["probs"]}
                else:
                    cfg = dict(modality=name, source=source, method=method, options=opts,
                               weights=weights_fingerprint(m.model), items=idx.tolist(), seed=seed,
                               draws=draws_per_kind, passes=mc_passes, rate=mc_rates[name], k=rashomon_k,
                               ratio=prune_ratios[name], eps=epsilon, max_models=max_models,
                               volume=(modality_keys or {}).get(name), members=_pool_key(source, members, kept_ft),
                               **dict(key or {}))
                    st = cache.cached("cross_study/method_stack", cfg, lambda: method_stack(
                        source, method, m.model, x, tgt, layer=m.layer, perturbations=m.perturbations,
                        draws_per_kind=draws_per_kind, mc_passes=mc_passes, mc_rate=mc_rates[name],
                        x_val=m.val.x.to(device), y_val=m.val.y.to(device), head=m.head, rashomon_k=rashomon_k,
                        prune_ratio=prune_ratios[name], epsilon=epsilon, members=members, finetuned=kept_ft,
                        max_models=max_models, seed=seed, options=opts)._asdict())
                rows += method_rows(name, source, method, st, ref, clean_probs, y, tgt.cpu(), groups=grp,
                                    quantile=quantile, folds=folds, n_boot=n_boot, seed=seed)
    return rows, fidelity_rows, info


def right_vs_helps(fidelity_rows: Sequence[Mapping], rows: Sequence[Mapping], modalities: Sequence[str]) -> dict:
    """Per modality, the Spearman correlation over methods between a method's mass-in-mask lift
    (:func:`fidelity_row`) and its best AUROC over sources and scores (``rows`` of
    :func:`method_matrix`): positive if the methods whose maps are right are also those whose
    instability flags errors. NaN with fewer than 3 methods.

    >>> fid = [{"modality": "A", "method": m, "lift": l} for m, l in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    >>> cells = [{"modality": "A", "method": m, "auroc": v} for m, v in (("a", 0.5), ("b", 0.6), ("c", 0.7))]
    >>> right_vs_helps(fid, cells, ["A"])
    {'A': {'spearman_lift_vs_best_auroc': 1.0, 'n_methods': 3}}
    """
    from scipy.stats import spearmanr

    out = {}
    for name in modalities:
        lift, best_auc = [], []
        for r in fidelity_rows:
            if r["modality"] != name:
                continue
            aucs = [c["auroc"] for c in rows if c["modality"] == name and c["method"] == r["method"]
                    and c["auroc"] is not None and np.isfinite(c["auroc"])]
            if aucs and np.isfinite(r["lift"]):
                lift.append(r["lift"])
                best_auc.append(max(aucs))
        rho = spearmanr(lift, best_auc).statistic if len(lift) >= 3 else float("nan")
        out[name] = {"spearman_lift_vs_best_auroc": float(rho), "n_methods": len(lift)}
    return out


def design_rows(design_scores: Mapping[tuple, tuple], scores: Mapping[tuple, Any], correct: Mapping[str, Any],
                groups: Mapping[str, Any], *, n_boot: int, seed: int) -> list[dict]:
    """Each alternative design against the default on the same items: ``design_scores[(modality,
    source, label)] = (alternative item scores or None, the scores it affects)``; one row per affected
    score with the paired AUROC difference (:func:`uqxai_lib.stats.auroc_difference`) of default
    (``scores[(modality, source)]``) vs alternative, or NaN and "fewer than 2 samples"."""
    out = []
    for (name, source, label), (alt, affected) in design_scores.items():
        base = scores.get((name, source))
        for score in affected:
            if alt is None or base is None:
                res = {"auroc_a": float("nan"), "auroc_b": float("nan"), "delta": float("nan"),
                       "delta_ci95": [float("nan")] * 2, "verdict": "fewer than 2 samples", "n_nan": 0}
            else:
                conf_a = confidence(base, [score])[score]
                conf_b = confidence(alt, [score])[score]
                res = stats.auroc_difference(conf_a, conf_b, correct[name], groups=groups[name], n_boot=n_boot,
                                             seed=seed)
            out.append({"modality": name, "source": source, "alternative": label, "score": score, **res})
    return out


def abstention(scores: Mapping[tuple, Any], correct: Mapping[str, Any], modalities: Sequence[str], *,
               alpha: float, delta: float, n_splits: int, seed: int) -> tuple[dict, list, dict]:
    """Learn-then-Test abstention on every score: each modality's α below its own base error rate
    (:func:`uqxai_lib.conformal.choose_alpha`, ``alpha`` when it has no error), :func:`conformal_rows`
    per (modality, source) and :func:`uqxai_lib.conformal.summary` per modality. Returns
    ``(alphas, rows, summary)``."""
    alphas = {name: conformal.choose_alpha(correct[name]) if (~np.asarray(correct[name]).astype(bool)).any()
              else alpha for name in modalities}
    rows = []
    for (name, source), sc in scores.items():
        if sc is not None:
            rows += conformal_rows(name, source, sc, correct[name], alpha=alphas[name], delta=delta,
                                   n_splits=n_splits, seed=seed)
    summary = {name: conformal.summary([r for r in rows if r["modality"] == name]) for name in modalities}
    return alphas, rows, summary


def best_rules(rows: Sequence[Mapping], modalities: Sequence[str]) -> dict:
    """Per modality, the explanation score and the baseline with the highest mean coverage at the
    guaranteed risk (rows of :func:`conformal_rows`): ``{name: (explanation row, baseline row)}``."""
    best = {}
    for name in modalities:
        mine = [r for r in rows if r["modality"] == name]
        expl = max((r for r in mine if r["score"] in EXPLANATION_SCORES), key=lambda r: r["mean_coverage"])
        base = max((r for r in mine if r["score"] in BASELINE_SCORES), key=lambda r: r["mean_coverage"])
        best[name] = (expl, base)
    return best


#: the literature's modality -> our closest (modality, source) cell
CLOSEST = {"ecg": ("ECG", "seed_ensemble"), "chest_xray": ("MRI", "seed_ensemble"),
           "musculoskeletal_xray": ("MRI", "seed_ensemble")}


def literature_rows(literature: Sequence[Mapping], scores: Mapping[tuple, Any]) -> list[dict]:
    """The literature's figures (``studies/literature.yaml``, labelled as theirs) beside our closest
    cell's mean Spearman ρ and Jaccard (:data:`CLOSEST`; crafted perturbations -> test-time)."""
    out = []
    for e in literature:
        mod, src = CLOSEST.get(e["modality"], ("MRI", "seed_ensemble"))
        if e["source_kind"] == "other":
            src = "test_time"
        sc = scores.get((mod, src))
        ours = ("n/a" if sc is None else f"{mod}, {src}: mean Spearman ρ {np.nanmean(sc['spearman']):.2f}, "
                f"mean Jaccard {np.nanmean(sc['jaccard']):.2f}")
        out.append({"source": e["key"], "setting": e["setting"], "figure": e["figure"] + " (theirs)", "ours": ours})
    return out


def _cell(r: Mapping) -> str:
    lo, hi = r["auroc_ci95"]
    return f"{r['source']} / {r['score']} AUROC {r['auroc']:.2f} [{lo:.2f}, {hi:.2f}]"


def _finetuned_line(modalities: Sequence[str], matrix: Sequence[Mapping], added: Sequence[Mapping],
                    finetuned: Mapping[str, Mapping]) -> str:
    """The Summary's bullet on the fifth source: per modality the kept count of its fine-tuned set and,
    where it is defined (>= 2 kept), its AUROC per explanation score beside the pruned set's and
    whether it adds to the baselines."""
    def cell(name, source, score):
        return next((r for r in matrix if (r["modality"], r["source"], r["score"]) == (name, source, score)), None)

    parts = []
    for name in modalities:
        f = finetuned.get(name)
        if f is None:
            continue
        head = (f"{name} keeps {f['kept']} of {f['candidates']} (relative held-out loss "
                f"{f['relative loss min']:.2f} to {f['relative loss max']:.2f})")
        if f["kept"] < 2:
            parts.append(head + ", too few for a stack, so its cells are undefined")
            continue
        pairs = []
        for score in EXPLANATION_SCORES:
            ft, pr = cell(name, "rashomon_finetuned", score), cell(name, "rashomon", score)
            if ft is not None and np.isfinite(ft["auroc"]):
                pairs.append(f"{score} AUROC {ft['auroc']:.2f} {fmt_bracket(ft['auroc_ci95'], 2)}"
                             + (f" (pruned set {pr['auroc']:.2f})" if pr is not None and np.isfinite(pr["auroc"])
                                else ""))
        add = next((a for a in added if a["modality"] == name and a["source"] == "rashomon_finetuned"), None)
        parts.append(head + (": " + ", ".join(pairs) if pairs else "")
                     + (f"; added to the baselines: {add['verdict']}" if add is not None else ""))
    return ("- **Fine-tuned Rashomon sets** (fine-tuned from the optimal model, kept by the same (1 + ε) loss "
            "filter): " + "; ".join(parts) + "."
            + (" Where fewer than two are kept, fine-tuning left the early-stopped optimum's loss band; that is "
               "a finding about the filter on this optimum, reported rather than tuned away."
               if any(f["kept"] < 2 for f in finetuned.values()) else ""))


def summary_lines(modalities: Sequence[str], matrix: Sequence[Mapping], baselines: Sequence[Mapping],
                  added: Sequence[Mapping], method_cells: Sequence[Mapping], method_info: Mapping[str, Mapping],
                  rvh: Mapping[str, Mapping], design: Sequence[Mapping],
                  labels: Mapping[str, str] | None = None, finetuned: Mapping[str, Mapping] | None = None) -> str:
    """The chapter's Summary as Markdown bullets, every number from the records: per modality the
    matrix (cells above chance, best cell, best baseline, added value), the method matrix (cells
    above chance, the highest, added value, right-vs-helps), the fine-tuned Rashomon sets
    (``finetuned``: :func:`finetuned_summary`; kept models, and where at least 2 are kept their cells
    beside the pruned set's) and the design reruns. ``labels``: display names of the methods."""
    labels = labels or {}
    lines = []
    for name in modalities:
        ex = [r for r in matrix if r["modality"] == name and np.isfinite(r["auroc"])]
        bl = [r for r in baselines if r["modality"] == name and np.isfinite(r["auroc"])]
        top_ex = max(ex, key=lambda r: r["auroc"])
        top_bl = max(bl, key=lambda r: r["auroc"])
        n_inf = sum(stats.verdict([r["auroc_ci95"][0] - 0.5, r["auroc_ci95"][1] - 0.5]) == "higher" for r in ex)
        adds = [a for a in added if a["modality"] == name and a["verdict"] == "higher"]
        lines.append(
            f"- **{name}**: {n_inf} of {len(ex)} explanation cells have an interval above chance; the best is "
            f"{_cell(top_ex)}, the best prediction-only baseline {_cell(top_bl)}. Explanation scores add to the "
            f"baselines out of sample for {len(adds)} of {len([a for a in added if a['modality'] == name])} sources"
            + (f" ({', '.join(a['source'] for a in adds)})." if adds else "."))
    for name in modalities:
        cells = [r for r in method_cells if r["modality"] == name and r["auroc"] is not None
                 and np.isfinite(r["auroc"])]
        above = [r for r in cells if r["verdict"] == "higher"]
        adds = [r for r in cells if r["added_verdict"] == "higher"]
        top = max(cells, key=lambda r: r["auroc"]) if cells else None
        rho = rvh[name]["spearman_lift_vs_best_auroc"]
        lines.append(
            f"- **{name}, beyond Grad-CAM** ({method_info[name]['items']} case-control items, "
            f"{method_info[name]['misclassified']} misclassified): {len(above)} of {len(cells)} method cells have an "
            f"AUROC interval above chance"
            + (f"; the highest is {labels.get(top['method'], top['method'])} {top['source']} / {top['score']} "
               f"AUROC {top['auroc']:.2f} [{top['auroc_ci95'][0]:.2f}, {top['auroc_ci95'][1]:.2f}]" if top else "")
            + f". A method's stability score adds to entropy, margin and flip rate out of sample in {len(adds)} cells"
            + (" (" + ", ".join(f"{labels.get(r['method'], r['method'])} {r['source']} / {r['score']}"
                                for r in adds[:4]) + ("…" if len(adds) > 4 else "") + ")" if adds else "")
            + f". Right maps vs helpful uncertainty: Spearman over methods of mass-in-mask lift with the best AUROC "
            f"{rho:+.2f} ({rvh[name]['n_methods']} methods; few methods, so read only its sign and size).")
    if finetuned:
        lines.append(_finetuned_line(modalities, matrix, added, finetuned))
    changed = [r for r in design if r["verdict"] in ("higher", "lower")]
    widest = max((r["delta_ci95"] for r in design if np.isfinite(r["delta"])), key=lambda c: c[1] - c[0],
                 default=[float("nan")] * 2)
    lines.append(
        f"- **Design**: of {len(design)} explanation scores rerun under an alternative design, "
        f"{len(changed)} changed their AUROC beyond the interval"
        + (": " + "; ".join(f"{r['modality']} {r['source']} {r['score']} with {r['alternative']}: AUROC "
                            f"{r['auroc_a']:.2f} → {r['auroc_b']:.2f}, difference {r['delta']:+.2f} "
                            f"[{r['delta_ci95'][0]:+.2f}, {r['delta_ci95'][1]:+.2f}]" for r in changed)
           + ". Read each against 0.5: a change between two AUROCs on the same side of chance moves the "
             "size of an answer, not its direction."
           if changed else "; no difference is detectable at this sample size, which is not the same as none "
           f"(the widest interval is [{widest[0]:+.2f}, {widest[1]:+.2f}])."))
    return "\n".join(lines)


def study_items(setups: Mapping[str, Any], max_items: int, device: Any) -> tuple[dict, dict]:
    """The studied test items of each modality (an evenly spaced subset of at most ``max_items``)
    with the model's clean prediction and its map for that class: ``(items, refs)``,
    ``items[name] = (test set on device, pred)``, ``refs[name]`` the reference maps."""
    from . import modalities

    items, refs = {}, {}
    for name, m in setups.items():
        test = modalities.subsample(m.test, max_items).to(device)
        pred, refs[name] = reference_maps(m.model, test.x, m.layer, m.method)
        items[name] = (test, pred)
    return items, refs


def all_item_scores(stacks: Mapping[tuple, Mapping], items: Mapping[str, tuple], refs: Mapping[str, Tensor], *,
                    quantile: float) -> tuple[dict, dict, dict, dict]:
    """:func:`item_scores` of every stack (``None`` for a stack of fewer than 2 samples) and, per
    modality, ``correct`` (clean prediction == label), ``groups`` (or ``None``) and ``predicted``:
    ``(scores, correct, groups, predicted)``."""
    scores, correct, groups, predicted = {}, {}, {}, {}
    for (name, source), st in stacks.items():
        test, pred = items[name]
        correct[name] = (pred.cpu() == test.y.cpu()).numpy()
        predicted[name] = pred.cpu().numpy()
        groups[name] = None if test.group is None else test.group.cpu().numpy()
        scores[name, source] = (None if st["maps"].shape[0] < 2 else
                                item_scores(st["maps"], st["probs"], refs[name], pred, quantile=quantile))
    return scores, correct, groups, predicted


def all_matrix_rows(scores: Mapping[tuple, Any], correct: Mapping, groups: Mapping, predicted: Mapping, *,
                    n_boot: int, seed: int) -> tuple[list, list]:
    """:func:`matrix_rows` of every defined cell, split into ``(explanation rows, baseline rows)``."""
    matrix, baselines = [], []
    for (name, source), sc in scores.items():
        if sc is None:
            continue
        rows = matrix_rows(name, source, sc, correct[name], groups=groups[name], strata=predicted[name],
                           n_boot=n_boot, seed=seed)
        matrix += [r for r in rows if r["kind"] == "explanation"]
        baselines += [r for r in rows if r["kind"] == "baseline"]
    return matrix, baselines


def all_added_value(scores: Mapping[tuple, Any], correct: Mapping, *, folds: int, n_boot: int, seed: int) -> list:
    """:func:`added_value` of every defined cell, as rows with ``modality`` and ``source``."""
    return [{"modality": name, "source": source,
             **added_value(sc, correct[name], folds=folds, n_boot=n_boot, seed=seed)}
            for (name, source), sc in scores.items() if sc is not None]


def design_scores(setups: Mapping[str, Any], items: Mapping[str, tuple], refs: Mapping[str, Tensor],
                  stacks: Mapping[tuple, Mapping], *, quantile: float, design_quantile: float, mc_passes: int,
                  mc_rates: Mapping[str, float], prune_ratios: Mapping[str, float], design_prune_factor: float,
                  rashomon_k: int, epsilon: float, seed: int, device: Any,
                  key: Mapping[str, Any] | None = None) -> dict:
    """The chapter's three design alternatives on the same items, as :func:`design_rows` takes them:
    MRI MC dropout with Grad-CAM hooked after the last block's dropout (its own reference map), ECG
    test-time SUE with the top ``1 - design_quantile`` region (Jaccard only: ρ has no region), the
    dermoscopy Rashomon set at ``design_prune_factor`` times its pruning ratio (at most 0.95)."""
    from .. import cache
    from ..models.resnet_mc import GRADCAM_LAYER, explained_layer, weights_fingerprint

    key = dict(key or {})
    out = {}
    m, (test, pred) = setups["MRI"], items["MRI"]
    post_layer = explained_layer(m.model, GRADCAM_LAYER, "post_dropout")
    _, post_ref = reference_maps(m.model, test.x, post_layer, m.method)
    cfg = dict(modality="MRI", source="mc_dropout", layer=post_layer, weights=weights_fingerprint(m.model),
               n=len(test), seed=seed, passes=mc_passes, rate=mc_rates["MRI"], **key)
    st = cache.cached("cross_study/stack", cfg, lambda: run_source(
        "mc_dropout", m.model, test.x, pred, layer=post_layer, method=m.method, mc_passes=mc_passes,
        mc_rate=mc_rates["MRI"], seed=seed)._asdict())
    out["MRI", "mc_dropout", f"hook after the dropout ({post_layer})"] = (
        item_scores(st["maps"], st["probs"], post_ref, pred, quantile=quantile), EXPLANATION_SCORES)
    st = stacks["ECG", "test_time"]
    out["ECG", "test_time", f"top {1 - design_quantile:.0%} region"] = (
        item_scores(st["maps"], st["probs"], refs["ECG"], items["ECG"][1], quantile=design_quantile), ("jaccard",))
    m, (test, pred) = setups["dermoscopy"], items["dermoscopy"]
    ratio = min(0.95, prune_ratios["dermoscopy"] * design_prune_factor)
    cfg = dict(modality="dermoscopy", source="rashomon", weights=weights_fingerprint(m.model), n=len(test),
               seed=seed, k=rashomon_k, ratio=ratio, eps=epsilon, **key)
    st = cache.cached("cross_study/stack", cfg, lambda: run_source(
        "rashomon", m.model, test.x, pred, layer=m.layer, method=m.method, x_val=m.val.x.to(device),
        y_val=m.val.y.to(device), head=m.head, rashomon_k=rashomon_k, prune_ratio=ratio, epsilon=epsilon,
        seed=seed)._asdict())
    out["dermoscopy", "rashomon", f"prune ratio {ratio:g}"] = (
        None if st["maps"].shape[0] < 2 else
        item_scores(st["maps"], st["probs"], refs["dermoscopy"], pred, quantile=quantile), EXPLANATION_SCORES)
    return out


#: the keys of each record list in ``cross_study.json``
MATRIX_KEYS = ("modality", "source", "score", "auroc", "auroc_ci95", "aurc", "n_nan", "within_class_auroc",
               "within_class_auroc_ci95")
METHOD_KEYS = ("method", "modality", "source", "score", "auroc", "auroc_ci95", "verdict", "aurc", "n_nan",
               "added_delta", "added_ci95", "added_verdict", "auroc_baselines", "within_class_auroc",
               "within_class_auroc_ci95", "n_samples")
BASELINE_KEYS = ("modality", "source", "score", "auroc", "auroc_ci95", "aurc")
DESIGN_KEYS = ("modality", "source", "alternative", "score", "auroc_a", "auroc_b", "delta", "delta_ci95", "verdict",
               "n_nan")
CONFORMAL_KEYS = ("modality", "source", "score", "alpha", "delta", "n_splits", "fraction_risk_le_alpha",
                  "fraction_ci95", "mean_coverage", "mean_risk", "n_abstain_all", "base_risk", "coverage_at_guarantee",
                  "oracle_coverage", "trivial")


def results_record(setups: Mapping[str, Any], items: Mapping[str, tuple], stacks: Mapping[tuple, Mapping], *,
                   matrix: Sequence[Mapping], method_cells: Sequence[Mapping], fidelity_rows: Sequence[Mapping],
                   rvh: Mapping, method_info: Mapping, baselines: Sequence[Mapping], added: Sequence[Mapping],
                   design: Sequence[Mapping], conformal: Sequence[Mapping], conformal_summary: Mapping,
                   alphas: Mapping, literature: Sequence[Mapping], finetuned_sets: Mapping) -> dict:
    """``cross_study.json``: the chapter CAM's cells on all studied items (``items: "all"``), then
    every method's (CAM included) on the case-control sample, and the chapter's other records."""
    def pick(rows, keys, optional=False):  # a key every row must have is looked up, not skipped
        return [{k: r[k] for k in keys if not optional or k in r} for r in rows]

    return {
        "matrix": [{"method": setups[r["modality"]].method, "items": "all", **c}
                   for r, c in zip(matrix, pick(matrix, MATRIX_KEYS))]
                  + [{"items": "case_control", **c} for c in pick(method_cells, METHOD_KEYS)],
        "fidelity_by_method": list(fidelity_rows),
        "right_vs_helps": dict(rvh),
        "modalities": {n: {"spatial_dims": m.spatial_dims, "method_items": method_info[n]["items"],
                           "method_misclassified": method_info[n]["misclassified"]} for n, m in setups.items()},
        "baselines": pick(baselines, BASELINE_KEYS),
        "added_value": list(added),
        "design": pick(design, DESIGN_KEYS),
        "conformal": pick(conformal, CONFORMAL_KEYS, optional=True),
        "conformal_summary": dict(conformal_summary),
        "alpha_by_modality": dict(alphas),
        "literature": list(literature),
        "sources": {f"{n}/{s}": st["info"] for (n, s), st in stacks.items()},
        "finetuned_sets": dict(finetuned_sets),
        "accuracy": {n: float((pred.cpu() == test.y.cpu()).float().mean()) for n, (test, pred) in items.items()},
    }


def finetuned_summary(finetuned: Mapping[str, Any]) -> dict:
    """Per modality: candidates, kept models and the range of relative held-out loss of its fine-tuned set."""
    return {name: {"candidates": int(len(f.models)), "kept": int(f.kept.sum()),
                   "relative loss min": float(f.relative_loss.min()), "relative loss max": float(f.relative_loss.max())}
            for name, f in finetuned.items()}


def rule_operating_points(best: Mapping[str, tuple], scores: Mapping[tuple, Any], correct: Mapping, alphas: Any, *,
                          delta: float, calibration_fraction: float, seed: int, which: Sequence[int] = (0, 1)) -> dict:
    """:func:`operating_points` of the :func:`best_rules` of each modality on one seeded split:
    ``{name: {"<source>: <score>": op}}``, rules ``which`` (0 the explanation score, 1 the baseline)
    at ``alphas`` (a mapping name -> α, or one list of α for every modality)."""
    out = {}
    for name, rules in best.items():
        out[name] = {}
        for i in which:
            r = rules[i]
            conf = confidence(scores[name, r["source"]], [r["score"]])[r["score"]]
            grid = [alphas[name]] if isinstance(alphas, Mapping) else list(alphas)
            out[name][f"{r['source']}: {r['score']}"] = operating_points(
                conf, correct[name], grid, delta=delta, calibration_fraction=calibration_fraction, seed=seed)
    return out


def load_literature() -> list[dict]:
    """The literature's figures on saliency agreement (``studies/literature.yaml``: quote, setting, figure)."""
    import pathlib

    import yaml

    return yaml.safe_load((pathlib.Path(__file__).parent / "literature.yaml").read_text(encoding="utf-8"))

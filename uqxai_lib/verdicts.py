"""The verdict ladder: every rung of evidence a study chapter shows, each read by one rule.

A chapter's single-run interval is one rung among several that the same chapter shows can overturn
it. The ladder states them all, in :data:`RUNG_ORDER`:

* ``direction`` - the primary comparison of this build (correct vs misclassified) against the
  claim's expected direction;
* ``beyond_baselines`` - does the score add to the *strongest* prediction-only baseline out of
  sample (:func:`uqxai_lib.stats.added_value`);
* ``maps_right`` - explanation mass in the ground-truth mask against chance;
* ``sanity`` - the cascading model-randomisation check (passthrough of the assess record);
* ``within_class`` - the primary comparison inside each predicted class, pooled
  (:func:`uqxai_lib.stats.stratified_auroc`), so the predicted class cannot stand in for
  correctness;
* ``across_seeds`` - the primary effect over training seeds (:func:`uqxai_lib.stats.seed_summary`);
  the ladder's **headline**;
* ``across_threads`` - the single-run verdict at 1 and at 2 torch threads;
* ``paper_effect`` - whether our interval excludes the paper's own effect, is compatible with it,
  or is too wide to tell.

Each rung function reads records (assess sections, stats results, ``robustness.json``) and returns
``{"name", "outcome", "evidence"}`` (+ ``"reason"`` when the outcome is "undefined"), the evidence
a generated plain sentence with the numbers. Nothing here computes a statistic. Numbers are
formatted as in :mod:`uqxai_lib.report` (3 significant digits, intervals "lo to hi").

>>> r = direction({"effect": 0.186, "ci95": [0.055, 0.315], "verdict": "higher", "n_correct": 30,
...                "n_misclassified": 8}, "higher")
>>> r["outcome"], r["evidence"]
('reproduced', '+0.186 (95 % interval 0.055 to 0.315), 30 correct vs 8 misclassified')
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping, Sequence

from . import stats
from .report import RUNG_TITLES, fmt_interval, fmt_number
from .report import finite_ci as _ci

__all__ = ["OUTCOMES", "RUNG_ORDER", "RUNG_TITLES", "VerdictError", "direction", "beyond_baselines", "maps_right",
           "sanity", "within_class", "across_seeds", "across_threads", "paper_effect", "across_metrics", "robustness_rungs",
           "ladder", "data_line", "sentences"]

_REPRO = ("reproduced", "not reproduced", "reversed", "undefined")
#: The outcomes each rung may take.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "direction": _REPRO,
    "beyond_baselines": ("adds", "adds nothing", "undefined"),
    "maps_right": ("above chance", "at chance", "undefined"),
    "sanity": ("passed", "failed", "inconclusive"),
    "within_class": _REPRO,
    "across_seeds": _REPRO,
    "across_threads": ("same", "flips", "undefined"),
    "paper_effect": ("excluded", "compatible", "underpowered", "undefined"),
    "across_metrics": ("reproduced", "not reproduced", "reversed", "depends on the metric", "undefined"),
}
#: The rungs in the order a box shows them.
RUNG_ORDER = tuple(OUTCOMES)
#: Default location of the robustness chapter's record.
ROBUSTNESS_JSON = pathlib.Path(__file__).resolve().parents[1] / "_build" / "results" / "robustness.json"


class VerdictError(ValueError):
    """A ladder or rung that breaks the contract (unknown rung, outcome outside its set)."""


# ----------------------------------------------------------------------------------- formatting
def _f(x: Any) -> float:
    try:
        return math.nan if x is None else float(x)
    except (TypeError, ValueError):
        return math.nan


def _signed(x: Any) -> str:
    v = _f(x)
    return ("+" if math.isfinite(v) and v > 0 else "") + fmt_number(v)


def _with_ci(x: Any, ci: Any) -> str:
    return f"{_signed(x)} (95 % interval {fmt_interval(ci)})"


def _rung(name: str, outcome: str, evidence: str, reason: str | None = None) -> dict:
    if outcome not in OUTCOMES[name]:
        raise VerdictError(f"rung {name!r}: outcome {outcome!r} is not one of {OUTCOMES[name]}")
    out = {"name": name, "outcome": outcome, "evidence": evidence}
    if outcome == "undefined" or reason:
        out["reason"] = reason or "not given"
    return out


def _undefined(name: str, reason: str, evidence: str | None = None) -> dict:
    return _rung(name, "undefined", evidence or f"undefined: {reason}", reason)


def _expected(expected: str) -> str:
    if expected not in ("higher", "lower"):
        raise VerdictError(f"expected direction must be 'higher' or 'lower' (the claim's 'expected'), got {expected!r}")
    return expected


# ----------------------------------------------------------------------------------- the rungs
def direction(primary: Mapping[str, Any] | None, expected: str) -> dict:
    """Rung ``direction``: this run's primary interval against the claim's direction.

    ``primary`` is the assess record's primary section (``effect, ci95, verdict, reason, n_correct,
    n_misclassified``). "undefined" (with the primary's reason) when its verdict is "undefined" or
    the interval is not finite; else :func:`uqxai_lib.stats.reproduction` of the interval's verdict.
    """
    exp = _expected(expected)
    if not isinstance(primary, Mapping):
        return _undefined("direction", "no primary comparison in the record")
    counts = ""
    if primary.get("n_correct") is not None and primary.get("n_misclassified") is not None:
        counts = f", {int(primary['n_correct'])} correct vs {int(primary['n_misclassified'])} misclassified"
    ci = _ci(primary.get("ci95"))
    if primary.get("verdict") == "undefined" or ci is None:
        reason = primary.get("reason") or "the primary interval is not finite"
        return _undefined("direction", reason, f"undefined: {reason}{counts}")
    return _rung("direction", stats.reproduction(stats.verdict(ci), exp),
                 _with_ci(primary.get("effect"), ci) + counts)


def beyond_baselines(added: Mapping[str, Any] | None, *, score_name: str = "the score") -> dict:
    """Rung ``beyond_baselines`` from :func:`uqxai_lib.stats.added_value`: "adds" when the interval
    of the out-of-sample AUROC gain over the strongest baseline lies above 0, else "adds nothing"."""
    if not isinstance(added, Mapping):
        return _undefined("beyond_baselines", "no added-value comparison computed")
    ci = _ci(added.get("delta_ci95"))
    if added.get("verdict") == "undefined" or ci is None:
        return _undefined("beyond_baselines", added.get("reason") or "the interval of the gain is not finite")
    strongest = added.get("strongest")
    which = "the cross-fitted combination of the baselines" if strongest == "combination" else f"{strongest} alone"
    ev = (f"out-of-fold AUROC {fmt_number(added.get('auroc_with_score'))} with {score_name} added to the baselines vs "
          f"{fmt_number(added.get('auroc_strongest'))} for the strongest baseline ({which}); gain {_with_ci(added.get('delta'), ci)}")
    return _rung("beyond_baselines", "adds" if ci[0] > 0 else "adds nothing", ev)


def maps_right(fidelity: Mapping[str, Any] | None) -> dict:
    """Rung ``maps_right`` from the assess record's fidelity section: "above chance" when the
    interval of the mass in the mask lies above ``chance``, else "at chance" (the evidence says
    "below chance" when the interval lies below it)."""
    if not isinstance(fidelity, Mapping):
        return _undefined("maps_right", "no ground-truth masks to compare with")
    ci, chance = _ci(fidelity.get("mass_in_mask_ci95")), _f(fidelity.get("chance"))
    if ci is None or not math.isfinite(chance):
        return _undefined("maps_right", "the interval of the mass in the mask, or chance, is not finite")
    m = fmt_number(fidelity.get("mass_in_mask"))
    where = "above" if ci[0] > chance else "below" if ci[1] < chance else "at"
    ev = f"mass in the mask {m} (95 % interval {fmt_interval(ci)}) vs {fmt_number(chance)} by chance: {where} chance"
    return _rung("maps_right", "above chance" if where == "above" else "at chance", ev)


def sanity(section: Mapping[str, Any] | None) -> dict:
    """Rung ``sanity``: the assess record's sanity outcome, passed through, with the evidence of its
    steps (highest median ρ after randomisation against the threshold, constant maps counted)."""
    if not isinstance(section, Mapping) or section.get("outcome") not in OUTCOMES["sanity"]:
        return _rung("sanity", "inconclusive", "the cascading randomisation check was not run", "not run")
    steps = [s for s in section.get("steps", []) if isinstance(s, Mapping)]
    rhos = [(_f(s.get("median_rho")), s.get("randomised")) for s in steps]
    finite = [(r, n) for r, n in rhos if math.isfinite(r)]
    parts = []
    if finite:
        r, n = max(finite, key=lambda t: t[0])
        parts.append(f"highest median ρ with the trained maps {fmt_number(r)} (after randomising {n}) "
                     f"against the threshold {fmt_number(section.get('threshold'))}")
    n_const = sum(int(s.get("n_constant") or 0) for s in steps)
    n_all = sum(int(s.get("n") or 0) for s in steps)
    if steps:
        parts.append(f"{n_const} of {n_all} randomised maps constant over {len(steps)} step(s)")
    ev = "; ".join(parts) or f"outcome {section['outcome']}"
    return _rung("sanity", section["outcome"], ev, section.get("reason") if section["outcome"] != "passed" else None)


def within_class(strat: Mapping[str, Any] | None, expected: str) -> dict:
    """Rung ``within_class`` from :func:`uqxai_lib.stats.stratified_auroc` (pairs only within a
    predicted class): the interval of AUROC − 0.5 read as a direction against the claim's."""
    exp = _expected(expected)
    if not isinstance(strat, Mapping):
        return _undefined("within_class", "no class-stratified comparison computed")
    ci = _ci(strat.get("ci95"))
    counts = f"{int(strat.get('n_pos') or 0)} correct vs {int(strat.get('n_neg') or 0)} misclassified in classes holding both"
    if strat.get("verdict") == "undefined" or ci is None:
        reason = strat.get("reason") or "the interval is not finite"
        return _undefined("within_class", reason, f"undefined: {reason}")
    word = stats.verdict([ci[0] - 0.5, ci[1] - 0.5])
    ev = (f"AUROC {fmt_number(strat.get('auroc'))} (95 % interval {fmt_interval(ci)}) within the predicted class "
          f"(pairs only inside a class; {counts})")
    return _rung("within_class", stats.reproduction(word, exp), ev)


def across_seeds(summary: Mapping[str, Any] | None, expected: str, *, per_seed: Sequence[str] | None = None) -> dict:
    """Rung ``across_seeds`` (the headline) from :func:`uqxai_lib.stats.seed_summary`: the
    Student-t interval of the mean effect over training seeds against the claim's direction.
    ``per_seed``: single-seed verdict words, counted in the evidence. Undefined below 2 seeds."""
    exp = _expected(expected)
    if not isinstance(summary, Mapping):
        return _undefined("across_seeds", "the robustness chapter has not run")
    n = int(summary.get("n") or 0)
    ci = _ci(summary.get("ci95"))
    if n < 2 or ci is None:
        return _undefined("across_seeds", f"{n} training seed(s) with a finite effect (at least 2 needed)")
    ev = (f"mean {_with_ci(summary.get('mean'), ci)} over {n} training seeds; "
          f"{summary.get('sign_agreement', '?')} agree in sign")
    if per_seed:
        k = sum(stats.reproduction(w, exp) == "reproduced" for w in per_seed if w in stats.VERDICTS)
        ev += f"; {k} of {len(per_seed)} seeds reproduce alone"
    return _rung("across_seeds", stats.reproduction(stats.verdict(ci), exp), ev)


def across_threads(verdict_1: str | None, verdict_2: str | None) -> dict:
    """Rung ``across_threads``: "same" when the single-run verdict word of one seed is the same at 1
    and at 2 torch threads, else "flips"; undefined when either is missing or undefined."""
    if not verdict_1 or not verdict_2 or "undefined" in (verdict_1, verdict_2):
        return _undefined("across_threads", "the 1- or 2-thread run is missing or undefined")
    ev = f"{verdict_1} at 1 thread, {verdict_2} at 2 threads (same seed)"
    return _rung("across_threads", "same" if verdict_1 == verdict_2 else "flips", ev)


def paper_effect(primary: Mapping[str, Any] | None, theirs: float | None, *, mde: float | None = None) -> dict:
    """Rung ``paper_effect``: our primary interval against the paper's own effect ``theirs`` (in our
    effect's units and sign, labelled theirs).

    "excluded" when ``theirs`` lies outside our interval; otherwise "underpowered" when the interval
    is wider than ``|theirs|`` (it cannot tell the paper's effect from half of it, nor, at that
    width, from none), else "compatible". ``mde`` (optional) is quoted in the evidence.
    """
    d = _f(theirs)
    if not math.isfinite(d) or d == 0:
        return _undefined("paper_effect", "the paper reports no effect in our units")
    if not isinstance(primary, Mapping):
        return _undefined("paper_effect", "no primary comparison in the record")
    ci = _ci(primary.get("ci95"))
    if primary.get("verdict") == "undefined" or ci is None:
        return _undefined("paper_effect", primary.get("reason") or "the primary interval is not finite")
    width = ci[1] - ci[0]
    if not ci[0] <= d <= ci[1]:
        outcome = "excluded"
    elif width > abs(d):
        outcome = "underpowered"
    else:
        outcome = "compatible"
    ev = (f"ours {_with_ci(primary.get('effect'), ci)} (width {fmt_number(width)}) vs theirs {_signed(d)} "
          f"(the paper's number)")
    if mde is not None and math.isfinite(_f(mde)):
        ev += f"; minimal detectable effect {fmt_number(mde)} at this size"
    return _rung("paper_effect", outcome, ev)


def across_metrics(comparisons: Mapping[str, Mapping[str, Any]], expected: str) -> dict:
    """Rung ``across_metrics``: the same claim judged by every score a chapter's own table shows
    (e.g. mass in mask, IoU and Dice of Grad-CAM++ − Grad-CAM), so one metric cannot stand for the
    table. Each comparison is a primary-like record (``effect``, ``ci95``); the outcome is the
    common :func:`uqxai_lib.stats.reproduction` word when all agree, else "depends on the metric".

    >>> r = across_metrics({"mass": {"effect": -0.02, "ci95": [-0.03, -0.01]},
    ...                     "IoU": {"effect": 0.05, "ci95": [0.01, 0.09]}}, "higher")
    >>> r["outcome"], r["evidence"]
    ('depends on the metric', 'mass −0.02 (95 % interval −0.03 to −0.01) (reversed); IoU +0.05 (95 % interval 0.01 to 0.09) (reproduced)')
    """
    exp = _expected(expected)
    words, parts = [], []
    for name, c in comparisons.items():
        ci = _ci(c.get("ci95"))
        if ci is None:
            parts.append(f"{name} undefined")
            continue
        w = stats.reproduction(stats.verdict(ci), exp)
        words.append(w)
        parts.append(f"{name} {_with_ci(c.get('effect'), ci)} ({w})")
    if not words:
        return _undefined("across_metrics", "no metric has a finite interval", "; ".join(parts) or None)
    outcome = words[0] if len(set(words)) == 1 and len(words) == len(comparisons) else "depends on the metric"
    return _rung("across_metrics", outcome, "; ".join(parts))


def robustness_rungs(study: str, expected: str, *, path: str | pathlib.Path | None = None,
                     record: Mapping[str, Any] | None = None) -> list[dict]:
    """The ``across_seeds`` and ``across_threads`` rungs of ``study`` from the robustness chapter's
    record (``robustness.json``; or ``record``, its content). Both undefined, with the reason,
    when the file or the study is missing."""
    if record is None:
        p = pathlib.Path(path or ROBUSTNESS_JSON)
        try:
            record = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            reason = f"the robustness chapter has not run ({p.name} missing)"
            return [_undefined("across_seeds", reason), _undefined("across_threads", reason)]
    rob = record.get(study)
    if not isinstance(rob, Mapping):
        reason = f"the robustness record has no study {study!r}"
        return [_undefined("across_seeds", reason), _undefined("across_threads", reason)]
    summary = rob.get("seed_summary") or {k: rob.get(k) for k in ("mean", "ci95", "sign_agreement")} | {
        "n": len(rob.get("effects") or [])}
    threads = rob.get("threads") or {}

    def word(t):
        v = threads.get(str(t)) if isinstance(threads, Mapping) else None
        return v.get("verdict") if isinstance(v, Mapping) else None

    return [across_seeds(summary, expected, per_seed=rob.get("verdicts_per_seed")),
            across_threads(word(1), word(2))]


# ----------------------------------------------------------------------------------- the ladder
def data_line(phantom: str, paper_data: str) -> str:
    """The ``data`` line of a ladder.

    >>> data_line("SyntheticECG", "FANTASIA + INCART")
    'embedded synthetic phantom (SyntheticECG); the paper used FANTASIA + INCART'
    """
    return f"embedded synthetic phantom ({phantom}); the paper used {paper_data}"


def ladder(claim: str | Mapping[str, Any], data: str, rungs: Sequence[Mapping[str, Any]], *,
           headline_rung: str = "across_seeds") -> dict:
    """The verdict record of a study: ``{"claim", "data", "headline", "rungs"}``.

    ``claim``: the claim's text (or the claim record, whose ``text`` is used); ``data``: the
    :func:`data_line`; ``rungs``: rung records (any subset of :data:`RUNG_ORDER`, each name once),
    kept in :data:`RUNG_ORDER`; ``headline`` is the outcome of ``headline_rung``.
    """
    text = claim.get("text") if isinstance(claim, Mapping) else claim
    if not text:
        raise VerdictError("ladder: the claim has no text")
    names = [r.get("name") for r in rungs]
    bad = [n for n in names if n not in OUTCOMES]
    if bad:
        raise VerdictError(f"ladder: unknown rung(s) {bad}; rungs are {', '.join(RUNG_ORDER)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise VerdictError(f"ladder: rung(s) {dup} given more than once")
    for r in rungs:
        if r.get("outcome") not in OUTCOMES[r["name"]]:
            raise VerdictError(f"ladder: rung {r['name']!r} has outcome {r.get('outcome')!r}, not one of {OUTCOMES[r['name']]}")
    if headline_rung not in names:
        raise VerdictError(f"ladder: the headline rung {headline_rung!r} is missing; give it (e.g. verdicts.robustness_rungs)")
    ordered = sorted((dict(r) for r in rungs), key=lambda r: RUNG_ORDER.index(r["name"]))
    head = next(r["outcome"] for r in ordered if r["name"] == headline_rung)
    return {"claim": str(text), "data": str(data), "headline": head, "headline_rung": headline_rung, "rungs": ordered}


_SENTENCE = {
    "direction": "In this run the claim is {o}: {e}.",
    "beyond_baselines": "Beside the prediction-only baselines the score {o}: {e}.",
    "maps_right": "The maps lie {o}: {e}.",
    "sanity": "The cascading randomisation check {o}: {e}.",
    "within_class": "Within each predicted class the claim is {o}: {e}.",
    "across_seeds": "Across training seeds the claim is {o}: {e}.",
    "across_threads": "The single-run verdict is the {o} at 1 and 2 threads: {e}.",
    "across_metrics": "Judged by every score of the table the claim is {o}: {e}.",
}
_PAPER = {
    "excluded": "Our interval excludes the paper's own effect: {e}.",
    "compatible": "Our interval is compatible with the paper's own effect: {e}.",
    "underpowered": "Our interval is wider than the paper's own effect, so this run cannot tell that effect from "
                    "half of it (underpowered): {e}.",
}


def sentences(lad: Mapping[str, Any]) -> list[str]:
    """Plain sentences of a ladder, one per rung (for a chapter's Summary), generated from the
    outcomes and evidence; an undefined rung says why."""
    out = []
    for r in lad["rungs"]:
        if r["outcome"] == "undefined":
            out.append(f"{RUNG_TITLES[r['name']]}: undefined ({r.get('reason', 'no reason given')}).")
            continue
        o = r["outcome"]
        if r["name"] == "across_threads" and r["outcome"] == "flips":
            out.append(f"The single-run verdict flips between 1 and 2 threads: {r['evidence']}.")
            continue
        if r["name"] == "paper_effect":
            out.append(_PAPER[r["outcome"]].format(e=r["evidence"]))
            continue
        if r["name"] == "sanity" and r["outcome"] == "inconclusive":
            out.append(f"The cascading randomisation check is inconclusive ({r.get('reason', '')}): {r['evidence']}.")
            continue
        out.append(_SENTENCE[r["name"]].format(o=o, e=r["evidence"]))
    return out

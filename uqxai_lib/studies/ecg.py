r"""The ECG chapter's pipeline (``notebooks/ecg_sue.py``): SUE of Grad-CAM under test-time noise.

Steps, in the order the chapter runs them:

1. :func:`perturbation_sue` / :func:`sue_study` / :func:`sue_sweep` — perturb every test window
   ``draws`` times with a :mod:`uqxai_lib.perturb` noise model at a set SNR
   (``samplers.test_time``), explain every draw for the clean prediction and score the maps'
   repeatability with ``metrics.sue``; :func:`draw_inputs` reproduces the perturbed inputs;
2. :func:`correctness` — which windows count as correct (clean or majority-of-draws prediction);
3. :func:`table_rows` — the paper's Table 1 per perturbation (SUE of correct vs misclassified
   windows, Mann–Whitney p, AUROC); :func:`sue_vs_snr_frame` — SUE and accuracy against SNR;
4. :func:`pick_examples`, :func:`describe_rows`, :func:`headline_numbers` — examples to show, the
   prose lines and the results JSON record.

Plain functions on tensors and small records; figures are drawn by :mod:`uqxai_lib.viz.ecg`.
The paper's numbers (Salvi et al. 2025, Table 1, theirs) are the constants below.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import metrics, samplers, saliency
from ..cache import finite_or_none, round_sig
from ..perturb import PERTURBATION_LABELS, PERTURBATIONS, _check_kind, _check_snr, achieved_snr_db, make_perturbation, snr_db

__all__ = [
    "MIN_GROUP",
    "PAPER_CLASSIFICATION",
    "PAPER_TABLE1",
    "ROW_KEYS",
    "PerturbationSUE",
    "achieved_snr",
    "best_kind",
    "correctness",
    "describe_rows",
    "draw_inputs",
    "first_draws",
    "headline_numbers",
    "majority_vote",
    "perturbation_sue",
    "pick_examples",
    "sue_study",
    "sue_sweep",
    "sue_vs_snr_frame",
    "sweep_seed",
    "table_rows",
]

#: Below this many misclassified windows a group's mean, SD, p and AUROC are flagged as unreliable.
MIN_GROUP = 5

#: The paper's test-set results of the CNN-BiLSTM (percent), theirs, not ours.
PAPER_CLASSIFICATION = {"accuracy": 99.6, "sensitivity": 99.8, "specificity": 98.2}
#: Salvi et al. (2025), Table 1: SUE mean and SD on correctly classified and misclassified windows.
PAPER_TABLE1 = {
    "gaussian": (0.982, 0.040, 0.865, 0.277),
    "powerline": (0.967, 0.054, 0.815, 0.290),
    "baseline": (0.846, 0.106, 0.463, 0.288),
    "electrode": (0.834, 0.107, 0.476, 0.294),
}
ROW_KEYS = ("sue_correct_mean", "sue_correct_sd", "n_correct", "sue_mis_mean", "sue_mis_sd", "n_mis",
            "mwu_p", "auroc")


def _ci(ci: Sequence[float], digits: int = 3) -> str:
    lo, hi = (float(v) for v in ci)
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _f64(v) -> np.ndarray:
    """A tensor (any device) or array-like as a float64 NumPy array."""
    return torch.as_tensor(v).detach().cpu().double().numpy()


# ----------------------------------------------------------------------------------- SUE study
class PerturbationSUE(NamedTuple):
    """Test-time-perturbation results of one perturbation kind for ``B`` windows.

    ``maps`` [S, B, T] Grad-CAM maps of the S perturbed draws (layer resolution), ``sue`` [B],
    ``clean_pred`` [B] (prediction on the clean window, also the explained class), ``draw_pred`` [S, B]
    (prediction on each perturbed draw), ``majority_pred`` [B] (most frequent draw prediction, ties to
    the clean prediction), ``flip_rate`` [B] (share of draws whose prediction differs from the clean one),
    ``draw_probs`` [S, B, C] (softmax of each draw; ``None`` in records cached before it was kept).
    """

    kind: str
    snr_db: float
    maps: Tensor
    sue: Tensor
    clean_pred: Tensor
    draw_pred: Tensor
    majority_pred: Tensor
    flip_rate: Tensor
    draw_probs: Tensor | None = None


def majority_vote(draw_pred: Tensor, fallback: Tensor, n_classes: int) -> Tensor:
    """Most frequent class over draws ``[S, B]``; ties go to ``fallback`` when it is among the tied
    classes, else to the lowest tied class.

    >>> majority_vote(torch.tensor([[0, 1], [1, 0], [1, 0], [0, 0]]), torch.tensor([1, 1]), 2).tolist()
    [1, 0]
    """
    counts = torch.nn.functional.one_hot(draw_pred, n_classes).sum(0)  # [B, C]
    top = counts.max(1, keepdim=True).values
    tied = counts == top
    fb_tied = tied.gather(1, fallback[:, None]).squeeze(1)
    return torch.where(fb_tied, fallback, tied.float().argmax(1))


def perturbation_sue(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kind: str,
    snr_db: float,
    draws: int,
    *,
    seed: int,
    fs: float = 250.0,
    size: int | None = None,
    method: str = "grad_cam",
    quantile: float = 0.9,
    chunk: int = 128,
    nstdb: Mapping[str, Tensor] | None = None,
) -> PerturbationSUE:
    """SUE of Grad-CAM maps over ``draws`` test-time perturbations of each window in ``x``.

    Every window is explained for its *clean* prediction (the target is fixed before perturbing),
    its ``draws`` noisy copies come from ``samplers.test_time`` with :func:`make_perturbation`, the
    maps are upsampled to ``size`` samples (default: the window length) and their repeatability is
    ``metrics.sue(maps, quantile=quantile)``. Windows are processed in chunks of ``chunk`` with one
    generator seeded by ``seed``, so results do not depend on the device.
    """
    perturb = make_perturbation(kind, snr_db, fs, nstdb=nstdb)
    size = int(size or x.shape[-1])
    gen = torch.Generator().manual_seed(int(seed))
    maps, sue, clean, dpred, dprob = [], [], [], [], []
    for xb in x.split(chunk):
        st = samplers.test_time(model, xb, layer, perturb, draws, method=method, generator=gen)
        up = saliency.upsample(st.maps, size)
        sue.append(metrics.sue(up, quantile=quantile).float().cpu())
        maps.append(st.maps.float().cpu())
        clean.append(st.target.cpu())
        dpred.append(st.probs.argmax(-1).cpu())
        dprob.append(st.probs.float().cpu())
    maps_t, clean_t, dpred_t = torch.cat(maps, 1), torch.cat(clean), torch.cat(dpred, 1)
    n_classes = int(st.probs.shape[-1])
    return PerturbationSUE(
        kind=kind,
        snr_db=float(snr_db),
        maps=maps_t,
        sue=torch.cat(sue),
        clean_pred=clean_t,
        draw_pred=dpred_t,
        majority_pred=majority_vote(dpred_t, clean_t, n_classes),
        flip_rate=(dpred_t != clean_t[None]).float().mean(0),
        draw_probs=torch.cat(dprob, 1),
    )


def correctness(result: PerturbationSUE, y: Tensor, definition: str = "clean") -> Tensor:
    """Which windows count as correctly classified under test-time perturbation (bool [B]).

    ``"clean"``: the prediction on the clean window equals the label (the explained class);
    ``"majority"``: the most frequent prediction over the perturbed draws equals the label.
    """
    if definition == "clean":
        pred = result.clean_pred
    elif definition == "majority":
        pred = result.majority_pred
    else:
        raise ValueError(f"definition must be 'clean' or 'majority', got {definition!r}")
    return pred == y.to(pred.device)


def sue_study(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kinds: tuple[str, ...] = PERTURBATIONS,
    snr_db: float | Mapping[str, float] = 10.0,
    draws: int = 10,
    *,
    seed: int = 0,
    **kw,
) -> dict[str, dict]:
    """:func:`perturbation_sue` for every kind (seed ``seed + index of kind``) as plain dicts.

    ``snr_db`` is one SNR for all kinds or a mapping kind -> SNR. The plain-dict form is what the
    notebook caches (``cache.cached``); rebuild tuples with ``PerturbationSUE(**d)``.
    """
    out = {}
    for i, kind in enumerate(kinds):
        snr = snr_db[kind] if isinstance(snr_db, Mapping) else snr_db
        out[kind] = perturbation_sue(model, x, layer, kind, snr, draws, seed=seed + i, **kw)._asdict()
    return out


def sweep_seed(seed: int, i_kind: int, j_snr: int) -> int:
    """Seed of the draws of kind number ``i_kind`` at SNR number ``j_snr`` in :func:`sue_sweep`.

    >>> sweep_seed(0, 1, 2)
    304
    """
    return int(seed) + 101 * (int(j_snr) + 1) + int(i_kind)


def sue_sweep(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kinds: tuple[str, ...] = PERTURBATIONS,
    snrs: tuple[float, ...] = (0.0, 10.0, 20.0),
    draws: int = 10,
    *,
    seed: int = 0,
    keep_maps: bool = False,
    **kw,
) -> list[dict]:
    """:func:`perturbation_sue` for every (kind, SNR) pair: SUE against SNR, one record per pair.

    Each record is the plain-dict form of :class:`PerturbationSUE` plus ``seed`` (from
    :func:`sweep_seed`, so :func:`draw_inputs` can reproduce the perturbed inputs); ``maps`` is
    dropped unless ``keep_maps`` (the stacks of a long sweep are large). Records are ordered SNR by
    SNR, kinds within.

    >>> from torch import nn
    >>> m = nn.Sequential(nn.Conv1d(1, 2, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 2)).eval()
    >>> recs = sue_sweep(m, torch.randn(3, 1, 64), "1", ("gaussian",), (0.0, 20.0), 3, seed=0)
    >>> [(r["kind"], r["snr_db"], tuple(r["sue"].shape)) for r in recs]
    [('gaussian', 0.0, (3,)), ('gaussian', 20.0, (3,))]
    """
    for k in kinds:
        _check_kind(k)
    snrs = [_check_snr(s) for s in snrs]
    if not snrs:
        raise ValueError("snrs is empty; give at least one SNR in dB")
    out = []
    for j, snr in enumerate(snrs):
        for i, kind in enumerate(kinds):
            s = sweep_seed(seed, i, j)
            rec = perturbation_sue(model, x, layer, kind, snr, draws, seed=s, **kw)._asdict()
            if not keep_maps:
                rec.pop("maps")
            rec["seed"] = s
            out.append(rec)
    return out


def draw_inputs(
    x: Tensor,
    kind: str,
    snr_db: float,
    draws: int,
    *,
    seed: int,
    fs: float = 250.0,
    chunk: int = 128,
    nstdb: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """The perturbed inputs ``[S, B, C, L]`` that :func:`perturbation_sue` explained with the same
    arguments (same ``seed``, ``fs``, ``chunk``, ``nstdb``): draw ``s`` of window ``b`` is
    ``result[s, b]``. Used to show the noisy trace beside its maps.

    >>> x = torch.randn(2, 1, 100)
    >>> tuple(draw_inputs(x, "baseline", 5.0, 3, seed=1).shape)
    (3, 2, 1, 100)
    """
    perturb = make_perturbation(kind, snr_db, fs, nstdb=nstdb)
    if int(draws) < 1:
        raise ValueError(f"draws must be a positive number of perturbed copies, got {draws!r}")
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for xb in x.split(chunk):  # same generator order as perturbation_sue -> samplers.test_time
        parts.append(torch.stack([perturb(xb, gen) for _ in range(int(draws))]))
    return torch.cat(parts, 1)


def achieved_snr(clean: Tensor, noisy: Mapping[str, Tensor]) -> dict[str, float]:
    """SNR in dB actually achieved by each perturbed copy of one window, read back from the two
    windows as :func:`uqxai_lib.perturb.achieved_snr_db` defines it (the perturbed copy is
    re-standardised, so ``noisy - clean`` is not the noise).

    >>> x = torch.sin(torch.linspace(0, 20, 500)).double()
    >>> y = make_perturbation("gaussian", 6.0)(x.reshape(1, 1, -1), torch.Generator().manual_seed(0))[0, 0]
    >>> round(achieved_snr(x, {"a": y})["a"], 3)
    6.0
    """
    c = torch.as_tensor(clean).reshape(1, 1, -1).double()
    return {k: float(achieved_snr_db(c, torch.as_tensor(v).reshape(1, 1, -1).double())[0, 0]) for k, v in noisy.items()}


def first_draws(x: Tensor, records: Sequence[Mapping], *, fs: float = 250.0,
                nstdb: Mapping[str, Tensor] | None = None) -> dict[tuple[str, float], Tensor]:
    """The first perturbed draw ``[L]`` of one window ``x`` [1, C, L] (channel 0) for every record
    of :func:`sue_sweep` run on that window, keyed by ``(kind, snr_db)`` (reproduced with
    :func:`draw_inputs`; ``fs`` and ``nstdb`` must be those of the sweep)."""
    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"first_draws takes one window: x must be [1, C, L], got {tuple(x.shape)}")
    return {(r["kind"], float(r["snr_db"])): draw_inputs(x.cpu(), r["kind"], float(r["snr_db"]), 1, seed=r["seed"],
                                                         fs=fs, nstdb=nstdb)[0, 0, 0]
            for r in records}


def best_kind(rows: Mapping[str, Mapping[str, float]]) -> str:
    """The perturbation whose SUE separates correct from misclassified windows best (highest AUROC
    among kinds with a misclassified window; the first kind when none has one)."""
    return max(rows, key=lambda k: rows[k]["auroc"] if rows[k]["n_mis"] else -1.0)


# ----------------------------------------------------------------------------------- tables and records
def table_rows(sue: Mapping[str, Tensor], correct: Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per perturbation: SUE of correct vs misclassified windows (``metrics.compare_groups``).

    ``auroc`` is the AUROC of SUE for telling correct from misclassified windows (equivalently of
    ``-SUE`` for flagging a misclassification); NaN statistics where a group is empty.
    """
    rows = {}
    for kind, s in sue.items():
        g = metrics.compare_groups(s, torch.as_tensor(correct[kind]).bool(), higher_in="a").as_dict()
        rows[kind] = {
            "sue_correct_mean": float(g["mean_a"]), "sue_correct_sd": float(g["sd_a"]), "n_correct": int(g["n_a"]),
            "sue_mis_mean": float(g["mean_b"]), "sue_mis_sd": float(g["sd_b"]), "n_mis": int(g["n_b"]),
            "mwu_p": float(g["mwu_p"]), "auroc": float(g["auroc"]),
        }
    return rows


def sue_vs_snr_frame(records: Sequence[Mapping], y: Tensor | None = None, *, definition: str = "majority") -> pd.DataFrame:
    """Long table of SUE against SNR: mean/SD SUE overall and per correctness group, and accuracy.

    ``records``: ``{kind, snr_db, sue [B], ...}`` as from ``perturb.sue_sweep``. With labels ``y``,
    a window is correct when its ``majority_pred`` (``definition="majority"``) or ``clean_pred``
    (``"clean"``) equals the label, and ``accuracy`` is the share of all perturbed draws
    (``draw_pred``) classified correctly; without ``y`` each record must carry ``correct`` [B] and
    ``accuracy`` is the share of correct windows.
    """
    if definition not in ("majority", "clean"):
        raise ValueError(f"definition must be 'majority' or 'clean', got {definition!r}")
    yy = None if y is None else _f64(y).astype(int)
    rows = []
    for r in records:
        s = _f64(r["sue"]).astype(float)
        if yy is not None:
            c = _f64(r[f"{definition}_pred"]).astype(int) == yy
            acc = float((_f64(r["draw_pred"]).astype(int) == yy[None]).mean())
        else:
            c = _f64(r["correct"]).astype(bool)
            acc = float(c.mean())
        rows.append({
            "kind": r["kind"], "snr_db": float(r["snr_db"]), "sue_mean": s.mean(), "sue_sd": s.std(ddof=1) if len(s) > 1 else 0.0,
            "sue_correct": s[c].mean() if c.any() else np.nan, "sue_mis": s[~c].mean() if (~c).any() else np.nan,
            "accuracy": acc, "n": len(s), "n_mis": int((~c).sum()),
        })
    return pd.DataFrame(rows).sort_values(["kind", "snr_db"], kind="stable").reset_index(drop=True)


def pick_examples(sue: Tensor, correct: Tensor) -> tuple[int | None, int | None]:
    """Index of the correct window with the highest SUE and of the misclassified one with the lowest."""
    s, c = torch.as_tensor(sue, dtype=torch.float64), torch.as_tensor(correct).bool()
    hi = int(torch.where(c, s, torch.full_like(s, -np.inf)).argmax()) if c.any() else None
    lo = int(torch.where(~c, s, torch.full_like(s, np.inf)).argmin()) if (~c).any() else None
    return hi, lo


def describe_rows(rows: Mapping[str, Mapping[str, float]], by_kind: Mapping[str, Mapping], *,
                  definition: str = "clean prediction", min_group: int = MIN_GROUP) -> str:
    """Markdown: for how many perturbations the interval of SUE correct − misclassified lies above 0
    (verdict "higher", ``stats.verdict`` of ``by_kind[k]["ci95"]`` from :func:`comparisons`), one line
    each, with a warning where the misclassified group is empty or smaller than ``min_group``."""
    from .. import stats

    lines, higher, compared = [], 0, 0
    for k, r in rows.items():
        lab = PERTURBATION_LABELS.get(k, k)
        if r["n_mis"] == 0:
            lines.append(f"- {lab}: no misclassified window (n correct = {r['n_correct']}); nothing to compare.")
            continue
        compared += 1
        v = stats.verdict(by_kind[k]["ci95"])
        higher += v == "higher"
        few = f" — only {r['n_mis']} misclassified, treat as anecdotal" if r["n_mis"] < min_group else ""
        p = "–" if not np.isfinite(r["mwu_p"]) else f"{r['mwu_p']:.2g}"
        auc = "–" if not np.isfinite(r["auroc"]) else f"{r['auroc']:.3f}"
        lines.append(f"- {lab}: SUE {r['sue_correct_mean']:.3f} (correct, n = {r['n_correct']}) vs "
                     f"{r['sue_mis_mean']:.3f} (misclassified, n = {r['n_mis']}), difference "
                     f"{_ci(by_kind[k]['ci95'])}: {v}; AUROC {auc}, p = {p}{few}")
    head = (f"The 95 % interval of SUE correct − misclassified lies above 0 (verdict \"higher\") for "
            f"**{higher} of {compared}** perturbation types that have misclassified windows ({definition} definition):")
    if compared == 0:
        head = (f"No perturbation type left a misclassified window ({definition} definition), so the "
                "comparison cannot be made on this run; use more test windows or a lower SNR.")
    return head + "\n\n" + "\n".join(lines)


def headline_numbers(classification: Mapping[str, float], rows: Mapping[str, Mapping[str, Mapping]],
                     **extra) -> dict:
    """JSON-ready headline numbers: accuracy, sensitivity, specificity, one row per perturbation
    (``ROW_KEYS``) per misclassification definition (``rows[definition][kind]``; the ``"clean"``
    definition goes under ``perturbations``, others under ``perturbations_<definition>``) and
    ``extra`` scalars. Floats are rounded to 6 significant digits, NaN (an empty group) becomes
    ``None``, ``None`` extras are dropped.

    >>> r = {"n_correct": 3, "n_mis": 0, "sue_correct_mean": 0.5, "sue_correct_sd": 0.1, "sue_mis_mean": float("nan"),
    ...      "sue_mis_sd": float("nan"), "mwu_p": float("nan"), "auroc": float("nan")}
    >>> h = headline_numbers({"accuracy": 1/3, "sensitivity": 1.0, "specificity": 0.0}, {"clean": {"gaussian": r}})
    >>> h["accuracy"], h["perturbations"]["gaussian"]["sue_mis_mean"]
    (0.333333, None)
    """
    out = {k: float(classification[k]) for k in ("accuracy", "sensitivity", "specificity")}
    for definition, per_kind in rows.items():
        key = "perturbations" if definition == "clean" else f"perturbations_{definition}"
        out[key] = {k: {kk: r[kk] for kk in ROW_KEYS} for k, r in per_kind.items()}
    out.update({k: v for k, v in extra.items() if v is not None})
    return finite_or_none(round_sig(out))


# ----------------------------------------------------------------------------------- primary, claim, secondary
#: The chapter's one declared primary comparison: SUE of correct minus misclassified windows
#: (clean-prediction definition) under this perturbation; the other kinds are secondary.
PRIMARY_KIND = "gaussian"

#: The paper's claim (Salvi et al. 2025, section 4.1 and Table 1; theirs).
CLAIM = {
    "text": "Correct predictions come with more repeatable Grad-CAM explanations under test-time "
            "perturbation (higher SUE) than misclassifications.",
    "expected": "higher",
    "theirs": "SUE 0.982 ± 0.040 (correct) vs 0.865 ± 0.277 (misclassified), Gaussian noise, Table 1",
    "source": "salvi2025explainability",
}


def comparisons(sue: Mapping[str, Tensor], correct: Mapping[str, Tensor], groups: Tensor | None = None, *,
                primary_kind: str = PRIMARY_KIND, n_boot: int = 2000, seed: int = 0) -> dict:
    """SUE correct − misclassified for every perturbation (``stats.group_difference``, bootstrap over
    ``groups`` = subjects when given): ``primary`` (``stats.primary`` of ``primary_kind``), ``secondary``
    (the other kinds, ``{name, kind, effect, ci95, auroc, auroc_ci95, p, p_holm, verdict}`` with
    Holm-adjusted p over the secondary family) and ``by_kind`` (the raw comparisons)."""
    from .. import stats

    if primary_kind not in sue:
        raise ValueError(f"the primary perturbation {primary_kind!r} is not among the studied kinds {list(sue)}")
    g = None if groups is None else _f64(groups)
    by_kind = {k: stats.group_difference(_f64(s), _f64(correct[k]).astype(bool), groups=g, n_boot=n_boot, seed=seed)
               for k, s in sue.items()}
    prim = stats.primary(f"SUE correct − misclassified, {PERTURBATION_LABELS.get(primary_kind, primary_kind)}",
                         by_kind[primary_kind])
    others = [k for k in sue if k != primary_kind]
    p_holm = stats.holm([by_kind[k]["p"] for k in others])
    secondary = [{"name": f"SUE correct − misclassified, {PERTURBATION_LABELS.get(k, k)}", "kind": k,
                  "effect": by_kind[k]["effect"], "ci95": list(by_kind[k]["ci95"]), "auroc": by_kind[k]["auroc"],
                  "auroc_ci95": list(by_kind[k]["auroc_ci95"]), "p": by_kind[k]["p"], "p_holm": ph,
                  "verdict": stats.verdict(by_kind[k]["ci95"])} for k, ph in zip(others, p_holm)]
    return {"primary": prim, "secondary": secondary, "by_kind": by_kind}


def verdict_sentence(primary: Mapping, claim: Mapping = CLAIM, *, n_a: int | None = None, n_b: int | None = None) -> str:
    """Markdown sentence of the primary result: effect, interval, AUROC, p, the verdict word
    (``stats.verdict`` of the interval) and how it stands to the paper (``stats.reproduction``)."""
    from .. import stats

    rep = stats.reproduction(primary["verdict"], claim["expected"])
    ns = "" if n_a is None else f" ({n_a} correct, {n_b} misclassified windows)"
    word = {"higher": "higher for correct than for misclassified windows",
            "lower": "lower for correct than for misclassified windows",
            "no detectable difference": "not detectably different between correct and misclassified windows"}
    return (f"**Primary ({primary['name']}):** SUE is {word[primary['verdict']]}{ns}: difference "
            f"{primary['effect']:.3f}, 95% interval {_ci(primary['ci95'])}, AUROC {primary['auroc']:.3f} "
            f"{_ci(primary['auroc_ci95'])}, Mann–Whitney p = {primary['p']:.2g}. The paper's claim "
            f"(\"{claim['text']}\", theirs: {claim['theirs']}) is **{rep}** on this run.")


def secondary_lines(secondary: Sequence[Mapping]) -> str:
    """Markdown list of the secondary comparisons with Holm-adjusted p and the verdict word."""
    return "\n".join(f"- {r['name']}: difference {r['effect']:.3f} {_ci(r['ci95'])}, AUROC {r['auroc']:.3f} "
                     f"{_ci(r['auroc_ci95'])}, p = {r['p']:.2g} (Holm {r['p_holm']:.2g}): {r['verdict']}"
                     for r in secondary)


# ----------------------------------------------------------------------------------- SUE variants
#: Top-region sizes of the variant sweep (share of samples kept: 5, 10, 20, 30 %).
TOP_SHARES = (0.05, 0.10, 0.20, 0.30)


def own_target_maps(model: torch.nn.Module, x: Tensor, layer: torch.nn.Module | str, result: PerturbationSUE, *,
                    seed: int, fs: float = 250.0, chunk: int = 128, nstdb: Mapping[str, Tensor] | None = None,
                    method: str = "grad_cam") -> Tensor:
    """Maps ``[S, B, T]`` of the draws of ``result`` (from :func:`perturbation_sue` with the same
    ``seed``, ``fs``, ``chunk``, ``nstdb``) when every draw is explained for **its own** prediction
    instead of the clean one. Draws whose prediction equals the clean one keep their map; the others
    are recomputed on the reproduced input (:func:`draw_inputs`)."""
    maps = result.maps.clone()
    flip = result.draw_pred != result.clean_pred[None]
    if not bool(flip.any()):
        return maps
    inputs = draw_inputs(x.cpu(), result.kind, result.snr_db, result.draw_pred.shape[0], seed=seed, fs=fs,
                         chunk=chunk, nstdb=nstdb)
    dev = next(model.parameters()).device
    for s in range(flip.shape[0]):
        idx = torch.nonzero(flip[s]).flatten()
        if len(idx):
            m = saliency.explain(model, inputs[s, idx].to(dev), layer, method=method,
                                 target=result.draw_pred[s, idx].to(dev))
            maps[s, idx] = m.float().cpu()
    return maps


def sue_variants(maps: Tensor, clean_map: Tensor, own_maps: Tensor | None = None, *, size: int | None = None,
                 shares: Sequence[float] = TOP_SHARES) -> list[dict]:
    """Per-window SUE under every variant: ``reference`` "pairs" (mean Jaccard over pairs of
    perturbed maps, today's SUE) or "clean" (each perturbed map against the clean map); top
    region ``q`` in ``shares``; ``target`` "clean" (fixed from the clean prediction) or "own" (each
    draw's own prediction, when ``own_maps`` is given). Maps [S, B, T] are upsampled to ``size``;
    windows with an empty region are NaN (``metrics.sue(..., empty="nan")``) and counted in
    ``n_empty``. Returns ``[{reference, q, target, sue [B], n_empty}]``."""
    size = int(size or clean_map.shape[-1])
    ref = clean_map if clean_map.shape[-1] == size else saliency.upsample(clean_map[:, None], size)[:, 0]
    stacks = {"clean": maps} if own_maps is None else {"clean": maps, "own": own_maps}
    out = []
    for target, st in stacks.items():
        up = saliency.upsample(st, size)
        for reference in ("pairs", "clean"):
            for q in shares:
                quant = 1.0 - float(q)
                s = metrics.sue(up, quantile=quant, empty="nan", reference=ref if reference == "clean" else None)
                out.append({"reference": reference, "q": float(q), "target": target, "sue": s.float(),
                            "n_empty": int(s.isnan().sum())})
    return out


def variant_rows(variants: Sequence[Mapping], correct: Tensor, groups: Tensor | None = None, *,
                 n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """AUROC of SUE (correct vs misclassified) with its interval for every variant of
    :func:`sue_variants`: ``[{reference, q, target, auroc, auroc_ci95, n_empty}]``."""
    from .. import stats

    g = None if groups is None else _f64(groups)
    rows = []
    for v in variants:
        d = stats.group_difference(_f64(v["sue"]), _f64(correct).astype(bool), groups=g, n_boot=n_boot, seed=seed)
        rows.append({"reference": v["reference"], "q": v["q"], "target": v["target"], "auroc": d["auroc"],
                     "auroc_ci95": list(d["auroc_ci95"]), "n_empty": int(v["n_empty"])})
    return rows


# ----------------------------------------------------------------------------------- prediction-only baselines
def baseline_scores(result: PerturbationSUE, clean_probs: Tensor) -> dict[str, Tensor]:
    """Prediction-only confidence scores of the same windows and draws, each oriented so that a
    higher value means "more likely correct" (like SUE): ``flip_rate`` (minus the share of draws whose
    prediction differs from the clean one), ``margin`` (top-1 minus top-2 softmax probability on the
    clean window) and ``entropy`` (minus the predictive entropy of the mean softmax of the draws)."""
    if result.draw_probs is None:
        raise ValueError("the study result carries no draw_probs; rerun perturbation_sue (the cached entry is old)")
    top2 = torch.as_tensor(clean_probs).double().topk(2, dim=-1).values
    return {"flip_rate": -result.flip_rate.double(), "margin": top2[:, 0] - top2[:, 1],
            "entropy": -metrics.predictive_entropy(result.draw_probs.double())}


def baseline_rows(scores: Mapping[str, Tensor], correct: Tensor, groups: Tensor | None = None, *,
                  n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """``{name: {auroc, auroc_ci95}}`` of each score for correct vs misclassified windows."""
    from .. import stats

    g = None if groups is None else _f64(groups)
    out = {}
    for k, s in scores.items():
        d = stats.group_difference(_f64(s), _f64(correct).astype(bool), groups=g, n_boot=n_boot, seed=seed)
        out[k] = {"auroc": d["auroc"], "auroc_ci95": list(d["auroc_ci95"])}
    return out


def out_of_fold_scores(features: np.ndarray, correct: np.ndarray, groups: np.ndarray | None, *, folds: int = 5,
                       seed: int = 0) -> np.ndarray:
    """Out-of-sample P(correct) of a logistic regression on standardised ``features`` [N, F]: grouped,
    class-stratified K-fold (``sklearn.model_selection.StratifiedGroupKFold``), each window scored by
    the model fitted without its subject. Non-finite feature values are imputed with the training
    fold's median."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    X, y = np.asarray(features, dtype=np.float64), np.asarray(correct).astype(int)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    k = int(min(folds, np.bincount(y, minlength=2).min()))
    if k < 2:
        return np.full(len(y), np.nan)
    out = np.full(len(y), np.nan)
    for tr, te in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, g):
        med = np.nanmedian(X[tr], axis=0)
        xt, xe = np.where(np.isfinite(X[tr]), X[tr], med), np.where(np.isfinite(X[te]), X[te], med)
        mu, sd = xt.mean(0), xt.std(0) + 1e-12
        clf = LogisticRegression(max_iter=1000).fit((xt - mu) / sd, y[tr])
        out[te] = clf.predict_proba((xe - mu) / sd)[:, 1]
    return out


def added_value(sue: Tensor, scores: Mapping[str, Tensor], correct: Tensor, groups: Tensor | None = None, *,
                folds: int = 5, n_boot: int = 2000, seed: int = 0) -> dict:
    """Does SUE add to the prediction-only baselines? Out-of-fold AUROC of a logistic combination of
    the baselines with and without SUE (:func:`out_of_fold_scores`), the difference with a
    bootstrap interval (over subjects), and the AUROC of the rank average of SUE with the best
    single baseline. Returns ``{auroc_baselines, auroc_with_sue, delta, delta_ci95, rank_average:
    {with, auroc, auroc_ci95}}``."""
    from scipy.stats import rankdata

    from .. import stats

    c = _f64(correct).astype(bool)
    g = None if groups is None else _f64(groups)
    base = np.stack([_f64(scores[k]) for k in scores], 1)
    s = _f64(sue)
    p_base = out_of_fold_scores(base, c, g, folds=folds, seed=seed)
    p_all = out_of_fold_scores(np.concatenate([base, s[:, None]], 1), c, g, folds=folds, seed=seed)

    def delta(a, b, cc):
        return stats.auroc(a, cc) - stats.auroc(b, cc)

    ok = np.isfinite(p_base) & np.isfinite(p_all)
    ci = stats.bootstrap_ci(delta, p_all[ok], p_base[ok], c[ok], groups=None if g is None else g[ok],
                            n_boot=n_boot, seed=seed)
    best = max(scores, key=lambda k: stats.auroc(_f64(scores[k]), c))
    fin = np.isfinite(s)
    ra = np.full(len(s), np.nan)
    ra[fin] = (rankdata(s[fin]) + rankdata(_f64(scores[best])[fin])) / 2
    d_ra = stats.group_difference(ra, c, groups=g, n_boot=n_boot, seed=seed)
    return {"auroc_baselines": stats.auroc(p_base[ok], c[ok]), "auroc_with_sue": stats.auroc(p_all[ok], c[ok]),
            "delta": delta(p_all[ok], p_base[ok], c[ok]), "delta_ci95": list(ci), "verdict": stats.verdict(ci),
            "rank_average": {"with": best, "auroc": d_ra["auroc"], "auroc_ci95": list(d_ra["auroc_ci95"])}}


# ----------------------------------------------------------------------------------- confounding
SEVERITY_NAMES = {0: "healthy", 1: "mild CAD", 2: "marked CAD"}


def strata_rows(sue: Tensor, correct: Tensor, severity: Tensor, groups: Tensor | None = None, *,
                n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """AUROC of SUE for correct vs misclassified windows *within* each generator severity stratum
    (0 healthy, 1 mild CAD = the ambiguous subjects, 2 marked CAD) and within the CAD class as a whole:
    ``[{severity, n_correct, n_mis, auroc, auroc_ci95}]`` (NaN AUROC where a stratum has no error
    or no correct window)."""
    from .. import stats

    s, c, sev = _f64(sue), _f64(correct).astype(bool), _f64(severity).astype(int)
    g = None if groups is None else _f64(groups)
    rows = []
    cells = [(SEVERITY_NAMES.get(v, str(v)), sev == v) for v in sorted(set(sev.tolist()))]
    cells.append(("CAD (mild + marked)", sev > 0))
    for name, m in cells:
        d = stats.group_difference(s[m], c[m], groups=None if g is None else g[m], n_boot=n_boot, seed=seed)
        rows.append({"severity": name, "n_correct": int(c[m].sum()), "n_mis": int((~c[m]).sum()), "auroc": d["auroc"],
                     "auroc_ci95": list(d["auroc_ci95"])})
    return rows


# ----------------------------------------------------------------------------------- fidelity and sanity
#: Length of the segments that deletion / insertion remove or restore (samples; 25 = 0.1 s at 250 Hz).
SEGMENT = 25
#: A map passes the cascading-randomisation check when every randomised model's maps keep a mean
#: Spearman correlation with the trained model's maps below this.
SANITY_MAX_SPEARMAN = 0.5


def _spearman_1d(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def fidelity_record(model: torch.nn.Module, x: Tensor, maps: Tensor, mask: Tensor, y: Tensor, target: Tensor,
                    groups: Tensor | None = None, *, classes: Sequence[str] = ("healthy", "CAD"), segment: int = SEGMENT,
                    steps: int | None = None, curve_index: Tensor | None = None, n_boot: int = 2000,
                    seed: int = 0) -> dict:
    """Are the clean Grad-CAM maps ``[B, L]`` (input resolution) on the evidence?

    * ``mass_in_mask`` — mean share of map mass inside the ST–T ``mask`` (``metrics.mass_in_mask``)
      with its bootstrap interval over subjects; ``chance`` — the mask's mean area share (what an
      evenly spread map scores); ``pointing_game`` — share of maps whose maximum is in the mask;
    * ``deletion_auc`` / ``insertion_auc`` — mean area of the probability of ``target`` as segments
      of ``segment`` samples are set to 0 (the standardised window's mean) most salient first, or
      restored into an all-zero window (``fidelity.deletion_curve`` / ``insertion_curve``), and the
      same for a random segment order (``*_random``);
    * ``per_class`` — mass in mask, its interval, chance and pointing game per true class.

    ``steps`` evenly spaced points per curve (default one per segment); ``curve_index`` restricts the
    (costly) curves to those windows (default all). Also returns the mean curves
    (``curves``), their areas (``curve_aucs``, same keys) and per-window ``mass`` for figures; the
    JSON record is :func:`fidelity_json`.
    """
    from .. import fidelity, stats

    mass = _f64(metrics.mass_in_mask(maps, mask))
    share = _f64(mask.float().mean(-1))
    point = _f64(metrics.pointing_game(maps, mask, ties="first"))
    g = None if groups is None else _f64(groups)
    yy = _f64(y).astype(int)

    def nanmean(v):
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    def summary(m):
        gg = None if g is None else g[m]
        return {"mass_in_mask": nanmean(mass[m]),
                "mass_in_mask_ci95": list(stats.bootstrap_ci(nanmean, mass[m], groups=gg, n_boot=n_boot, seed=seed)),
                "chance": float(share[m].mean()), "pointing_game": nanmean(point[m]), "n": int(m.sum())}

    gen = torch.Generator().manual_seed(int(seed))
    cur = {}
    dev = next(model.parameters()).device
    ci = torch.arange(len(x)) if curve_index is None else torch.as_tensor(curve_index, dtype=torch.long)
    xc, mc, tc = x[ci].to(dev), maps[ci], torch.as_tensor(target)[ci]
    for name, fn in (("deletion", fidelity.deletion_curve), ("insertion", fidelity.insertion_curve)):
        cur[name] = fn(model, xc, mc, tc, patch=segment, steps=steps)
        cur[f"{name}_random"] = fn(model, xc, mc, tc, patch=segment, steps=steps, order="random", generator=gen)
    aucs = {k: float(fidelity.curve_auc(v).mean()) for k, v in cur.items()}
    rec = summary(np.ones(len(mass), dtype=bool))
    rec.pop("n")
    rec.update({"deletion_auc": aucs["deletion"], "deletion_auc_random": aucs["deletion_random"],
                "insertion_auc": aucs["insertion"], "insertion_auc_random": aucs["insertion_random"]})
    rec["per_class"] = {classes[c]: summary(yy == c) for c in sorted(set(yy.tolist()))}
    return {**rec, "curves": {k: v.mean(0) for k, v in cur.items()}, "curve_aucs": aucs, "mass": mass}


FIDELITY_KEYS = ("mass_in_mask", "mass_in_mask_ci95", "chance", "pointing_game", "deletion_auc", "deletion_auc_random",
                 "insertion_auc", "insertion_auc_random", "per_class")


def fidelity_json(rec: Mapping | None) -> dict | None:
    """The ``fidelity`` record of the results JSON (no curves or per-window arrays)."""
    return None if rec is None else {k: rec[k] for k in FIDELITY_KEYS}


def sanity_json(rec: Mapping | None) -> dict | None:
    """The ``sanity`` record of the results JSON: ``{cascading: [...], passes}`` (no maps)."""
    return None if rec is None else {"cascading": list(rec["cascading"]), "passes": bool(rec["passes"])}


def sanity_sentence(rec: Mapping) -> str:
    """Markdown verdict of the cascading randomisation, from its numbers."""
    rhos = ", ".join(f"{s['randomised_from']} {s['spearman_to_trained']:.2f}" for s in rec["cascading"])
    worst = max(rec["cascading"], key=lambda s: -np.inf if not np.isfinite(s["spearman_to_trained"])
                else s["spearman_to_trained"])
    if rec["passes"]:
        return (f"Mean Spearman correlation with the trained model's maps after randomising from each module down: "
                f"{rhos}. Every one stays below {SANITY_MAX_SPEARMAN}: Grad-CAM at this layer **passes** the "
                "cascading randomisation check — its maps depend on the learned parameters.")
    return (f"Mean Spearman correlation with the trained model's maps after randomising from each module down: "
            f"{rhos}. Randomising from `{worst['randomised_from']}` still leaves ρ = "
            f"{worst['spearman_to_trained']:.2f} ≥ {SANITY_MAX_SPEARMAN}: Grad-CAM at this layer **fails** the "
            "cascading randomisation check there — part of what its maps show is the input's structure "
            "(the activations), not what the model learned.")


def format_ci(ci: Sequence[float], digits: int = 3) -> str:
    """``[lo, hi]`` with ``digits`` decimals, or "–" for an undefined interval."""
    return _ci(ci, digits)


def added_value_sentence(added: Mapping) -> str:
    """Markdown: does SUE add to the prediction-only baselines (verdict from the interval of the gain)?"""
    word = {"higher": "**adds** to", "lower": "makes the combination **worse** than",
            "no detectable difference": "adds **nothing detectable** to"}[added["verdict"]]
    return (f"Out of fold, SUE {word} the three prediction-only baselines: AUROC {added['auroc_baselines']:.3f} "
            f"without SUE, {added['auroc_with_sue']:.3f} with it (gain {added['delta']:.3f}, 95 % interval "
            f"{_ci(added['delta_ci95'])} over subjects).")


def cascade_order(model: torch.nn.Module) -> list[str]:
    """Modules of a :class:`~uqxai_lib.models.cnn_bilstm.CNNBiLSTM` from the head down: ``fc``,
    ``lstm``, then the Conv1d blocks last to first (the cascading randomisation order)."""
    blocks = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, torch.nn.Sequential)]
    return ["fc", "lstm", *reversed(blocks)]


def cascading_randomisation(model: torch.nn.Module, x: Tensor, layer: str, target: Tensor, *, size: int,
                            seed: int = 0, order: Sequence[str] | None = None) -> dict:
    """Adebayo et al.'s cascading model-parameter randomisation: re-initialise the model from the
    head down (``fidelity.cascading_randomisation``, one more module per step, seeded once), explain
    ``x`` for the trained model's ``target`` at ``layer`` and compare each window's map with the trained model's
    (``metrics.spearman``). Returns ``{"cascading": [{randomised_from, spearman_to_trained,
    n_constant}], "passes": bool, "maps": {name: maps [B, size]}}``; ``passes`` when every step keeps
    the mean Spearman below :data:`SANITY_MAX_SPEARMAN`."""
    from .. import fidelity

    order = list(order or cascade_order(model))
    dev = next(model.parameters()).device
    x = x.to(dev)

    def cam(m):
        return saliency.upsample(saliency.grad_cam(m, x, layer, target=target.to(dev)).cpu(), size)

    trained = cam(model)
    steps, maps = [], {"trained": trained}
    for name, mp in fidelity.cascading_randomisation(model, order, cam, seed=seed, seeding="once"):
        rho = metrics.spearman(trained.double(), mp.double())
        ok = torch.isfinite(rho)
        steps.append({"randomised_from": name, "spearman_to_trained": float(rho[ok].mean()) if ok.any() else float("nan"),
                      "n_constant": int((~ok).sum())})
        maps[name] = mp
    passes = all(np.isfinite(s["spearman_to_trained"]) and s["spearman_to_trained"] < SANITY_MAX_SPEARMAN for s in steps)
    return {"cascading": steps, "passes": bool(passes), "maps": maps}


def layer_table(model: torch.nn.Module, x: Tensor, y: Tensor, mask: Tensor, layers: Sequence[str], *, snr_db: float,
                draws: int, seed: int, quantile: float = 0.9, groups: Tensor | None = None, fs: float = 250.0,
                nstdb: Mapping[str, Tensor] | None = None, kind: str = PRIMARY_KIND, n_boot: int = 2000) -> list[dict]:
    """Which Grad-CAM layer lands on the evidence and how stable is it? Per layer: map resolution,
    mass in the ST–T mask of the clean maps against chance, pointing game, and the SUE study of
    ``kind`` on ``x`` (mean SUE, AUROC for correct vs misclassified with interval)."""
    from .. import stats

    rows = []
    dev = next(model.parameters()).device
    for layer in layers:
        clean = saliency.grad_cam(model, x.to(dev), layer).cpu()
        up = saliency.upsample(clean, x.shape[-1])
        mass = _f64(metrics.mass_in_mask(up, mask))
        r = perturbation_sue(model, x.to(dev), layer, kind, snr_db, draws, seed=seed, quantile=quantile, fs=fs, nstdb=nstdb)
        c = _f64(r.clean_pred == y.to(r.clean_pred.device)).astype(bool)
        d = stats.group_difference(_f64(r.sue), c, groups=None if groups is None else _f64(groups), n_boot=n_boot, seed=seed)
        rows.append({"layer": layer, "resolution": int(clean.shape[-1]), "mass_in_mask": float(np.nanmean(mass)),
                     "chance": float(mask.float().mean()), "pointing_game": float(np.nanmean(_f64(metrics.pointing_game(up, mask, ties="first")))),
                     "sue_mean": float(np.nanmean(_f64(r.sue))), "sue_auroc": d["auroc"], "sue_auroc_ci95": list(d["auroc_ci95"]),
                     "n_mis": int((~c).sum())})
    return rows


def fidelity_vs_stability(mass: Tensor, sue: Tensor, groups: Tensor | None = None, *, n_boot: int = 2000,
                          seed: int = 0) -> dict:
    """Spearman correlation of per-window fidelity (mass in mask) with stability (SUE) and its
    bootstrap interval (over subjects): ``{spearman, ci95, n}``."""
    from .. import stats

    a, b = _f64(mass), _f64(sue)
    ok = np.isfinite(a) & np.isfinite(b)
    g = None if groups is None else _f64(groups)[ok]
    ci = stats.bootstrap_ci(_spearman_1d, a[ok], b[ok], groups=g, n_boot=n_boot, seed=seed)
    return {"spearman": _spearman_1d(a[ok], b[ok]), "ci95": list(ci), "n": int(ok.sum())}



def summary_markdown(comp: Mapping, *, clf: Mapping | None = None, fidelity: Mapping | None = None,
                     sanity: Mapping | None = None, variants: Sequence[Mapping] | None = None,
                     baselines: Mapping | None = None, added: Mapping | None = None,
                     strata: Sequence[Mapping] | None = None, fvs: Mapping | None = None,
                     prediction: Sequence[Mapping] | None = None, claim: Mapping = CLAIM) -> str:
    """The chapter's Summary paragraph, every number and verdict from the run's records."""
    from .. import stats

    p = comp["primary"]
    out = []
    if clf is not None:
        out.append(f"Clean test accuracy {100 * clf['accuracy']:.1f} % (sensitivity {100 * clf['sensitivity']:.1f} %, "
                   f"specificity {100 * clf['specificity']:.1f} %).")
    out.append(f"**Primary:** under Gaussian noise, SUE correct − misclassified = {p['effect']:.3f} "
               f"{_ci(p['ci95'])} (AUROC {p['auroc']:.3f} {_ci(p['auroc_ci95'])}): **{p['verdict']}**; the paper's "
               f"claim is **{stats.reproduction(p['verdict'], claim['expected'])}** with the pairs-of-draws SUE, "
               "top 10 %, clean target.")
    if comp.get("secondary"):
        out.append("Secondary (Holm): " + "; ".join(
            f"{PERTURBATION_LABELS.get(r['kind'], r['kind'])} {r['verdict']} (p_Holm {r['p_holm']:.2g})"
            for r in comp["secondary"]) + ".")
    if variants:
        fin = [v for v in variants if np.isfinite(v["auroc"])]
        if fin:
            lo, hi = min(fin, key=lambda v: v["auroc"]), max(fin, key=lambda v: v["auroc"])
            out.append(f"Across the {len(variants)} SUE variants the AUROC ranges from {lo['auroc']:.3f} "
                       f"({lo['reference']}, top {100 * lo['q']:g} %, target {lo['target']}) to {hi['auroc']:.3f} "
                       f"({hi['reference']}, top {100 * hi['q']:g} %, target {hi['target']}); "
                       f"{max(v['n_empty'] for v in variants)} windows at most had an empty map.")
    if baselines:
        out.append("Prediction-only baselines: " + ", ".join(
            f"{k} AUROC {v['auroc']:.3f} {_ci(v['auroc_ci95'])}" for k, v in baselines.items()) + ".")
    if added:
        out.append(added_value_sentence(added))
    if prediction:
        out.append("Mean SUE by predicted class: " + "; ".join(
            f"true {r['true']}, predicted {r['predicted']} {r['sue_mean']:.3f} (n = {r['n']})"
            for r in prediction if r["n"]) + ".")
    if strata:
        def _w(r):
            if not np.isfinite(r["auroc"]):
                return f"{r['severity']}: no comparison ({r['n_mis']} misclassified)"
            v = stats.verdict([r["auroc_ci95"][0] - 0.5, r["auroc_ci95"][1] - 0.5])
            return f"{r['severity']} AUROC {r['auroc']:.3f} {_ci(r['auroc_ci95'])} ({r['n_mis']} misclassified; {v})"
        out.append("Within the generator's severity strata: " + "; ".join(_w(r) for r in strata) + ".")
    if fidelity:
        above = stats.verdict([fidelity["mass_in_mask_ci95"][0] - fidelity["chance"],
                               fidelity["mass_in_mask_ci95"][1] - fidelity["chance"]])
        pc = "; ".join(f"{k} {v['mass_in_mask']:.3f} {_ci(v['mass_in_mask_ci95'])} vs {v['chance']:.3f}"
                       for k, v in fidelity["per_class"].items())
        out.append(f"Fidelity: mass in the ST–T mask {fidelity['mass_in_mask']:.3f} {_ci(fidelity['mass_in_mask_ci95'])} "
                   f"against chance {fidelity['chance']:.3f} ({above} than chance; per class: {pc}); pointing game "
                   f"{fidelity['pointing_game']:.3f}; deletion area {fidelity['deletion_auc']:.3f} vs "
                   f"{fidelity['deletion_auc_random']:.3f} random, insertion {fidelity['insertion_auc']:.3f} vs "
                   f"{fidelity['insertion_auc_random']:.3f} random.")
    if sanity:
        out.append(f"Cascading randomisation: {'passes' if sanity['passes'] else 'fails'} "
                   f"(max mean ρ {max(s['spearman_to_trained'] for s in sanity['cascading']):.2f}).")
    if fvs:
        out.append(f"Fidelity vs SUE per window: Spearman {fvs['spearman']:.3f} {_ci(fvs['ci95'])}.")
    return " ".join(out)


@torch.no_grad()
def region_occlusion(model: torch.nn.Module, x: Tensor, mask: Tensor, y: Tensor, *,
                     classes: Sequence[str] = ("healthy", "CAD"), seed: int = 0) -> list[dict]:
    """What evidence does the model use? Per true class: the mean probability of the true class on
    the clean windows, with the ST–T ``mask`` samples set to 0 (the standardised mean), with every
    *other* sample set to 0, and with a random set of samples of the mask's size set to 0 (same count
    per window). If occluding the mask hurts no more than occluding random samples, the model's
    evidence is not (only) where the generator put it."""
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    m = mask.bool()
    rnd = torch.zeros_like(m)
    for i in range(len(m)):
        k = int(m[i].sum())
        rnd[i, torch.randperm(m.shape[-1], generator=g)[:k]] = True

    def p_true(xx):
        out = []
        for lo in range(0, len(xx), 256):
            pr = torch.softmax(model(xx[lo:lo + 256].to(dev)).double(), -1).cpu()
            out.append(pr.gather(1, y[lo:lo + 256, None].long())[:, 0])
        return torch.cat(out)

    zero = lambda keep: torch.where(keep[:, None], x, torch.zeros_like(x))  # noqa: E731
    p = {"clean": p_true(x), "mask occluded": p_true(zero(~m)), "outside occluded": p_true(zero(m)),
         "random occluded": p_true(zero(~rnd))}
    rows = []
    for c in sorted(set(y.tolist())):
        sel = y == c
        rows.append({"class": classes[c], "n": int(sel.sum()), **{k: float(v[sel].mean()) for k, v in p.items()}})
    return rows


def prediction_rows(sue: Tensor, clean_pred: Tensor, y: Tensor, *, classes: Sequence[str] = ("healthy", "CAD")) -> list[dict]:
    """Mean and SD of SUE in every (true class, predicted class) cell: does SUE follow the *explained*
    (predicted) class rather than correctness? ``[{true, predicted, n, sue_mean, sue_sd}]``."""
    s, p, t = _f64(sue), _f64(clean_pred).astype(int), _f64(y).astype(int)
    rows = []
    for a in sorted(set(t.tolist())):
        for b in range(len(classes)):
            m = (t == a) & (p == b) & np.isfinite(s)
            rows.append({"true": classes[a], "predicted": classes[b], "n": int(m.sum()),
                         "sue_mean": float(s[m].mean()) if m.any() else float("nan"),
                         "sue_sd": float(s[m].std(ddof=1)) if m.sum() > 1 else float("nan")})
    return rows


def strata_sentence(strata: Sequence[Mapping]) -> str:
    """Markdown: per stratum, whether SUE's AUROC is above or below 0.5 (``stats.verdict`` of the
    AUROC interval minus 0.5), or not comparable."""
    from .. import stats

    words = {"higher": "correct windows have the higher SUE", "lower": "misclassified windows have the **higher** SUE",
             "no detectable difference": "no detectable difference"}
    out = []
    for r in strata:
        if r["n_mis"] == 0 or r["n_correct"] == 0 or not np.isfinite(r["auroc"]):
            out.append(f"- {r['severity']}: {r['n_mis']} misclassified, {r['n_correct']} correct — no comparison.")
            continue
        v = stats.verdict([r["auroc_ci95"][0] - 0.5, r["auroc_ci95"][1] - 0.5])
        out.append(f"- {r['severity']}: AUROC {r['auroc']:.3f} {_ci(r['auroc_ci95'])} "
                   f"({r['n_mis']} misclassified): {words[v]}.")
    return "\n".join(out)


def fidelity_sentence(rec: Mapping) -> str:
    """Markdown: is the mass in the ST–T mask above chance, overall and per class (``stats.verdict`` of
    the interval minus chance), and do the deletion / insertion areas beat the random order?"""
    from .. import stats

    def one(name, r):
        v = stats.verdict([r["mass_in_mask_ci95"][0] - r["chance"], r["mass_in_mask_ci95"][1] - r["chance"]])
        word = {"higher": "above chance", "lower": "**below chance**",
                "no detectable difference": "**not detectably above chance**"}[v]
        return (f"{name}: {r['mass_in_mask']:.3f} {_ci(r['mass_in_mask_ci95'])} against {r['chance']:.3f} — {word} "
                f"(pointing game {r['pointing_game']:.3f})")

    parts = [one("all windows", rec)] + [one(f"class {k}", v) for k, v in rec["per_class"].items()]
    dele = "lower" if rec["deletion_auc"] < rec["deletion_auc_random"] else "not lower"
    ins = "higher" if rec["insertion_auc"] > rec["insertion_auc_random"] else "not higher"
    return ("Mass of the clean Grad-CAM maps in the ST–T mask — " + "; ".join(parts) + ". Deletion area "
            f"{rec['deletion_auc']:.3f} ({dele} than {rec['deletion_auc_random']:.3f} for a random order), insertion "
            f"area {rec['insertion_auc']:.3f} ({ins} than {rec['insertion_auc_random']:.3f}).")


def occlusion_sentence(rows: Sequence[Mapping]) -> str:
    """Markdown: per class, the probability of the true class clean and with each occlusion."""
    return "\n".join(f"- {r['class']} (n = {r['n']}): P(true class) {r['clean']:.3f} clean, {r['mask occluded']:.3f} "
                     f"with the ST–T mask zeroed, {r['outside occluded']:.3f} with everything else zeroed, "
                     f"{r['random occluded']:.3f} with as many random samples zeroed." for r in rows)

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
from ..perturb import PERTURBATION_LABELS, PERTURBATIONS, _check_kind, _check_snr, make_perturbation, snr_db

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


def _f64(v) -> np.ndarray:
    """A tensor (any device) or array-like as a float64 NumPy array."""
    return torch.as_tensor(v).detach().cpu().double().numpy()


# ----------------------------------------------------------------------------------- SUE study
class PerturbationSUE(NamedTuple):
    """Test-time-perturbation results of one perturbation kind for ``B`` windows.

    ``maps`` [S, B, T] Grad-CAM maps of the S perturbed draws (layer resolution), ``sue`` [B],
    ``clean_pred`` [B] (prediction on the clean window, also the explained class), ``draw_pred`` [S, B]
    (prediction on each perturbed draw), ``majority_pred`` [B] (most frequent draw prediction, ties to
    the clean prediction), ``flip_rate`` [B] (share of draws whose prediction differs from the clean one).
    """

    kind: str
    snr_db: float
    maps: Tensor
    sue: Tensor
    clean_pred: Tensor
    draw_pred: Tensor
    majority_pred: Tensor
    flip_rate: Tensor


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
    maps, sue, clean, dpred = [], [], [], []
    for xb in x.split(chunk):
        st = samplers.test_time(model, xb, layer, perturb, draws, method=method, generator=gen)
        up = saliency.upsample(st.maps, size)
        sue.append(metrics.sue(up, quantile=quantile).float().cpu())
        maps.append(st.maps.float().cpu())
        clean.append(st.target.cpu())
        dpred.append(st.probs.argmax(-1).cpu())
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
    """SNR in dB actually achieved by each perturbed copy of one window (``10 log10(P_x / P_n)``).

    >>> x = torch.ones(100, dtype=torch.float64); round(achieved_snr(x, {"a": x + 0.1})["a"], 6)
    20.0
    """
    c = torch.as_tensor(clean).reshape(1, 1, -1).double()
    return {k: float(snr_db(c, torch.as_tensor(v).reshape(1, 1, -1).double() - c)[0]) for k, v in noisy.items()}


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


def describe_rows(rows: Mapping[str, Mapping[str, float]], *, definition: str = "clean prediction",
                  min_group: int = MIN_GROUP) -> str:
    """Markdown: for how many perturbations correct windows have the higher mean SUE, one line each,
    with a warning where the misclassified group is empty or smaller than ``min_group``."""
    lines, higher, compared = [], 0, 0
    for k, r in rows.items():
        lab = PERTURBATION_LABELS.get(k, k)
        if r["n_mis"] == 0:
            lines.append(f"- {lab}: no misclassified window (n correct = {r['n_correct']}); nothing to compare.")
            continue
        compared += 1
        higher += bool(r["sue_correct_mean"] > r["sue_mis_mean"])
        few = f" — only {r['n_mis']} misclassified, treat as anecdotal" if r["n_mis"] < min_group else ""
        p = "–" if not np.isfinite(r["mwu_p"]) else f"{r['mwu_p']:.2g}"
        auc = "–" if not np.isfinite(r["auroc"]) else f"{r['auroc']:.3f}"
        lines.append(f"- {lab}: SUE {r['sue_correct_mean']:.3f} (correct, n = {r['n_correct']}) vs "
                     f"{r['sue_mis_mean']:.3f} (misclassified, n = {r['n_mis']}), AUROC {auc}, p = {p}{few}")
    head = (f"Correct windows have the higher mean SUE for **{higher} of {compared}** perturbation types "
            f"that have misclassified windows ({definition} definition):")
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


"""Figures and tables of the ECG chapter (``ecg_sue``): Table 1 replica, SUE curves, example maps.

Table builders are pure functions of per-window SUE and correctness, so every number on the page
comes from the run; the paper's values (Salvi et al. 2025, Table 1, from Seoni et al. 2024) are
kept here, labelled as theirs, only to be shown beside ours.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .common import _fig_ax, group_distributions, normalize01, resize_map, to_numpy, trend

__all__ = [
    "PAPER_CLASSIFICATION",
    "PAPER_TABLE1",
    "PERTURBATION_LABELS",
    "sue_table",
    "table_rows",
    "classification_table",
    "sue_vs_snr_frame",
    "plot_sue_vs_snr",
    "plot_sue_by_correctness",
    "plot_window_maps",
    "plot_fidelity",
    "pick_examples",
    "plot_class_examples",
    "plot_perturbations",
    "plot_example_pair",
    "sweep_frames",
    "describe_rows",
    "headline_numbers",
    "MIN_GROUP",
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
PERTURBATION_LABELS = {
    "gaussian": "Gaussian noise",
    "powerline": "Power-line interference",
    "baseline": "Motion artefact (baseline wander)",
    "electrode": "Electrode motion",
}
ROW_KEYS = ("sue_correct_mean", "sue_correct_sd", "n_correct", "sue_mis_mean", "sue_mis_sd", "n_mis",
            "mwu_p", "auroc")


def table_rows(sue: Mapping[str, Tensor], correct: Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per perturbation: SUE of correct vs misclassified windows (``metrics.compare_groups``).

    ``auroc`` is the AUROC of SUE for telling correct from misclassified windows (equivalently of
    ``-SUE`` for flagging a misclassification); NaN statistics where a group is empty.
    """
    from .. import metrics

    rows = {}
    for kind, s in sue.items():
        g = metrics.compare_groups(s, torch.as_tensor(correct[kind]).bool(), higher_in="a").as_dict()
        rows[kind] = {
            "sue_correct_mean": float(g["mean_a"]), "sue_correct_sd": float(g["sd_a"]), "n_correct": int(g["n_a"]),
            "sue_mis_mean": float(g["mean_b"]), "sue_mis_sd": float(g["sd_b"]), "n_mis": int(g["n_b"]),
            "mwu_p": float(g["mwu_p"]), "auroc": float(g["auroc"]),
        }
    return rows


def sue_table(rows: Mapping[str, Mapping[str, float]], *, paper: bool = True, digits: int = 3) -> pd.DataFrame:
    """Table 1 replica: one row per perturbation, ours (mean ± SD, n, p, AUROC) beside the paper's."""

    def pm(m, s):
        return "–" if not np.isfinite(m) else (f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}")

    out = []
    for kind, r in rows.items():
        row = {
            "perturbation": PERTURBATION_LABELS.get(kind, kind),
            "SUE correct (ours)": pm(r["sue_correct_mean"], r["sue_correct_sd"]),
            "n correct": r["n_correct"],
            "SUE misclassified (ours)": pm(r["sue_mis_mean"], r["sue_mis_sd"]),
            "n misclassified": r["n_mis"],
            "Mann–Whitney p": "–" if not np.isfinite(r["mwu_p"]) else f"{r['mwu_p']:.2g}",
            "AUROC (SUE)": "–" if not np.isfinite(r["auroc"]) else f"{r['auroc']:.{digits}f}",
        }
        if paper and kind in PAPER_TABLE1:
            a, b, c, d = PAPER_TABLE1[kind]
            row["SUE correct (paper)"] = pm(a, b)
            row["SUE misclassified (paper)"] = pm(c, d)
        out.append(row)
    return pd.DataFrame(out).set_index("perturbation")


def classification_table(ours: Mapping[str, float]) -> pd.DataFrame:
    """Clean test accuracy / sensitivity / specificity (percent), ours beside the paper's."""
    keys = ("accuracy", "sensitivity", "specificity")
    return pd.DataFrame(
        {"ours (synthetic or given data)": [round(100 * float(ours[k]), 1) for k in keys],
         "paper (Fantasia + INCART)": [PAPER_CLASSIFICATION[k] for k in keys]},
        index=[k for k in keys],
    )


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
    yy = None if y is None else to_numpy(y).astype(int)
    rows = []
    for r in records:
        s = to_numpy(r["sue"]).astype(float)
        if yy is not None:
            c = to_numpy(r[f"{definition}_pred"]).astype(int) == yy
            acc = float((to_numpy(r["draw_pred"]).astype(int) == yy[None]).mean())
        else:
            c = to_numpy(r["correct"]).astype(bool)
            acc = float(c.mean())
        rows.append({
            "kind": r["kind"], "snr_db": float(r["snr_db"]), "sue_mean": s.mean(), "sue_sd": s.std(ddof=1) if len(s) > 1 else 0.0,
            "sue_correct": s[c].mean() if c.any() else np.nan, "sue_mis": s[~c].mean() if (~c).any() else np.nan,
            "accuracy": acc, "n": len(s), "n_mis": int((~c).sum()),
        })
    return pd.DataFrame(rows).sort_values(["kind", "snr_db"], kind="stable").reset_index(drop=True)


def plot_sue_vs_snr(frame: pd.DataFrame, axes=None):
    """Mean SUE (± SD) and accuracy under perturbation against SNR, one line per perturbation kind."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.0))
    fig = axes[0].figure
    for kind, f in frame.groupby("kind", sort=False):
        lab = PERTURBATION_LABELS.get(kind, kind)
        trend(f["snr_db"], f["sue_mean"], f["sue_sd"], ax=axes[0], label=lab, xlabel="SNR (dB)", ylabel="SUE")
        trend(f["snr_db"], f["accuracy"], ax=axes[1], xlabel="SNR (dB)", ylabel="accuracy of perturbed draws")
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].set_title("SUE of Grad-CAM under test-time perturbation", fontsize=9)
    axes[1].set_title("accuracy of perturbed predictions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_sue_by_correctness(sue: Mapping[str, Tensor], correct: Mapping[str, Tensor], *, kind: str = "violin",
                            axes=None, title: str | None = None):
    """One panel per perturbation: SUE distribution of correct vs misclassified windows."""
    import matplotlib.pyplot as plt

    kinds = list(sue)
    if axes is None:
        fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds), 3.0), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, k in zip(axes, kinds):
        c = to_numpy(correct[k]).astype(bool)
        s = to_numpy(sue[k]).astype(float)
        data = {f"correct\n(n={c.sum()})": s[c]}
        if (~c).any():
            data[f"misclassified\n(n={(~c).sum()})"] = s[~c]
        group_distributions(data, ax=ax, kind=kind, ylabel="SUE" if ax is axes[0] else None,
                            title=PERTURBATION_LABELS.get(k, k))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_window_maps(signal, clean_map=None, perturbed_maps=None, ax=None, *, fs: float = 250.0,
                     title: str | None = None, mask=None, n_show: int = 5, clean_signal=None):
    """An ECG window with its clean Grad-CAM map (filled, red) and perturbed maps (thin lines) on top.

    Maps are min-max scaled to [0, 1] for display and drawn on a twin axis; ``mask`` (ST–T truth)
    is shaded grey; ``clean_signal`` (when ``signal`` is a perturbed copy) is drawn in light grey.
    Without maps only the trace (and mask) is drawn.
    """
    fig, ax = _fig_ax(ax, figsize=(6.5, 2.4))
    s = to_numpy(signal).squeeze()
    t = np.arange(len(s)) / fs
    if mask is not None:
        m = to_numpy(mask).astype(bool).squeeze()
        ax.fill_between(t, s.min(), s.max(), where=m, color="0.85", step="mid", lw=0, label="ST–T (truth)")
    if clean_signal is not None:
        ax.plot(t, to_numpy(clean_signal).squeeze(), color="0.6", lw=0.8, label="clean")
    ax.plot(t, s, color="black", lw=0.9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ECG (standardised)")
    if title:
        ax.set_title(title, fontsize=9)
    if clean_map is None and perturbed_maps is None:
        if mask is not None:
            ax.legend(fontsize=7, frameon=False, loc="upper right")
        return fig
    ax2 = ax.twinx()
    if clean_map is not None:
        cm = normalize01(resize_map(to_numpy(clean_map).squeeze(), len(s)))
        ax2.fill_between(t, 0, cm, color="tab:red", alpha=0.25, lw=0, label="clean map")
    pm = to_numpy(perturbed_maps) if perturbed_maps is not None else np.zeros((0, len(s)))
    for i in range(min(n_show, len(pm))):
        ax2.plot(t, normalize01(resize_map(pm[i].squeeze(), len(s))), color="tab:blue", lw=0.7, alpha=0.7,
                 label="perturbed maps" if i == 0 else None)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("Grad-CAM (scaled)")
    ax2.legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def plot_fidelity(mass: Tensor, y: Tensor, chance: float, ax=None, classes=("healthy", "CAD")):
    """Share of Grad-CAM mass inside the ST–T mask by class, with the mask's share of samples (chance)."""
    fig, ax = _fig_ax(ax, figsize=(3.6, 3.0))
    m, yy = to_numpy(mass).astype(float), to_numpy(y).astype(int)
    ok = np.isfinite(m)  # all-zero maps have no mass to place
    m, yy = m[ok], yy[ok]
    group_distributions({c: m[yy == i] for i, c in enumerate(classes) if (yy == i).any()}, ax=ax, kind="box",
                        ylabel="Grad-CAM mass in ST–T mask")
    ax.axhline(chance, color="tab:red", ls="--", lw=1)
    ax.text(0.55, chance, " chance (mask share)", color="tab:red", fontsize=7, va="bottom")
    ax.set_ylim(0, 1)
    return fig


def pick_examples(sue: Tensor, correct: Tensor) -> tuple[int | None, int | None]:
    """Index of the correct window with the highest SUE and of the misclassified one with the lowest."""
    s, c = torch.as_tensor(sue, dtype=torch.float64), torch.as_tensor(correct).bool()
    hi = int(torch.where(c, s, torch.full_like(s, -np.inf)).argmax()) if c.any() else None
    lo = int(torch.where(~c, s, torch.full_like(s, np.inf)).argmin()) if (~c).any() else None
    return hi, lo


def plot_class_examples(x: Tensor, y: Tensor, classes: Sequence[str], mask: Tensor | None = None, *,
                        fs: float = 250.0):
    """The first window of every class side by side (ST–T mask shaded when given)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(classes), figsize=(5.0 * len(classes), 2.6), sharey=True, squeeze=False)
    for ax, (c, name) in zip(axes[0], enumerate(classes)):
        hits = torch.nonzero(torch.as_tensor(y) == c).flatten()
        if not len(hits):
            ax.set_axis_off()
            ax.set_title(f"no {name} window", fontsize=9)
            continue
        i = int(hits[0])
        plot_window_maps(x[i], ax=ax, fs=fs, mask=None if mask is None else mask[i], title=f"{name} (window {i})")
    fig.tight_layout()
    return fig


def plot_perturbations(clean: Tensor, noisy: Mapping[str, Tensor], *, fs: float = 250.0, target_snr_db=None):
    """One panel per noise kind: a perturbed copy (black) over the clean window (grey), with the
    SNR achieved on that copy (``perturb.achieved_snr_db``) in the title."""
    import matplotlib.pyplot as plt

    from ..perturb import achieved_snr_db

    kinds = list(noisy)
    ncol = 2 if len(kinds) > 1 else 1
    nrow = int(np.ceil(len(kinds) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 2.2 * nrow), sharex=True, sharey=True, squeeze=False)
    c = torch.as_tensor(clean).reshape(1, 1, -1).double()
    for ax, k in zip(axes.flat, kinds):
        v = torch.as_tensor(noisy[k]).reshape(1, 1, -1).double()
        got = float(achieved_snr_db(c, v)[0, 0])
        want = "" if target_snr_db is None else f" (target {float(target_snr_db):g} dB)"
        plot_window_maps(v[0, 0], ax=ax, fs=fs, clean_signal=c[0, 0],
                         title=f"{PERTURBATION_LABELS.get(k, k)}: SNR {got:.2f} dB{want}")
    for ax in list(axes.flat)[len(kinds):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_example_pair(x: Tensor, clean_maps: Tensor, maps: Tensor, sue: Tensor, correct: Tensor, y: Tensor,
                      clean_pred: Tensor, *, classes: Sequence[str], mask: Tensor | None = None, caption: str = "",
                      fs: float = 250.0, n_show: int = 5):
    """Left: the correctly classified window with the highest SUE; right: the misclassified one with
    the lowest SUE (:func:`pick_examples`), each with its clean map and ``n_show`` perturbed maps
    (``maps`` [S, B, T]). A missing group leaves its panel empty with a note.
    """
    import matplotlib.pyplot as plt

    hi, lo = pick_examples(sue, correct)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
    for ax, i, what in zip(axes, (hi, lo), ("correct, highest SUE", "misclassified, lowest SUE")):
        if i is None:
            ax.set_axis_off()
            ax.set_title(f"no {what.split(',')[0]} window", fontsize=9)
            continue
        plot_window_maps(x[i], clean_maps[i], maps[:, i], ax=ax, fs=fs, n_show=n_show,
                         mask=None if mask is None else mask[i],
                         title=f"{what} {caption}\nlabel {classes[int(y[i])]}, clean prediction "
                               f"{classes[int(clean_pred[i])]}, SUE {float(sue[i]):.3f}")
    fig.tight_layout()
    return fig


def sweep_frames(x: Tensor, clean_map: Tensor, records: Sequence[Mapping], label: int, *, fs: float = 250.0,
                 dpi: int = 60, n_show: int = 10, nstdb: Mapping[str, Tensor] | None = None) -> list[list[bytes]]:
    """PNG frames ``[kind][snr]`` of one window for a widget, from ``perturb.sue_sweep(..., keep_maps=True)``
    run on that window alone (``x`` [1, C, L]).

    Each frame shows the first perturbed draw (reproduced with ``perturb.draw_inputs``), the clean
    map, the maps of the draws, the window's SUE and how many draws were classified correctly.
    ``fs`` and ``nstdb`` must be those the sweep ran with.
    """
    import matplotlib.pyplot as plt

    from ..perturb import draw_inputs
    from ..widgets import figure_to_png

    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"sweep_frames shows one window: x must be [1, C, L], got {tuple(x.shape)}")
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    snrs = list(dict.fromkeys(float(r["snr_db"]) for r in records))
    by = {(r["kind"], float(r["snr_db"])): r for r in records}
    frames = []
    for k in kinds:
        row = []
        for snr in snrs:
            r = by[(k, snr)]
            if "maps" not in r:
                raise ValueError("records carry no maps: run perturb.sue_sweep(..., keep_maps=True)")
            draws = r["draw_pred"].shape[0]
            noisy = draw_inputs(x.cpu(), k, snr, 1, seed=r["seed"], fs=fs, nstdb=nstdb)[0, 0]
            ok = int((r["draw_pred"][:, 0] == int(label)).sum())
            fig, ax = plt.subplots(figsize=(6.0, 2.2))
            plot_window_maps(noisy, clean_map, r["maps"][:, 0], ax=ax, fs=fs, n_show=n_show,
                             title=f"{PERTURBATION_LABELS.get(k, k)}, {snr:g} dB: SUE {float(r['sue'][0]):.3f}, "
                                   f"{ok}/{draws} draws correct")
            fig.tight_layout()
            row.append(figure_to_png(fig, dpi=dpi))
        frames.append(row)
    return frames


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
    from ..cache import finite_or_none, round_sig

    out = {k: float(classification[k]) for k in ("accuracy", "sensitivity", "specificity")}
    for definition, per_kind in rows.items():
        key = "perturbations" if definition == "clean" else f"perturbations_{definition}"
        out[key] = {k: {kk: r[kk] for kk in ROW_KEYS} for k, r in per_kind.items()}
    out.update({k: v for k, v in extra.items() if v is not None})
    return finite_or_none(round_sig(out))

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
]

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


def sue_vs_snr_frame(records: Sequence[Mapping]) -> pd.DataFrame:
    """Long table from records ``{kind, snr_db, sue [B], correct [B]}``: mean/SD SUE per group, accuracy."""
    rows = []
    for r in records:
        s = to_numpy(r["sue"]).astype(float)
        c = to_numpy(r["correct"]).astype(bool)
        rows.append({
            "kind": r["kind"], "snr_db": float(r["snr_db"]), "sue_mean": s.mean(), "sue_sd": s.std(ddof=1) if len(s) > 1 else 0.0,
            "sue_correct": s[c].mean() if c.any() else np.nan, "sue_mis": s[~c].mean() if (~c).any() else np.nan,
            "accuracy": c.mean(), "n": len(s),
        })
    return pd.DataFrame(rows).sort_values(["kind", "snr_db"]).reset_index(drop=True)


def plot_sue_vs_snr(frame: pd.DataFrame, axes=None):
    """Mean SUE (± SD) and accuracy under perturbation against SNR, one line per perturbation kind."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.0))
    fig = axes[0].figure
    for kind, f in frame.groupby("kind", sort=False):
        lab = PERTURBATION_LABELS.get(kind, kind)
        trend(f["snr_db"], f["sue_mean"], f["sue_sd"], ax=axes[0], label=lab, xlabel="SNR (dB)", ylabel="SUE")
        trend(f["snr_db"], f["accuracy"], ax=axes[1], xlabel="SNR (dB)", ylabel="accuracy (clean label)")
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


def plot_window_maps(signal, clean_map, perturbed_maps, ax=None, *, fs: float = 250.0, title: str | None = None,
                     mask=None, n_show: int = 5):
    """An ECG window with its clean Grad-CAM map (filled, red) and perturbed maps (thin lines) on top.

    Maps are min-max scaled to [0, 1] for display and drawn on a twin axis; ``mask`` (ST–T truth)
    is shaded grey.
    """
    fig, ax = _fig_ax(ax, figsize=(6.5, 2.4))
    s = to_numpy(signal).squeeze()
    t = np.arange(len(s)) / fs
    if mask is not None:
        m = to_numpy(mask).astype(bool).squeeze()
        ax.fill_between(t, s.min(), s.max(), where=m, color="0.85", step="mid", lw=0, label="ST–T (truth)")
    ax.plot(t, s, color="black", lw=0.9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ECG (standardised)")
    ax2 = ax.twinx()
    cm = normalize01(resize_map(to_numpy(clean_map).squeeze(), len(s)))
    ax2.fill_between(t, 0, cm, color="tab:red", alpha=0.25, lw=0, label="clean map")
    pm = to_numpy(perturbed_maps)
    for i in range(min(n_show, len(pm))):
        ax2.plot(t, normalize01(resize_map(pm[i].squeeze(), len(s))), color="tab:blue", lw=0.7, alpha=0.7,
                 label="perturbed maps" if i == 0 else None)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("Grad-CAM (scaled)")
    ax2.legend(fontsize=7, frameon=False, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
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

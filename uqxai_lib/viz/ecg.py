"""Figures and tables of the ECG chapter (``ecg_sue``): Table 1 replica, SUE curves, example maps.

Drawing only: every function takes the records computed by :mod:`uqxai_lib.studies.ecg` (rows,
frames, indices, achieved SNRs, perturbed traces) and returns a figure or a styled table. The
paper's values (Salvi et al. 2025, Table 1, theirs) are handed in as ``paper=`` to be shown beside ours.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..perturb import PERTURBATION_LABELS
from ..report import fmt_bracket
from .common import _fig_ax, group_distributions, normalize01, resize_map, to_numpy, trend

#: Short names of the noise types for panel titles.
SHORT_LABELS = {"gaussian": "Gaussian", "powerline": "power line", "baseline": "baseline wander",
                "electrode": "electrode motion"}

__all__ = [
    "PERTURBATION_LABELS",
    "sue_table",
    "classification_table",
    "plot_sue_vs_snr",
    "plot_sue_by_correctness",
    "plot_window_maps",
    "plot_fidelity",
    "plot_class_examples",
    "plot_perturbations",
    "plot_example_pair",
    "sweep_frames",
    "variants_table",
    "plot_variants",
    "baselines_table",
    "strata_table",
    "layer_choice_table",
    "fidelity_table",
    "plot_deletion_insertion",
    "plot_cascading",
    "plot_fidelity_vs_stability",
    "occlusion_table",
    "within_class_table",
    "empty_rule_table",
    "rho_title",
    "plain",
    "sanity_table",
]

#: Salvi et al. (2025), Table 1 and the CNN-BiLSTM's test results are theirs: the numbers live in
#: ``uqxai_lib.studies.ecg`` (``PAPER_TABLE1``, ``PAPER_CLASSIFICATION``) and are passed in as ``paper``.


def plain(df: pd.DataFrame, *, index: str | None = None):
    """A table without an index column: the index becomes the first column (named ``index``) and
    the rendered table hides the row labels (a ``pandas`` Styler)."""
    out = df.reset_index() if index is None else df.rename_axis(index).reset_index()
    return out.style.hide(axis="index")


def _pm(m, s, digits: int = 3) -> str:
    if m is None or not np.isfinite(m):
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if s is not None and np.isfinite(s) else f"{m:.{digits}f}"


def sue_table(rows: Mapping[str, Mapping], *, paper: Mapping[str, Sequence[float]] | None = None, digits: int = 3):
    """Table 1 replica, one row per noise type (``studies.ecg.table_rows``): our SUE of correct and
    misclassified windows (mean ± SD), the difference with its 95 % interval, the verdict (the
    primary's from its interval, the others' Holm-adjusted; "undefined" below 5 windows in a group)
    and the paper's difference (``paper[kind] = (mean correct, SD, mean misclassified, SD)``,
    theirs). Group sizes go in the header when they are the same for every noise type."""
    out = []
    nc = {r["n_correct"] for r in rows.values()}
    nm = {r["n_mis"] for r in rows.values()}
    one = len(nc) == 1 and len(nm) == 1
    for kind, r in rows.items():
        c_lab = "correct" + (f" (n = {r['n_correct']})" if one else "")
        m_lab = "misclassified" + (f" (n = {r['n_mis']})" if one else "")
        row = {"noise": PERTURBATION_LABELS.get(kind, kind).replace(" (baseline wander)", ""),
               c_lab: _pm(r["sue_correct_mean"], r["sue_correct_sd"], digits),
               m_lab: _pm(r["sue_mis_mean"], r["sue_mis_sd"], digits) + ("" if one else f" (n = {r['n_mis']})"),
               "difference [95 % CI]": "–" if r.get("effect") is None or not np.isfinite(r["effect"]) else
               f"{r['effect']:+.{digits}f} {fmt_bracket(r['ci95'], digits)}",
               "verdict": r.get("verdict", "–")}
        if paper and kind in paper:
            a, _, c, _ = paper[kind]
            row["theirs: difference"] = f"{a - c:+.{digits}f}"
        out.append(row)
    return pd.DataFrame(out).style.hide(axis="index")


def classification_table(ours: Mapping[str, float], paper: Mapping[str, float]) -> pd.DataFrame:
    """Clean test accuracy / sensitivity / specificity (percent), ours beside the paper's (theirs, percent)."""
    keys = ("accuracy", "sensitivity", "specificity")
    return pd.DataFrame(
        {"test set (%)": list(keys),
         "ours (phantom)": [f"{100 * float(ours[k]):.1f}" for k in keys],
         "theirs (Fantasia + INCART)": [f"{paper[k]:.1f}" for k in keys]},
    ).style.hide(axis="index")


def plot_sue_vs_snr(frame: pd.DataFrame, axes=None):
    """Mean SUE (± SD) and accuracy under perturbation against SNR, one line per perturbation kind."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    fig = axes[0].figure
    for kind, f in frame.groupby("kind", sort=False):
        lab = PERTURBATION_LABELS.get(kind, kind)
        trend(f["snr_db"], f["sue_mean"], f["sue_sd"], ax=axes[0], label=lab, xlabel="SNR (dB)", ylabel="SUE")
        trend(f["snr_db"], f["accuracy"], ax=axes[1], xlabel="SNR (dB)", ylabel="accuracy of perturbed draws")
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].set_title("SUE of Grad-CAM", fontsize=9)
    axes[1].set_title("accuracy of the noisy predictions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_sue_by_correctness(sue: Mapping[str, Tensor], correct: Mapping[str, Tensor], *, kind: str = "violin",
                            axes=None, title: str | None = None):
    """One panel per perturbation: SUE distribution of correct vs misclassified windows."""
    import matplotlib.pyplot as plt

    kinds = list(sue)
    if axes is None:
        fig, axes = plt.subplots(1, len(kinds), figsize=(7.0, 2.8), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, k in zip(axes, kinds):
        c = to_numpy(correct[k]).astype(bool)
        s = to_numpy(sue[k]).astype(float)
        data = {"correct": s[c & np.isfinite(s)]}
        if (~c).any():
            data["mis-\nclassified"] = s[~c & np.isfinite(s)]
        group_distributions(data, ax=ax, kind=kind, ylabel="SUE" if ax is axes[0] else None,
                            title=SHORT_LABELS.get(k, k))
        ax.title.set_fontsize(8)
        ax.tick_params(labelsize=7)
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


def plot_class_examples(x: Tensor, y: Tensor, classes: Sequence[str], mask: Tensor | None = None, *,
                        fs: float = 250.0):
    """The first window of every class side by side (ST–T mask shaded when given)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(classes), figsize=(7.0, 2.3), sharey=True, squeeze=False)
    for ax, (c, name) in zip(axes[0], enumerate(classes)):
        hits = torch.nonzero(torch.as_tensor(y) == c).flatten()
        if not len(hits):
            ax.set_axis_off()
            ax.set_title(f"no {name} window", fontsize=9)
            continue
        i = int(hits[0])
        plot_window_maps(x[i], ax=ax, fs=fs, mask=None if mask is None else mask[i], title=name)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_perturbations(clean: Tensor, noisy: Mapping[str, Tensor], achieved: Mapping[str, float], *,
                       fs: float = 250.0, target_snr_db=None):
    """One panel per noise kind: a perturbed copy (black) over the clean window (grey), with the
    SNR achieved on that copy (``achieved[kind]``, from ``studies.ecg.achieved_snr``) in the title."""
    import matplotlib.pyplot as plt

    kinds = list(noisy)
    ncol = 2 if len(kinds) > 1 else 1
    nrow = int(np.ceil(len(kinds) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.0, 1.9 * nrow + 0.3), sharex=True, sharey=True, squeeze=False)
    for ax, k in zip(axes.flat, kinds):
        plot_window_maps(noisy[k], ax=ax, fs=fs, clean_signal=clean,
                         title=f"{SHORT_LABELS.get(k, k)}: {float(achieved[k]):.1f} dB")
    for ax in axes.flat:
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
        if ax not in axes[-1]:
            ax.set_xlabel("")
    if target_snr_db is not None:
        fig.suptitle(f"one test window (grey) and a noisy copy (black); asked SNR {float(target_snr_db):g} dB, "
                     "measured in each title", fontsize=8)
    for ax in list(axes.flat)[len(kinds):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_example_pair(x: Tensor, clean_maps: Tensor, maps: Tensor, sue: Tensor, examples: tuple[int | None, int | None],
                      y: Tensor, clean_pred: Tensor, *, classes: Sequence[str], mask: Tensor | None = None,
                      caption: str = "", fs: float = 250.0, n_show: int = 5):
    """Left: the correctly classified window with the highest SUE; right: the misclassified one with
    the lowest SUE (``examples = (hi, lo)`` from ``studies.ecg.pick_examples``), each with its clean
    map and ``n_show`` perturbed maps (``maps`` [S, B, T]). A missing one (``None``) leaves its panel
    empty with a note.
    """
    import matplotlib.pyplot as plt

    hi, lo = examples
    fig, axes = plt.subplots(2, 1, figsize=(7.0, 4.6), sharex=True)
    for ax, i, what in zip(axes, (hi, lo), ("correct, highest SUE", "misclassified, lowest SUE")):
        if i is None:
            ax.set_axis_off()
            ax.set_title(f"no {what.split(',')[0]} window", fontsize=9)
            continue
        plot_window_maps(x[i], clean_maps[i], maps[:, i], ax=ax, fs=fs, n_show=n_show,
                         mask=None if mask is None else mask[i],
                         title=f"{what} {caption}: label {classes[int(y[i])]}, predicted "
                               f"{classes[int(clean_pred[i])]}, SUE {float(sue[i]):.3f}")
    axes[0].set_xlabel("")
    fig.tight_layout()
    return fig


def sweep_frames(clean_map: Tensor, records: Sequence[Mapping], noisy: Mapping[tuple[str, float], Tensor],
                 label: int, *, fs: float = 250.0, dpi: int = 60, n_show: int = 10) -> list[list[bytes]]:
    """PNG frames ``[kind][snr]`` of one window for a widget, from ``studies.ecg.sue_sweep(...,
    keep_maps=True)`` run on that window alone.

    Each frame shows the first perturbed draw (``noisy[(kind, snr)]``, from
    ``studies.ecg.first_draws``), the clean map, the maps of the draws, the window's SUE and how many
    draws were classified correctly.
    """
    import matplotlib.pyplot as plt

    from ..widgets import figure_to_png
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
            if r["draw_pred"].shape[1] != 1:
                raise ValueError(f"sweep_frames shows one window: the sweep ran on {r['draw_pred'].shape[1]} windows")
            ok = int((r["draw_pred"][:, 0] == int(label)).sum())
            fig, ax = plt.subplots(figsize=(6.0, 2.2))
            plot_window_maps(noisy[(k, snr)], clean_map, r["maps"][:, 0], ax=ax, fs=fs, n_show=n_show,
                             title=f"{PERTURBATION_LABELS.get(k, k)}, {snr:g} dB: SUE {float(r['sue'][0]):.3f}, "
                                   f"{ok}/{draws} draws correct")
            fig.tight_layout()
            row.append(figure_to_png(fig, dpi=dpi))
        frames.append(row)
    return frames


# ----------------------------------------------------------------------------------- fair-test tables and figures
def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(float(v)) else f"{float(v):.{digits}f}"


def variants_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """SUE variants (``studies.ecg.variant_rows``): AUROC (correct vs misclassified) with its 95 %
    interval and the number of windows left out for an empty region, one row per variant."""
    return pd.DataFrame([{"reference": r["reference"], "top region": f"{100 * r['q']:g} %", "target": r["target"],
                          "AUROC": _fmt(r["auroc"]), "95 % interval": fmt_bracket(r["auroc_ci95"]),
                          "windows left out (empty map)": r["n_empty"]} for r in rows]).style.hide(axis="index")


def plot_variants(rows: Sequence[Mapping], ax=None):
    """AUROC of SUE (± 95 % interval) against the top-region size, one line per reference × target."""
    fig, ax = _fig_ax(ax, figsize=(5.2, 3.2))
    keys = list(dict.fromkeys((r["reference"], r["target"]) for r in rows))
    for i, (ref, tgt) in enumerate(keys):
        rr = [r for r in rows if r["reference"] == ref and r["target"] == tgt]
        q = np.array([100 * r["q"] for r in rr]) + (i - (len(keys) - 1) / 2) * 0.4
        a = np.array([r["auroc"] for r in rr], dtype=float)
        lo = np.array([r["auroc_ci95"][0] for r in rr], dtype=float)
        hi = np.array([r["auroc_ci95"][1] for r in rr], dtype=float)
        ax.errorbar(q, a, yerr=[a - lo, hi - a], marker="o", ms=4, capsize=2, lw=1,
                    label=f"{'pairs of draws' if ref == 'pairs' else 'draw vs clean map'}, target {tgt}")
    ax.axhline(0.5, color="0.5", ls=":", lw=1)
    ax.set_xlabel("top region (% of samples)")
    ax.set_ylabel("AUROC of SUE (correct vs misclassified)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


BASELINE_NAMES = {"flip_rate": "prediction flip rate (−)", "margin": "softmax margin of the draws",
                  "entropy": "predictive entropy of the draws (−)", "logistic combination": "logistic combination"}


def baselines_table(sue_row: Mapping, baselines: Mapping[str, Mapping], added: Mapping | None = None):
    """AUROC (correct vs misclassified) of SUE beside the prediction-only baselines and, when given,
    the out-of-fold combinations of ``stats.added_value`` (``studies.ecg.beyond_baselines``): the
    baselines' logistic combination, and the baselines with SUE, with its gain over the strongest
    prediction-only score (a single baseline or the combination) and the interval."""
    rows = [{"score": "SUE", "AUROC": _fmt(sue_row["auroc"]), "95 % interval": fmt_bracket(sue_row["auroc_ci95"])}]
    rows += [{"score": BASELINE_NAMES.get(k, k), "AUROC": _fmt(v["auroc"]), "95 % interval": fmt_bracket(v["auroc_ci95"])}
             for k, v in baselines.items()]
    if added is not None and added.get("verdict") != "undefined":
        ref = "the combination" if added["strongest"] == "combination" else BASELINE_NAMES.get(added["strongest"],
                                                                                                 added["strongest"])
        rows.append({"score": "logistic combination of the baselines (out of fold)",
                     "AUROC": _fmt(added["auroc_combination"]), "95 % interval": ""})
        rows.append({"score": f"baselines + SUE (out of fold), against {ref}", "AUROC": _fmt(added["auroc_with_score"]),
                     "95 % interval": f"gain {_fmt(added['delta'])} {fmt_bracket(added['delta_ci95'])}"})
    return pd.DataFrame(rows).style.hide(axis="index")


def within_class_table(rec: Mapping):
    """SUE per true × predicted class and, per predicted class, the AUROC of SUE for correct vs
    misclassified windows; the last row is the class-stratified AUROC (``studies.ecg.within_class``)."""
    by = {r["predicted"]: r for r in rec["rows"]}
    out = []
    for cell in rec["cells"]:
        r = by[cell["predicted"]]
        first = cell["true"] == cell["predicted"]
        out.append({"predicted": cell["predicted"], "true": cell["true"], "n": cell["n"],
                    "SUE": _pm(cell["sue_mean"], cell["sue_sd"]),
                    "AUROC within the predicted class": (("undefined" if r.get("verdict") == "undefined" else
                                                          f"{_fmt(r['auroc'])} {fmt_bracket(r['auroc_ci95'])}")
                                                         if first else "")})
    out.sort(key=lambda r: (r["predicted"], r["true"] != r["predicted"]))
    p = rec["pooled"]
    out.append({"predicted": "pooled within class", "true": "", "n": sum(c["n"] for c in rec["cells"]), "SUE": "",
                "AUROC within the predicted class": "undefined" if p.get("verdict") == "undefined" else
                f"{_fmt(p['auroc'])} {fmt_bracket(p['ci95'])}"})
    return pd.DataFrame(out).style.hide(axis="index")


def empty_rule_table(rows: Sequence[Mapping]):
    """Mean SUE per noise type when two empty regions counted as agreement (before) and under the
    rule book (windows with no defined pair left out), with how many windows are undefined."""
    return pd.DataFrame([{"noise": PERTURBATION_LABELS.get(r["kind"], r["kind"]),
                          "SUE, empty pair = agreement (before)": _fmt(r["sue_agree"]),
                          "SUE, rule book": _fmt(r["sue_rule"]),
                          "windows undefined": f"{r['n_undefined']} of {r['n']}"}
                         for r in rows]).style.hide(axis="index")


def rho_title(fvs: Mapping) -> str:
    """Title of the fidelity-vs-stability scatter: the Spearman correlation with its interval."""
    return f"Spearman {_fmt(fvs['spearman'])} {fmt_bracket(fvs['ci95'])} (n = {fvs['n']})"


def strata_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """AUROC of SUE within each severity stratum (``studies.ecg.strata_rows``)."""
    return pd.DataFrame([{"stratum": r["severity"], "n correct": r["n_correct"], "n misclassified": r["n_mis"],
                          "AUROC": _fmt(r["auroc"]), "95 % interval": fmt_bracket(r["auroc_ci95"])}
                         for r in rows]).style.hide(axis="index")


def layer_choice_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """Per Grad-CAM layer: map resolution, fidelity (mass in mask vs chance, pointing game) and
    stability (mean SUE, AUROC with interval) (``studies.ecg.layer_table``)."""
    return pd.DataFrame([{"layer": r["layer"], "map samples": r["resolution"],
                          "mass in ST–T mask": _fmt(r["mass_in_mask"]),
                          "chance": _fmt(r["chance"]), "pointing game": _fmt(r["pointing_game"]),
                          "mean SUE": _fmt(r["sue_mean"]), "AUROC of SUE": _fmt(r["sue_auroc"]),
                          "95 % interval": fmt_bracket(r["sue_auroc_ci95"]), "n misclassified": r["n_mis"]}
                         for r in rows]).style.hide(axis="index")


def fidelity_table(rec: Mapping, per_class: Mapping[str, Mapping] | None = None):
    """The assess fidelity section (all windows) and ``studies.ecg.fidelity_by_class``: mass of the
    clean maps in the ST–T mask with its interval against chance, pointing game, and the deletion /
    insertion areas beside their random orders (all windows)."""
    parts = {"all windows": rec, **{f"true {k}": v for k, v in (per_class or {}).items()}}
    curves = (f"deletion {_fmt(rec.get('deletion_auc'))} (random {_fmt(rec.get('deletion_auc_random'))}), "
              f"insertion {_fmt(rec.get('insertion_auc'))} (random {_fmt(rec.get('insertion_auc_random'))})")
    return pd.DataFrame([{"windows": k, "mass in ST–T mask [95 % CI]": f"{_fmt(v['mass_in_mask'])} "
                          f"{fmt_bracket(v['mass_in_mask_ci95'])}", "chance": _fmt(v["chance"]),
                          "pointing game": _fmt(v["pointing_game"]),
                          "deletion / insertion area": curves if k == "all windows" else ""}
                         for k, v in parts.items()]).style.hide(axis="index")


def sanity_table(section: Mapping):
    """The assess sanity section: per cascading step the median Spearman ρ with the trained maps and
    the constant randomised maps, and the outcome with its reason in the last row."""
    rows = [{"randomised from the head down to": s["randomised"],
             "median ρ with the trained maps": _fmt(s["median_rho"], 2),
             "constant maps": f"{s['n_constant']} of {s['n']}"} for s in section["steps"]]
    rows.append({"randomised from the head down to": f"outcome: {section['outcome']}",
                 "median ρ with the trained maps": f"threshold {section['threshold']}", "constant maps": ""})
    return pd.DataFrame(rows).style.hide(axis="index")


def plot_deletion_insertion(curves: Mapping[str, Tensor], aucs: Mapping[str, float] | None = None, axes=None):
    """Mean deletion and insertion curves (probability of the explained class against the share of
    segments removed / restored), map order vs random order."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), sharey=True)
    fig = axes[0].figure
    for ax, what in zip(axes, ("deletion", "insertion")):
        for key, lab, st in ((what, "map order", "-"), (f"{what}_random", "random order", "--")):
            c = to_numpy(curves[key])
            a = "" if aucs is None else f" (area {aucs[key]:.3f})"
            ax.plot(np.linspace(0, 1, len(c)), c, st, color="black" if st == "-" else "0.5", label=lab + a)
        ax.set_xlabel(f"share of segments {'removed' if what == 'deletion' else 'restored'}")
        ax.set_title(what, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("P(explained class)")
    axes[0].set_ylim(0, 1.02)
    fig.tight_layout()
    return fig


def plot_cascading(maps: Mapping[str, Tensor], steps: Sequence[Mapping], *, n_windows: int = 24, fs: float = 250.0,
                   cmap: str = "viridis"):
    """Sanity check: Grad-CAM maps of the trained model and of each cascading randomisation, one
    heat map per model (rows = windows, columns = time; each map min-max scaled), three panels per
    row, a colour bar in its own axis, and the Spearman correlation with the trained maps in each
    title (``median_rho`` of an assess sanity step, else ``spearman_to_trained``)."""
    import matplotlib.pyplot as plt

    names = list(maps)
    rho = {s["randomised_from"]: s.get("median_rho", s.get("spearman_to_trained")) for s in steps}
    ncol = 3
    nrow = int(np.ceil(len(names) / ncol))
    fig = plt.figure(figsize=(7.0, 2.0 * nrow + 0.2))
    grid = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1] * ncol + [0.06], wspace=0.25, hspace=0.55)
    im = None
    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[k // ncol, k % ncol])
        m = to_numpy(maps[name])[:n_windows]
        m = np.stack([normalize01(r) for r in m])
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=0, vmax=1, extent=(0, m.shape[1] / fs, len(m), 0),
                       interpolation="nearest")
        ax.set_title("trained" if name == "trained" else f"random from {name}: ρ = {_fmt(rho.get(name), 2)}",
                     fontsize=7)
        ax.tick_params(labelsize=6)
        if k // ncol == nrow - 1:
            ax.set_xlabel("time (s)", fontsize=7)
        if k % ncol == 0:
            ax.set_ylabel("window", fontsize=7)
    cax = fig.add_subplot(grid[:, ncol])
    fig.colorbar(im, cax=cax).set_label("Grad-CAM (scaled)", fontsize=7)
    cax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.08, right=0.93, top=0.9, bottom=0.12)
    return fig


def plot_fidelity_vs_stability(mass: Tensor, sue: Tensor, correct: Tensor, chance: float, ax=None,
                               title: str | None = None):
    """Per window: fidelity (mass in the ST–T mask) against stability (SUE), correct vs misclassified."""
    fig, ax = _fig_ax(ax, figsize=(4.4, 3.4))
    m, s, c = to_numpy(mass), to_numpy(sue), to_numpy(correct).astype(bool)
    ax.scatter(s[c], m[c], s=8, alpha=0.5, color="tab:blue", label=f"correct (n={c.sum()})")
    ax.scatter(s[~c], m[~c], s=16, alpha=0.9, color="tab:red", marker="x", label=f"misclassified (n={(~c).sum()})")
    ax.axhline(chance, color="0.4", ls="--", lw=1)
    ax.text(0.01, chance, " chance", color="0.4", fontsize=7, va="bottom")
    ax.set_xlabel("SUE (stability)")
    ax.set_ylabel("mass in ST–T mask (fidelity)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def occlusion_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """Mean probability of the true class with the ST–T mask, its complement or random samples
    occluded (``studies.ecg.region_occlusion``), per class."""
    return pd.DataFrame([{"class": r["class"], "n": r["n"], **{k: _fmt(r[k]) for k in
                          ("clean", "mask occluded", "outside occluded",
                           "random occluded")}} for r in rows]).style.hide(axis="index")

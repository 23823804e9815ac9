"""Figures of the cross-study chapter (drawing only: every number comes from ``studies.cross``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..report import fmt_bracket
from .common import _fig_ax

__all__ = ["added_table", "conformal_summary_table", "conformal_table", "degenerate_table", "design_table",
           "fidelity_table", "matrix_table", "method_table", "overview_table", "plot_alpha_frame", "plot_matrix",
           "plot_method_panels", "plot_risk_coverage", "samples_table", "text_colour"]

SOURCE_LABELS = {"test_time": "test-time\nperturbation", "mc_dropout": "MC dropout", "rashomon": "Rashomon set\n(pruned)",
                 "rashomon_finetuned": "Rashomon set\n(fine-tuned)", "seed_ensemble": "seed ensemble"}
SCORE_LABELS = {"jaccard": "Jaccard (SUE)", "spearman": "Spearman ρ", "entropy": "entropy",
                "mutual_information": "mutual inf.", "margin": "margin", "flip_rate": "flip rate"}


def _fmt_cell(auc: float, ci: Sequence[float]) -> str:
    if auc is None or not np.isfinite(auc):
        return "n/a"
    interval = fmt_bracket(ci, 2)
    return f"{auc:.2f}" if interval == "n/a" else f"{auc:.2f} {interval}"


def plot_matrix(rows: Sequence[Mapping[str, Any]], *, modalities: Sequence[str], sources: Sequence[str],
                scores: Sequence[str], title: str | None = None, ax=None):
    """Heat map of AUROC (correct vs misclassified) per (source, score) (rows) × modality (columns),
    each cell annotated with the AUROC and its 95% interval (``n/a``: undefined); 0.5 (chance) is the
    white midpoint and the text colour follows the cell's luminance. Sized for a 688 px column: the
    modalities are few and the (source, score) pairs many, so they run down the page."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    keys = [(s, sc) for s in sources for sc in scores]
    grid = np.full((len(keys), len(modalities)), np.nan)
    text = [["n/a"] * len(modalities) for _ in keys]
    for r in rows:
        if r["modality"] in modalities and (r["source"], r["score"]) in keys:
            i, j = keys.index((r["source"], r["score"])), modalities.index(r["modality"])
            grid[i, j] = r["auroc"] if r["auroc"] is not None else np.nan
            text[i][j] = _fmt_cell(r["auroc"], r["auroc_ci95"])
    fig, ax = _fig_ax(ax, figsize=(6.9, 0.3 * len(keys) + 1.1))
    cmap, norm = plt.get_cmap("PuOr"), TwoSlopeNorm(0.5, 0.2, 0.8)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(keys)):
        for j in range(len(modalities)):
            v = grid[i, j]
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7,
                    color="black" if not np.isfinite(v) else text_colour(cmap(norm(v))))
    for i in range(len(scores), len(keys), len(scores)):  # a rule between sources
        ax.axhline(i - 0.5, color="white", linewidth=2)
    ax.set_yticks(range(len(keys)), [f"{SOURCE_LABELS.get(s, s)} · {SCORE_LABELS.get(sc, sc)}".replace("\n", " ")
                                     for s, sc in keys], fontsize=7)
    ax.set_xticks(range(len(modalities)), modalities, fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("AUROC, correct vs misclassified (0.5 = chance)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    fig.tight_layout()
    return fig


SOURCE_SHORT = {"test_time": "TTA", "mc_dropout": "MC", "rashomon": "Rash.", "rashomon_finetuned": "R-ft",
                "seed_ensemble": "Ens."}
SCORE_SHORT = {"jaccard": "J", "spearman": "ρ"}
METHOD_LABELS = {"cam": "chapter CAM", "grad_cam": "Grad-CAM", "grad_cam_pp": "Grad-CAM++",
                 "integrated_gradients": "Integrated grad.",
                 "smoothgrad": "SmoothGrad", "occlusion": "Occlusion", "gradient_shap": "GradientSHAP",
                 "deeplift": "DeepLIFT", "input_x_gradient": "Input × grad.", "lime": "LIME",
                 "kernel_shap": "Kernel SHAP"}


def text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever contrasts more with a cell colour (relative luminance, WCAG).

    >>> text_colour((1, 1, 1, 1)), text_colour((0.1, 0.0, 0.3, 1))
    ('black', 'white')
    """
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(rgba[0]) + 0.7152 * lin(rgba[1]) + 0.0722 * lin(rgba[2])
    return "black" if (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) else "white"


def plot_method_panels(rows: Sequence[Mapping[str, Any]], *, modalities: Sequence[str], methods: Sequence[str],
                       sources: Sequence[str], scores: Sequence[str], title: str | None = None):
    """One small heat map per modality: methods (rows) × (source, score) (columns), AUROC for correct vs
    misclassified; 0.5 (chance) is the white midpoint; ``*`` marks a cell whose 95% interval excludes
    0.5, ``–`` an undefined cell. Text colour follows the cell's luminance. Sized for a 688 px column."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    cols = [(s, sc) for s in sources for sc in scores]
    ncol = 2 if len(modalities) > 1 else 1
    nrow = int(np.ceil(len(modalities) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.9, 0.3 * len(methods) * nrow + 0.9 * nrow + 0.5), squeeze=False,
                             layout="constrained")
    cmap, norm = plt.get_cmap("PuOr"), TwoSlopeNorm(0.5, 0.2, 0.8)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= len(modalities):
            ax.set_axis_off()
            continue
        mod = modalities[k]
        grid = np.full((len(methods), len(cols)), np.nan)
        sig = np.zeros_like(grid, dtype=bool)
        for r in rows:
            if r["modality"] == mod and r["method"] in methods and (r["source"], r["score"]) in cols:
                i, j = methods.index(r["method"]), cols.index((r["source"], r["score"]))
                auc = r["auroc"]
                grid[i, j] = np.nan if auc is None else auc
                lo, hi = r["auroc_ci95"]
                sig[i, j] = lo is not None and hi is not None and np.isfinite(lo) and (lo > 0.5 or hi < 0.5)
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        for i in range(len(methods)):
            for j in range(len(cols)):
                v = grid[i, j]
                colour = "black" if not np.isfinite(v) else text_colour(cmap(norm(v)))
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}" + ("*" if sig[i, j] else ""), ha="center",
                        va="center", fontsize=6, color=colour)
        ax.set_xticks(range(len(cols)), [f"{SOURCE_SHORT.get(s, s)}\n{SCORE_SHORT.get(sc, sc)}" for s, sc in cols],
                      fontsize=6)
        ax.set_yticks(range(len(methods)), [METHOD_LABELS.get(m, m) for m in methods] if k % ncol == 0 else [],
                      fontsize=6)
        ax.set_title(mod, fontsize=8)
        ax.tick_params(length=0)
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01)
        cb.set_label("AUROC, correct vs misclassified (0.5 = chance)", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def method_table(rows: Sequence[Mapping[str, Any]], *, digits: int = 3):
    """The method matrix as a DataFrame: one row per (method, modality, source, score) with the AUROC and
    its interval, the AURC and the added value over the baselines with its interval."""
    import pandas as pd

    return pd.DataFrame([{"method": METHOD_LABELS.get(r["method"], r["method"]), "modality": r["modality"],
                          "source": r["source"], "score": SCORE_LABELS.get(r["score"], r["score"]),
                          "AUROC": r["auroc"], "95% CI": fmt_bracket(r["auroc_ci95"], digits), "AURC": r["aurc"],
                          "added to baselines": r["added_delta"], "added 95% CI": fmt_bracket(r["added_ci95"], digits),
                          "verdict (added)": r["added_verdict"], "samples": r.get("n_samples")}
                         for r in rows]).round(digits)


def matrix_table(rows: Sequence[Mapping[str, Any]], *, digits: int = 3):
    """The matrix rows as a DataFrame (AUROC with its interval, AURC), one row per cell."""
    import pandas as pd

    out = []
    for r in rows:
        out.append({"modality": r["modality"], "source": r["source"], "score": SCORE_LABELS.get(r["score"], r["score"]),
                    "AUROC": r["auroc"], "95% CI": fmt_bracket(r["auroc_ci95"], digits),
                    "AURC": r["aurc"], "items without score": r.get("n_nan", 0)})
    return pd.DataFrame(out).round(digits)


def plot_risk_coverage(curves: Mapping[str, tuple[Any, Any]], points: Mapping[str, tuple[float, float]] | None = None,
                       *, alpha: float | None = None, ax=None, title: str | None = None):
    """Risk–coverage curves (one per score) with the guaranteed operating points marked and the
    risk bound α drawn as a dashed line."""
    fig, ax = _fig_ax(ax, figsize=(4.2, 3.2))
    for name, (cov, risk) in curves.items():
        line, = ax.plot(np.asarray(cov), np.asarray(risk), lw=1.2, label=SCORE_LABELS.get(name, name))
        if points and name in points and np.isfinite(points[name][1]):
            ax.plot(*points[name], "o", color=line.get_color(), ms=5, mec="black", mew=0.6)
    if alpha is not None:
        ax.axhline(alpha, ls="--", color="gray", lw=1, label=f"α = {alpha:g}")
    ax.set_xlabel("coverage (share of test items answered)")
    ax.set_ylabel("selective risk (error rate among answered)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_alpha_frame(cov: Any, risk: Any, point: tuple[float, float], answered: Any, correct: Any, *, alpha: float,
                     delta: float, label: str):
    """One widget frame: the risk–coverage curve with the operating point certified at ``alpha``
    (left) and the test items as a strip, answered vs abstained, correct vs wrong (right)."""
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7.0, 2.8), gridspec_kw={"width_ratios": [1.2, 1]})
    a0.plot(np.asarray(cov), np.asarray(risk), lw=1.2, color="C0")
    a0.axhline(alpha, ls="--", color="gray", lw=1)
    if np.isfinite(point[1]):
        a0.plot(*point, "o", color="C3", ms=6, mec="black")
        msg = f"answers {100 * point[0]:.0f} % with risk {100 * point[1]:.1f} %"
    else:
        msg = "nothing can be certified: abstain on all"
    a0.set_xlabel("coverage")
    a0.set_ylabel("selective risk")
    a0.set_xlim(0, 1)
    a0.set_ylim(0, max(0.5, float(np.nanmax(np.asarray(risk))) if len(risk) else 0.5))
    a0.set_title(f"{label}: α = {alpha:g}, δ = {delta:g}\n{msg}", fontsize=9)
    ans, ok = np.asarray(answered, bool), np.asarray(correct, bool)
    n = ans.size
    w = int(np.ceil(np.sqrt(n * 2)))
    h = int(np.ceil(n / w))
    img = np.full(h * w, np.nan)
    code = np.where(ans, np.where(ok, 3, 0), np.where(ok, 2, 1))  # 3 answered right, 0 answered wrong, 2/1 abstained
    img[:n] = code
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#d62728", "#f4a582", "#c7c7c7", "#2ca02c"])
    a1.imshow(img.reshape(h, w), cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
    a1.set_axis_off()
    a1.set_title("test items: green answered & right, red answered & wrong,\n"
                 "grey abstained (right), salmon abstained (wrong)", fontsize=7)
    fig.tight_layout()
    return fig


def added_table(rows: Sequence[Mapping[str, Any]]):
    """The added value over the prediction-only baselines, one row per (modality, source)."""
    import pandas as pd

    return pd.DataFrame([{"modality": a["modality"], "source": a["source"], "AUROC baselines": a["auroc_baselines"],
                          "AUROC + explanation": a["auroc_combined"], "difference": a["delta"],
                          "95% CI": fmt_bracket(a["delta_ci95"]), "verdict": a["verdict"]} for a in rows]).round(3)


def design_table(rows: Sequence[Mapping[str, Any]]):
    """The design reruns: default vs alternative AUROC and their paired difference."""
    import pandas as pd

    return pd.DataFrame([{"modality": r["modality"], "source": r["source"], "alternative design": r["alternative"],
                          "score": r["score"], "AUROC default": r["auroc_a"], "AUROC alternative": r["auroc_b"],
                          "difference": r["delta"], "95% CI": fmt_bracket(r["delta_ci95"]), "verdict": r["verdict"]}
                         for r in rows]).round(3)


def fidelity_table(rows: Sequence[Mapping[str, Any]]):
    """Each method's mass in mask with its interval beside chance, lift and pointing game."""
    import pandas as pd

    return pd.DataFrame([{"modality": r["modality"], "method": METHOD_LABELS.get(r["method"], r["method"]),
                          "mass in mask": r["mass_in_mask"], "95% CI": fmt_bracket(r["mass_in_mask_ci95"]),
                          "chance": r["chance"], "lift": r["lift"], "pointing game": r["pointing_game"],
                          "items": r["n_items"]} for r in rows]).round(3)


def conformal_table(rows: Sequence[Mapping[str, Any]], top: int = 4):
    """Per modality the ``top`` abstention rules by mean coverage at the guaranteed risk."""
    import pandas as pd

    df = pd.DataFrame([{"modality": r["modality"], "source": r["source"], "score": r["score"],
                        "share of splits with risk ≤ α": r["fraction_risk_le_alpha"],
                        "95% CI": fmt_bracket(r["fraction_ci95"], 2), "mean coverage": r["mean_coverage"],
                        "mean risk": r["mean_risk"], "splits abstaining on all": r["n_abstain_all"],
                        "trivial": r.get("trivial") or ""} for r in rows]).round(3)
    return df.sort_values(["modality", "mean coverage"], ascending=[True, False]).groupby("modality").head(top)


def conformal_summary_table(summary: Mapping[str, Mapping[str, Any]], alphas: Mapping[str, float]):
    """Per modality: its α, whether a useful guarantee is certifiable, the best rule and its coverage."""
    import pandas as pd

    return pd.DataFrame({name: {"α (half the base error rate)": alphas[name],
                                "useful guarantee certifiable": v.get("certifiable"), "best rule": v.get("best_rule"),
                                "coverage": v.get("coverage"), "calibration items needed": v.get("n_needed")}
                         for name, v in summary.items()}).T


def overview_table(setups: Mapping[str, Any], items: Mapping[str, tuple]):
    """Per modality: studied items, accuracy, errors, explained layer, method, spatial dims, cache."""
    import pandas as pd

    return pd.DataFrame({name: {"test items": len(items[name][0]),
                                "accuracy": float((items[name][1].cpu() == items[name][0].y.cpu()).float().mean()),
                                "misclassified": int((items[name][1].cpu() != items[name][0].y.cpu()).sum()),
                                "explained layer": m.layer, "method": m.method, "spatial dims": m.spatial_dims,
                                "model from the chapter's cache": m.from_cache} for name, m in setups.items()}).T


def samples_table(stacks: Mapping[tuple, Mapping[str, Any]]):
    """Per (modality, source): samples per item and the counts that built them."""
    import pandas as pd

    return pd.DataFrame({f"{n} / {s}": {"samples per item": int(st["maps"].shape[0]),
                                        **{k: v for k, v in st["info"].items() if k in ("n_kept", "n_members",
                                                                                        "passes")}}
                         for (n, s), st in stacks.items()}).T.fillna("")


def degenerate_table(scores: Mapping[tuple, Any]):
    """Per (modality, source): items without a Jaccard score and constant sample maps (the rule book's counts)."""
    import pandas as pd

    return pd.DataFrame({f"{n} / {s}": {"items without Jaccard (empty map)": v["n_empty"],
                                        "constant sample maps": v["n_degenerate"]}
                         for (n, s), v in scores.items() if v is not None}).T


def plot_risk_coverage_grid(ops: Mapping[str, Mapping[str, Mapping[str, Any]]], alphas: Mapping[str, float]):
    """One risk–coverage panel per modality (2 columns): each rule's curve and its point at the
    modality's α (``ops``: :func:`uqxai_lib.studies.cross.rule_operating_points`)."""
    import matplotlib.pyplot as plt

    nrow = (len(ops) + 1) // 2
    fig, axes = plt.subplots(nrow, 2, figsize=(6.9, 2.8 * nrow), squeeze=False)
    for ax, (name, rules) in zip(axes.flat, ops.items()):
        curves = {label: (op["coverage"], op["risk"]) for label, op in rules.items()}
        points = {label: (op["points"][0]["coverage"], op["points"][0]["risk"]) for label, op in rules.items()}
        plot_risk_coverage(curves, points, alpha=alphas[name], ax=ax, title=name)
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    return fig


def alpha_frames(ops: Mapping[str, Mapping[str, Mapping[str, Any]]], correct: Mapping[str, Any], *, delta: float):
    """The α widget's frames: per modality (its one rule of ``ops``) one :func:`plot_alpha_frame` per
    α of the rule's operating points. Returns ``(frames, labels)`` for ``widgets.frame_grid``."""
    frames, labels = [], []
    for name, rules in ops.items():
        (label, op), = rules.items()
        ok_test = np.asarray(correct[name])[np.asarray(op["test_index"])]
        frames.append([plot_alpha_frame(op["coverage"], op["risk"], (pt["coverage"], pt["risk"]), pt["answered"],
                                        ok_test, alpha=pt["alpha"], delta=delta, label=f"{name}, {label}")
                       for pt in op["points"]])
        labels.append(name)
    return frames, labels

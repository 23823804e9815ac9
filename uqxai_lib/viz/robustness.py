"""Figures of the robustness chapter: a forest plot of one study's primary effect over seeds.

Draws a record of :func:`uqxai_lib.studies.robustness.summarize` (computes nothing).

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> rec = {"seeds": [0, 1], "effects": [0.1, 0.3], "ci95_per_seed": [[0.0, 0.2], [0.1, 0.5]], "mean": 0.2,
...        "ci95": [-1.07, 1.47], "sign_agreement": "2/2", "threads": {"1": {"effect": 0.1}, "2": {"effect": 0.12, "ci95": [0.02, 0.2]}}, "thread_seed": 0,
...        "primary_name": "x", "claim": {"theirs": "0.5", "expected": "higher"}}
>>> len(forest_plot(rec, title="t").axes)
1
"""
from __future__ import annotations

import math
from typing import Mapping

from .common import _fig_ax

__all__ = ["forest_plot"]


def _finite(v) -> bool:
    return v is not None and math.isfinite(float(v))


def forest_plot(rec: Mapping, *, title: str = "", ax=None, effect_label: str | None = None):
    """Each seed's effect with its 95% interval (1 thread), the thread seed at 2 threads, and the
    across-seed mean with its 95% interval; a dashed line at no effect; the paper's number (a string,
    labelled *theirs*) in the legend."""
    fig, ax = _fig_ax(ax, figsize=(6.4, 0.4 * (len(rec["seeds"]) + 2) + 2.0))
    rows = [f"seed {s}" for s in rec["seeds"]]
    for i, (e, ci) in enumerate(zip(rec["effects"], rec["ci95_per_seed"])):
        if not _finite(e):  # an undefined run: its row stays, without a point
            continue
        lo, hi = (float(c) if _finite(c) else float(e) for c in ci)
        ax.errorbar([e], [i], xerr=[[e - lo], [hi - e]], fmt="o", color="tab:blue", capsize=3,
                    label="one seed, 1 thread (95% CI over test items)" if i == 0 else None)
    y = len(rows)
    run2 = (rec.get("threads") or {}).get("2")
    two = run2.get("effect") if isinstance(run2, Mapping) else run2
    if _finite(two):
        rows.append(f"seed {rec.get('thread_seed', 0)}, 2 threads")
        ci2 = run2.get("ci95") if isinstance(run2, Mapping) else None
        if ci2 and all(_finite(c) for c in ci2):
            ax.errorbar([two], [y], xerr=[[two - ci2[0]], [ci2[1] - two]], fmt="s", color="tab:orange", capsize=3,
                        label="same seed at 2 torch threads")
        else:
            ax.plot([two], [y], "s", color="tab:orange", label="same seed at 2 torch threads")
        y += 1
    m, (lo, hi) = rec["mean"], rec["ci95"]
    rows.append(f"mean of {len(rec['seeds'])} seeds")
    if not _finite(m):
        pass
    elif _finite(lo) and _finite(hi):
        ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt="D", color="black", capsize=4,
                    label="across-seed mean (95% t-interval)")
    else:
        ax.plot([m], [y], "D", color="black", label="across-seed mean (one seed: no interval)")
    ax.axvline(0.0, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlabel(effect_label or f"effect: {rec.get('primary_name') or 'primary comparison'}")
    theirs = (rec.get("claim") or {}).get("theirs")
    if theirs:
        ax.plot([], [], " ", label=f"theirs (paper): {theirs}")
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax.set_title(f"{title}  (sign agreement {rec['sign_agreement']})" if title else
                 f"sign agreement {rec['sign_agreement']}", fontsize=9)
    fig.tight_layout()
    return fig

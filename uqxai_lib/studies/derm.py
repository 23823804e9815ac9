"""Dermoscopy chapter (``derm_vic``): the analysis steps of the Rashomon set and the Variable Importance Cloud (VIC).

Plain functions on tensors and small tables; the figures are in :mod:`uqxai_lib.viz.derm`.
The VIC of an image is built from the Grad-CAM++ maps of the *kept* pruned models ``maps [S, B,
h, w]`` (layer resolution):

1. each map is min-max normalised to [0, 1] (every nearly-optimal model gets the same vote);
2. consensus = mean over models (the VIC map), variability = population SD over models;
3. for fidelity, a map is upsampled bilinearly to the image size, min-max normalised again and
   binarised with one stated rule (default: pixels >= 50 % of the map's maximum), then compared
   with the lesion mask by IoU and Dice.

For one binarised map and one mask, ``Dice = 2 IoU / (1 + IoU)`` exactly; as this function is
concave, the *mean* Dice over images is at most ``2 m / (1 + m)`` for a mean IoU ``m``
(Jensen), see :func:`dice_upper_bound`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "POSTER",
    "DEFAULT_RULE",
    "normalized_stack",
    "vic_and_variability",
    "binarize_maps",
    "fidelity_scores",
    "per_model_fidelity",
    "dice_from_iou",
    "dice_upper_bound",
    "paired_wilcoxon",
    "fidelity_table",
    "relative_losses",
    "kept_at",
    "prune_ratio_sweep",
    "suggest_ratio",
    "vic_at_tolerance",
    "vic_grid",
    "fidelity_by_ratio",
]

#: The VIC poster's reported numbers (their HAM10000 run), shown beside ours, labelled as theirs.
POSTER = {"prune_ratio": 0.6, "iou_optimal": 0.385, "iou_vic": 0.408, "dice_optimal": 0.878, "dice_vic": 0.923}

#: Default binarisation rule for fidelity (see :func:`binarize_maps`).
DEFAULT_RULE = ("fraction_of_max", 0.5)


def normalized_stack(maps: Tensor) -> Tensor:
    """Min-max normalise every map of a stack ``[S, B, *spatial]`` (or ``[B, *spatial]``) over its spatial dims.

    Spatial dims are the last two.
    """
    from uqxai_lib.saliency import normalize

    return normalize(maps, ndim_spatial=2)


def vic_and_variability(maps: Tensor) -> tuple[Tensor, Tensor]:
    """VIC (consensus = mean) and variability (population SD) of normalised maps ``[S, B, h, w]``.

    >>> m = torch.stack([torch.tensor([[[0., 1.], [0., 0.]]]), torch.tensor([[[0., 0.], [0., 1.]]])])
    >>> vic, var = vic_and_variability(m)
    >>> vic.tolist(), var.tolist()
    ([[[0.0, 0.5], [0.0, 0.5]]], [[[0.0, 0.5], [0.0, 0.5]]])
    """
    from uqxai_lib import aggregate

    if maps.ndim != 4:
        raise ValueError(f"maps must be [S, B, h, w], got shape {tuple(maps.shape)}")
    m = normalized_stack(maps)
    return aggregate.consensus(m), aggregate.variability(m)


def binarize_maps(maps: Tensor, size: int | tuple[int, int], rule: Any = DEFAULT_RULE) -> Tensor:
    """Upsample maps ``[..., h, w]`` to ``size``, min-max normalise each, binarise with ``rule``.

    ``rule`` is passed to :func:`uqxai_lib.metrics.binarize` (``"otsu"``, ``("quantile", q)`` or
    ``("fraction_of_max", t)``). Returns bool ``[..., H, W]``.
    """
    from uqxai_lib import metrics
    from uqxai_lib.saliency import normalize, upsample

    size = (size, size) if isinstance(size, int) else tuple(size)
    m = normalize(upsample(maps, size), ndim_spatial=2)
    return metrics.binarize(m, rule if not isinstance(rule, list) else tuple(rule))


def fidelity_scores(maps: Tensor, masks: Tensor, rule: Any = DEFAULT_RULE) -> dict[str, Tensor]:
    """Per-image IoU and Dice of binarised maps ``[B, h, w]`` against lesion masks ``[B, H, W]``."""
    from uqxai_lib import metrics

    pred = binarize_maps(maps, tuple(masks.shape[-2:]), rule)
    masks = masks.to(pred.device).bool()
    return {"iou": metrics.iou(pred, masks).float(), "dice": metrics.dice(pred, masks).float()}


def per_model_fidelity(maps: Tensor, masks: Tensor, rule: Any = DEFAULT_RULE, *, chunk: int | None = None
                       ) -> dict[str, Tensor]:
    """Mean IoU and Dice over images of every model in a stack ``[S, B, h, w]`` -> ``{"iou": [S], "dice": [S]}``.

    Works ``chunk`` models at a time (upsampled stacks can be large); by default as many as keep
    one upsampled chunk under ~2**25 values (e.g. 1 model of 1000 images at 224 px).
    """
    if chunk is None:
        chunk = max(1, (1 << 25) // max(1, masks[0].numel() * len(masks)))
    ious, dices = [], []
    for s0 in range(0, maps.shape[0], chunk):
        part = maps[s0 : s0 + chunk]
        f = fidelity_scores(part.reshape(-1, *part.shape[-2:]), masks.repeat(len(part), 1, 1), rule)
        ious.append(f["iou"].view(len(part), -1).mean(1))
        dices.append(f["dice"].view(len(part), -1).mean(1))
    return {"iou": torch.cat(ious), "dice": torch.cat(dices)}


def dice_from_iou(iou: Tensor | float) -> Tensor | float:
    """Dice of one binarised map from its IoU: ``2 IoU / (1 + IoU)``.

    >>> round(dice_from_iou(0.385), 4)
    0.556
    """
    return 2 * iou / (1 + iou)


def dice_upper_bound(mean_iou: float) -> float:
    """Largest possible mean Dice for a given mean IoU (Jensen: Dice = 2x/(1+x) is concave).

    >>> round(dice_upper_bound(0.385), 3), round(dice_upper_bound(0.408), 3)
    (0.556, 0.58)
    """
    return float(dice_from_iou(float(mean_iou)))


def paired_wilcoxon(a: Tensor | Sequence[float], b: Tensor | Sequence[float]) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``); NaN if all pairs tie."""
    from scipy.stats import wilcoxon

    a = np.asarray(torch.as_tensor(a, dtype=torch.float64).cpu())
    b = np.asarray(torch.as_tensor(b, dtype=torch.float64).cpu())
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    if len(a) == 0 or np.all(a == b):
        return float("nan")
    return float(wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def fidelity_table(optimal: Mapping[str, Tensor], vic: Mapping[str, Tensor], *, theirs: Mapping[str, float] = POSTER):
    """Poster Fig. 3 as a table: mean +- SD and n of IoU / Dice for the optimal model and VIC,
    paired Wilcoxon p, the Jensen bound, and the poster's values labelled as theirs.

    Returns a pandas DataFrame indexed by metric.
    """
    import pandas as pd

    rows = []
    for metric in ("iou", "dice"):
        a, b = optimal[metric].double(), vic[metric].double()
        rows.append(
            {
                "metric": "IoU" if metric == "iou" else "Dice",
                "optimal (ours)": f"{a.mean():.3f} ± {a.std(unbiased=True):.3f}",
                "VIC (ours)": f"{b.mean():.3f} ± {b.std(unbiased=True):.3f}",
                "n": int(len(a)),
                "Wilcoxon p (ours)": f"{paired_wilcoxon(a, b):.3g}",
                "optimal (poster, theirs)": theirs[f"{metric}_optimal"],
                "VIC (poster, theirs)": theirs[f"{metric}_vic"],
            }
        )
    df = pd.DataFrame(rows).set_index("metric")
    return df


def relative_losses(rset) -> Tensor:
    """Mean validation loss of each pruned model divided by the unpruned model's: the sampler's
    float64 :attr:`uqxai_lib.samplers.RashomonSet.relative_loss`, so ``relative_losses(rset) <= 1 +
    rset.epsilon`` reproduces ``rset.kept``."""
    return rset.relative_loss


def kept_at(rset, epsilon: float) -> Tensor:
    """Which candidates of ``rset`` are kept at another tolerance: ``L_m / L* <= 1 + epsilon`` (bool ``[K]``)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return relative_losses(rset) <= 1.0 + float(epsilon)


def prune_ratio_sweep(
    model, layer, x_val: Tensor, y_val: Tensor, ratios: Sequence[float], *, k: int, epsilon: float,
    seed: int, head=None, class_weight=None,
):
    """Sample ``k`` pruned models at every ratio; summarise their relative validation loss.

    Calls :func:`uqxai_lib.samplers.rashomon` once per ratio, with a generator seeded from
    ``seed`` and the ratio's index. Returns ``(table, sets)``: a DataFrame with columns ``ratio,
    rel_loss_median, rel_loss_q05, rel_loss_q25, rel_loss_q75, rel_loss_q95, n_kept, n_candidates``
    and a dict ``ratio -> RashomonSet``.
    """
    import pandas as pd

    from uqxai_lib import samplers

    rows, sets = [], {}
    for i, r in enumerate(ratios):
        g = torch.Generator().manual_seed(int(seed) * 1009 + i)
        rset = samplers.rashomon(
            model, layer, x_val, y_val, k=k, prune_ratio=float(r), epsilon=epsilon, generator=g,
            head=head, class_weight=class_weight,
        )
        rel = relative_losses(rset).cpu()
        q = torch.quantile(rel, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=rel.dtype))
        rows.append(
            {
                "ratio": float(r), "rel_loss_median": float(q[2]), "rel_loss_q05": float(q[0]),
                "rel_loss_q25": float(q[1]), "rel_loss_q75": float(q[3]), "rel_loss_q95": float(q[4]),
                "n_kept": int(rset.kept.sum()), "n_candidates": int(len(rset.kept)),
            }
        )
        sets[float(r)] = rset
    return pd.DataFrame(rows), sets


def suggest_ratio(table, epsilon: float) -> float | None:
    """Largest ratio whose *median* relative loss is within ``1 + epsilon`` (so at least half of
    the candidates are nearly optimal), or None if no ratio qualifies."""
    ok = table[table["rel_loss_median"] <= 1 + epsilon]
    return None if ok.empty else float(ok["ratio"].max())


def vic_at_tolerance(model, layer, x: Tensor, rset, epsilon: float, *, head=None, target=None,
                     method: str = "grad_cam_pp") -> tuple[Tensor | None, Tensor | None, int]:
    """VIC and variability of images ``x`` from the candidates of ``rset`` kept at tolerance ``epsilon``.

    The candidates are re-selected with :func:`kept_at` (no new sampling) and explained with
    :func:`uqxai_lib.samplers.rashomon_maps`. Returns ``(vic [B, h, w], variability [B, h, w],
    n_kept)``, with ``None`` maps when no candidate is kept.
    """
    from uqxai_lib import samplers

    keep = kept_at(rset, epsilon)
    n_kept = int(keep.sum())
    if n_kept == 0:
        return None, None, 0
    sub = rset._replace(kept=keep, epsilon=float(epsilon))
    st = samplers.rashomon_maps(model, layer, x, sub, method=method, head=head, target=target)
    vic, var = vic_and_variability(st.maps.detach().cpu())
    return vic, var, n_kept


def vic_grid(model, layer, x: Tensor, sets: Mapping[float, Any], ratios: Sequence[float],
             epsilons: Sequence[float], *, head=None, target=None) -> list[list[tuple]]:
    """VIC of one image ``x [1, 3, H, W]`` on a grid of prune ratios and tolerances (for the widget).

    ``grid[i][j] = (vic [h, w] or None, variability [h, w] or None, n_kept, n_candidates)`` at
    prune ratio ``ratios[i]`` (the Rashomon set ``sets[ratios[i]]``) and tolerance ``epsilons[j]``
    (:func:`vic_at_tolerance`; candidates are re-selected, nothing is re-sampled). Drawn by
    :func:`uqxai_lib.viz.derm.vic_frames`.
    """
    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"x must be one image [1, 3, H, W], got shape {tuple(x.shape)}")
    missing = [r for r in ratios if float(r) not in sets]
    if missing:
        raise ValueError(f"no Rashomon set for ratio(s) {missing}; include them in the sweep ratios")
    grid = []
    for r in ratios:
        rset = sets[float(r)]
        row = []
        for eps in epsilons:
            v, s, n = vic_at_tolerance(model, layer, x, rset, eps, head=head, target=target)
            row.append((None if v is None else v[0], None if s is None else s[0], n, len(rset.kept)))
        grid.append(row)
    return grid


def fidelity_by_ratio(model, layer, x: Tensor, masks: Tensor, sets: Mapping[float, Any], *,
                      rule: Any = DEFAULT_RULE, head=None, target=None):
    """VIC fidelity at every prune ratio of a sweep.

    For each ``ratio -> RashomonSet`` in ``sets`` the Grad-CAM++ maps of *all* candidates are
    computed once (:func:`uqxai_lib.samplers.rashomon_maps` with ``include="all"``); the VIC of the
    kept candidates and, for comparison, the VIC of all candidates (no loss filter) are scored
    against ``masks`` with :func:`fidelity_scores`. Returns a DataFrame with columns ``ratio,
    n_kept, iou_vic, dice_vic, iou_all, dice_all`` (means over images; NaN where no model is kept).
    """
    import pandas as pd

    from uqxai_lib import samplers

    rows = []
    for r in sorted(sets):
        rset = sets[r]
        maps = samplers.rashomon_maps(model, layer, x, rset, include="all", head=head, target=target).maps.cpu()
        kept = torch.as_tensor(rset.kept).cpu().bool()
        f_all = fidelity_scores(vic_and_variability(maps)[0], masks, rule)
        row = {"ratio": float(r), "n_kept": int(kept.sum()), "iou_vic": math.nan, "dice_vic": math.nan,
               "iou_all": float(f_all["iou"].mean()), "dice_all": float(f_all["dice"].mean())}
        if kept.any():
            f = fidelity_scores(vic_and_variability(maps[kept])[0], masks, rule)
            row.update(iou_vic=float(f["iou"].mean()), dice_vic=float(f["dice"].mean()))
        rows.append(row)
    return pd.DataFrame(rows)

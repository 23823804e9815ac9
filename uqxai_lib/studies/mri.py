"""Analysis steps of the ``mri_mc_dropout`` chapter (MC-dropout Grad-CAM on brain MRI); no plotting.

:func:`mc_study` runs :func:`uqxai_lib.samplers.mc_dropout` and the deterministic Grad-CAM and
scores every pass with :func:`uqxai_lib.metrics.spearman`; :func:`prefix_repeatability` /
:meth:`MCStudy.repeatability` give :func:`uqxai_lib.metrics.repeatability` for the first ``T``
passes; :func:`settling` (how the estimate settles with ``T``), :func:`repeatability_table` and
:func:`sweep_table` (both via :func:`uqxai_lib.metrics.compare_groups`), :func:`abstention` (via
:func:`uqxai_lib.metrics.risk_coverage` / :func:`uqxai_lib.metrics.aurc`, combined scores from
:func:`uqxai_lib.metrics.rank_average`), :func:`uncertainty_table`, :func:`mass_in_tumour` (via
:func:`uqxai_lib.metrics.mass_in_mask`), :func:`mask_overlap_table`, :func:`sweep_subset`,
:func:`pick_cases`, :func:`fig4_case` and :func:`mc_frame_items` (the data of each widget frame),
and :func:`headline` (the results-JSON record). The figures of the chapter are in
:mod:`uqxai_lib.viz.mri`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from uqxai_lib import aggregate, metrics, saliency, samplers, train
from uqxai_lib.cache import round_sig

__all__ = [
    "PAPER_RHO",
    "AURC_KEYS",
    "MCStudy",
    "abstention",
    "fig4_case",
    "headline",
    "mask_overlap_table",
    "mass_in_tumour",
    "mc_frame_items",
    "mc_study",
    "pick_cases",
    "prefix_repeatability",
    "repeatability_table",
    "settling",
    "sweep_subset",
    "sweep_table",
    "uncertainty_table",
]

#: Salvi et al. (2025), section 4.2: mean rho +- SD, correct vs misclassified SARTAJ test images (theirs).
PAPER_RHO = {"correct": (0.76, 0.08), "misclassified": (0.54, 0.12)}


class MCStudy(NamedTuple):
    """MC-dropout explanations of a batch of images (all tensors on the CPU).

    maps [S, B, h, w]: Grad-CAM of each pass at the layer's resolution; probs [S, B, C]: softmax of
    each pass; target [B]: explained class (the deterministic prediction); det_map [B, h, w] and
    det_probs [B, C]: dropout-off forward; rho [S, B]: Spearman rho of each pass's map with the
    deterministic map, both upsampled to ``size``.
    """

    maps: Tensor
    probs: Tensor
    target: Tensor
    det_map: Tensor
    det_probs: Tensor
    rho: Tensor

    def repeatability(self, passes: int | None = None) -> Tensor:
        """Per-image repeatability [B] from the first ``passes`` passes (default: all).

        The NaN-skipping mean of ``rho`` over passes, i.e. :func:`uqxai_lib.metrics.repeatability`
        of the (upsampled) MC maps against the deterministic map, without recomputing the ranks.
        """
        return prefix_repeatability(self.rho, [self.rho.shape[0] if passes is None else passes])[0]


def mc_study(model, x: Tensor, layer: str, passes: int, *, p: float | None = None, seed: int = 0,
             size: int | tuple[int, int] | None = None, batch: int = 64) -> MCStudy:
    """Run ``passes`` MC-dropout passes with Grad-CAM and the deterministic map for images ``x``.

    Calls :func:`uqxai_lib.samplers.mc_dropout` (dropout modules on, BatchNorm in eval) and
    :func:`uqxai_lib.saliency.grad_cam` on the model as the caller left it (eval mode: dropout off),
    both explaining the deterministic prediction. ``rho[s, b]`` is the Spearman correlation
    (:func:`uqxai_lib.metrics.spearman`) of pass ``s``'s map with the deterministic map after
    bilinear upsampling to ``size`` (default: the input size, as the maps are shown), so the
    repeatability of the paper is ``rho.nanmean(0)`` (= :func:`uqxai_lib.metrics.repeatability`).
    Images are processed ``batch`` at a time; pass ``s`` of every batch uses the same seeded stream.
    """
    if model.training:
        raise ValueError("put the model in eval mode first (model.eval()); mc_dropout switches dropout on itself")
    size = tuple(x.shape[-2:]) if size is None else size
    dev = next(model.parameters()).device
    out = {k: [] for k in MCStudy._fields}
    for start in range(0, len(x), batch):
        xb = x[start : start + batch].to(dev)
        gen = torch.Generator().manual_seed(int(seed) + start)
        st = samplers.mc_dropout(model, xb, layer, passes, p=p, target=None, generator=gen)
        det = saliency.grad_cam(model, xb, layer, target=st.target)
        det_probs = train.predict_proba(model, xb, device=dev)
        up_det = saliency.upsample(det, size)
        rho = torch.stack([metrics.spearman(saliency.upsample(m, size), up_det) for m in st.maps])
        for k, v in zip(MCStudy._fields, (st.maps, st.probs, st.target, det, det_probs, rho)):
            out[k].append(v.detach().cpu())
    cat_dim = {"maps": 1, "probs": 1, "rho": 1}
    return MCStudy(**{k: torch.cat(v, dim=cat_dim.get(k, 0)) for k, v in out.items()})


def prefix_repeatability(per_pass: Tensor, passes: Sequence[int]) -> Tensor:
    """Repeatability from the first ``T`` passes, for each ``T`` in ``passes``.

    ``per_pass`` [S, B] holds the Spearman rho of every MC map with the deterministic map, so the
    repeatability of the first ``T`` passes is the mean of the first ``T`` rows. Returns
    [len(passes), B]. NaN entries (constant maps) are skipped in the mean.

    >>> r = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    >>> prefix_repeatability(r, [1, 3]).tolist()
    [[1.0, 0.0], [0.5, 0.3333333432674408]]
    """
    s = per_pass.shape[0]
    bad = [t for t in passes if not 1 <= int(t) <= s]
    if bad:
        raise ValueError(f"pass counts {bad} outside 1..{s} (only {s} passes were run)")
    return torch.stack([per_pass[: int(t)].nanmean(0) for t in passes])


def settling(prefix: Tensor, passes: Sequence[int], *, tol: float = 0.02) -> "Any":
    """How the per-image estimate settles with the pass count.

    ``prefix`` [len(passes), B] from :func:`prefix_repeatability`; the last row (most passes) is the
    reference. Returns a DataFrame indexed by T with the mean absolute change to the reference, the
    share of images within ``tol`` of it, and the rank correlation across images with it.
    """
    import pandas as pd

    ref = prefix[-1]
    rows = []
    for t, r in zip(passes, prefix):
        ok = torch.isfinite(r) & torch.isfinite(ref)
        d = (r[ok] - ref[ok]).abs()
        rho = metrics.spearman(r[ok].double(), ref[ok].double(), ndim_spatial=1) if ok.sum() > 2 else float("nan")
        rows.append({"passes T": int(t), "mean |rho_T - rho_Tmax|": float(d.mean()),
                     f"share within {tol}": float((d <= tol).float().mean()),
                     "Spearman(rho_T, rho_Tmax) across images": float(rho)})
    return pd.DataFrame(rows).set_index("passes T")


def repeatability_table(rho: Tensor, correct: Tensor, *, paper: Mapping = PAPER_RHO) -> "Any":
    """Repeatability of correct vs misclassified images, ours beside the paper's (labelled theirs).

    Uses :func:`uqxai_lib.metrics.compare_groups` (group a = correct, expected higher).
    Returns ``(table DataFrame, GroupComparison)``.
    """
    import pandas as pd

    correct = torch.as_tensor(correct, dtype=torch.bool)
    cmp = metrics.compare_groups(rho, correct, higher_in="a")
    d = cmp.as_dict()
    table = pd.DataFrame(
        {
            "ours: correct": [f"{d['mean_a']:.3f} ± {d['sd_a']:.3f}", int(d["n_a"])],
            "ours: misclassified": [f"{d['mean_b']:.3f} ± {d['sd_b']:.3f}", int(d["n_b"])],
            "Salvi et al. 2025 (theirs): correct": [f"{paper['correct'][0]:.2f} ± {paper['correct'][1]:.2f}", "n/a"],
            "Salvi et al. 2025 (theirs): misclassified": [
                f"{paper['misclassified'][0]:.2f} ± {paper['misclassified'][1]:.2f}", "n/a"],
        },
        index=["mean ρ ± SD", "n"],
    ).T
    table["Mann–Whitney p (ours)"] = [f"{d['mwu_p']:.2g}", "", "not reported", ""]
    table["AUROC correct vs mis (ours)"] = [f"{d['auroc']:.3f}", "", "not reported", ""]
    return table, cmp


def abstention(correct: Tensor, confidences: Mapping[str, Tensor]) -> tuple[dict, "Any"]:
    """Accuracy-coverage curves and AURC when abstaining on each confidence score (higher = keep).

    Curves and AURC come from :func:`uqxai_lib.metrics.risk_coverage` and
    :func:`uqxai_lib.metrics.aurc`. An undefined score (NaN, e.g. the repeatability of an image
    whose maps are constant) counts as less confident than every defined one.

    Returns ``(curves, table)``: ``curves[name] = (coverage [K], accuracy [K])`` as tensors and a
    DataFrame with the AURC of each score (lower is better) plus two references: the oracle
    (every correct image ranked above every error, in distinct steps, the lowest AURC any score
    can reach) and a random ranking (its expected AURC is the error rate).
    """
    import pandas as pd

    correct = torch.as_tensor(correct, dtype=torch.bool).reshape(-1)
    n = len(correct)
    curves, rows = {}, []
    for name, conf in confidences.items():
        conf = torch.as_tensor(conf, dtype=torch.float64).reshape(-1)
        if len(conf) != n:
            raise ValueError(f"score {name!r} has {len(conf)} entries but there are {n} images")
        finite = conf[torch.isfinite(conf)]
        floor = (float(finite.min()) - 1.0) if len(finite) else 0.0
        conf = torch.nan_to_num(conf, nan=floor)
        cov, risk = metrics.risk_coverage(correct, conf)
        curves[name] = (cov, 1 - risk)
        rows.append({"abstain on": name, "AURC": metrics.aurc(correct, conf)})
    oracle = correct.double() * n + torch.arange(n, 0, -1, dtype=torch.float64) / (n + 1)
    rows.append({"abstain on": "oracle (knows the errors)", "AURC": metrics.aurc(correct, oracle)})
    rows.append({"abstain on": "random (expected)", "AURC": 1 - correct.double().mean().item()})
    table = pd.DataFrame(rows).set_index("abstain on")
    table.attrs["n"] = n
    return curves, table


def sweep_table(rho_by_setting: Mapping[Any, Tensor], correct_by_setting: Mapping[Any, Tensor], name: str) -> "Any":
    """Mean rho of correct and misclassified images, their gap and AUROC for each sweep setting.

    One :func:`uqxai_lib.metrics.compare_groups` per setting (NaN where a group is empty).
    """
    import pandas as pd

    rows = []
    for key, rho in rho_by_setting.items():
        correct = torch.as_tensor(correct_by_setting[key], dtype=torch.bool)
        d = metrics.compare_groups(rho, correct, higher_in="a").as_dict()
        rows.append({name: key, "n_correct": d["n_a"], "n_mis": d["n_b"], "rho_correct": d["mean_a"],
                     "rho_mis": d["mean_b"], "gap": d["mean_a"] - d["mean_b"], "auroc": d["auroc"]})
    return pd.DataFrame(rows).set_index(name)


def mass_in_tumour(maps: Tensor, mask: Tensor) -> Tensor:
    """Share of each (ReLU-ed, non-negative) map's mass inside the tumour mask, maps upsampled to it.

    ``maps`` [..., h, w] at the layer's resolution, ``mask`` bool [H, W] or [..., H, W]. The maps are
    upsampled bilinearly to the mask (:func:`uqxai_lib.saliency.upsample`), then scored with
    :func:`uqxai_lib.metrics.mass_in_mask`. Returns [...]; NaN for an all-zero map.
    """
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, *maps.shape[-2:]).clamp_min(0)
    up = saliency.upsample(flat, tuple(mask.shape[-2:]))
    m = mask.reshape(-1, *mask.shape[-2:]).to(torch.bool)
    return metrics.mass_in_mask(up, m, ndim_spatial=2).reshape(lead)


def sweep_subset(correct: Tensor, n: int) -> Tensor:
    """Sorted indices of at most ``n`` images for the sweeps, with the rare group not thinned.

    Misclassified images are kept up to half of the budget (more when there are too few correct
    images to fill it), the rest are correct images; each group is taken evenly spaced.

    >>> sweep_subset(torch.tensor([True, False, True, True, True, False, True]), 4).tolist()
    [0, 1, 5, 6]
    >>> sweep_subset(torch.tensor([False, False, False, True, False, True]), 4).tolist()
    [0, 3, 4, 5]
    """
    correct = torch.as_tensor(correct, dtype=torch.bool).reshape(-1)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")

    def spaced(idx: Tensor, k: int) -> Tensor:
        if k <= 0 or len(idx) == 0:
            return idx[:0]
        if k >= len(idx):
            return idx
        return idx[torch.linspace(0, len(idx) - 1, k).round().long()]

    mis, cor = torch.nonzero(~correct).flatten(), torch.nonzero(correct).flatten()
    k_mis = min(len(mis), max(n // 2, n - len(cor)))
    k_cor = min(len(cor), n - k_mis)
    return torch.sort(torch.cat([spaced(mis, k_mis), spaced(cor, k_cor)])).values


def pick_cases(rho: Tensor, correct: Tensor, y: Tensor | None = None, *, avoid_class: int | None = None) -> list[int]:
    """Images for the Fig. 4 replica: the correct one with the highest rho, the misclassified one with the lowest.

    With ``avoid_class`` the correct image is taken from the other classes when possible (e.g. a
    tumour slice rather than "no tumour", so there is a mask to compare with). An empty group
    contributes nothing; NaN rho ranks lowest.

    >>> pick_cases(torch.tensor([0.9, 0.2, 0.8, 0.5]), torch.tensor([True, False, True, False]),
    ...            torch.tensor([2, 0, 1, 3]), avoid_class=2)
    [2, 1]
    """
    r = torch.nan_to_num(torch.as_tensor(rho, dtype=torch.float64), nan=-math.inf)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    order = torch.argsort(r, descending=True, stable=True).tolist()
    good = [i for i in order if correct[i]]
    if avoid_class is not None and y is not None:
        good = [i for i in good if int(y[i]) != avoid_class] or good
    bad = [i for i in reversed(order) if not correct[i]]
    return good[:1] + bad[:1]


def fig4_case(study: MCStudy, i: int, image: Tensor, title: str, *, passes: int | None = None,
              mask: Tensor | None = None) -> dict:
    """The mapping :func:`uqxai_lib.viz.mri.plot_fig4` needs for image ``i`` of ``study`` (first ``passes`` passes).

    Keys ``image, det, mc, rho, mask, title`` and the MC ``mean`` / ``std`` maps with ``rho_mean``
    (NaN-skipping mean of ``rho``). With a non-empty tumour ``mask`` it adds ``overlap``: the
    share of the deterministic and of the MC-mean map's mass inside it (:func:`mass_in_tumour`).
    """
    t = study.rho.shape[0] if passes is None else passes
    mc = study.maps[:t, i]
    mean = aggregate.consensus(mc)
    overlap = {}
    if mask is not None and bool(mask.any()):
        overlap = {"det": float(mass_in_tumour(study.det_map[i], mask)),
                   "mean": float(mass_in_tumour(mean, mask))}
    return dict(image=image, det=study.det_map[i], mc=mc, rho=study.rho[:t, i], mask=mask, overlap=overlap,
                title=title, mean=mean, std=aggregate.variability(mc),
                rho_mean=float(study.rho[:t, i].nanmean()))


def mask_overlap_table(det_map: Tensor, mc_mean: Tensor, mask: Tensor, correct: Tensor) -> "Any":
    """Mean share of map mass inside the tumour mask, tumour slices only, correct vs misclassified.

    ``det_map`` and ``mc_mean`` [B, h, w] (layer resolution), ``mask`` bool [B, H, W]. Columns:
    deterministic map, MC mean map and the mask's share of the image (the value a uniform map
    would get). NaN for an empty group.
    """
    import pandas as pd

    correct = torch.as_tensor(correct, dtype=torch.bool)
    tumour = mask.flatten(1).any(1)
    cols = {"deterministic map": mass_in_tumour(det_map, mask), "MC mean map": mass_in_tumour(mc_mean, mask),
            "mask area share (uniform map)": mask.flatten(1).double().mean(1)}
    rows = {}
    for label, grp in (("correct (tumour slices)", tumour & correct), ("misclassified (tumour slices)", tumour & ~correct)):
        rows[label] = {k: float(v[grp].double().nanmean()) if bool(grp.any()) else math.nan for k, v in cols.items()}
        rows[label]["n"] = int(grp.sum())
    return pd.DataFrame(rows).T


def uncertainty_table(rho: Tensor, scores: Mapping[str, Tensor], correct: Tensor) -> "Any":
    """How well each confidence score (higher = more confident) separates correct from misclassified.

    Rows: repeatability rho and each score. Columns: AUROC for correct vs misclassified
    (:func:`uqxai_lib.metrics.auroc`, 0.5 = no separation) and the Spearman correlation with rho
    across images (:func:`uqxai_lib.metrics.spearman`). Images with NaN rho are left out.
    """
    import pandas as pd

    rho = torch.as_tensor(rho, dtype=torch.float64)
    ok = torch.isfinite(rho)
    correct = torch.as_tensor(correct, dtype=torch.bool)[ok]
    rows = {}
    for name, score in {"ρ (repeatability)": rho, **scores}.items():
        v = torch.as_tensor(score, dtype=torch.float64)[ok]
        rows[name] = {"AUROC correct vs mis": float(metrics.auroc(v, correct)),
                      "Spearman with ρ": float(metrics.spearman(v, rho[ok], ndim_spatial=1))}
    table = pd.DataFrame(rows).T
    table.attrs["n"] = int(ok.sum())
    return table


def mc_frame_items(runs: Mapping[Any, MCStudy], cols: Sequence[int], pass_counts: Sequence[int],
                   images: Sequence[Tensor], labels: Sequence[str], classes: Sequence[str], *,
                   masks: Sequence[Tensor | None] | None = None) -> list[list[list[dict]]]:
    """The data of each frame of a (dropout rate x pass count) widget (drawn by :func:`uqxai_lib.viz.mri.mc_frames`).

    ``runs`` maps each setting (e.g. dropout rate) to an :class:`MCStudy`; ``cols`` are the
    columns (images) of those studies to show, with their gray ``images``, row ``labels`` (e.g. the
    true class) and optional ``masks``. Frame ``[i][j]`` is a list of one item per image for setting
    ``i`` and the first ``pass_counts[j]`` passes: ``image``, the MC ``mean`` and ``std`` maps,
    ``mask`` and a ``title`` with the MC prediction and rho.
    """
    frames = []
    for run in runs.values():
        row = []
        for t in pass_counts:
            items = []
            for k, j in enumerate(cols):
                mp = run.probs[:t, j].mean(0)
                rho = float(run.rho[:t, j].nanmean())
                items.append(dict(image=images[k], mean=aggregate.consensus(run.maps[:t, j]),
                                  std=aggregate.variability(run.maps[:t, j]),
                                  mask=None if masks is None else masks[k],
                                  title=f"{labels[k]} | MC pred {classes[int(mp.argmax())]} "
                                        f"({float(mp.max()):.2f}) | ρ = {rho:.2f}"))
            row.append(items)
        frames.append(row)
    return frames


#: Results-JSON keys of the AURC of each abstention score (rows of :func:`abstention`'s table).
AURC_KEYS = {"ρ (explanation)": "aurc_rho", "−entropy": "aurc_entropy", "−mutual information": "aurc_mi",
             "rank average (ρ, −entropy)": "aurc_rank_average", "oracle (knows the errors)": "aurc_oracle",
             "random (expected)": "aurc_random"}


def headline(*, accuracy: float, passes: int, dropout: float, comparison: Any, aurc: Mapping[str, float],
             extra: Mapping[str, Any] | None = None) -> dict:
    """The chapter's headline numbers for the results JSON, 6 significant digits, NaN -> None.

    ``comparison`` is the :class:`uqxai_lib.metrics.GroupComparison` of rho (correct = group a),
    ``aurc`` maps the rows of :func:`abstention`'s table to their AURC (renamed by :data:`AURC_KEYS`).

    >>> from uqxai_lib.metrics import GroupComparison
    >>> c = GroupComparison(0.8, 0.1, 90, 0.6, 0.2, 10, 1.234567e-4, 0.81234567)
    >>> r = headline(accuracy=0.9, passes=20, dropout=0.5, comparison=c, aurc={"−entropy": 0.05})
    >>> r["auroc"], r["mwu_p"], r["aurc_entropy"], r["n_mis"]
    (0.812346, 0.000123457, 0.05, 10)
    """
    d = comparison.as_dict()
    out = dict(accuracy=accuracy, passes=int(passes), dropout=float(dropout),
               rho_correct_mean=d["mean_a"], rho_correct_sd=d["sd_a"], n_correct=int(d["n_a"]),
               rho_mis_mean=d["mean_b"], rho_mis_sd=d["sd_b"], n_mis=int(d["n_b"]),
               mwu_p=d["mwu_p"], auroc=d["auroc"])
    out.update({AURC_KEYS.get(k, k): float(v) for k, v in aurc.items()})
    out.update(extra or {})
    out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
    return round_sig(dict(sorted(out.items())))

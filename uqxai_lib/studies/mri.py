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

from uqxai_lib import aggregate, metrics, saliency, samplers, stats, train
from uqxai_lib.cache import round_sig

__all__ = [
    "SETUP_KEYS",
    "Setup",
    "setup",
    "PAPER_RHO",
    "AURC_KEYS",
    "CASCADE",
    "CLAIM",
    "PRIMARY_NAME",
    "SANITY_THRESHOLD",
    "MCStudy",
    "abstention",
    "blurred",
    "bootstrap_groups",
    "cascading_randomisation",
    "compare",
    "degenerate_passes",
    "deletion_insertion",
    "fidelity_scores",
    "fidelity_summary",
    "fidelity_vs_stability",
    "layer_table",
    "most_repeatable_errors",
    "per_class_accuracy",
    "primary_record",
    "secondary_records",
    "strata_table",
    "tercile_labels",
    "top_region_overlap",
    "variant_record",
    "variants_table",
    "verdict_sentence",
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

#: The parameters :func:`setup` reads (the chapter's data and model knobs; names of its parameters cell).
SETUP_KEYS = ("image_size", "n_patients", "ambiguity", "split", "max_test", "data_dir", "sartaj_classes",
              "sartaj_val_size", "sartaj_check_counts", "arch", "width", "small_input", "weights",
              "train_dropout", "epochs", "patience", "batch_size", "lr", "explain_point")


class Setup(NamedTuple):
    """The chapter's data and trained model (:func:`setup`).

    ``train`` / ``val`` / ``test``: :class:`uqxai_lib.data.LabeledArrays` (``test`` already cut to
    ``max_test``); ``model`` in eval mode; ``classes``; ``layer``: the explained layer of the
    chapter's ``explain_point``; ``fit``: the :class:`uqxai_lib.train.TrainResult`; ``attrs``: the
    phantom generator's description of each test slice (``None`` on real data); ``data``: a words
    description of the data; ``config``: the training cache key (data + model), the one key of the
    chapter's setup, which every sample cache of the chapter extends.
    """

    train: Any
    val: Any
    test: Any
    model: Any
    classes: list
    layer: str
    fit: Any
    attrs: dict | None
    data: str
    config: dict


def setup(params: Mapping[str, Any], *, seed: int, device: Any = "cpu") -> Setup:
    """Build the chapter's data (synthetic phantom, or SARTAJ when ``params["data_dir"]`` or
    ``$UQXAI_DATA_DIR`` names it) and train (or load from the cache) its ResNet with dropout after
    every residual block, exactly as ``notebooks/mri_mc_dropout.py`` does.

    ``params`` holds at least :data:`SETUP_KEYS` (the chapter's parameters cell, or
    :func:`uqxai_lib.params.chapter_parameters` of a profile). Used by the chapter, by
    :func:`primary_run` (the robustness chapter) and by the cross-study chapter, so that all of
    them share one cache key (``Setup.config``).
    """
    from uqxai_lib.data.sartaj import load_sartaj, stratified_holdout
    from uqxai_lib.data.synthetic_mri import make_synthetic_mri, synthetic_mri_attributes
    from uqxai_lib.models.resnet_mc import GRADCAM_LAYER, build_resnet_mc, explained_layer
    from uqxai_lib.utils import pick_device, resolve_data_dir

    missing = [k for k in SETUP_KEYS if k not in params and k != "data_dir"]
    if missing:
        raise ValueError(f"studies.mri.setup needs the chapter parameters {missing}; pass the parameters cell of "
                         "notebooks/mri_mc_dropout.py (or uqxai_lib.params.chapter_parameters('mri_mc_dropout', "
                         "profile))")
    p = params
    dev = pick_device(device) if isinstance(device, str) else device
    root = resolve_data_dir(p.get("data_dir"))
    if root is None:
        data = make_synthetic_mri(p["n_patients"], size=p["image_size"], ambiguity=p["ambiguity"], seed=seed)
        data_config = dict(source="synthetic", n_patients=p["n_patients"], size=p["image_size"],
                           ambiguity=p["ambiguity"], split=list(p["split"]), seed=seed)
        rest, test_idx = stratified_holdout(data.y, int(round(p["split"][2] * len(data))), seed=seed)
        tr, va = stratified_holdout(data.y[rest], int(round(p["split"][1] * len(data))), seed=seed + 1)
        train_set, val_set, test_set = data.subset(rest[tr]), data.subset(rest[va]), data.subset(test_idx)
        rows = test_idx
        described = f"embedded synthetic brain-MRI phantom ({p['n_patients']} patients, {p['image_size']} px)"
    else:
        parts = load_sartaj(root, size=p["image_size"], seed=seed, classes=p["sartaj_classes"],
                            val_size=p["sartaj_val_size"], check_counts=p["sartaj_check_counts"])
        train_set, val_set, test_set = parts["train"], parts["val"], parts["test"]
        data_config = dict(source=str(root), size=p["image_size"], seed=seed, classes=p["sartaj_classes"],
                           val_size=p["sartaj_val_size"])
        rows = None
        described = f"SARTAJ brain MRI from {root}"
    if len(test_set) > p["max_test"]:  # an evenly spaced subset keeps the class mix
        keep = torch.linspace(0, len(test_set) - 1, p["max_test"]).round().long()
        test_set = test_set.subset(keep)
        rows = None if rows is None else rows[keep]
    attrs = None if rows is None else {k: v[rows] for k, v in synthetic_mri_attributes(
        p["n_patients"], ambiguity=p["ambiguity"], seed=seed).items()}
    classes = list(train_set.classes)
    weights = p["weights"]
    model_config = dict(arch=p["arch"], width=p["width"], small_input=p["small_input"], num_classes=len(classes),
                        train_dropout=p["train_dropout"], weights=None if weights is None else str(weights))
    model = build_resnet_mc(p["arch"], num_classes=len(classes), p=p["train_dropout"], width=p["width"],
                            small_input=p["small_input"], weights=weights, seed=seed)
    config = dict(data=data_config, model=model_config)
    fit = train.fit(model, train_set, val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                    patience=p["patience"], seed=seed, device=dev, name="mri_resnet_mc", cache_config=config)
    model = fit.model.eval()
    layer = explained_layer(model, GRADCAM_LAYER, p["explain_point"])
    return Setup(train_set, val_set, test_set, model, classes, layer, fit, attrs, described, config)


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
        {"images (ours)": [int(d["n_a"]), int(d["n_b"])],
         "mean ρ ± SD (ours)": [f"{d['mean_a']:.3f} ± {d['sd_a']:.3f}", f"{d['mean_b']:.3f} ± {d['sd_b']:.3f}"],
         "mean ρ ± SD (theirs: Salvi et al. 2025, SARTAJ)": [f"{paper['correct'][0]:.2f} ± {paper['correct'][1]:.2f}",
                                                            f"{paper['misclassified'][0]:.2f} ± {paper['misclassified'][1]:.2f}"]},
        index=pd.Index(["correct", "misclassified"], name="test images"))
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


# ---------------------------------------------------------------------------------------------
# the primary comparison, its claim, secondary comparisons and verdicts (stats.py)
# ---------------------------------------------------------------------------------------------
#: The paper's claim that the chapter's primary comparison tests (numbers theirs).
CLAIM = {
    "text": ("Under MC dropout, the Grad-CAM maps of correctly classified images are more repeatable "
             "(higher mean Spearman ρ with the deterministic map) than those of misclassified images."),
    "expected": "higher",
    "theirs": "ρ 0.76 ± 0.08 (correct) vs 0.54 ± 0.12 (misclassified), SARTAJ test set, ResNet50",
    "source": "salvi2025explainability",
}
PRIMARY_NAME = "repeatability ρ: correct − misclassified"


def bootstrap_groups(groups: Tensor | None) -> Tensor | None:
    """The patient ids to bootstrap over, or ``None`` when no patient has two items (then the
    stratified item bootstrap of :func:`uqxai_lib.stats.group_difference` is the same unit, and keeps
    both group sizes fixed).

    >>> bootstrap_groups(torch.tensor([3, 1, 2])) is None, bootstrap_groups(torch.tensor([1, 1, 2])).tolist()
    (True, [1, 1, 2])
    """
    if groups is None:
        return None
    g = torch.as_tensor(groups).reshape(-1)
    return g if len(torch.unique(g)) < len(g) else None


def compare(values: Tensor, correct: Tensor, groups: Tensor | None = None, *, n_boot: int = 2000,
            seed: int = 0) -> dict:
    """:func:`uqxai_lib.stats.group_difference` of ``values``, correct (group a) minus misclassified,
    resampling patients where a patient has several items (:func:`bootstrap_groups`)."""
    from uqxai_lib import stats

    g = bootstrap_groups(groups)
    return stats.group_difference(torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(correct, dtype=torch.bool),
                                  groups=None if g is None else g.numpy(), n_boot=n_boot, seed=seed)


def primary_record(rho: Tensor, correct: Tensor, groups: Tensor | None = None, *, seed: int = 0) -> tuple[dict, dict]:
    """The chapter's ``primary`` record (:func:`uqxai_lib.stats.primary`) and the full comparison."""
    from uqxai_lib import stats

    cmp = compare(rho, correct, groups, seed=seed)
    return stats.primary(PRIMARY_NAME, cmp), cmp


def secondary_records(comparisons: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """``secondary`` rows ``{name, effect, ci95, p, p_holm, verdict}`` with Holm-adjusted p-values
    (:func:`uqxai_lib.stats.holm` over all rows); each label follows its Holm-adjusted p (:func:`holm_label`)."""
    from uqxai_lib import stats

    names = list(comparisons)
    adj = stats.holm([float(comparisons[n]["p"]) for n in names])
    return [{"name": n, "effect": float(comparisons[n]["effect"]), "ci95": [float(v) for v in comparisons[n]["ci95"]],
             "p": float(comparisons[n]["p"]), "p_holm": float(a),
             "verdict": holm_label(float(comparisons[n]["effect"]), float(a))}
            for n, a in zip(names, adj)]


def holm_label(effect: float, p_holm: float, alpha: float = 0.05) -> str:
    """A secondary comparison's label from its Holm-adjusted p: "higher" / "lower" (the sign of the
    effect) when ``p_holm < alpha``, else "no detectable difference"; "undefined" when either is NaN.

    >>> holm_label(0.01, 0.158), holm_label(-0.05, 0.001), holm_label(float("nan"), 0.2)
    ('no detectable difference', 'lower', 'undefined')
    """
    if not (math.isfinite(effect) and math.isfinite(p_holm)):
        return "undefined"
    if p_holm >= alpha:
        return "no detectable difference"
    return "higher" if effect > 0 else "lower"


def verdict_sentence(record: Mapping[str, Any], claim: Mapping[str, Any] = CLAIM, *, what: str = "ρ") -> str:
    """One Markdown sentence from a ``primary`` record: effect, interval, AUROC, p, verdict and whether
    the claim's direction is reproduced (:func:`uqxai_lib.stats.reproduction`); no mean is compared."""
    from uqxai_lib import stats

    lo, hi = record["ci95"]
    alo, ahi = record["auroc_ci95"]
    rep = stats.reproduction(record["verdict"], claim["expected"])
    return (f"{what} of correct minus misclassified images: {record['effect']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}); "
            f"AUROC {record['auroc']:.3f} (95% CI {alo:.3f} to {ahi:.3f}). "
            f"Verdict: **{record['verdict']}** for correct images, so the paper's claim ({claim['expected']}) is "
            f"**{rep}** here.")


# ---------------------------------------------------------------------------------------------
# explained point (pre / post dropout): variants, degenerate passes
# ---------------------------------------------------------------------------------------------
def degenerate_passes(per_pass: Tensor, correct: Tensor) -> dict:
    """Passes whose map (or the deterministic map) is constant, so Spearman ρ is undefined (NaN), per group.

    ``per_pass`` [S, B] from :attr:`MCStudy.rho`. Returns ``{"correct", "misclassified"}`` (counts of
    undefined passes), ``"images_without_defined_pass"`` and ``"passes_per_image"``. A NaN-skipping
    mean drops exactly these passes; reporting them shows how many were dropped where.

    >>> degenerate_passes(torch.tensor([[0.5, float("nan")], [float("nan"), float("nan")]]), torch.tensor([True, False]))
    {'correct': 1, 'misclassified': 2, 'images_without_defined_pass': 1, 'passes_per_image': 2}
    """
    bad = torch.isnan(per_pass)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    return {"correct": int(bad[:, correct].sum()), "misclassified": int(bad[:, ~correct].sum()),
            "images_without_defined_pass": int(bad.all(0).sum()), "passes_per_image": int(per_pass.shape[0])}


def variant_record(study: MCStudy, correct: Tensor, passes: int, groups: Tensor | None = None, *, seed: int = 0) -> dict:
    """Results-JSON record of one explained-point variant: ``rho_correct_mean, rho_mis_mean, auroc,
    auroc_ci95, mwu_p, effect, ci95, verdict, degenerate_passes`` (first ``passes`` passes)."""
    from uqxai_lib import stats

    rho = study.repeatability(passes)
    c = compare(rho, correct, groups, seed=seed)
    return {"rho_correct_mean": c["mean_a"], "rho_mis_mean": c["mean_b"], "auroc": c["auroc"],
            "auroc_ci95": c["auroc_ci95"], "mwu_p": c["p"], "effect": c["effect"], "ci95": c["ci95"],
            "verdict": stats.verdict(c["ci95"]), "degenerate_passes": degenerate_passes(study.rho[:passes], correct)}


def variants_table(records: Mapping[str, Mapping[str, Any]]) -> "Any":
    """One row per variant: mean ρ of both groups, the difference with its interval, AUROC with its
    interval, p, verdict and the undefined passes of each group."""
    import pandas as pd

    rows = {}
    for name, r in records.items():
        d = r["degenerate_passes"]
        rows[name] = {"ρ correct": r["rho_correct_mean"], "ρ misclassified": r["rho_mis_mean"],
                      "difference [95% CI]": f"{r['effect']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]",
                      "AUROC [95% CI]": f"{r['auroc']:.3f} [{r['auroc_ci95'][0]:.3f}, {r['auroc_ci95'][1]:.3f}]",
                      "Mann–Whitney p": f"{r['mwu_p']:.2g}", "verdict": r["verdict"],
                      "undefined passes (correct / mis)": f"{d['correct']} / {d['misclassified']}"}
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------------------------------
# training and per-class accuracy; where the reversal comes from
# ---------------------------------------------------------------------------------------------
def per_class_accuracy(pred: Tensor, y: Tensor, classes: Sequence[str]) -> "Any":
    """Per true class: images, correct, recall (= per-class accuracy) and the most frequent wrong prediction."""
    import pandas as pd

    pred, y = torch.as_tensor(pred).reshape(-1), torch.as_tensor(y).reshape(-1)
    rows = {}
    for k, name in enumerate(classes):
        sel = y == k
        n = int(sel.sum())
        wrong = pred[sel & (pred != y)]
        rows[name] = {"n": n, "correct": int((pred[sel] == k).sum()),
                      "accuracy": float((pred[sel] == k).double().mean()) if n else math.nan,
                      "most frequent error": classes[int(torch.mode(wrong).values)] if len(wrong) else "—"}
    return pd.DataFrame(rows).T


def strata_table(rho: Tensor, correct: Tensor, strata: Mapping[str, Sequence[Any]]) -> "Any":
    """ρ of correct vs misclassified images within each level of each split (e.g. true class,
    predicted class, ambiguous flag, tumour size): counts, means and the AUROC (0.5 = no
    separation, < 0.5 = errors more repeatable; NaN where a group is empty). Descriptive: no
    interval, the strata are small."""
    import pandas as pd

    rho = torch.as_tensor(rho, dtype=torch.float64)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    rows = []
    for split, labels in strata.items():
        labels = list(labels)
        for level in sorted({lab for lab in labels if lab is not None}, key=str):  # None: not in this split
            sel = torch.tensor([lab == level for lab in labels])
            c = metrics.compare_groups(rho[sel], correct[sel], higher_in="a")
            rows.append({"split": split, "level": level, "n_correct": c.n_a, "n_mis": c.n_b,
                         "ρ correct": c.mean_a, "ρ misclassified": c.mean_b, "AUROC": c.auroc})
    return pd.DataFrame(rows).set_index(["split", "level"])


def tercile_labels(values: Tensor, names: Sequence[str] = ("small", "medium", "large"), *,
                   valid: Tensor | None = None, missing: str = "none") -> list[str]:
    """Label each value by its tercile among the ``valid`` ones (others get ``missing``).

    >>> tercile_labels(torch.tensor([1., 2., 3., 4., 5., 6., 0.]), valid=torch.tensor([1, 1, 1, 1, 1, 1, 0]).bool())
    ['small', 'small', 'medium', 'medium', 'large', 'large', 'none']
    """
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    ok = torch.ones(len(v), dtype=torch.bool) if valid is None else torch.as_tensor(valid, dtype=torch.bool)
    if not bool(ok.any()):
        return [missing] * len(v)
    q1, q2 = torch.quantile(v[ok], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)).tolist()
    return [missing if not bool(o) else names[0] if x <= q1 else names[1] if x <= q2 else names[2]
            for x, o in zip(v.tolist(), ok.tolist())]


def most_repeatable_errors(rho: Tensor, correct: Tensor, k: int = 3) -> list[int]:
    """Indices of the ``k`` misclassified images with the highest ρ (NaN last).

    >>> most_repeatable_errors(torch.tensor([0.9, 0.8, float("nan"), 0.95, 0.1]), torch.tensor([1, 0, 0, 1, 0]).bool(), 2)
    [1, 4]
    """
    r = torch.nan_to_num(torch.as_tensor(rho, dtype=torch.float64), nan=-math.inf)
    mis = torch.nonzero(~torch.as_tensor(correct, dtype=torch.bool)).flatten()
    order = torch.argsort(r[mis], descending=True, stable=True)
    return mis[order[:k]].tolist()


# ---------------------------------------------------------------------------------------------
# fidelity against the tumour mask, deletion / insertion, sanity checks, layer choice
# ---------------------------------------------------------------------------------------------
def top_region_overlap(maps: Tensor, mask: Tensor, q: float = 0.9) -> tuple[Tensor, Tensor]:
    """IoU and Dice of each map's top ``1 - q`` region (upsampled to the mask; :func:`uqxai_lib.metrics.binarize`
    with rule ``("quantile", q)``) with the tumour mask. Returns ``(iou [B], dice [B])``."""
    up = saliency.upsample(maps.clamp_min(0), tuple(mask.shape[-2:]))
    region = metrics.binarize(up, ("quantile", float(q)), ndim_spatial=2)
    return metrics.iou(region, mask, ndim_spatial=2), metrics.dice(region, mask, ndim_spatial=2)


def fidelity_scores(maps: Tensor, mask: Tensor, *, q: float = 0.9) -> dict[str, Tensor]:
    """Per-image fidelity of maps ``[B, h, w]`` against tumour masks ``[B, H, W]``: ``mass`` (share of the
    map inside the mask, :func:`mass_in_tumour`), ``chance`` (the mask's area share: a uniform map's
    score), ``pointing`` (:func:`uqxai_lib.metrics.pointing_game` on the upsampled map), ``iou`` / ``dice``
    of the top region (:func:`top_region_overlap`). NaN on slices without a tumour."""
    tumour = mask.flatten(1).any(1)
    up = saliency.upsample(maps.clamp_min(0), tuple(mask.shape[-2:]))
    iou, dice = top_region_overlap(maps, mask, q)
    nan = torch.tensor(math.nan)
    out = {"mass": mass_in_tumour(maps, mask).double(), "chance": mask.flatten(1).double().mean(1),
           "pointing": metrics.pointing_game(up, mask, ndim_spatial=2).double(), "iou": iou.double(), "dice": dice.double()}
    return {k: torch.where(tumour, v, nan.to(v.dtype)) for k, v in out.items()}


def fidelity_summary(scores: Mapping[str, Tensor], y: Tensor, classes: Sequence[str], *, seed: int = 0) -> dict:
    """Means over tumour slices of :func:`fidelity_scores` with a bootstrap 95% interval of the mean mass in
    mask, and the same per tumour class (``per_class``); ``excess`` = mass − chance per image, its mean and
    interval (above 0: the maps land on the tumour more than a uniform map would)."""
    y = torch.as_tensor(y)
    ok = torch.isfinite(scores["mass"])

    def block(sel: Tensor) -> dict:
        m, ci = stats.mean_ci(scores["mass"][sel], seed=seed)
        ex, exci = stats.mean_ci((scores["mass"] - scores["chance"])[sel], seed=seed)
        return {"n": int(sel.sum()), "mass_in_mask": m, "mass_in_mask_ci95": ci,
                "chance": float(scores["chance"][sel].mean()) if bool(sel.any()) else math.nan,
                "excess_over_chance": ex, "excess_ci95": exci,
                "pointing_game": float(scores["pointing"][sel].nanmean()) if bool(sel.any()) else math.nan,
                "iou_top10": float(scores["iou"][sel].nanmean()) if bool(sel.any()) else math.nan,
                "dice_top10": float(scores["dice"][sel].nanmean()) if bool(sel.any()) else math.nan}

    out = block(ok)
    out["per_class"] = {name: block(ok & (y == k)) for k, name in enumerate(classes) if bool((ok & (y == k)).any())}
    return out


def blurred(x: Tensor, sigma: float | None = None) -> Tensor:
    """Gaussian-blurred copy of images ``[B, C, H, W]`` (sigma default ``W / 8``, radius ceil(3 sigma),
    :func:`uqxai_lib.fidelity.gaussian_blur`): the "evidence removed" baseline of the deletion /
    insertion curves (keeps the brain's outline, removes small structures)."""
    from uqxai_lib.fidelity import gaussian_blur

    return gaussian_blur(x, float(x.shape[-1]) / 8 if sigma is None else float(sigma))


def deletion_insertion(model, x: Tensor, maps: Tensor, target: Tensor, *, steps: int = 8, seed: int = 0) -> dict:
    """Deletion / insertion curves (Petsiuk et al. 2018; :func:`uqxai_lib.fidelity.deletion_curve` /
    :func:`~uqxai_lib.fidelity.insertion_curve`, one pixel at a time): the maps are upsampled bilinearly
    to the image, the pixels are replaced by the :func:`blurred` image (deletion) or revealed on it
    (insertion) in map order and in a random order (seeded; the same order for both), in ``steps`` steps.

    Lower deletion area and higher insertion area than the random order = the map ranks the evidence.
    Returns ``curves`` (mean curve of each of ``deletion``, ``deletion_random``, ``insertion``,
    ``insertion_random``), ``auc`` (mean area of each) and ``per_image`` (areas [B]). The model is used
    as the caller left it, which must be eval mode (dropout off)."""
    from uqxai_lib import fidelity

    if model.training:
        raise ValueError("put the model in eval mode first (model.eval())")
    dev = next(model.parameters()).device
    x = x.to(dev)
    size = tuple(x.shape[-2:])
    fill = blurred(x)
    up = saliency.upsample(maps.float(), size)
    curves, per_image = {}, {}
    for suffix, order in (("", "map"), ("_random", "random")):
        for name, fn in (("deletion", fidelity.deletion_curve), ("insertion", fidelity.insertion_curve)):
            c = fn(model, x, up, target, patch=1, steps=steps, fill=fill, order=order,
                   generator=torch.Generator().manual_seed(int(seed)))
            curves[name + suffix], per_image[name + suffix] = c.mean(0), fidelity.curve_auc(c)
    return {"curves": curves, "auc": {k: float(v.mean()) for k, v in per_image.items()}, "per_image": per_image,
            "fractions": torch.linspace(0, 1, steps + 1)}


#: Cascading randomisation order (Adebayo et al. 2018): from the head down to the stem.
CASCADE = ("fc", "layer4", "layer3", "layer2", "layer1", "conv1")
#: A method passes the cascading check when every randomised model's maps keep a median Spearman ρ
#: with the trained model's maps below this value.
SANITY_THRESHOLD = 0.5


def cascading_randomisation(model, x: Tensor, layer: str, target: Tensor, *, seed: int = 0,
                            cascade: Sequence[str] = CASCADE) -> dict:
    """Cascading model-parameter randomisation (Adebayo et al. 2018) for the deterministic Grad-CAM at ``layer``.

    Step ``k`` re-initialises the convolution and linear weights (``reset_parameters``, seeded once) of
    ``cascade[0..k]`` (head first) in a copy of ``model`` (:func:`uqxai_lib.fidelity.cascading_randomisation`);
    BatchNorm parameters and statistics are kept.
    Each step's maps (same ``target``) are compared with the trained model's by Spearman ρ after
    upsampling to the input (:func:`uqxai_lib.metrics.spearman`). A constant randomised map (e.g. all
    zero after the ReLU) keeps no rank order of the trained map, so its undefined ρ counts as 0 in the
    median and is counted in ``constant_maps``. Returns ``steps``: a list of ``{randomised_from,
    spearman_to_trained, constant_maps}`` (median over images), ``maps`` (trained first, then one
    ``[B, h, w]`` per step), ``per_image`` ρ (NaN where undefined) and ``passes`` (every median below
    :data:`SANITY_THRESHOLD`).
    """
    from uqxai_lib import fidelity

    size = tuple(x.shape[-2:])
    trained = saliency.grad_cam(model, x, layer, target)
    ref = saliency.upsample(trained, size)
    steps, maps, per_image = [], [trained], []
    randomised = fidelity.cascading_randomisation(model, list(cascade), lambda m: saliency.grad_cam(m, x, layer, target),
                                                  seed=seed, seeding="once", only=(torch.nn.Conv2d, torch.nn.Linear))
    for name, cam in randomised:
        rho = metrics.spearman(saliency.upsample(cam, size), ref, ndim_spatial=2)
        maps.append(cam)
        per_image.append(rho)
        undefined = torch.isnan(rho)
        steps.append({"randomised_from": name,
                      "spearman_to_trained": float(torch.quantile(torch.where(undefined, 0.0, rho.double()), 0.5)),
                      "constant_maps": int(undefined.sum())})
    passes = all(s["spearman_to_trained"] < SANITY_THRESHOLD for s in steps)
    return {"steps": steps, "maps": maps, "per_image": per_image, "passes": bool(passes)}


def layer_table(model, x: Tensor, mask: Tensor | None, correct: Tensor, layers: Sequence[str], passes: int, *,
                p: float | None = None, seed: int = 0) -> tuple["Any", dict]:
    """For each explained layer: map resolution, fidelity of the deterministic map (mass in mask vs chance,
    pointing game; tumour slices) and stability (mean ρ over ``passes`` MC passes; AUROC correct vs
    misclassified). Returns ``(DataFrame, studies)`` with the :class:`MCStudy` of each layer."""
    import pandas as pd

    rows, runs = {}, {}
    for layer in layers:
        st = mc_study(model, x, layer, passes, p=p, seed=seed)
        runs[layer] = st
        rho = st.repeatability()
        c = metrics.compare_groups(rho, correct, higher_in="a")
        row = {"map size": "×".join(str(s) for s in st.det_map.shape[-2:]), "mean ρ": float(rho.nanmean()),
               "AUROC ρ (correct vs mis)": c.auroc}
        if mask is not None:
            f = fidelity_scores(st.det_map, mask)
            row.update({"mass in mask": float(f["mass"].nanmean()), "chance": float(f["chance"].nanmean()),
                        "pointing game": float(f["pointing"].nanmean())})
        rows[layer] = row
    return pd.DataFrame(rows).T, runs


def fidelity_vs_stability(mass: Tensor, rho: Tensor, *, seed: int = 0, n_boot: int = 2000) -> dict:
    """Spearman correlation across images of fidelity (mass in mask) and stability (ρ), with a bootstrap
    95% interval over images (:func:`uqxai_lib.stats.bootstrap_ci`); images where either is undefined are
    left out. Returns ``spearman, ci95, n``."""
    from uqxai_lib import stats

    a = torch.as_tensor(mass, dtype=torch.float64)
    b = torch.as_tensor(rho, dtype=torch.float64)
    ok = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return {"spearman": math.nan, "ci95": [math.nan, math.nan], "n": int(len(a))}

    def stat(u, v):
        return float(metrics.spearman(torch.from_numpy(u), torch.from_numpy(v), ndim_spatial=1))

    ci = stats.bootstrap_ci(stat, a.numpy(), b.numpy(), n_boot=n_boot, seed=seed)
    return {"spearman": stat(a.numpy(), b.numpy()), "ci95": list(ci), "n": int(len(a))}


# ---------------------------------------------------------------------------------------------
# the chapter's page: small records, labels and sentences (no plotting)
# ---------------------------------------------------------------------------------------------
def first_of_each_class(y: Tensor) -> list[int]:
    """Index of the first item of each class present in ``y`` (class order).

    >>> first_of_each_class(torch.tensor([2, 0, 2, 1, 0]))
    [1, 3, 0]
    """
    y = torch.as_tensor(y).reshape(-1)
    return [int(torch.nonzero(y == k)[0]) for k in sorted(set(y.tolist()))]


def split_table(s: Setup) -> "Any":
    """Images per class in each part of the split (rows: train, validation, test; last column the total)."""
    import pandas as pd

    parts = [("train", s.train), ("validation", s.val), ("test", s.test)]
    rows = {name: {**{c: int((d.y == k).sum()) for k, c in enumerate(s.classes)}, "total": len(d)} for name, d in parts}
    return pd.DataFrame(rows).T.rename_axis("part")


def training_record(fit: Any) -> dict:
    """Epochs run, the kept (best) epoch, its validation loss and the last training loss of a :class:`~uqxai_lib.train.TrainResult`."""
    return {"epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
            "best_val_loss": min(h["val_loss"] for h in fit.history), "last_train_loss": fit.history[-1]["train_loss"]}


def strata_labels(test: Any, pred: Tensor, classes: Sequence[str], attrs: Mapping[str, Tensor] | None = None
                  ) -> dict[str, list]:
    """The splits of :func:`strata_table`: true and predicted class for every image; on the phantom also
    the generator's borderline flag and contrast and the tumour's size tercile, for tumour slices only
    (``None`` for a "no tumour" slice: it has no tumour to describe and is already its own row of the
    class splits, so it is not repeated under every tumour split)."""
    pred = torch.as_tensor(pred).reshape(-1)
    out = {"true class": [classes[int(k)] for k in test.y], "predicted class": [classes[int(k)] for k in pred]}
    tumour = None
    if test.mask is not None:
        area = test.mask.flatten(1).double().mean(1)
        tumour = area > 0
        out["tumour size"] = [None if t == "none" else t for t in tercile_labels(area, valid=tumour, missing="none")]
    if attrs is not None:
        t = tumour if tumour is not None else torch.ones(len(test.y), dtype=torch.bool)
        out["borderline (generator)"] = [("borderline" if bool(a) else "typical") if bool(ok) else None
                                         for a, ok in zip(attrs["ambiguous"], t)]
        out["contrast"] = [("faint" if bool(f) else "clear") if bool(ok) else None for f, ok in zip(attrs["faint"], t)]
    return out


def deletion_record(di: Mapping[str, Any]) -> dict:
    """``deletion_auc``, ``deletion_auc_random``, ``insertion_auc``, ``insertion_auc_random`` of :func:`deletion_insertion`."""
    return {f"{k.replace('_random', '')}_auc{'_random' if '_random' in k else ''}": float(v) for k, v in di["auc"].items()}


def fidelity_table(fidelity: Mapping[str, Any]) -> "Any":
    """One row per group of tumour slices (all, then each tumour class) of :func:`fidelity_summary`:
    images, mass in mask with its interval, chance, the excess over chance with its interval, pointing
    game and IoU of the top 10 %; numbers as text with a fixed precision."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    rows = {}
    for name, r in {"all tumour slices": fidelity, **fidelity["per_class"]}.items():
        rows[name] = {"images": int(r["n"]),
                      "mass in mask (95% CI)": f"{fmt_number(r['mass_in_mask'])} ({fmt_interval(r['mass_in_mask_ci95'])})",
                      "chance": fmt_number(r["chance"]),
                      "excess over chance (95% CI)": f"{fmt_number(r['excess_over_chance'])} ({fmt_interval(r['excess_ci95'])})",
                      "pointing game": f"{r['pointing_game']:.2f}", "IoU top 10%": f"{r['iou_top10']:.3f}"}
    return pd.DataFrame(rows).T.rename_axis("tumour slices")


def sanity_sentence(sc: Mapping[str, Any], n: int) -> str:
    """The cascading check's outcome in words, with the largest median ρ and the constant maps per step."""
    steps = sc["steps"]
    worst = max(s["spearman_to_trained"] for s in steps)
    return (f"Grad-CAM **{'passes' if sc['passes'] else 'fails'}** the cascading check (largest median ρ "
            f"{worst:.3f}, threshold {SANITY_THRESHOLD}); constant randomised maps: "
            + ", ".join(f"{s['constant_maps']} of {n} after {s['randomised_from']}" for s in steps) + ".")


def secondary_table(rows: Sequence[Mapping[str, Any]]) -> "Any":
    """The secondary comparisons as a table: the comparison first, then the difference with its interval,
    p, Holm-adjusted p and the label (read from the Holm-adjusted p)."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    return pd.DataFrame({r["name"]: {"correct − misclassified (95% CI)": f"{fmt_number(r['effect'])} ({fmt_interval(r['ci95'])})",
                                     "p": f"{r['p']:.2g}", "Holm p": f"{r['p_holm']:.2g}", "label": r["verdict"]}
                         for r in rows}).T.rename_axis("comparison")


def sweep_record(p_table: "Any") -> dict:
    """Per dropout rate of :func:`sweep_table`: the gap in ρ (correct − misclassified) and the AUROC."""
    return {f"{float(p):g}": {"gap": float(r["gap"]), "auroc": float(r["auroc"])} for p, r in p_table.iterrows()}


def sweep_sentence(sweep: Mapping[str, Mapping[str, float]]) -> str:
    """The dropout-rate sweep in words: the range of the gap in ρ and where it is closest to and farthest from 0."""
    gaps = {p: r["gap"] for p, r in sweep.items() if r["gap"] is not None and math.isfinite(r["gap"])}
    if not gaps:
        return "the dropout-rate sweep has no rate with both groups."
    lo, hi = min(gaps, key=gaps.get), max(gaps, key=gaps.get)
    sign = ("negative (errors more repeatable) at every rate" if gaps[hi] < 0 else
            "positive (correct images more repeatable) at every rate" if gaps[lo] > 0 else "of both signs")
    return (f"across dropout rates the gap in ρ (correct − misclassified) was {sign}, from {gaps[lo]:+.3f} "
            f"at p = {lo} to {gaps[hi]:+.3f} at p = {hi}.")


def within_class(rho: Tensor, correct: Tensor, pred: Tensor, classes: Sequence[str], *, groups: Tensor | None = None,
                 seed: int = 0) -> dict:
    """Where a pooled reversal comes from: which predicted class most errors are explained as, ρ of
    its errors and of its correct predictions, ρ of the correct predictions of the other classes, and
    the AUROC of ρ (correct vs misclassified) over pairs *within* the same predicted class (each class
    weighted by its number of correct × misclassified pairs; 0.5 = class explains it all)."""
    rho = torch.as_tensor(rho, dtype=torch.float64)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    pred = torch.as_tensor(pred).reshape(-1)
    ok = torch.isfinite(rho)
    num = den = 0.0
    for k in range(len(classes)):
        sel = ok & (pred == k)
        n1, n0 = int((sel & correct).sum()), int((sel & ~correct).sum())
        if n1 and n0:
            num += float(metrics.auroc(rho[sel], correct[sel])) * n1 * n0
            den += n1 * n0
    mis = ~correct
    if not bool(mis.any()):
        return {"n_mis": 0, "auroc_within_predicted_class": math.nan}
    top = int(torch.mode(pred[mis]).values)
    sel_err, sel_ok = mis & (pred == top), correct & (pred == top)
    return {"n_mis": int(mis.sum()), "most_common_error_prediction": classes[top],
            "n_errors_with_that_prediction": int(sel_err.sum()),
            "rho_errors_that_prediction": float(rho[sel_err].nanmean()),
            "rho_correct_that_prediction": float(rho[sel_ok].nanmean()),
            "rho_correct_other_predictions": float(rho[correct & (pred != top)].nanmean()),
            "auroc_within_predicted_class": num / den if den else math.nan}


def within_class_sentence(w: Mapping[str, Any], primary: Mapping[str, Any]) -> str:
    """:func:`within_class` in words, beside the pooled AUROC of the ``primary`` record."""
    if not w.get("n_mis"):
        return "No test image is misclassified, so there is nothing to split."
    top = w["most_common_error_prediction"]
    return (f"{w['n_errors_with_that_prediction']} of {w['n_mis']} errors are explained as **{top}**: mean ρ "
            f"{w['rho_errors_that_prediction']:.3f} for these errors and {w['rho_correct_that_prediction']:.3f} for "
            f"correct {top} predictions, against {w['rho_correct_other_predictions']:.3f} for the correct predictions of "
            f"the other classes. Pooled over all images the AUROC of ρ is {primary['auroc']:.3f}; over pairs within the "
            f"same predicted class it is **{w['auroc_within_predicted_class']:.3f}** (0.5: the predicted class explains "
            "the whole difference; above 0.5: the paper's direction).")


def summary(results: Mapping[str, Any]) -> str:
    """The chapter's Summary (Markdown bullets) generated from its results record."""
    prim, claim = results["primary"], results.get("claim", CLAIM)
    lines = [f"- The model reached {100 * results['accuracy']:.1f} % test accuracy ({results['n_mis']} of "
             f"{results['n_test']} test images misclassified; MC mean prediction {100 * results['mc_accuracy']:.1f} %).",
             f"- Primary: {verdict_sentence(prim, claim)}"]
    w = results.get("reversal") or {}
    if w.get("n_mis"):
        lines.append(f"- Within predicted classes the AUROC is {w['auroc_within_predicted_class']:.3f} (pooled "
                     f"{prim['auroc']:.3f}): {w['n_errors_with_that_prediction']} of {w['n_mis']} errors are explained as "
                     f"{w['most_common_error_prediction']}, whose maps are very repeatable.")
    fid = results.get("fidelity")
    if fid:
        above = fid["mass_in_mask_ci95"][0] > fid["chance"]
        lines.append(f"- The maps are {'above' if above else 'not above'} chance on the tumour (mass in mask "
                     f"{fid['mass_in_mask']:.3f} vs chance {fid['chance']:.3f}).")
    san = results.get("sanity")
    if san:
        lines.append(f"- Cascading randomisation: {'passed' if san['passes'] else 'failed'}.")
    if results.get("sweep_dropout"):
        lines.append(f"- Dropout rate: {sweep_sentence(results['sweep_dropout'])}")
    return "\n".join(lines)

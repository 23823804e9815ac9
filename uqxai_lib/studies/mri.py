"""Analysis steps of the ``mri_mc_dropout`` chapter (MC-dropout Grad-CAM on brain MRI); no plotting.

:func:`setup` builds the chapter's data and trained model (one cache key, shared with the
robustness and cross-study chapters); :func:`study` samples and caches the MC-dropout Grad-CAM
stack (:func:`mc_study`: :func:`uqxai_lib.samplers.mc_dropout` and the model's own map, N-D);
:func:`assessment` turns it into the book's :class:`uqxai_lib.Assessment`
(:func:`uqxai_lib.evaluate`: stability with the one constant-map rule, the primary comparison from
one bootstrap, fidelity against the tumour mask, cascading sanity check, fidelity vs stability);
:func:`primary_run` is the same primary comparison for the robustness sweep. What is particular
to the chapter is built on the instrument's pieces: the pass-count and dropout-rate sweeps
(:func:`prefix_repeatability`, :func:`sweep_table`, :func:`settling`), the explained-point variants,
where a reversal comes from (:func:`within_class`, :func:`strata_table`), the layer table,
abstention (:func:`abstention`), the Fig. 4 cases and widget frames, and the chapter's tables and
sentences. The figures are in :mod:`uqxai_lib.viz.mri`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from uqxai_lib import aggregate, metrics, protocol, saliency, samplers, stats, train
from uqxai_lib.protocol import evaluate

__all__ = [
    "AURC_KEYS",
    "CASCADE",
    "CLAIM",
    "PAPER_RHO",
    "PRIMARY_NAME",
    "SETUP_KEYS",
    "MCStudy",
    "Setup",
    "abstention",
    "assessment",
    "assessment_record",
    "bootstrap_groups",
    "compare",
    "deletion_sentence",
    "fidelity_table",
    "fig4_case",
    "first_of_each_class",
    "layer_table",
    "mc_frame_items",
    "mc_study",
    "most_repeatable_errors",
    "per_class_accuracy",
    "pick_cases",
    "prefix_repeatability",
    "primary_record",
    "primary_run",
    "repeatability_table",
    "sanity_sentence",
    "sanity_table",
    "secondary_records",
    "secondary_table",
    "settling",
    "setup",
    "split_table",
    "strata_labels",
    "strata_table",
    "study",
    "summary",
    "sweep_record",
    "sweep_sentence",
    "sweep_subset",
    "sweep_table",
    "tercile_labels",
    "training_record",
    "uncertainty_table",
    "variant_record",
    "variants_table",
    "verdict_sentence",
    "within_class",
    "within_class_sentence",
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


def setup(params: Mapping[str, Any], *, seed: int, device: Any = "cpu", member_seed: int | None = None) -> Setup:
    """Build the chapter's data (synthetic phantom, or SARTAJ when ``params["data_dir"]`` or
    ``$UQXAI_DATA_DIR`` names it) and train (or load from the cache) its ResNet with dropout after
    every residual block, exactly as ``notebooks/mri_mc_dropout.py`` does.

    ``params`` holds at least :data:`SETUP_KEYS` (the chapter's parameters cell, or
    :func:`uqxai_lib.params.chapter_parameters` of a profile). Used by the chapter, by
    :func:`primary_run` (the robustness chapter) and by the cross-study chapter, so that all of
    them share one cache key (``Setup.config``). ``member_seed`` (not ``None``, not ``seed``): the
    same data and split, the model initialised and trained with that seed under the key plus
    ``member_seed`` (a member of a seed ensemble).
    """
    from uqxai_lib.data.sartaj import load_sartaj, stratified_holdout
    from uqxai_lib.data.synthetic_mri import (
        make_synthetic_mri,
        synthetic_mri_attributes,
    )
    from uqxai_lib.models.resnet_mc import (
        GRADCAM_LAYER,
        build_resnet_mc,
        explained_layer,
    )
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
        described = f"synthetic brain MRI, {p['n_patients']} patients at {p['image_size']} px"
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
    model_seed = seed if member_seed is None else int(member_seed)
    model = build_resnet_mc(p["arch"], num_classes=len(classes), p=p["train_dropout"], width=p["width"],
                            small_input=p["small_input"], weights=weights, seed=model_seed)
    config = dict(data=data_config, model=model_config)
    if model_seed != seed:
        config["member_seed"] = model_seed
    fit = train.fit(model, train_set, val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                    patience=p["patience"], seed=model_seed, device=dev, name="mri_resnet_mc", cache_config=config)
    model = fit.model.eval()
    layer = explained_layer(model, GRADCAM_LAYER, p["explain_point"])
    return Setup(train_set, val_set, test_set, model, classes, layer, fit, attrs, described, config)


#: Salvi et al. (2025), section 4.2: mean rho +- SD, correct vs misclassified SARTAJ test images (theirs).
PAPER_RHO = {"correct": (0.76, 0.08), "misclassified": (0.54, 0.12)}
#: The paper's effect in our units and sign (theirs): mean ρ correct − misclassified, 0.76 − 0.54.
PAPER_EFFECT = 0.22
#: What the paper's number comes from (the ladder's data line).
PAPER_DATA = "SARTAJ brain-tumour MRI (394 test images, ResNet50 at 224 px)"


class MCStudy(NamedTuple):
    """MC-dropout explanations of a batch of images (all tensors on the CPU).

    maps [S, B, *sp]: Grad-CAM of each pass at the explained layer's resolution; probs [S, B, C]:
    softmax of each pass; target [B]: explained class (the deterministic prediction); det_map
    [B, *sp] and det_probs [B, C]: the dropout-off forward (the reference of every stability score).
    """

    maps: Tensor
    probs: Tensor
    target: Tensor
    det_map: Tensor
    det_probs: Tensor

    def repeatability(self, passes: int | None = None) -> Tensor:
        """Per-image repeatability ρ [B] of the first ``passes`` passes (default: all): the ``rho`` of
        :func:`uqxai_lib.protocol.stability` (the book's one constant-map rule), as a float64 tensor."""
        t = self.maps.shape[0] if passes is None else int(passes)
        return torch.tensor(protocol.stability(self.maps[:t], self.det_map)["rho"], dtype=torch.float64)

    def per_pass_rho(self, i: int, passes: int | None = None) -> Tensor:
        """Spearman ρ of each of the first ``passes`` maps of image ``i`` with its deterministic map
        (NaN for a constant map), as shown under the MC maps of Fig. 4."""
        t = self.maps.shape[0] if passes is None else int(passes)
        mc = self.maps[:t, i].double()
        return metrics.spearman(mc, self.det_map[i].double().expand_as(mc), ndim_spatial=mc.ndim - 1)


def mc_study(model, x: Tensor, layer: str, passes: int, *, p: float | None = None, seed: int = 0,
             batch: int = 64) -> MCStudy:
    """``passes`` MC-dropout Grad-CAM maps of images ``x`` and the deterministic map, as assess samples them.

    :func:`uqxai_lib.samplers.mc_dropout` (dropout modules on at rate ``p``, BatchNorm as the caller
    left it, the deterministic prediction explained in every pass) and the model's own map with
    dropout off (:func:`uqxai_lib.saliency.explain`), at the layer's resolution, any number of
    spatial dimensions. Images go ``batch`` at a time; batch ``k`` draws from a generator seeded
    ``seed + k * batch``.
    """
    if model.training:
        raise ValueError("put the model in eval mode first (model.eval()); mc_dropout switches dropout on itself")
    dev = next(model.parameters()).device
    out = {k: [] for k in MCStudy._fields}
    for start in range(0, len(x), batch):
        xb = x[start : start + batch].to(dev)
        st = samplers.mc_dropout(model, xb, layer, passes, p=p, target=None,
                                 generator=torch.Generator().manual_seed(int(seed) + start))
        with samplers.dropout_enabled(model, enabled=False):
            det = saliency.explain(model, xb, layer, st.target, "grad_cam")
        det_probs = train.predict_proba(model, xb, device=dev)
        for k, v in zip(MCStudy._fields, (st.maps, st.probs, st.target, det, det_probs)):
            out[k].append(v.detach().cpu())
    cat_dim = {"maps": 1, "probs": 1}
    return MCStudy(**{k: torch.cat(v, dim=cat_dim.get(k, 0)) for k, v in out.items()})


def study(s: Setup, *, passes: int, p: float, seed: int, layer: str | None = None, subset: Tensor | None = None
          ) -> MCStudy:
    """The cached :func:`mc_study` of the test set of ``s`` (or its ``subset``), keyed by the setup's one
    cache key (``s.config``) and the weights, passes, rate, seed and layer."""
    from uqxai_lib import cache
    from uqxai_lib.models.resnet_mc import weights_fingerprint

    layer = s.layer if layer is None else layer
    x = s.test.x if subset is None else s.test.x[subset]
    config = dict(s.config, weights=weights_fingerprint(s.model), n_test=len(s.test), passes=int(passes), p=float(p),
                  seed=int(seed), layer=layer, subset=None if subset is None else [int(i) for i in subset])
    return MCStudy(**cache.cached("mri_mc_dropout/stack", config, lambda: mc_study(
        s.model, x, layer, passes, p=p, seed=seed)._asdict()))


def bootstrap_groups(groups: Tensor | None) -> Tensor | None:
    """The patient ids to bootstrap over, or ``None`` when no patient has two items (then the
    stratified item bootstrap of :func:`uqxai_lib.protocol.primary_section` is the same unit and
    keeps both group sizes fixed).

    >>> bootstrap_groups(torch.tensor([3, 1, 2])) is None, bootstrap_groups(torch.tensor([1, 1, 2])).tolist()
    (True, [1, 1, 2])
    """
    if groups is None:
        return None
    g = torch.as_tensor(groups).reshape(-1)
    return g if len(torch.unique(g)) < len(g) else None


def assessment(s: Setup, st: MCStudy, *, passes: int, seed: int, full: bool = True) -> Any:
    """The :class:`uqxai_lib.Assessment` of the chapter: :func:`uqxai_lib.evaluate` of the first
    ``passes`` maps of ``st`` (source ``mc_dropout``, score ``rho``, patients as bootstrap groups
    where a patient has several slices). ``full`` adds the tumour-mask fidelity sections (where the
    data have masks) and the cascading sanity check over :data:`CASCADE`; the primary section is the
    same either way."""
    test = s.test
    dev = next(s.model.parameters()).device
    g = bootstrap_groups(test.group)
    return evaluate(st.maps[:passes], st.det_map, st.probs[:passes], st.det_probs, test.y, target=st.target,
                    source="mc_dropout", method="grad_cam", masks=test.mask if full else None,
                    groups=None if g is None else g.numpy(), score="rho", seed=seed,
                    model=s.model if full else None, x=test.x.to(dev) if full else None, layer=s.layer,
                    sanity=full, sanity_modules=list(CASCADE))


def primary_record(rec: Any) -> dict:
    """The results record's ``primary``: the Assessment's primary section with the chapter's name,
    its minimal detectable effect at this size (``mde``, :func:`uqxai_lib.stats.mde` of ρ: 80 %
    power, two-sided 5 %) and the paper's effect (``paper_effect``, theirs: :data:`PAPER_EFFECT`)."""
    return {"name": PRIMARY_NAME, **rec.primary, "mde": stats.mde(rec.score("rho"), rec.correct),
            "paper_effect": PAPER_EFFECT}


def primary_run(params: Mapping[str, Any], *, seed: int, device: Any = "cpu") -> dict:
    """The chapter's primary comparison, computed as the notebook computes it (:func:`setup`,
    :func:`study` with the notebook's pass count, :func:`assessment`): ``{"primary", "claim"}``.
    ``params`` as for :func:`setup` plus ``passes``, ``t_grid`` and ``dropout``; run by the robustness
    chapter as Dask tasks."""
    s = setup(params, seed=seed, device=device)
    st = study(s, passes=max(int(params["passes"]), max(int(t) for t in params["t_grid"])), p=params["dropout"],
               seed=seed)
    return {"primary": primary_record(assessment(s, st, passes=int(params["passes"]), seed=seed, full=False)),
            "claim": dict(CLAIM)}


def prefix_repeatability(st: MCStudy, passes: Sequence[int]) -> Tensor:
    """Repeatability of the first ``T`` passes for each ``T`` in ``passes``: [len(passes), B]."""
    s = st.maps.shape[0]
    bad = [t for t in passes if not 2 <= int(t) <= s]
    if bad:
        raise ValueError(f"pass counts {bad} outside 2..{s} (stability needs 2 passes; {s} were run)")
    return torch.stack([st.repeatability(int(t)) for t in passes])


def compare(values: Any, correct: Any, groups: Any = None, *, score: str, seed: int = 0) -> dict:
    """Correct vs misclassified of any per-image score by :func:`uqxai_lib.protocol.primary_section`
    (the primary's bootstrap: effect, interval, AUROC and the p-value of the same resamples)."""
    g = bootstrap_groups(groups)
    return protocol.primary_section(torch.as_tensor(values, dtype=torch.float64).numpy(),
                                    torch.as_tensor(correct).numpy(), groups=None if g is None else g.numpy(),
                                    score=score, seed=seed)


def variant_record(rec: Any) -> dict:
    """One explained-point variant: its Assessment's primary section and constant-map counts."""
    st = rec.stability
    return {**rec.primary, "n_constant_samples": st["n_constant_samples"], "n_undefined_rho": st["n_undefined_rho"]}


def variants_table(records: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per variant: mean ρ of both groups, the difference and the AUROC with their intervals,
    the bootstrap p, the verdict and the constant MC maps (skipped, counted)."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    rows = {}
    for name, r in records.items():
        rows[name] = {"verdict": r["verdict"], "ρ correct": fmt_number(r["mean_correct"]),
                      "ρ misclassified": fmt_number(r["mean_misclassified"]),
                      "difference (95% CI)": f"{fmt_number(r['effect'])} ({fmt_interval(r['ci95'])})",
                      "AUROC (95% CI)": f"{fmt_number(r['auroc'])} ({fmt_interval(r['auroc_ci95'])})",
                      "p": fmt_number(r["p"], 2), "constant MC maps": int(r["n_constant_samples"])}
    return pd.DataFrame(rows).T.rename_axis("Grad-CAM taken")


def fig4_case(st: MCStudy, i: int, image: Tensor, title: str, *, passes: int | None = None,
              mask: Tensor | None = None, mass: float | None = None) -> dict:
    """The mapping :func:`uqxai_lib.viz.mri.plot_fig4` needs for image ``i`` of ``st`` (first ``passes``
    passes): ``image, det, mc, rho`` (per pass), ``mean`` / ``std`` (:func:`uqxai_lib.aggregate.consensus`
    / ``variability``), ``rho_mean`` (the image's repeatability), ``mask``, ``title`` and, with ``mass``
    (the deterministic map's share inside the tumour, from the Assessment's fidelity section),
    ``overlap = {"det": mass}``."""
    t = st.maps.shape[0] if passes is None else passes
    mc = st.maps[:t, i]
    rho = st.per_pass_rho(i, t)
    overlap = {} if mass is None or not math.isfinite(float(mass)) else {"det": float(mass)}
    return dict(image=image, det=st.det_map[i], mc=mc, rho=rho, mask=mask, overlap=overlap, title=title,
                mean=aggregate.consensus(mc), std=aggregate.variability(mc), rho_mean=float(rho.nanmean()))


def mc_frame_items(runs: Mapping[Any, MCStudy], cols: Sequence[int], pass_counts: Sequence[int],
                   images: Sequence[Tensor], labels: Sequence[str], classes: Sequence[str], *,
                   masks: Sequence[Tensor | None] | None = None) -> list[list[list[dict]]]:
    """The data of each frame of a (dropout rate x pass count) widget (drawn by :func:`uqxai_lib.viz.mri.mc_frames`).

    ``runs`` maps each setting (e.g. dropout rate) to an :class:`MCStudy`; ``cols`` are the columns
    (images) of those studies to show, with their gray ``images``, row ``labels`` and optional
    ``masks``. Frame ``[i][j]`` holds one item per image for setting ``i`` and the first
    ``pass_counts[j]`` (>= 2) passes: ``image``, the MC ``mean`` and ``std`` maps, ``mask`` and a
    ``title`` with the MC prediction and ρ.
    """
    if min(int(t) for t in pass_counts) < 2:
        raise ValueError(f"pass counts {list(pass_counts)}: every frame needs at least 2 passes (a spread and a ρ "
                         "need two maps); drop 1 from widget_passes")
    frames = []
    for run in runs.values():
        row = []
        for t in pass_counts:
            rho = run.repeatability(t)
            items = []
            for k, j in enumerate(cols):
                mp = run.probs[:t, j].mean(0)
                items.append(dict(image=images[k], mean=aggregate.consensus(run.maps[:t, j]),
                                  std=aggregate.variability(run.maps[:t, j]),
                                  mask=None if masks is None else masks[k],
                                  title=f"{labels[k]} | MC pred {classes[int(mp.argmax())]} "
                                        f"({float(mp.max()):.2f}) | ρ = {float(rho[j]):.2f}"))
            row.append(items)
        frames.append(row)
    return frames


def settling(prefix: Tensor, passes: Sequence[int], *, tol: float = 0.02) -> Any:
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


def repeatability_table(rho: Tensor, correct: Tensor, *, paper: Mapping = PAPER_RHO) -> Any:
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
         "mean ρ ± SD (theirs: Salvi et al. 2025, SARTAJ)": [
             f"{paper['correct'][0]:.2f} ± {paper['correct'][1]:.2f}",
             f"{paper['misclassified'][0]:.2f} ± {paper['misclassified'][1]:.2f}"]},
        index=pd.Index(["correct", "misclassified"], name="test images"))
    return table, cmp


def abstention(correct: Tensor, confidences: Mapping[str, Tensor]) -> tuple[dict, Any]:
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


def sweep_table(rho_by_setting: Mapping[Any, Tensor], correct_by_setting: Mapping[Any, Tensor], name: str) -> Any:
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


def uncertainty_table(rho: Tensor, scores: Mapping[str, Tensor], correct: Tensor) -> Any:
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


#: Results-JSON keys of the AURC of each abstention score (rows of :func:`abstention`'s table).
AURC_KEYS = {"ρ (explanation)": "aurc_rho", "−entropy": "aurc_entropy", "−mutual information": "aurc_mi",
             "rank average (ρ, −entropy)": "aurc_rank_average", "oracle (knows the errors)": "aurc_oracle",
             "random (expected)": "aurc_random"}


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


def secondary_records(comparisons: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """``secondary`` rows ``{name, effect, ci95, p, p_holm, verdict}`` with Holm-adjusted p-values
    (:func:`uqxai_lib.stats.holm` over all rows); each label follows its Holm-adjusted p
    (:func:`uqxai_lib.stats.holm_labels`)."""
    from uqxai_lib import stats

    names = list(comparisons)
    pvals = [float(comparisons[n]["p"]) for n in names]
    adj = stats.holm(pvals)
    labels = stats.holm_labels([float(comparisons[n]["effect"]) for n in names], pvals)
    return [{"name": n, "effect": float(comparisons[n]["effect"]), "ci95": [float(v) for v in comparisons[n]["ci95"]],
             "p": float(comparisons[n]["p"]), "p_holm": float(a), "verdict": label}
            for n, a, label in zip(names, adj, labels)]


# ---------------------------------------------------------------------------------------------
# explained point (pre / post dropout): variants, degenerate passes
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# training and per-class accuracy; where the reversal comes from
# ---------------------------------------------------------------------------------------------
def per_class_accuracy(pred: Tensor, y: Tensor, classes: Sequence[str]) -> Any:
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


def strata_table(rho: Tensor, correct: Tensor, strata: Mapping[str, Sequence[Any]]) -> Any:
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

    >>> rho, correct = torch.tensor([0.9, 0.8, float("nan"), 0.95, 0.1]), torch.tensor([1, 0, 0, 1, 0]).bool()
    >>> most_repeatable_errors(rho, correct, 2)
    [1, 4]
    """
    r = torch.nan_to_num(torch.as_tensor(rho, dtype=torch.float64), nan=-math.inf)
    mis = torch.nonzero(~torch.as_tensor(correct, dtype=torch.bool)).flatten()
    order = torch.argsort(r[mis], descending=True, stable=True)
    return mis[order[:k]].tolist()


# ---------------------------------------------------------------------------------------------
# fidelity against the tumour mask, deletion / insertion, sanity checks, layer choice
# ---------------------------------------------------------------------------------------------


#: Cascading randomisation order (Adebayo et al. 2018): from the head down to the stem.
CASCADE = ("fc", "layer4", "layer3", "layer2", "layer1", "conv1")


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


def split_table(s: Setup) -> Any:
    """Images per class in each part of the split (rows: train, validation, test; last column the total)."""
    import pandas as pd

    parts = [("train", s.train), ("validation", s.val), ("test", s.test)]
    rows = {name: {**{c: int((d.y == k).sum()) for k, c in enumerate(s.classes)}, "total": len(d)} for name, d in parts}
    return pd.DataFrame(rows).T.rename_axis("part")


def training_record(fit: Any) -> dict:
    """Epochs run, the kept (best) epoch, its validation loss and the last training loss of a
    :class:`~uqxai_lib.train.TrainResult`."""
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


def secondary_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The secondary comparisons as a table: the comparison first, then the difference with its interval,
    p, Holm-adjusted p and the label (read from the Holm-adjusted p)."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    return pd.DataFrame({r["name"]: {"correct − misclassified (95% CI)":
                                     f"{fmt_number(r['effect'])} ({fmt_interval(r['ci95'])})",
                                     "p": f"{r['p']:.2g}", "Holm p": f"{r['p_holm']:.2g}", "label": r["verdict"]}
                         for r in rows}).T.rename_axis("comparison")


def sweep_record(p_table: Any) -> dict:
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
    from uqxai_lib.report import fmt_number

    return (f"across dropout rates the gap in ρ (correct − misclassified) was {sign}, from {fmt_number(gaps[lo])} "
            f"at p = {lo} to {fmt_number(gaps[hi])} at p = {hi}.")


def within_class(rho: Tensor, correct: Tensor, pred: Tensor, classes: Sequence[str], strat: Mapping[str, Any]) -> dict:
    """Where a pooled reversal comes from: which predicted class most errors are explained as, ρ of
    its errors and of its correct predictions, ρ of the correct predictions of the other classes, and
    the class-stratified AUROC (``strat``, :func:`class_stratified`: pairs only inside a predicted
    class) with its interval."""
    rho = torch.as_tensor(rho, dtype=torch.float64)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    pred = torch.as_tensor(pred).reshape(-1)
    mis = ~correct
    out = {"n_mis": int(mis.sum()), "auroc_within_predicted_class": strat["auroc"], "ci95": strat["ci95"],
           "verdict": strat["verdict"], "reason": strat.get("reason")}
    if not bool(mis.any()):
        return out
    top = int(torch.mode(pred[mis]).values)
    sel_err, sel_ok = mis & (pred == top), correct & (pred == top)
    return {**out, "most_common_error_prediction": classes[top], "n_errors_with_that_prediction": int(sel_err.sum()),
            "rho_errors_that_prediction": float(rho[sel_err].nanmean()),
            "rho_correct_that_prediction": float(rho[sel_ok].nanmean()),
            "rho_correct_other_predictions": float(rho[correct & (pred != top)].nanmean())}


def within_class_sentence(w: Mapping[str, Any], primary: Mapping[str, Any]) -> str:
    """:func:`within_class` in words, beside the pooled AUROC of the ``primary`` record."""
    from uqxai_lib.report import fmt_interval

    if not w.get("n_mis"):
        return "No test image is misclassified, so there is nothing to split."
    top = w["most_common_error_prediction"]
    return (f"{w['n_errors_with_that_prediction']} of {w['n_mis']} errors are explained as **{top}**: mean ρ "
            f"{w['rho_errors_that_prediction']:.3f} for these errors and {w['rho_correct_that_prediction']:.3f} for "
            f"correct {top} predictions, against {w['rho_correct_other_predictions']:.3f} for the correct "
            f"predictions of the other classes. Pooled over all images the AUROC of ρ is {primary['auroc']:.3f}; "
            "over pairs within the "
            f"same predicted class it is **{w['auroc_within_predicted_class']:.3f}** (95% CI "
            f"{fmt_interval(w['ci95'])}; 0.5: the predicted class explains the whole difference; above 0.5: the "
            "paper's direction).")




def verdict_sentence(record: Mapping[str, Any], claim: Mapping[str, Any] = CLAIM, *, what: str = "ρ") -> str:
    """One Markdown sentence from a ``primary`` record: effect and AUROC with their intervals and the
    p-value of the same bootstrap, the verdict, and whether the claim's direction is reproduced
    (:func:`uqxai_lib.stats.reproduction`); "undefined" with its reason."""
    from uqxai_lib.report import fmt_interval, fmt_number

    if record["verdict"] == "undefined":
        why = record.get("reason") or "no reason given"
        return f"{what} of correct minus misclassified images: **undefined** ({why})."
    rep = stats.reproduction(record["verdict"], claim["expected"])
    return (f"{what} of correct minus misclassified images: {fmt_number(record['effect'])} (95% CI "
            f"{fmt_interval(record['ci95'])}, bootstrap p = {fmt_number(record['p'], 2)}); AUROC "
            f"{fmt_number(record['auroc'])} (95% CI {fmt_interval(record['auroc_ci95'])}). Verdict: "
            f"**{record['verdict']}** for correct images, so the paper's claim ({claim['expected']}) is **{rep}** "
            "here.")


def fidelity_table(s: Setup, rec: Any, *, seed: int = 0) -> Any:
    """Tumour slices, all and per tumour class: images, mass of the deterministic map in the mask with
    its interval, chance (the masks' area share), pointing game and IoU of the top region, each group
    scored by :func:`uqxai_lib.protocol.fidelity_section` (the Assessment's own section for "all")."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    test = s.test
    rows = {"all tumour slices": rec.fidelity}
    for k, name in enumerate(s.classes):
        sel = (test.y == k) & test.mask.flatten(1).any(1)
        if bool(sel.any()):
            rows[name] = protocol.fidelity_section(rec.reference[sel], test.mask[sel], seed=seed)
    return pd.DataFrame({name: {"images": int(r["n_items"]),
                                "mass in mask (95% CI)": f"{fmt_number(r['mass_in_mask'])} "
                                                         f"({fmt_interval(r['mass_in_mask_ci95'])})",
                                "chance": fmt_number(r["chance"]), "pointing game": f"{r['pointing_game']:.2f}",
                                "IoU of the top 10%": fmt_number(r["iou_top_q"])}
                         for name, r in rows.items()}).T.rename_axis("tumour slices")


def deletion_sentence(fid: Mapping[str, Any]) -> str:
    """Deletion and insertion areas of the map's order against the random order, in words."""
    from uqxai_lib.report import fmt_number

    if "deletion_auc" not in fid:
        return ""
    better = fid["deletion_auc"] < fid["deletion_auc_random"] and fid["insertion_auc"] > fid["insertion_auc_random"]
    return (f"Deletion area {fmt_number(fid['deletion_auc'])} against {fmt_number(fid['deletion_auc_random'])} for a "
            f"random order, insertion area {fmt_number(fid['insertion_auc'])} against "
            f"{fmt_number(fid['insertion_auc_random'])}: the map's order "
            f"{'ranks' if better else 'does not clearly rank'} "
            "the evidence.")


def sanity_table(sanity: Mapping[str, Any]) -> Any:
    """One row per cascading step: what is randomised, the median ρ over non-constant maps, constant maps."""
    import pandas as pd

    from uqxai_lib.report import fmt_number

    return pd.DataFrame([{"randomised from": st["randomised"],
                          "median ρ with the trained map": fmt_number(st["median_rho"]),
                          "constant randomised maps": f"{st['n_constant']} of {st['n']}"} for st in sanity["steps"]]
                        ).set_index("randomised from")


def sanity_sentence(sanity: Mapping[str, Any]) -> str:
    """The cascading check's outcome and reason (the Assessment's sanity section) in one sentence."""
    return f"Cascading randomisation: **{sanity['outcome']}** ({sanity['reason']})."


def layer_table(s: Setup, subset: Tensor, correct: Tensor, layers: Sequence[str], passes: int, *,
                p: float | None = None, seed: int = 0) -> Any:
    """For each explained layer, on the test images ``subset``: map size, mean ρ over ``passes`` MC
    passes and its AUROC for correct vs misclassified (:func:`compare`), and on tumour slices the
    fidelity of the deterministic map (:func:`uqxai_lib.protocol.fidelity_section`: mass in mask,
    chance, pointing game)."""
    import pandas as pd

    from uqxai_lib.report import fmt_number

    rows = {}
    mask = None if s.test.mask is None else s.test.mask[subset]
    for layer in layers:
        st = study(s, passes=passes, p=p, seed=seed, layer=layer, subset=subset)
        rho = st.repeatability()
        c = compare(rho, correct[subset], score="rho", seed=seed)
        row = {"map size": "×".join(str(v) for v in st.det_map.shape[1:]), "mean ρ": fmt_number(float(rho.nanmean())),
               "AUROC of ρ (95% CI)": f"{fmt_number(c['auroc'])} ({fmt_number(c['auroc_ci95'][0])} to "
                                      f"{fmt_number(c['auroc_ci95'][1])})"}
        if mask is not None and bool(mask.flatten(1).any()):
            f = protocol.fidelity_section(st.det_map, mask, seed=seed)
            row.update({"mass in mask": fmt_number(f["mass_in_mask"]), "chance": fmt_number(f["chance"]),
                        "pointing game": f"{f['pointing_game']:.2f}"})
        rows[layer] = row
    return pd.DataFrame(rows).T.rename_axis("explained layer")


def assessment_record(rec: Any) -> dict:
    """The Assessment's sections for the results record, without its per-image lists: ``config``,
    the ``stability`` counts and rule, ``fidelity`` (without ``per_item_mass``), ``sanity`` and
    ``fidelity_vs_stability`` (the last three where computed)."""
    d = rec.to_dict()
    out = {"config": d["config"],
           "stability": {k: v for k, v in d["stability"].items() if not isinstance(v, list)}}
    if d.get("fidelity"):
        out["fidelity"] = {k: v for k, v in d["fidelity"].items() if k != "per_item_mass"}
    for k in ("sanity", "fidelity_vs_stability"):
        if d.get(k):
            out[k] = d[k]
    return out


#: Results-JSON keys of the AURC of each abstention score (rows of :func:`abstention`'s table).
AURC_KEYS = {"ρ (explanation)": "aurc_rho", "−entropy": "aurc_entropy", "−mutual information": "aurc_mi",
             "rank average (ρ, −entropy)": "aurc_rank_average", "oracle (knows the errors)": "aurc_oracle",
             "random (expected)": "aurc_random"}


def summary(results: Mapping[str, Any]) -> str:
    """The chapter's Summary (Markdown bullets) generated from the rungs of its verdict ladder: one
    short line per rung with its outcome (an undefined rung with its reason; the numbers are in the
    verdict box and the tables, stated once), then the dropout-rate sweep in words."""
    from uqxai_lib import verdicts

    lines = []
    for r in results["verdict"]["rungs"]:
        why = f" ({r.get('reason')})" if r["outcome"] == "undefined" else ""
        lines.append(f"- {verdicts.RUNG_TITLES[r['name']]}: **{r['outcome']}**{why}.")
    if results.get("sweep_dropout"):
        lines.append(f"- Dropout rate: {sweep_sentence(results['sweep_dropout'])}")
    return "\n".join(lines)


def baselines(rec: Any) -> dict[str, np.ndarray]:
    """The prediction-only scores of the Assessment (higher = more confident): −entropy, margin and
    −mutual information of the MC passes, −flip rate, and the confidence of the dropout-off forward."""
    pr = rec.prediction
    return {"−entropy": -np.asarray(pr["entropy"], float), "margin": np.asarray(pr["margin"], float),
            "−mutual information": -np.asarray(pr["mutual_information"], float),
            "−flip rate": -np.asarray(pr["flip_rate"], float), "confidence": np.asarray(pr["confidence"], float)}


def class_stratified(rec: Any, groups: Any = None, *, seed: int = 0) -> dict:
    """:func:`uqxai_lib.stats.stratified_auroc` of ρ for correct vs misclassified, pairs only within the
    same predicted class (the ``within_class`` rung): a ρ that only follows the class gives 0.5."""
    g = bootstrap_groups(groups)
    return stats.stratified_auroc(rec.score("rho"), rec.correct, np.asarray(rec.prediction["pred"]),
                                  groups=None if g is None else g.numpy(), seed=seed)


def ladder(s: Setup, rec: Any, *, seed: int = 0, robustness_path: Any = None) -> tuple[dict, dict]:
    """The chapter's verdict ladder (:mod:`uqxai_lib.verdicts`) and the records its rungs read.

    Rungs: ``direction`` (the primary), ``beyond_baselines`` (:func:`uqxai_lib.stats.added_value` of ρ
    against :func:`baselines`, out of sample), ``maps_right`` and ``sanity`` (the Assessment's
    sections), ``within_class`` (:func:`class_stratified`), ``across_seeds`` / ``across_threads``
    (the robustness chapter's record at ``robustness_path``; undefined when it has not run) and
    ``paper_effect`` (our interval against :data:`PAPER_EFFECT`, theirs). Returns ``(ladder,
    {"added_value", "within_class"})``.
    """
    from uqxai_lib import verdicts

    exp = CLAIM["expected"]
    g = bootstrap_groups(s.test.group)
    added = stats.added_value(rec.score("rho"), baselines(rec), rec.correct, groups=None if g is None else g.numpy(),
                              seed=seed)
    strat = class_stratified(rec, s.test.group, seed=seed)
    prim = primary_record(rec)
    rungs = [verdicts.direction(prim, exp), verdicts.beyond_baselines(added, score_name="ρ"),
             verdicts.maps_right(rec.fidelity), verdicts.sanity(rec.sanity), verdicts.within_class(strat, exp),
             *verdicts.robustness_rungs("mri_mc_dropout", exp, path=robustness_path),
             verdicts.paper_effect(prim, PAPER_EFFECT, mde=prim["mde"])]
    data = (verdicts.data_line(s.data, PAPER_DATA) if s.attrs is not None
            else f"{s.data}; the paper used {PAPER_DATA}")
    return verdicts.ladder(CLAIM, data, rungs), {"added_value": added, "within_class": strat}

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Across modalities: which explanation uncertainty flags a wrong prediction?
#
# ## Overview
#
# Each of the three studies before this chapter looked at one source of explanation uncertainty
# on one modality: test-time perturbations on ECG windows (SUE, {cite:p}`seoni2024sue`), Monte Carlo
# dropout {cite:p}`gal2016dropout` on brain MRI (Spearman ρ, {cite:p}`salvi2025explainability`), and
# a Rashomon set of pruned models on dermoscopy (VIC, {cite:p}`vic_poster`). Whether a source "works"
# there may say more about the modality, the model or the design than about the source. This
# chapter crosses them: **every source on every modality**, with the same two repeatability scores
# and beside the prediction-only baselines of the same samples, and asks two questions:
#
# 1. For a given modality, which source of explanation uncertainty best tells a wrong prediction
#    from a right one — and does it add anything to the uncertainty of the prediction alone?
# 2. If a model abstains when its score is low, can we choose the threshold so that the error rate
#    among the answered cases stays below a bound α with a stated probability 1 − δ?
#
# You will learn how to
#
# - turn any stack of explanations into per-item repeatability scores (`uqxai_lib.studies.cross`);
# - read an AUROC matrix with intervals instead of a ranking of means;
# - test whether a new score adds to old ones out of sample;
# - calibrate an abstention rule with a finite-sample guarantee (Learn then Test,
#   `uqxai_lib.conformal`).
#
# ## Prerequisites
#
# | Concept | Importance | Notes |
# | --- | --- | --- |
# | The three study chapters | necessary | their data, models and sources are reused here |
# | AUROC, bootstrap intervals | necessary | see the methods page |
# | Selective prediction, risk–coverage curves {cite:p}`geifman2017selective` | helpful | explained below |
# | Binomial tail bounds, multiple testing | helpful | for the abstention guarantee |
#
# **Time to run:** the three chapters' models come from the training cache when their chapters
# ran before with the same profile; the seed-ensemble members are trained once and cached. In
# `smoke` on two idle CPU cores a few minutes from a cold cache, seconds from a warm one.

# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None
results_path = "../_build/results/cross_study.json"
profile = "smoke"
# the chapters whose data and models are reused, read with this profile
chapter_profile = "smoke"
# test items per modality (evenly spaced over the chapter's test set)
max_items = 200
# sources
draws_per_kind = 3
image_strength = 0.3
ecg_snr_db = 10.0
mc_passes = 10
mc_rates = {"ECG": 0.2, "MRI": 0.1, "dermoscopy": 0.2, "volume": 0.2}
rashomon_k = 40
# share of the explained layer's channels pruned per candidate (the ECG head is a BiLSTM, far less
# tolerant of pruning than a linear head: 0.2 keeps no ECG candidate within 5 %)
prune_ratios = {"ECG": 0.05, "MRI": 0.2, "dermoscopy": 0.2, "volume": 0.2}
epsilon = 0.05
ensemble_seeds = [101, 102]
# fine-tuned Rashomon set: copies of each model trained a little further (own seeds), kept within 1 + ε
finetune_k = 4
finetune_epochs = 1
finetune_lr_factor = 0.1  # times the chapter's learning rate
quantile = 0.9
# design alternatives rerun on the same items (see "Does the answer depend on the design?")
design_quantile = 0.75  # ECG test-time: SUE's top region of 25 % of the window instead of 10 %
design_prune_factor = 2.0  # dermoscopy Rashomon set: this many times the pruning ratio
# the 3-D modality (no chapter of its own): phantom volumes and the small 3-D CNN
volume = {"n_patients": 300, "size": 32, "ambiguity": 0.12, "channels": [8, 16, 32], "dropout": 0.2, "epochs": 20,
          "batch_size": 16, "lr": 0.003, "patience": 6, "max_test": 60}
# beyond Grad-CAM: the methods of uqxai_lib.attribution, on a case-control sample per modality
methods = ["integrated_gradients", "occlusion", "input_x_gradient", "lime", "kernel_shap", "smoothgrad"]
method_items_each = 10  # misclassified items (and as many correct ones) per modality
method_draws_per_kind = 1
method_mc_passes = 4
method_max_models = 4  # Rashomon models explained (the first kept ones)
method_options = {"integrated_gradients": {"n_steps": 8}, "smoothgrad": {"nt_samples": 4}, "lime": {"n_samples": 32},
                  "kernel_shap": {"n_samples": 32}}
# statistics
n_boot = 1000
folds = 5
# abstention with a guarantee
alpha = 0.1
delta = 0.1
n_splits = 200
calibration_fraction = 0.5
alpha_grid = [0.05, 0.1, 0.15, 0.2, 0.3]

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
import torch
import yaml
from IPython.display import Markdown, display

from uqxai_lib import cache, conformal, report, stats, widgets
from uqxai_lib.models.resnet_mc import weights_fingerprint
from uqxai_lib.params import chapter_parameters
from uqxai_lib.perturb import SNR_DEFINITION
from uqxai_lib.studies import cross, modalities
from uqxai_lib.utils import pick_device, seed_everything
from uqxai_lib.viz import cross as vc
from uqxai_lib.viz import use_style

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = pick_device(device)
seed_everything(seed)

# %% [markdown]
# ## The four modalities
#
# The data, splits and models of ECG, MRI and dermoscopy are those of the study chapters, rebuilt
# from their `parameters`
# cells and `chapter_profile` (`uqxai_lib.params.chapter_parameters`) by
# `uqxai_lib.studies.modalities`, which trains through the same cache key as the chapter: a model
# the chapter trained is loaded, not trained again. This chapter always uses the **embedded**
# synthetic data, where the ground truth is known (a `data_dir` is ignored). `max_items` test items
# per modality are studied; correct and misclassified are judged by the chapter's own model.
#
# The fourth modality is **3-D**: seeded brain volumes (`uqxai_lib.data.synthetic_volume`, 32³ voxels,
# the four classes of the MRI phantom, a tumour mask, bright distractor spots that are not tumour)
# and a small 3-D CNN with dropout after every block and a linear head after global average
# pooling (`uqxai_lib.models.cnn3d`), built from the `volume` parameters above. Its test-time
# perturbations are the image ones applied to the whole volume (`modalities.volume_perturbation`).

# %%
setups = {
    "ECG": modalities.ecg(chapter_parameters("ecg_sue", chapter_profile), dev, seed=seed, snr_db=ecg_snr_db),
    "MRI": modalities.mri(chapter_parameters("mri_mc_dropout", chapter_profile), dev, seed=seed,
                          strength=image_strength),
    "dermoscopy": modalities.derm(chapter_parameters("derm_vic", chapter_profile), dev, seed=seed,
                                  strength=image_strength),
    "volume": modalities.volume(volume, dev, seed=seed, strength=image_strength),
}
items, refs = {}, {}
for name, m in setups.items():
    test = modalities.subsample(m.test, max_items).to(dev)
    pred, ref_map = cross.reference_maps(m.model, test.x, m.layer, m.method)
    items[name] = (test, pred)
    refs[name] = ref_map
overview = pd.DataFrame({name: {"test items": len(items[name][0]),
                                "accuracy": float((items[name][1].cpu() == items[name][0].y.cpu()).float().mean()),
                                "misclassified": int((items[name][1].cpu() != items[name][0].y.cpu()).sum()),
                                "explained layer": m.layer, "method": m.method, "spatial dims": m.spatial_dims,
                                "model from the chapter's cache": m.from_cache}
                         for name, m in setups.items()}).T
report.table(overview, "models")

# %% [markdown]
# ## Five sources of explanation uncertainty
#
# For every test item, each source gives a stack of maps of the **same class** (the chapter model's
# prediction on the clean input) and the predictions that went with them
# (`uqxai_lib.studies.cross.run_source`):
#
# - **test-time perturbation**: `draws_per_kind` draws of each perturbation of the modality — the
#   four ECG noises of the SUE chapter at `ecg_snr_db` dB, and for images Gaussian noise, a small
#   random rotation and shift, and a brightness / contrast change (`uqxai_lib.perturb`);
# - **MC dropout**: `mc_passes` passes with the model's dropout modules on (rates `mc_rates`). The
#   MRI ResNet has dropout after every residual block and was trained with it; the ECG CNN-BiLSTM
#   and the dermoscopy CNN have one dropout before their head (trained at 0.2 and 0.0), so their
#   passes vary only the head's input — a weaker, post-hoc form of MC dropout, stated as such;
# - **Rashomon set (pruned)**: `rashomon_k` channel-pruned copies of the explained layer at
#   `prune_ratios`, kept when their validation loss is within (1 + ε) of the model's
#   (`samplers.rashomon`);
# - **Rashomon set (fine-tuned)**: `finetune_k` copies of the model trained `finetune_epochs` more
#   epochs, each with its own seed, at `finetune_lr_factor` times the chapter's learning rate, kept
#   by the same (1 + ε) filter (`uqxai_lib.finetune`, `studies.modalities.finetuned`). Every weight
#   can move, so its members differ more than pruned copies of one layer do;
# - **seed ensemble**: models of the same recipe trained with other seeds (`ensemble_seeds`) on the
#   same data, each explaining the reference model's class.
#
# Each stack is cached by its configuration and the model's weights.

# %% tags=["hide-output"]
stacks, finetuned = {}, {}
for name, m in setups.items():
    test, pred = items[name]
    members = modalities.members(m, ensemble_seeds)
    finetuned[name] = modalities.finetuned(m, k=finetune_k, epochs=finetune_epochs, epsilon=epsilon, seed=seed,
                                           lr_factor=finetune_lr_factor, device=dev)
    kept_ft = finetuned[name].kept_models
    for source in cross.SOURCES:
        pool = {"seed_ensemble": members, "rashomon_finetuned": kept_ft}.get(source)
        cfg = dict(modality=name, source=source, weights=weights_fingerprint(m.model), n=len(test),
                   chapter_profile=chapter_profile, seed=seed, draws_per_kind=draws_per_kind, strength=image_strength,
                   snr=ecg_snr_db, snr_definition=SNR_DEFINITION, passes=mc_passes, rate=mc_rates[name], k=rashomon_k,
                   ratio=prune_ratios[name], eps=epsilon,
                   members=None if pool is None else [weights_fingerprint(mm) for mm in pool])
        stacks[name, source] = cache.cached("cross_study/stack", cfg, lambda: cross.run_source(
            source, m.model, test.x, pred, layer=m.layer, method=m.method, perturbations=m.perturbations,
            draws_per_kind=draws_per_kind, mc_passes=mc_passes, mc_rate=mc_rates[name], x_val=m.val.x.to(dev),
            y_val=m.val.y.to(dev), head=m.head, rashomon_k=rashomon_k, prune_ratio=prune_ratios[name], epsilon=epsilon,
            members=members, finetuned=kept_ft, seed=seed)._asdict())
report.table(pd.DataFrame({f"{n} / {s}": {"samples per item": int(st["maps"].shape[0]),
                                           **{k: v for k, v in st["info"].items() if k in ("n_kept", "n_members",
                                                                                           "passes")}}
                           for (n, s), st in stacks.items()}).T.fillna(""), "samples")
finetuned_sets = {name: {"candidates": int(len(f.models)), "kept": int(f.kept.sum()),
                         "relative loss min": float(f.relative_loss.min()), "relative loss max": float(f.relative_loss.max())}
                  for name, f in finetuned.items()}
report.table(pd.DataFrame(finetuned_sets).T, "finetuned_sets")

# %% [markdown]
# ## Per-item scores
#
# From each stack, `cross.item_scores` computes, per test item,
#
# - two **explanation** scores: `jaccard`, the SUE-style mean Jaccard index of the top
#   (1 − `quantile`) regions over all pairs of samples, and `spearman`, the mean Spearman ρ of each
#   sample's map with the reference map (the model's map of the clean input);
# - four **prediction-only** baselines of the same samples: predictive entropy, mutual information
#   (their epistemic part), the margin between the two most probable classes, and the flip rate
#   (share of samples whose predicted class differs from the reference prediction).
#
# Both follow the book's one rule book (`uqxai_lib.rules`, as every chapter): a pair of samples in
# which a map has no top region is left out of the Jaccard score, and a constant sample map is left
# out of the mean ρ; both are counted below, never scored as agreement or as ρ = 0.

# %% tags=["hide-output"]
scores, correct, groups, predicted = {}, {}, {}, {}
for (name, source), st in stacks.items():
    test, pred = items[name]
    correct[name] = (pred.cpu() == test.y.cpu()).numpy()
    predicted[name] = pred.cpu().numpy()
    groups[name] = None if test.group is None else test.group.cpu().numpy()
    if st["maps"].shape[0] < 2:
        scores[name, source] = None
        continue
    scores[name, source] = cross.item_scores(st["maps"], st["probs"], refs[name], pred, quantile=quantile)
report.table(pd.DataFrame({f"{n} / {s}": {"items without Jaccard (empty map)": v["n_empty"],
                                          "constant sample maps": v["n_degenerate"]}
                           for (n, s), v in scores.items() if v is not None}).T, "degenerate_items")

# %% [markdown]
# ## The matrix
#
# **Primary question of this chapter**, declared before the results: for each modality and source,
# the AUROC of each explanation score for telling correct from misclassified items (0.5 = no better
# than chance), with a 95% bootstrap interval over test items (grouped by subject or lesion where
# the data have groups). A cell counts as informative only when its interval lies above 0.5.

# %%
matrix, baselines_rows = [], []
for (name, source), sc in scores.items():
    if sc is None:
        continue
    rows = cross.matrix_rows(name, source, sc, correct[name], groups=groups[name], strata=predicted[name],
                             n_boot=n_boot, seed=seed)
    matrix += [r for r in rows if r["kind"] == "explanation"]
    baselines_rows += [r for r in rows if r["kind"] == "baseline"]
fig = vc.plot_matrix(matrix, modalities=list(setups), sources=list(cross.SOURCES),
                     scores=list(cross.EXPLANATION_SCORES),
                     title="explanation repeatability: AUROC for correct vs misclassified [95% CI]")

# %%
report.table(vc.matrix_table(matrix), "matrix")

# %% [markdown]
# ## Beside the prediction-only baselines
#
# The same AUROCs for the baselines of the same samples, and then the question that matters for a
# practitioner: **do the explanation scores add to them?** `cross.added_value` fits a logistic
# model of "correct" on the four baselines, and on the baselines plus the two explanation scores,
# with out-of-fold predictions (`folds` folds), and gives the difference of the two AUROCs with a
# paired bootstrap interval. The verdict comes from that interval.

# %% tags=["hide-output"]
fig = vc.plot_matrix(baselines_rows, modalities=list(setups), sources=list(cross.SOURCES),
                     scores=list(cross.BASELINE_SCORES), title="prediction-only baselines: AUROC [95% CI]")

# %% tags=["hide-output"]
added = []
for (name, source), sc in scores.items():
    if sc is None:
        continue
    res = cross.added_value(sc, correct[name], folds=folds, n_boot=n_boot, seed=seed)
    added.append({"modality": name, "source": source, **res})
added_table = pd.DataFrame([{"modality": a["modality"], "source": a["source"],
                             "AUROC baselines": a["auroc_baselines"], "AUROC + explanation": a["auroc_combined"],
                             "difference": a["delta"],
                             "95% CI": f"[{a['delta_ci95'][0]:.3f}, {a['delta_ci95'][1]:.3f}]",
                             "verdict": a["verdict"]} for a in added]).round(3)
report.table(added_table, "added_value")

# %% [markdown]
# ## Does the answer depend on the design?
#
# The study chapters show that where Grad-CAM is hooked, what SUE compares and what a pruned model
# is can decide a result. Three of those choices, rerun here on the same test items and models:
#
# - **MRI, MC dropout**: Grad-CAM hooked *after* the last block's dropout instead of before it (the
#   MRI chapter's hook-point comparison). After it, every pass's dropout mask acts on the explained
#   activations themselves.
# - **ECG, test-time perturbation**: SUE's top region of 25 % of the window instead of 10 %
#   (`design_quantile` against `quantile`).
# - **dermoscopy, Rashomon set**: `design_prune_factor` times the pruning ratio per candidate.
#
# For each, the AUROC of the explanation scores under the default and the alternative design and
# their paired difference with a bootstrap 95% interval over the same items
# (`uqxai_lib.stats.auroc_difference`); the verdict comes from that interval. The reference map follows the
# hook point (a Spearman ρ compares maps of the same layer).

# %% tags=["hide-output"]
from uqxai_lib.models.resnet_mc import GRADCAM_LAYER, explained_layer

design_scores = {}
m, (test, pred) = setups["MRI"], items["MRI"]
post_layer = explained_layer(m.model, GRADCAM_LAYER, "post_dropout")
_, post_ref = cross.reference_maps(m.model, test.x, post_layer, m.method)
cfg = dict(modality="MRI", source="mc_dropout", layer=post_layer, weights=weights_fingerprint(m.model), n=len(test),
           chapter_profile=chapter_profile, seed=seed, passes=mc_passes, rate=mc_rates["MRI"])
st = cache.cached("cross_study/stack", cfg, lambda: cross.run_source(
    "mc_dropout", m.model, test.x, pred, layer=post_layer, method=m.method, mc_passes=mc_passes,
    mc_rate=mc_rates["MRI"], seed=seed)._asdict())
design_scores["MRI", "mc_dropout", f"hook after the dropout ({post_layer})"] = (cross.item_scores(
    st["maps"], st["probs"], post_ref, pred, quantile=quantile), cross.EXPLANATION_SCORES)
st = stacks["ECG", "test_time"]
design_scores["ECG", "test_time", f"top {1 - design_quantile:.0%} region"] = (cross.item_scores(
    st["maps"], st["probs"], refs["ECG"], items["ECG"][1], quantile=design_quantile), ("jaccard",))  # ρ has no region
m, (test, pred) = setups["dermoscopy"], items["dermoscopy"]
ratio = min(0.95, prune_ratios["dermoscopy"] * design_prune_factor)
cfg = dict(modality="dermoscopy", source="rashomon", weights=weights_fingerprint(m.model), n=len(test),
           chapter_profile=chapter_profile, seed=seed, k=rashomon_k, ratio=ratio, eps=epsilon)
st = cache.cached("cross_study/stack", cfg, lambda: cross.run_source(
    "rashomon", m.model, test.x, pred, layer=m.layer, method=m.method, x_val=m.val.x.to(dev), y_val=m.val.y.to(dev),
    head=m.head, rashomon_k=rashomon_k, prune_ratio=ratio, epsilon=epsilon, seed=seed)._asdict())
design_scores["dermoscopy", "rashomon", f"prune ratio {ratio:g}"] = (
    None if st["maps"].shape[0] < 2 else
    cross.item_scores(st["maps"], st["probs"], refs["dermoscopy"], pred, quantile=quantile), cross.EXPLANATION_SCORES)

design_rows = []
for (name, source, label), (alt, affected) in design_scores.items():
    base = scores.get((name, source))
    for score in affected:
        if alt is None or base is None:
            res = {"auroc_a": float("nan"), "auroc_b": float("nan"), "delta": float("nan"),
                   "delta_ci95": [float("nan")] * 2, "verdict": "fewer than 2 samples", "n_nan": 0}
        else:
            conf_a = cross.confidence(base, [score])[score]
            conf_b = cross.confidence(alt, [score])[score]
            res = stats.auroc_difference(conf_a, conf_b, correct[name], groups=groups[name], n_boot=n_boot, seed=seed)
        design_rows.append({"modality": name, "source": source, "alternative": label, "score": score, **res})
report.table(pd.DataFrame([{
    "modality": r["modality"], "source": r["source"], "alternative design": r["alternative"], "score": r["score"],
    "AUROC default": r["auroc_a"], "AUROC alternative": r["auroc_b"], "difference": r["delta"],
    "95% CI": f"[{r['delta_ci95'][0]:.3f}, {r['delta_ci95'][1]:.3f}]", "verdict": r["verdict"]}
    for r in design_rows]).round(3), "design")

# %% [markdown]
# ## Beyond Grad-CAM: which method's uncertainty flags errors?
#
# Everything above explains with the chapters' class-activation maps. Both source papers name other
# explanation methods as their future work (LIME and SHAP above all), so the same question is asked
# here of six more methods from the captum library, run through
# `uqxai_lib.attribution`: integrated gradients, occlusion, input × gradient, SmoothGrad, LIME and
# Kernel SHAP — every one under all five sources and on all four modalities, the 3-D volumes
# included. Three rules make their stability scores comparable:
#
# - **one map per item**: the attribution is reduced to one non-negative value per position by
#   summing its absolute value over input channels, and divided by its total mass;
# - **the same features for every sample**: LIME and Kernel SHAP explain each item over one fixed
#   grid of patches (32 segments along an ECG window, 8 × 8 on images, 4 × 4 × 4 in a volume), and
#   occlusion slides a window of the same patch size;
# - **one sub-network per MC pass**: methods that run many forwards per explanation would otherwise
#   see a new dropout mask in every forward; `attribution.frozen_dropout` draws each pass's mask once.
#
# The multi-forward methods cost tens of forwards per explanation, so this matrix uses a
# **case-control sample** of each modality's test items: `method_items_each` misclassified items and
# as many correct ones (fewer where a modality has fewer errors), and fewer samples per source
# (`method_draws_per_kind` per perturbation, `method_mc_passes` passes, the first
# `method_max_models` kept models of either Rashomon set, the same seed ensemble). The AUROC of correct vs
# misclassified does not depend on how many of each are sampled, but the intervals are wide: read
# this matrix for large differences only. The chapter's own CAM is scored on the same items (its
# stacks above, restricted to them), and every cell's record comes from the instrument of the
# methods page (`uqxai_lib.protocol.evaluate`, one bootstrap for the interval).

# %%
from uqxai_lib import attribution, saliency

method_matrix, fidelity_by_method, method_info = [], [], {}
for name, m in setups.items():
    test, pred = items[name]
    ok = (pred.cpu() == test.y.cpu()).numpy()
    idx = torch.as_tensor(cross.case_control(ok, method_items_each, seed=seed))
    sub = test.subset(idx)
    x, y, tgt = sub.x, sub.y.cpu(), pred[idx.to(pred.device)]
    with torch.no_grad():
        clean_probs = m.model(x).float().softmax(-1).cpu()
    grp = None if sub.group is None else sub.group.cpu().numpy()
    members = modalities.members(m, ensemble_seeds)
    kept_ft = finetuned[name].kept_models
    method_info[name] = {"items": len(idx), "misclassified": int((~ok[idx.numpy()]).sum()),
                         "spatial_dims": m.spatial_dims}
    for method in [m.method, *methods]:
        opts = method_options.get(method, {})
        if method in saliency.METHODS:
            ref = refs[name][idx.to(refs[name].device)].cpu()
        else:
            ref = attribution.explain(m.model, x, tgt, method, generator=torch.Generator().manual_seed(seed),
                                      **opts).cpu()
        if sub.mask is not None:
            fidelity_by_method.append(cross.fidelity_row(name, method, ref, sub.mask.cpu(), groups=grp,
                                                         quantile=quantile, n_boot=n_boot, seed=seed))
        for source in cross.SOURCES:
            if method in saliency.METHODS:  # the chapter's CAM: its full stack above, on these items
                full = stacks[name, source]
                st = {"maps": full["maps"][:, idx] if full["maps"].shape[0] else full["maps"],
                      "probs": full["probs"][:, idx] if full["probs"].shape[0] else full["probs"]}
            else:
                cfg = dict(modality=name, source=source, method=method, options=opts,
                           weights=weights_fingerprint(m.model),
                           items=idx.tolist(), chapter_profile=chapter_profile, seed=seed, draws=method_draws_per_kind,
                           strength=image_strength, snr=ecg_snr_db, passes=method_mc_passes, rate=mc_rates[name],
                           k=rashomon_k, ratio=prune_ratios[name], eps=epsilon, max_models=method_max_models,
                           volume=volume if name == "volume" else None,
                           members={"seed_ensemble": [weights_fingerprint(mm) for mm in members],
                                    "rashomon_finetuned": [weights_fingerprint(mm) for mm in kept_ft]}.get(source))
                st = cache.cached("cross_study/method_stack", cfg, lambda: cross.method_stack(
                    source, method, m.model, x, tgt, layer=m.layer, perturbations=m.perturbations,
                    draws_per_kind=method_draws_per_kind, mc_passes=method_mc_passes, mc_rate=mc_rates[name],
                    x_val=m.val.x.to(dev), y_val=m.val.y.to(dev), head=m.head, rashomon_k=rashomon_k,
                    prune_ratio=prune_ratios[name], epsilon=epsilon, members=members, finetuned=kept_ft,
                    max_models=method_max_models, seed=seed, options=opts)._asdict())
            method_matrix += cross.method_rows(name, source, method, st, ref, clean_probs, y, tgt.cpu(), groups=grp,
                                               quantile=quantile, folds=folds, n_boot=n_boot, seed=seed)
report.table(pd.DataFrame(method_info).T, "method_items")

# %% [markdown]
# One panel per modality: the AUROC of each method's stability score (ρ: Spearman with the clean
# map; J: top-10 % Jaccard over sample pairs) for correct vs misclassified items, per source
# (TTA test-time perturbation, MC dropout, Rash. pruned and R-ft fine-tuned Rashomon sets, Ens. seed
# ensemble); "chapter CAM" is Grad-CAM
# (Grad-CAM++ for dermoscopy). Purple: stable
# explanations go with correct predictions; orange: the reverse; `*`: the 95% interval excludes
# 0.5; `–`: undefined (too few samples or items with a defined score). The full table, with AURC
# and the added value over the prediction-only baselines, is a download of this page
# (`method_matrix`).

# %%
panel_methods = ["cam", *methods]
fig = vc.plot_method_panels([{**r, "method": "cam" if r["method"] in saliency.METHODS else r["method"]}
                             for r in method_matrix], modalities=list(setups), methods=panel_methods,
                            sources=list(cross.SOURCES), scores=["spearman", "jaccard"],
                            title="stability of each method's maps: AUROC for correct vs misclassified")
method_table = report.table(vc.method_table(method_matrix), "method_matrix")

# %% [markdown]
# ### Are the methods whose maps are right the ones whose uncertainty helps?
#
# Fidelity first: the share of each method's (clean) map mass inside the ground-truth mask (the
# ECG's ST–T segments, the tumour, the lesion), beside chance (the mask's share of the input), on
# the same items. Then, per modality, the Spearman correlation over methods between that lift
# (mass / chance) and the method's best AUROC over sources and scores: positive if the methods
# whose maps are right are also those whose instability flags errors.

# %% tags=["hide-output"]
fid_table = pd.DataFrame([{"modality": r["modality"], "method": vc.METHOD_LABELS.get(r["method"], r["method"]),
                           "mass in mask": r["mass_in_mask"],
                           "95% CI": f"[{r['mass_in_mask_ci95'][0]:.3f}, {r['mass_in_mask_ci95'][1]:.3f}]",
                           "chance": r["chance"], "lift": r["lift"], "pointing game": r["pointing_game"],
                           "items": r["n_items"]} for r in fidelity_by_method]).round(3)
report.table(fid_table, "fidelity_by_method")

# %% tags=["hide-output"]
from scipy.stats import spearmanr

right_vs_helps = {}
for name in setups:
    lift, best_auc = [], []
    for r in fidelity_by_method:
        if r["modality"] != name:
            continue
        aucs = [c["auroc"] for c in method_matrix if c["modality"] == name and c["method"] == r["method"]
                and c["auroc"] is not None and np.isfinite(c["auroc"])]
        if aucs and np.isfinite(r["lift"]):
            lift.append(r["lift"])
            best_auc.append(max(aucs))
    rho = spearmanr(lift, best_auc).statistic if len(lift) >= 3 else float("nan")
    right_vs_helps[name] = {"spearman_lift_vs_best_auroc": float(rho), "n_methods": len(lift)}
report.table(pd.DataFrame(right_vs_helps).T.round(3), "right_vs_helps")

# %% [markdown]
# ## Abstention with a finite-sample guarantee
#
# A cautious model answers only when its score is high. On a **calibration** part of the test
# items, `uqxai_lib.conformal.ltt_threshold` picks the lowest threshold for which a binomial test
# rejects "the error rate among the answered items exceeds α" at level δ, testing candidate
# thresholds in a fixed order from the most cautious and stopping at the first that fails
# (fixed-sequence Learn then Test, {cite:p}`angelopoulos2025ltt`). Then, with probability at least
# 1 − δ over the calibration draw, the selective risk of the chosen rule is at most α.
#
# We check this on our data: `n_splits` random calibration / test splits (`calibration_fraction`
# for calibration), and report the share of splits whose realised test risk stayed at or below α,
# with a Clopper–Pearson interval. How we judge it: the guarantee is about the population risk,
# and a finite test part adds its own noise, so a share somewhat below 1 − δ is expected even when
# the guarantee holds; a share far below it (interval entirely under 1 − δ − 0.05) would signal
# a problem. The simulation test of `conformal` checks the guarantee itself against a population
# with known risk.

# %% tags=["hide-output"]
# each modality's risk level lies below its own base error rate (half of it), so that answering
# everything cannot meet it; rows that are trivial anyway are flagged and never count as a held guarantee
alphas = {name: conformal.choose_alpha(correct[name]) if (~correct[name].astype(bool)).any() else alpha
          for name in setups}
conformal_rows = []
for (name, source), sc in scores.items():
    if sc is None:
        continue
    conformal_rows += cross.conformal_rows(name, source, sc, correct[name], alpha=alphas[name], delta=delta,
                                           n_splits=n_splits, seed=seed)
conformal_summary = {name: conformal.summary([r for r in conformal_rows if r["modality"] == name])
                     for name in setups}
report.table(pd.DataFrame({name: {"α (half the base error rate)": alphas[name],
                                  "useful guarantee certifiable": v.get("certifiable"),
                                  "best rule": v.get("best_rule"), "coverage": v.get("coverage"),
                                  "calibration items needed": v.get("n_needed")}
                           for name, v in conformal_summary.items()}).T, "conformal_summary")
conf_table = pd.DataFrame([{"modality": r["modality"], "source": r["source"], "score": r["score"],
                            "share of splits with risk ≤ α": r["fraction_risk_le_alpha"],
                            "95% CI": f"[{r['fraction_ci95'][0]:.2f}, {r['fraction_ci95'][1]:.2f}]",
                            "mean coverage": r["mean_coverage"], "mean risk": r["mean_risk"],
                            "splits abstaining on all": r["n_abstain_all"],
                            "trivial": r.get("trivial") or ""} for r in conformal_rows]).round(3)
report.table(conf_table.sort_values(["modality", "mean coverage"], ascending=[True, False]).groupby("modality").head(4),
             "abstention_guarantee")

# %% [markdown]
# The table shows, per modality, the four scores with the highest mean coverage at the guaranteed
# risk; the full table is in the results file. Risk–coverage curves of one split for the best
# explanation score and the best baseline of each modality, with the guaranteed operating point:

# %% tags=["hide-output"]
best = {}
for name in setups:
    rows = [r for r in conformal_rows if r["modality"] == name]
    expl = max((r for r in rows if r["score"] in cross.EXPLANATION_SCORES), key=lambda r: r["mean_coverage"])
    base = max((r for r in rows if r["score"] in cross.BASELINE_SCORES), key=lambda r: r["mean_coverage"])
    best[name] = (expl, base)
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 2, figsize=(6.9, 5.6))
ops = {}
for ax, name in zip(axes.flat, setups):
    curves, points = {}, {}
    for r in best[name]:
        conf = cross.confidence(scores[name, r["source"]], [r["score"]])[r["score"]]
        op = cross.operating_points(conf, correct[name], [alphas[name]], delta=delta,
                                    calibration_fraction=calibration_fraction, seed=seed)
        label = f"{r['source']}: {r['score']}"
        curves[label] = (op["coverage"], op["risk"])
        points[label] = (op["points"][0]["coverage"], op["points"][0]["risk"])
        ops[name, r["score"], r["source"]] = op
    vc.plot_risk_coverage(curves, points, alpha=alphas[name], ax=ax, title=name)

# %% [markdown]
# ### Slide α
#
# The widget recomputes nothing: for each α of `alpha_grid` the operating point of the best
# explanation score of each modality was calibrated above, and each frame shows the curve, the
# certified point and which test items are answered.

# %%
frames, labels = [], []
for name in setups:
    r = best[name][0]
    conf = cross.confidence(scores[name, r["source"]], [r["score"]])[r["score"]]
    op = cross.operating_points(conf, correct[name], alpha_grid, delta=delta,
                                calibration_fraction=calibration_fraction, seed=seed)
    ok_test = correct[name][np.asarray(op["test_index"])]
    row = []
    for pt in op["points"]:
        row.append(vc.plot_alpha_frame(op["coverage"], op["risk"], (pt["coverage"], pt["risk"]), pt["answered"],
                                       ok_test, alpha=pt["alpha"], delta=delta,
                                       label=f"{name}, {r['source']} {r['score']}"))
    frames.append(row)
    labels.append(name)
widgets.frame_grid(frames, labels, alpha_grid, descriptions=("modality", "α"))

# %% [markdown]
# ## The literature beside ours
#
# Published figures on how much saliency maps agree across training seeds or perturbations, each
# checked in the paper's abstract (`uqxai_lib/studies/literature.yaml` records the quote and what
# could not be checked). **Their numbers, their settings**: different metrics, models and data, so
# they are a frame of reference, not a target. Beside each, our closest cell: the mean Spearman ρ
# (or Jaccard) of the same source on our data. The rows (column `source`, a key of the book's
# bibliography): explanation consistency of models of identical architecture on MIMIC-CXR retrained
# with other seeds or training-set orders {cite:p}`watson2022agree`; repeatability and reproducibility
# of six gradient-based saliency methods on upper-extremity radiographs {cite:p}`venkatesh2024gradient`;
# self-consistency of ECG attributions
# across random initialisations {cite:p}`arends2026signal`; and, as context only (crafted input
# perturbations, not seeds or sampling), saliency under subtle perturbations of chest X-rays and
# brain MRI {cite:p}`zhang2024revisiting`.

# %% tags=["hide-output"]
with open(cross.__file__.replace("cross.py", "literature.yaml"), encoding="utf-8") as fh:
    literature = yaml.safe_load(fh)
closest = {"ecg": ("ECG", "seed_ensemble"), "chest_xray": ("MRI", "seed_ensemble"),
           "musculoskeletal_xray": ("MRI", "seed_ensemble")}
lit_rows = []
for e in literature:
    mod, src = closest.get(e["modality"], ("MRI", "seed_ensemble"))
    if e["source_kind"] == "other":
        src = "test_time"
    sc = scores.get((mod, src))
    ours = ("n/a" if sc is None else
            f"{mod}, {src}: mean Spearman ρ {np.nanmean(sc['spearman']):.2f}, mean Jaccard {np.nanmean(sc['jaccard']):.2f}")
    lit_rows.append({"source": e["key"], "setting": e["setting"], "figure": e["figure"] + " (theirs)", "ours": ours})
report.table(pd.DataFrame(lit_rows), "literature")

# %% [markdown]
# ## Summary

# %%
def _cell(r):
    lo, hi = r["auroc_ci95"]
    return f"{r['source']} / {r['score']} AUROC {r['auroc']:.2f} [{lo:.2f}, {hi:.2f}]"


lines = []
for name in setups:
    ex = [r for r in matrix if r["modality"] == name and np.isfinite(r["auroc"])]
    bl = [r for r in baselines_rows if r["modality"] == name and np.isfinite(r["auroc"])]
    top_ex = max(ex, key=lambda r: r["auroc"])
    top_bl = max(bl, key=lambda r: r["auroc"])
    n_inf = sum(stats.verdict([r["auroc_ci95"][0] - 0.5, r["auroc_ci95"][1] - 0.5]) == "higher" for r in ex)
    adds = [a for a in added if a["modality"] == name and a["verdict"] == "higher"]
    lines.append(
        f"- **{name}**: {n_inf} of {len(ex)} explanation cells have an interval above chance; the best is "
        f"{_cell(top_ex)}, the best prediction-only baseline {_cell(top_bl)}. Explanation scores add to the "
        f"baselines out of sample for {len(adds)} of {len([a for a in added if a['modality'] == name])} sources"
        + (f" ({', '.join(a['source'] for a in adds)})." if adds else "."))
for name in setups:
    cells = [r for r in method_matrix if r["modality"] == name and r["auroc"] is not None and np.isfinite(r["auroc"])]
    above = [r for r in cells if r["verdict"] == "higher"]
    adds = [r for r in cells if r["added_verdict"] == "higher"]
    top = max(cells, key=lambda r: r["auroc"]) if cells else None
    rvh = right_vs_helps[name]["spearman_lift_vs_best_auroc"]
    lines.append(
        f"- **{name}, beyond Grad-CAM** ({method_info[name]['items']} case-control items, "
        f"{method_info[name]['misclassified']} misclassified): {len(above)} of {len(cells)} method cells have an "
        f"AUROC interval above chance"
        + (f"; the highest is {vc.METHOD_LABELS.get(top['method'], top['method'])} {top['source']} / {top['score']} "
           f"AUROC {top['auroc']:.2f} [{top['auroc_ci95'][0]:.2f}, {top['auroc_ci95'][1]:.2f}]" if top else "")
        + f". A method's stability score adds to entropy, margin and flip rate out of sample in {len(adds)} cells"
        + (" (" + ", ".join(f"{vc.METHOD_LABELS.get(r['method'], r['method'])} {r['source']} / {r['score']}"
                            for r in adds[:4]) + ("…" if len(adds) > 4 else "") + ")" if adds else "")
        + f". Right maps vs helpful uncertainty: Spearman over methods of mass-in-mask lift with the best AUROC "
        f"{rvh:+.2f} ({right_vs_helps[name]['n_methods']} methods; few methods, so read only its sign and size).")
changed = [r for r in design_rows if r["verdict"] in ("higher", "lower")]
lines.append(
    f"- **Design**: of {len(design_rows)} explanation scores rerun under an alternative design, "
    f"{len(changed)} changed their AUROC beyond the interval"
    + (": " + "; ".join(f"{r['modality']} {r['source']} {r['score']} with {r['alternative']}: AUROC "
                        f"{r['auroc_a']:.2f} → {r['auroc_b']:.2f}, difference {r['delta']:+.2f} "
                        f"[{r['delta_ci95'][0]:+.2f}, {r['delta_ci95'][1]:+.2f}]" for r in changed)
       + ". Read each against 0.5: a change between two AUROCs on the same side of chance moves the "
         "size of an answer, not its direction."
       if changed else "; no difference is detectable at this sample size, which is not the same as none "
       "(the widest interval is [{:+.2f}, {:+.2f}]).".format(*max(
           (r["delta_ci95"] for r in design_rows if np.isfinite(r["delta"])), key=lambda c: c[1] - c[0],
           default=[float("nan")] * 2))))
display(Markdown("\n".join(lines)))

# %% [markdown]
# Where the answer depends on a design choice, the study chapters show the alternatives: the MRI
# chapter the hook point under MC dropout (before or after the block's dropout), the dermoscopy
# chapter the pruning site and the Rashomon filter, the ECG chapter SUE's reference and region
# size. The matrix uses each chapter's default, and the design section above reruns three of these
# choices on the same items; the Rashomon set here prunes the explained layer itself, the design under which a pruned
# model's map is a subset sum of the optimal model's.
# The guarantee of the abstention rule holds for any score; which score buys the most coverage at
# a given risk is an empirical question answered per modality in the table above.
#
# ## What's next
#
# The robustness chapter shows how the three studies' primary results vary over training seeds.
# The methods page defines every score used here.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %%
results = cache.round_sig({
    # the chapter CAM on all studied items, then every method (CAM included) on the case-control sample
    "matrix": [{"method": setups[r["modality"]].method, "items": "all",
                **{k: r[k] for k in ("modality", "source", "score", "auroc", "auroc_ci95", "aurc", "n_nan",
                                     "within_class_auroc", "within_class_auroc_ci95")}}
               for r in matrix]
              + [{"items": "case_control", **{k: r[k] for k in ("method", "modality", "source", "score", "auroc",
                                                                "auroc_ci95", "verdict", "aurc", "n_nan", "added_delta",
                                                                "added_ci95", "added_verdict", "auroc_baselines",
                                                                "within_class_auroc", "within_class_auroc_ci95",
                                                                "n_samples")}}
                 for r in method_matrix],
    "fidelity_by_method": fidelity_by_method,
    "right_vs_helps": right_vs_helps,
    "modalities": {n: {"spatial_dims": m.spatial_dims, "method_items": method_info[n]["items"],
                       "method_misclassified": method_info[n]["misclassified"]} for n, m in setups.items()},
    "baselines": [{k: r[k] for k in ("modality", "source", "score", "auroc", "auroc_ci95", "aurc")}
                  for r in baselines_rows],
    "added_value": added,
    "design": [{k: r[k] for k in ("modality", "source", "alternative", "score", "auroc_a", "auroc_b", "delta",
                                  "delta_ci95", "verdict", "n_nan")} for r in design_rows],
    "conformal": [{k: r[k] for k in ("modality", "source", "score", "alpha", "delta", "n_splits",
                                     "fraction_risk_le_alpha", "fraction_ci95", "mean_coverage", "mean_risk",
                                     "n_abstain_all", "base_risk", "coverage_at_guarantee", "oracle_coverage",
                                     "trivial") if k in r} for r in conformal_rows],
    "conformal_summary": conformal_summary,
    "alpha_by_modality": alphas,
    "literature": lit_rows,
    "sources": {f"{n}/{s}": st["info"] for (n, s), st in stacks.items()},
    "finetuned_sets": finetuned_sets,
    "accuracy": {n: float(v) for n, v in overview["accuracy"].items()},
})
report.save_tables(results_path)
cache.atomic_write_json(results_path, cache.finite_or_none(results))

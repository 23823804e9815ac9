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
import pandas as pd
from IPython.display import Markdown, display

from uqxai_lib import cache, report, widgets
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
items, refs = cross.study_items(setups, max_items, dev)
report.table(vc.overview_table(setups, items), "models")

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
#   by the same (1 + ε) filter (`uqxai_lib.finetune`, `studies.modalities.finetuned`), BatchNorm's
#   running statistics frozen. Every weight can move, so its members differ more than pruned copies
#   of one layer do; where no candidate stays within 1 + ε, the source is undefined for that
#   modality (the `finetuned_sets` table counts them);
# - **seed ensemble**: models of the same recipe trained with other seeds (`ensemble_seeds`) on the
#   same data, each explaining the reference model's class.
#
# Each stack is cached by its configuration and the model's weights.

# %% tags=["hide-output"]
stacks, finetuned = cross.source_stacks(
    setups, items, draws_per_kind=draws_per_kind, mc_passes=mc_passes, mc_rates=mc_rates, rashomon_k=rashomon_k,
    prune_ratios=prune_ratios, epsilon=epsilon, ensemble_seeds=ensemble_seeds, finetune_k=finetune_k,
    finetune_epochs=finetune_epochs, finetune_lr_factor=finetune_lr_factor, seed=seed, device=dev,
    key=dict(chapter_profile=chapter_profile, strength=image_strength, snr=ecg_snr_db, snr_definition=SNR_DEFINITION))
report.table(vc.samples_table(stacks), "samples")
finetuned_sets = cross.finetuned_summary(finetuned)
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
scores, correct, groups, predicted = cross.all_item_scores(stacks, items, refs, quantile=quantile)
report.table(vc.degenerate_table(scores), "degenerate_items")

# %% [markdown]
# ## The matrix
#
# **Primary question of this chapter**, declared before the results: for each modality and source,
# the AUROC of each explanation score for telling correct from misclassified items (0.5 = no better
# than chance), with a 95% bootstrap interval over test items (grouped by subject or lesion where
# the data have groups). A cell counts as informative only when its interval lies above 0.5.

# %%
matrix, baselines_rows = cross.all_matrix_rows(scores, correct, groups, predicted, n_boot=n_boot, seed=seed)
fig = vc.plot_matrix(matrix, modalities=list(setups), sources=list(cross.SOURCES),
                     scores=list(cross.EXPLANATION_SCORES),
                     title="explanation repeatability: AUROC for correct vs misclassified [95% CI]")

# %%
report.table(vc.matrix_table(matrix), "matrix", fold="The matrix as a table: AUROC, interval and AURC of every cell")

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
added = cross.all_added_value(scores, correct, folds=folds, n_boot=n_boot, seed=seed)
report.table(vc.added_table(added), "added_value")

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
design_scores = cross.design_scores(
    setups, items, refs, stacks, quantile=quantile, design_quantile=design_quantile, mc_passes=mc_passes,
    mc_rates=mc_rates, prune_ratios=prune_ratios, design_prune_factor=design_prune_factor, rashomon_k=rashomon_k,
    epsilon=epsilon, seed=seed, device=dev, key=dict(chapter_profile=chapter_profile))
design_rows = cross.design_rows(design_scores, scores, correct, groups, n_boot=n_boot, seed=seed)
report.table(vc.design_table(design_rows), "design")

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
from uqxai_lib import saliency

method_matrix, fidelity_by_method, method_info = cross.method_matrix(
    setups, items, refs, stacks, finetuned, methods=methods, items_each=method_items_each, options=method_options,
    draws_per_kind=method_draws_per_kind, mc_passes=method_mc_passes, mc_rates=mc_rates, rashomon_k=rashomon_k,
    prune_ratios=prune_ratios, epsilon=epsilon, ensemble_seeds=ensemble_seeds, max_models=method_max_models,
    quantile=quantile, folds=folds, n_boot=n_boot, seed=seed, device=dev,
    key=dict(chapter_profile=chapter_profile, strength=image_strength, snr=ecg_snr_db), modality_keys={"volume": volume})
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
report.table(vc.fidelity_table(fidelity_by_method), "fidelity_by_method")

# %% tags=["hide-output"]
right_vs_helps = cross.right_vs_helps(fidelity_by_method, method_matrix, list(setups))
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
alphas, conformal_rows, conformal_summary = cross.abstention(scores, correct, list(setups), alpha=alpha, delta=delta,
                                                             n_splits=n_splits, seed=seed)
report.table(vc.conformal_summary_table(conformal_summary, alphas), "conformal_summary")
report.table(vc.conformal_table(conformal_rows), "abstention_guarantee")

# %% [markdown]
# The table shows, per modality, the four scores with the highest mean coverage at the guaranteed
# risk; the full table is in the results file. Risk–coverage curves of one split for the best
# explanation score and the best baseline of each modality, with the guaranteed operating point:

# %% tags=["hide-output"]
best = cross.best_rules(conformal_rows, list(setups))
split = dict(delta=delta, calibration_fraction=calibration_fraction, seed=seed)
fig = vc.plot_risk_coverage_grid(cross.rule_operating_points(best, scores, correct, alphas, **split), alphas)

# %% [markdown]
# ### Slide α
#
# The widget recomputes nothing: for each α of `alpha_grid` the operating point of the best
# explanation score of each modality was calibrated above, and each frame shows the curve, the
# certified point and which test items are answered.

# %%
ops = cross.rule_operating_points(best, scores, correct, alpha_grid, which=(0,), **split)
frames, labels = vc.alpha_frames(ops, correct, delta=delta)
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
lit_rows = cross.literature_rows(cross.load_literature(), scores)
report.table(pd.DataFrame(lit_rows), "literature")

# %% [markdown]
# ## Summary

# %%
display(Markdown(cross.summary_lines(list(setups), matrix, baselines_rows, added, method_matrix, method_info,
                                     right_vs_helps, design_rows, labels=vc.METHOD_LABELS,
                                     finetuned=finetuned_sets)))

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
results = cache.round_sig(cross.results_record(
    setups, items, stacks, matrix=matrix, method_cells=method_matrix, fidelity_rows=fidelity_by_method,
    rvh=right_vs_helps, method_info=method_info, baselines=baselines_rows, added=added, design=design_rows,
    conformal=conformal_rows, conformal_summary=conformal_summary, alphas=alphas, literature=lit_rows,
    finetuned_sets=finetuned_sets))
report.save_tables(results_path)
cache.atomic_write_json(results_path, cache.finite_or_none(results))

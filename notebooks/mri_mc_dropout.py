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
# # Brain MRI: how repeatable is Grad-CAM under Monte Carlo dropout?

# %% [markdown]
# ## Overview
#
# **The numbers on this page come from an embedded synthetic brain-MRI phantom** (the box above
# says so), not from the paper's SARTAJ images; the paper's own numbers are labelled *theirs*.
# A ResNet classifies axial brain-MRI slices into glioma, meningioma, pituitary tumour and no
# tumour; Grad-CAM {cite:p}`selvaraju2017gradcam` shows where it looked.
# {cite:t}`salvi2025explainability` (section 4.2) ask: **would the model look at the same place if
# it were a slightly different model?** Monte Carlo (MC) dropout {cite:p}`gal2016dropout` answers
# it cheaply: dropout stays on at test time, each forward pass is a different random sub-network
# with its own Grad-CAM map. Maps that agree with the ordinary (dropout-off) map carry little
# *epistemic* uncertainty. The paper reports a mean Spearman correlation with the deterministic map
# of $\rho = 0.76 \pm 0.08$ for correctly classified SARTAJ test images and $0.54 \pm 0.12$ for
# misclassified ones (theirs), and suggests a cautious model could refuse to answer when $\rho$ is
# low.
#
# **Primary comparison (declared before any result).** Mean $\rho$ of correctly classified minus
# misclassified test images, with a bootstrap 95% interval and the AUROC, from the library's
# instrument; the verdict word ("higher", "lower", "no detectable difference", "undefined") is read
# from the interval. Everything else is secondary, with Holm-adjusted p-values.
#
# **Prerequisites:** Grad-CAM (see the methods page and the primer chapter), dropout, Spearman rank
# correlation, AUROC; entropy and mutual information help. **Time to run:** a few minutes from a
# cold cache on two CPU cores for `smoke` (training included); `full` (ResNet50, 224 px) needs a GPU.

# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None
results_path = "../_build/results/mri_mc_dropout.json"
profile = "smoke"
# data (synthetic phantom unless data_dir / $UQXAI_DATA_DIR holds SARTAJ)
image_size = 32
n_patients = 1000
ambiguity = 0.12
split = [0.7, 0.12, 0.18]
max_test = 400
# SARTAJ (a partial copy): classes to use (None = all four), validation share of Training
# (None = the paper's 433 of 2,870; an int = images), check the full release's folder counts
sartaj_classes = None
sartaj_val_size = None
sartaj_check_counts = True
# model and training
arch = 'resnet18'
width = 8
small_input = True
weights = None
train_dropout = 0.1
epochs = 20
patience = 6
batch_size = 32
lr = 0.002
# study
passes = 20
dropout = 0.1
t_grid = [2, 5, 10, 20, 50]
p_grid = [0.05, 0.1, 0.2, 0.3, 0.5]
n_sweep = 120
widget_passes = [20, 10, 5, 2]  # widget frames; it opens at the first, at least 2 passes each
explain_point = "pre_dropout"  # Grad-CAM at the last block's output before ("pre_dropout") or after its dropout
layer_stages = ["layer2", "layer3", "layer4"]  # stages compared in the layer table
layer_passes = 10

# %%
from pathlib import Path

import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, report, train, widgets
from uqxai_lib.data.synthetic_mri import denormalize
from uqxai_lib.models.resnet_mc import EXPLAIN_POINTS, GRADCAM_LAYER, dropout_layers, explained_layer
from uqxai_lib.studies import mri as sm
from uqxai_lib.utils import pick_device, seed_everything
from uqxai_lib.viz import mri as vz
from uqxai_lib.viz import use_style

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = pick_device(device)
seed_everything(seed)
params = {k: globals()[k] for k in sm.SETUP_KEYS}
S = sm.setup(params, seed=seed, device=dev)
test, model, classes, layer = S.test, S.model, S.classes, S.layer
fig = vz.plot_gallery(denormalize(test.x[sm.first_of_each_class(test.y)]), classes,
                      masks=None if test.mask is None else test.mask[sm.first_of_each_class(test.y)])

# %% [markdown]
# ## Data and model
#
# The **synthetic phantom** (`uqxai_lib.data.synthetic_mri`; above, one slice per class, tumour
# outline in red) draws seeded axial slices with skull, cortex, ventricles, bias field and noise;
# gliomas are irregular with a bright rim, meningiomas round on the brain's edge, pituitary tumours
# small on the anterior midline, and 12% of tumours are borderline (faint, or with a neighbouring
# class's look), so even a good model makes honest mistakes. Each slice has a tumour mask (SARTAJ
# {cite:p}`bhuvaji2020sartaj` has none; with `data_dir` the same code reads it with the paper's
# split). The paper adds "dropout layers (rate = 0.5) after each residual block" of a ResNet50
# {cite:p}`he2016resnet`; the quick profiles use a narrow ResNet18-style network (8 dropout layers)
# trained and sampled at rate 0.1, because a small network trained for a few CPU epochs does not
# learn with half its features dropped. Data and model come from one call, `studies.mri.setup`,
# shared with the robustness and cross-study chapters.

# %%
fit = S.fit
det_probs = train.predict_proba(model, test.x, device=dev).cpu()
summary = metrics.classification_summary(det_probs, test.y)
pred = det_probs.argmax(1)
correct = pred == test.y
accuracy = summary["accuracy"]
class_table = sm.per_class_accuracy(pred, test.y, classes)
display(Markdown(
    f"{len(dropout_layers(model))} dropout layers; weights of epoch {fit.best_epoch} of {len(fit.history)} "
    f"(lowest validation loss). Test accuracy with dropout off **{100 * accuracy:.1f} %** (balanced "
    f"{100 * summary['balanced_accuracy']:.1f} %): **{int((~correct).sum())} of {len(correct)}** test images "
    "misclassified."))

# %% tags=["hide-output"]
report.table(sm.split_table(S), "split")
fig = vz.plot_training(fit.history, best_epoch=fit.best_epoch, confusion=summary["confusion"], classes=classes)
report.table(class_table, "per_class_accuracy")

# %% [markdown]
# ## MC-dropout Grad-CAM and the primary comparison
#
# For each test image we run $T$ = 20 stochastic passes with every dropout layer on at rate
# $p$ = 0.1 (BatchNorm stays in evaluation mode, so passes differ only by their dropout masks) and
# compute Grad-CAM in each, always for the class the *deterministic* model predicts. The reference
# $M^{\mathrm{det}}$ is the map of the ordinary forward with dropout off. The repeatability of image
# $b$ is
#
# $$
# \rho_b = \frac{1}{|T_b|}\sum_{t \in T_b} \rho_S\big(M^{(t)}_b, M^{\mathrm{det}}_b\big),
# $$
#
# where $T_b$ are the passes whose map is not constant: a constant map (all zeros after the ReLU)
# has no ranking, so its $\rho$ is undefined, skipped and counted — never turned into 0 or 1 (the
# book's one rule, stated on the methods page).
#
# **Where the map is taken.** The paper explains "the last convolutional layer". Our last residual
# block is followed by its dropout, so the map is taken at the block's output *before* that dropout
# (`pre_dropout`): the dropout mask then acts through the gradient that weighs the channels. After it
# (`post_dropout`) every pass would share one gradient and part of the spread would be the explained
# layer's own dropout mask; the folded section "Where Grad-CAM is taken" shows both.

# %%
st = sm.study(S, passes=max(passes, max(t_grid)), p=dropout, seed=seed)
rec = sm.assessment(S, st, passes=passes, seed=seed)
primary = sm.primary_record(rec)
verdict, evidence = sm.ladder(S, rec, seed=seed, robustness_path=Path(results_path).parent / "robustness.json")
rho = torch.from_numpy(rec.score("rho"))
gray = denormalize(test.x)
no_tumour = classes.index("no_tumor") if "no_tumor" in classes else None
table, cmp = sm.repeatability_table(rho, correct)
display(report.table(table, "repeatability"))
fig = vz.plot_rho_groups(rho, correct, title=f"T = {passes}, p = {dropout}, Grad-CAM at {layer}")
display(Markdown(sm.verdict_sentence(primary) + f" {rec.stability['n_constant_samples']} of "
                 f"{passes * len(test)} MC maps were constant (skipped and counted)."))

# %% [markdown]
# ### Fig. 4, replicated
#
# The correctly classified tumour slice with the highest $\rho$ and the misclassified slice with the
# lowest. For each: the input (tumour outline in red), the deterministic map, the mean and standard
# deviation of the $T$ MC maps, and the first four MC maps with their $\rho$ against the
# deterministic map; "in mask" is the share of the map's mass inside the tumour (white outline).

# %%
def case_title(i):
    return (f"true {classes[test.y[i]]}, predicted {classes[pred[i]]} ({float(det_probs[i, pred[i]]):.2f})"
            f"{'' if correct[i] else ' (misclassified)'}")


def case(i):
    mass = None if rec.fidelity is None else rec.fidelity["per_item_mass"][i]
    return sm.fig4_case(st, i, gray[i], case_title(i), passes=passes,
                        mask=None if test.mask is None else test.mask[i], mass=mass)


cases = [case(i) for i in sm.pick_cases(rho, correct, test.y, avoid_class=no_tumour)]
fig = vz.plot_fig4(cases, n_mc=4)

# %% [markdown]
# ## Why are some errors so repeatable?
#
# Grad-CAM explains the *predicted* class. If many errors are predicted as one class whose maps are
# broad and stable (on the phantom: "no tumour", whose evidence is the whole healthy brain), the
# errors as a group look repeatable even if, *within* each predicted class, correct answers are the
# more repeatable ones — a composition effect (Simpson's paradox), not evidence against the paper's
# idea. The sentence below compares the two readings with this run's numbers
# (`studies.mri.within_class`); the folded table splits the images by true and predicted class and,
# for tumour slices, by the generator's borderline flag, contrast and tumour size (descriptive: the
# strata are small; AUROC below 0.5 = the errors of that stratum are the more repeatable ones).

# %%
within = sm.within_class(rho, correct, pred, classes, evidence["within_class"])
display(Markdown(sm.within_class_sentence(within, primary)))

# %% tags=["hide-output"]
strata_tab = sm.strata_table(rho, correct, sm.strata_labels(test, pred, classes, S.attrs))
display(report.table(strata_tab.round(3), "strata"))
fig = vz.plot_fig4([case(i) for i in sm.most_repeatable_errors(rho, correct, 2)], n_mc=4)

# %% [markdown]
# ## Are the maps right?
#
# A map can be repeatable and point at the wrong place. The phantom knows where the tumour is, so for
# tumour slices we measure the share of the deterministic map's mass inside the tumour mask
# (`metrics.mass_in_mask`) against the mask's area share (what a uniform map scores: chance), the
# pointing game {cite:p}`zhang2018excitation` (is the map's maximum inside the tumour) and the IoU of
# the map's top 10% with the mask; intervals are bootstrap 95% intervals over images (the
# instrument's fidelity section). Deletion / insertion ({cite:t}`petsiuk2018rise`) set 4 × 4 px
# patches to zero in the map's order (deletion: the explained class's probability should fall fast,
# low area) or reveal them on a zero image (insertion: high area), against a random order.

# %%
if rec.fidelity is not None:
    display(report.table(sm.fidelity_table(S, rec, seed=seed), "fidelity"))
    display(Markdown(sm.deletion_sentence(rec.fidelity)))

# %% [markdown]
# **Sanity check: cascading randomisation** {cite:p}`adebayo2018sanity`. If the maps hardly change
# when the trained weights are replaced by random ones, they show the input or the architecture,
# not what the model learned. The weights are re-initialised from the head down (`fc`, then
# `layer4`, `layer3`, … cumulatively) and each randomised map is compared with the trained one at
# the explained layer's resolution. The check fails when a step's median Spearman $\rho$ reaches
# 0.5; a randomised map that goes constant has no ranking, so it is counted and left out of the
# median, and when more than half of a step's maps are constant the check is *inconclusive*: there
# is nothing left to compare (the book's rule, `uqxai_lib.rules.SANITY_AGGREGATION`).

# %%
display(Markdown(sm.sanity_sentence(rec.sanity)))

# %% tags=["hide-output"]
display(report.table(sm.sanity_table(rec.sanity), "sanity_cascading"))

# %% [markdown]
# **Which layer can be right, and is a stable map a right map?** Folded: per stage, the map size,
# fidelity and stability on the sweep subset (`layer4`, the paper's choice, stays the headline), and
# fidelity against stability per tumour slice with their Spearman correlation.

# %% tags=["hide-output"]
sweep_idx = sm.sweep_subset(correct, n_sweep)
layer_names = [explained_layer(model, stage, explain_point) for stage in layer_stages]
display(report.table(sm.layer_table(S, sweep_idx, correct, layer_names, layer_passes, p=dropout, seed=seed + 2),
                     "layer_choice"))
fvs = rec.fidelity_vs_stability
if fvs is not None:
    fig = vz.plot_fidelity_vs_stability(rec.fidelity["per_item_mass"], rho, correct, chance=rec.fidelity["chance"],
                                        title=f"Spearman {fvs['spearman']:.2f} ({fvs['ci95'][0]:.2f} to "
                                              f"{fvs['ci95'][1]:.2f}), {fvs['n']} tumour slices")

# %% [markdown]
# ## Where Grad-CAM is taken: before or after the last block's dropout
#
# The same model, images and seeded passes, with Grad-CAM taken at the two points described above
# (folded: one row per point, undefined passes counted per group).

# %% tags=["hide-output"]
other = next(v for v in EXPLAIN_POINTS if v != explain_point)
other_layer = explained_layer(model, GRADCAM_LAYER, other)
other_rec = sm.assessment(S, sm.study(S, passes=passes, p=dropout, seed=seed, layer=other_layer), passes=passes,
                          seed=seed, full=False)
variants = {explain_point: sm.variant_record(rec), other: sm.variant_record(other_rec)}
variants = {k: variants[k] for k in EXPLAIN_POINTS}
display(report.table(sm.variants_table(variants), "explain_point_variants"))

# %% [markdown]
# ## Predictive vs explanation uncertainty, and cautious abstention
#
# The same passes give predictive uncertainty: the entropy of the MC mean probability (total
# uncertainty) and the mutual information between prediction and dropout mask (the epistemic
# part). Does $\rho$ tell us something the probabilities do not? Each score is compared between
# correct and misclassified images with the same bootstrap as the primary; labels follow the
# Holm-adjusted p. A cautious model answers only its most confident share of images (the
# *coverage*); the area under the risk–coverage curve (AURC {cite:p}`geifman2019aurc`, lower is
# better) compares abstaining on low $\rho$ (the paper's suggestion), on high entropy, on high
# mutual information and on the average rank of $\rho$ and −entropy, against an oracle that ranks
# every error last and a random order (expected AURC = the error rate).

# %%
entropy = torch.tensor(rec.prediction["entropy"])
mi = torch.tensor(rec.prediction["mutual_information"])
mc_conf = rec.probs.mean(0).max(1).values
mc_accuracy = float((rec.probs.mean(0).argmax(1) == test.y).float().mean())
comps = {f"ρ at {other} ({other_layer})": other_rec.primary,
         "−predictive entropy": sm.compare(-entropy, correct, test.group, score="−entropy", seed=seed),
         "−mutual information": sm.compare(-mi, correct, test.group, score="−MI", seed=seed)}
if rec.fidelity is not None:
    comps["mass in tumour mask (tumour slices)"] = sm.compare(rec.fidelity["per_item_mass"], correct, test.group,
                                                              score="mass in mask", seed=seed)
secondary = sm.secondary_records(comps)
display(report.table(sm.secondary_table(secondary), "secondary"))
scores = {"ρ (explanation)": rho, "−entropy": -entropy, "−mutual information": -mi,
          "rank average (ρ, −entropy)": metrics.rank_average(rho.nan_to_num(-2.0), -entropy)}
curves, aurc_table = sm.abstention(correct, scores)

# %% tags=["hide-output"]
display(report.table(aurc_table.round(4), "abstention_aurc"))
unc_table = sm.uncertainty_table(rho, {"−entropy": -entropy, "−mutual information": -mi,
                                       "MC mean max probability": mc_conf}, correct)
display(report.table(unc_table.round(3), "prediction_uncertainty"))
fig = vz.plot_rho_vs_uncertainty(rho, {"predictive entropy": entropy, "mutual information": mi,
                                       "MC mean max probability": mc_conf}, correct)
fig = vz.plot_abstention(curves, aurc=aurc_table["AURC"].to_dict())

# %% [markdown]
# ## Dropout rate and number of passes
#
# The first $T$ passes of the run above give $\rho$ for every $T$ in 2, 5, 10, 20, 50 (no new
# passes). For each dropout rate we rerun the passes on a subset of 120 test images that keeps every
# misclassified image and fills up with evenly spaced correct ones. The folded figure and tables show
# how the gap in $\rho$ and the AUROC move, and how many passes the per-image estimate needs to
# settle (mean absolute change of $\rho_T$ against the longest run).

# %% tags=["hide-output"]
prefix = sm.prefix_repeatability(st, t_grid)
t_table = sm.sweep_table({int(t): r for t, r in zip(t_grid, prefix)}, {int(t): correct for t in t_grid}, "passes T")
settle = sm.settling(prefix, t_grid)
p_runs = {float(p): sm.study(S, passes=max(passes, max(widget_passes)), p=p, seed=seed + 1, subset=sweep_idx)
          for p in p_grid}
p_table = sm.sweep_table({p: r.repeatability(passes) for p, r in p_runs.items()},
                         {p: correct[sweep_idx] for p in p_runs}, "dropout p")
fig = vz.plot_sweeps(p_table, t_table, settle)
display(report.table(p_table.round(3), "sweep_dropout_rate"))
display(report.table(t_table.round(3), "sweep_passes"))
display(report.table(settle.round(3), "settling"))

# %% [markdown]
# ### Explore: dropout rate × passes
#
# For the most repeatable correct and the least repeatable misclassified image of the sweep subset:
# the mean and the standard deviation of the first $T$ MC maps at each dropout rate, with $\rho$ and
# the MC prediction. The frames are precomputed, so the sliders also work in the static book; the
# widget opens at the chapter's $T$.

# %%
cols = sm.pick_cases(p_runs[float(dropout)].repeatability(passes) if float(dropout) in p_runs else rho[sweep_idx],
                     correct[sweep_idx], test.y[sweep_idx], avoid_class=no_tumour)
shown = [int(sweep_idx[j]) for j in cols]
frames = vz.mc_frames(sm.mc_frame_items(p_runs, cols, widget_passes, [gray[i] for i in shown],
                                        [f"true {classes[test.y[i]]}" for i in shown], classes,
                                        masks=None if test.mask is None else [test.mask[i] for i in shown]))
display(widgets.frame_grid(frames, list(p_grid), list(widget_passes), descriptions=("dropout p", "passes T")))

# %% [markdown]
# ## Caveats
#
# ```{dropdown} What this chapter cannot tell you
# - **Synthetic data by default.** The phantom's errors come from deliberately borderline cases;
#   real SARTAJ errors have other causes (orientation, contrast, duplicated images).
# - **Small model, coarse maps.** In the quick profiles `layer4` maps are input / 8 per side, and
#   Spearman on coarse maps has many ties.
# - **The result depends on the trained model.** A network trained for a shorter time made errors
#   that were stable under dropout; check the MC mean prediction's accuracy before trusting $\rho$.
# - **Rates in training and sampling** are the same by default; the dropout sweep shows how much
#   that choice matters.
# - **Reference map.** $\rho$ is measured against the deterministic map, as in the paper; the mean MC
#   map is another valid reference.
# - **A repeatable error is not a contradiction.** When every sub-network agrees on the same wrong
#   evidence, $\rho$ is high; check which predicted class the errors come from before reading a low
#   $\rho$ as "the model is unsure".
# - **Stable is not right.** Where the maps miss the tumour, $\rho$ measures the stability of maps
#   that do not show the evidence.
# ```

# %% [markdown]
# ## Summary

# %%
aurc = aurc_table["AURC"].to_dict()
results = {"data": S.data, "accuracy": accuracy, "mc_accuracy": mc_accuracy, "n_test": len(test), "passes": passes,
           "dropout": dropout, "explained_layer": layer, "explain_point": explain_point,
           **{sm.AURC_KEYS[k]: v for k, v in aurc.items()}, "primary": primary, "claim": sm.CLAIM,
           **sm.assessment_record(rec), "variants": variants, "secondary": secondary, "reversal": within,
           "verdict": verdict, "added_value": evidence["added_value"],
           "per_class_accuracy": {c: float(class_table.loc[c, "accuracy"]) for c in classes},
           "training": sm.training_record(fit), "sweep_dropout": sm.sweep_record(p_table)}
results = cache.round_sig(cache.finite_or_none(results))
display(Markdown(sm.summary(results)))
report.save_tables(results_path)
cache.atomic_write_json(results_path, results)

# %% [markdown]
# ## What's next
#
# - Run with `data_dir` pointing at SARTAJ and the `full` profile on a GPU to compare with the
#   paper at its own scale.
# - The ECG chapter measures the same idea with test-time noise instead of dropout (aleatoric
#   rather than epistemic uncertainty); the dermoscopy chapter uses a Rashomon set of pruned models;
#   the robustness chapter repeats this chapter's primary comparison over training seeds.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

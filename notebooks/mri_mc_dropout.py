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
# A ResNet classifies axial brain-MRI slices into glioma, meningioma, pituitary tumour and no
# tumour. Grad-CAM {cite:p}`selvaraju2017gradcam` shows where it looked.
# {cite:t}`salvi2025explainability` (section 4.2) ask a second question:
# **would the model look at the same place if it were a slightly different model?** Monte Carlo
# (MC) dropout answers it cheaply: dropout stays switched on at test time, every forward pass uses a
# different random sub-network, and each pass gets its own Grad-CAM map. If the maps agree with the
# ordinary (dropout-off) map, the explanation carries little *epistemic* uncertainty; if they
# scatter, the model's reasoning about that image is unsettled. The paper reports that correctly
# classified SARTAJ test images had a mean Spearman correlation $\rho = 0.76 \pm 0.08$ between MC
# maps and the deterministic map, misclassified ones $0.54 \pm 0.12$, and suggests a cautious model
# could refuse to answer when $\rho$ is low.
#
# You will learn how to
#
# 1. add dropout after every residual block of a ResNet and sample it at test time;
# 2. compute the per-image repeatability $\rho$ and test whether it separates errors from correct
#    answers (table, Mann–Whitney test, AUROC);
# 3. put $\rho$ beside predictive uncertainty (entropy, mutual information) and use both for
#    cautious abstention;
# 4. check how the result depends on the dropout rate and the number of passes;
# 5. see how the result depends on *where* Grad-CAM is taken under dropout (before or after the last
#    block's dropout), why errors can come out *more* repeatable, and whether the maps are right at
#    all (mass in the tumour mask, deletion / insertion, a sanity check with randomised weights).
#
# **Primary comparison (declared before any result).** The repeatability $\rho$ of correctly
# classified minus misclassified test images: the difference of means with a bootstrap 95%
# interval (resampling patients where a patient has several slices), the AUROC with its interval
# and a Mann–Whitney p-value (`uqxai_lib.stats.group_difference`). The verdict word ("higher",
# "lower", "no detectable difference") is read from the interval (`uqxai_lib.stats.verdict`), and
# whether it reproduces the paper's direction from `uqxai_lib.stats.reproduction`. Everything else
# (the post-dropout variant, predictive uncertainty, fidelity) is secondary, with Holm-adjusted p.

# %% [markdown]
# ## Prerequisites
#
# | Concept | Importance | Notes |
# | --- | --- | --- |
# | Grad-CAM | necessary | see the methods page and the primer chapter |
# | Dropout, MC dropout {cite:p}`gal2016dropout` | necessary | dropout kept on at test time |
# | Spearman rank correlation | necessary | Pearson correlation of ranks |
# | Mann–Whitney U, AUROC | helpful | for the table's statistics |
# | Entropy, mutual information | helpful | predictive uncertainty of the MC passes |
#
# **Time to run:** on two otherwise idle CPU cores a few minutes from a cold cache for `smoke`
# (the default, training included) and less for `tiny`; on a busy shared machine several times
# longer. `full` (ResNet50, 224 × 224, 20 passes) is meant for a GPU. Training and sampling are
# cached, so a re-run takes seconds.

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
widget_passes = [1, 2, 5, 10, 20]
explain_point = "pre_dropout"  # Grad-CAM at the last block's output before ("pre_dropout") or after its dropout
layer_stages = ["layer2", "layer3", "layer4"]  # stages compared in the layer table
layer_passes = 10
deletion_steps = 8
n_sanity = 60
primary_only = False  # True: only what the primary comparison needs (no figures, sweeps, variants, checks)

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, report, train, widgets
from uqxai_lib.data.sartaj import load_sartaj, stratified_holdout
from uqxai_lib.data.synthetic_mri import denormalize, make_synthetic_mri, synthetic_mri_attributes
from uqxai_lib.models.resnet_mc import (EXPLAIN_POINTS, GRADCAM_LAYER, build_resnet_mc, dropout_layers,
                                        explained_layer, weights_fingerprint)
from uqxai_lib.utils import pick_device, resolve_data_dir, seed_everything
from uqxai_lib.studies import mri as sm
from uqxai_lib.viz import mri as vz
from uqxai_lib.viz import use_style

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = pick_device(device)
seed_everything(seed)
root = resolve_data_dir(data_dir)
print(f"device: {dev}; data: {'SARTAJ (from data_dir)' if root else 'synthetic phantom (embedded)'}")

# %% [markdown]
# ## Data
#
# Without a data directory the chapter uses the embedded **synthetic brain-MRI phantom**: seeded
# axial slices with a skull, cortex with sulci, white matter, ventricles, a bias field and Rician
# noise. Gliomas are irregular masses inside a hemisphere with a bright rim, necrosis and dark
# oedema; meningiomas are round, bright and sit on the brain's edge; pituitary tumours are small,
# bright and on the anterior midline. A share `ambiguity` of the tumour cases is drawn as
# borderline (a faint tumour, a glioma without oedema near the cortex, a meningioma on the falx
# near the midline, an off-centre pituitary tumour), so even a good model makes honest mistakes.
# Each slice comes with the tumour's mask, which real SARTAJ lacks (generator: `uqxai_lib.data.synthetic_mri`). Classes keep SARTAJ's shares,
# and the split is stratified by class and seeded (one slice per synthetic patient, so no patient
# is in two parts).
#
# With `data_dir` set, the same code reads SARTAJ {cite:p}`bhuvaji2020sartaj`: the `Testing` folder (394 images) is the test
# set and 433 stratified, seeded images of `Training` are the validation set, which gives the
# paper's 2,437 / 433 / 394 split.

# %%
if root is None:
    data = make_synthetic_mri(n_patients, size=image_size, ambiguity=ambiguity, seed=seed)
    data_config = dict(source="synthetic", n_patients=n_patients, size=image_size, ambiguity=ambiguity,
                       split=list(split), seed=seed)
    rest, test_idx = stratified_holdout(data.y, int(round(split[2] * len(data))), seed=seed)
    tr, va = stratified_holdout(data.y[rest], int(round(split[1] * len(data))), seed=seed + 1)
    train_set, val_set, test_set = data.subset(rest[tr]), data.subset(rest[va]), data.subset(test_idx)
    test_rows = test_idx
else:
    parts = load_sartaj(root, size=image_size, seed=seed, classes=sartaj_classes, val_size=sartaj_val_size,
                        check_counts=sartaj_check_counts)
    train_set, val_set, test_set = parts["train"], parts["val"], parts["test"]
    data_config = dict(source=str(root), size=image_size, seed=seed, classes=sartaj_classes, val_size=sartaj_val_size)
    test_rows = None
if len(test_set) > max_test:  # an evenly spaced subset keeps the class mix
    keep = torch.linspace(0, len(test_set) - 1, max_test).round().long()
    test_set = test_set.subset(keep)
    test_rows = None if test_rows is None else test_rows[keep]
# the generator's own description of each test slice (borderline flag, contrast), synthetic data only
attrs = None if test_rows is None else {k: v[test_rows] for k, v in synthetic_mri_attributes(
    n_patients, ambiguity=ambiguity, seed=seed).items()}
classes = list(train_set.classes)
report.table(pd.DataFrame({name: {**{c: int((s.y == k).sum()) for k, c in enumerate(classes)}, "total": len(s)}
                           for name, s in [("train", train_set), ("validation", val_set), ("test (studied)", test_set)]}).T,
             "split")

# %%
if not primary_only:
    first = [int(torch.nonzero(test_set.y == k)[0]) for k in range(len(classes))]
    fig = vz.plot_gallery(denormalize(test_set.x[first]), classes,
                          masks=None if test_set.mask is None else test_set.mask[first])

# %% [markdown]
# ## Model
#
# The paper adds "dropout layers (rate = 0.5) after each residual block" of a ResNet50
# {cite:p}`he2016resnet`, which makes
# 16 dropout layers. `uqxai_lib.models.resnet_mc.build_resnet_mc` does this with torchvision's own blocks: every block's output
# passes through an `nn.Dropout`. The quick profiles use the same builder with a shallower, narrower
# network (ResNet18-style, 8 blocks, 8 dropout layers) and a small-image stem so that `layer4`, the
# layer Grad-CAM explains, still has a useful resolution. The model is trained with dropout rate
# `train_dropout` (Adam, class-weighted cross-entropy, early stopping on the validation loss,
# weights cached) and sampled at rate `dropout`. MC dropout approximates the posterior of the
# network that was trained, so both rates are the same by default: 0.5 at paper scale (`full`),
# 0.1 in the quick profiles, where a small network trained for a few epochs on the CPU does not
# learn with half of its features dropped after every block. The dropout sweep below samples the
# same trained model at other rates.

# %%
model_config = dict(arch=arch, width=width, small_input=small_input, num_classes=len(classes),
                    train_dropout=train_dropout, weights=None if weights is None else str(weights))
model = build_resnet_mc(arch, num_classes=len(classes), p=train_dropout, width=width,
                        small_input=small_input, weights=weights, seed=seed)
fit = train.fit(model, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                seed=seed, device=dev, name="mri_resnet_mc",
                cache_config=dict(data=data_config, model=model_config))
model = fit.model.eval()
det_probs = train.predict_proba(model, test_set.x, device=dev).cpu()
summary = metrics.classification_summary(det_probs, test_set.y)
pred = det_probs.argmax(1)
correct = pred == test_set.y
accuracy = summary["accuracy"]
n_drop = len(dropout_layers(model))
display(Markdown(
    f"{n_drop} dropout layers; best epoch {fit.best_epoch} of {len(fit.history)} (cached: {fit.from_cache}). "
    f"Test accuracy (dropout off) **{100 * accuracy:.1f} %** (balanced {100 * summary['balanced_accuracy']:.1f} %): "
    f"{int(correct.sum())} of {len(correct)} test images correct, **{int((~correct).sum())} misclassified**."))
if not primary_only:
    fig = vz.plot_confusion(summary["confusion"], classes, title="test set, dropout off")

# %% [markdown]
# **Has the model converged?** The training and validation losses per epoch (`train.fit` keeps the
# weights of the epoch with the lowest validation loss, dotted line) and the accuracy of each true
# class (`studies.mri.per_class_accuracy`): an explanation study of a model that has not finished
# learning measures an unfinished model.

# %%
class_table = sm.per_class_accuracy(pred, test_set.y, classes)
if not primary_only:
    fig = vz.plot_training(fit.history, best_epoch=fit.best_epoch)
    display(report.table(class_table, "per_class_accuracy"))

# %% [markdown]
# ## Deterministic vs MC-dropout Grad-CAM
#
# For each test image we run $T$ = `passes` stochastic forward passes with every dropout layer on
# at rate $p$ = `dropout` (BatchNorm stays in evaluation mode, so the passes differ only by their
# dropout masks), and compute Grad-CAM in each pass, always for the class the *deterministic* model
# predicts. The deterministic map $M^{\mathrm{det}}$ comes from the ordinary forward with dropout
# off. All maps are upsampled to the input size, as when they are shown.
#
# **Where the map is taken.** The paper explains "the last convolutional layer". In our ResNet the
# last residual block of `layer4` is followed by its dropout, so there are two candidate points:
# the block's output *before* its dropout (`pre_dropout`, the default: the activation the last
# convolutions produce; the dropout acts after it, so the gradient that gives Grad-CAM its channel
# weights flows back through that pass's dropout mask and the weights change from pass to pass), or
# the stage's output *after* the dropout (`post_dropout`). With global average pooling and one linear
# layer after it, the gradient at the post-dropout point is the same constant in every pass; each
# pass's map is then the fixed channel weights times a randomly zeroed-and-rescaled activation, so
# part of the spread would be the explained layer's own dropout mask. The paper's wording ("the last
# convolutional layer") names the convolutional features, i.e. the pre-dropout point; the section
# "Where Grad-CAM is taken" shows both side by side (`models.resnet_mc.explained_layer`).
#
# We run $\max(T, \max T_{\text{grid}})$ passes once: the first $T$ give the main result and
# prefixes give the pass-count sweep below for free. The step lives in `uqxai_lib.studies.mri.mc_study`
# (it calls `uqxai_lib.samplers.mc_dropout` and `uqxai_lib.saliency.grad_cam`, and scores each pass
# with `uqxai_lib.metrics.spearman`); the figures of this chapter are drawn by `uqxai_lib.viz.mri`.

# %%
layer = explained_layer(model, GRADCAM_LAYER, explain_point)
study_passes = max(passes, max(t_grid))
study_config = dict(data=data_config, model=model_config, weights=weights_fingerprint(model), n_test=len(test_set),
                    passes=study_passes, p=dropout, seed=seed, layer=layer)
study = sm.MCStudy(**cache.cached("mri_mc_dropout/study", study_config, lambda: sm.mc_study(
    model, test_set.x, layer, study_passes, p=dropout, seed=seed)._asdict()))
rho = study.repeatability(passes)
mc_probs = study.probs[:passes]
gray = denormalize(test_set.x)
no_tumour = classes.index("no_tumor") if "no_tumor" in classes else None

# %% [markdown]
# ## The primary comparison: repeatability of correct and misclassified images
#
# The repeatability of image $b$ is the mean Spearman correlation between its MC maps and its
# deterministic map (`metrics.repeatability`),
#
# $$
# \rho_b = \frac{1}{|T_b|}\sum_{t \in T_b} \rho_S\big(M^{(t)}_b, M^{\mathrm{det}}_b\big),
# $$
#
# where $T_b$ are the passes whose map is not constant. A constant map (all zeros after the ReLU)
# has no rank order, so its $\rho$ is undefined; those passes are **counted per group** in the
# variants table below, because dropping them raises $\rho$ exactly for the least stable images.
#
# Correct vs misclassified refers to the deterministic prediction (the one the explanation is
# about). The effect is mean $\rho$ (correct) − mean $\rho$ (misclassified) with its bootstrap 95%
# interval; the AUROC is the probability that a random correct image has a higher $\rho$ than a
# random misclassified one (0.5 = no separation), the Mann–Whitney U test is two-sided
# (`studies.mri.primary_record` → `stats.group_difference`, `stats.primary`). The paper's columns
# are theirs (real SARTAJ, ResNet50 at 224 px), shown only for orientation
# (`studies.mri.repeatability_table`).

# %%
primary, primary_cmp = sm.primary_record(rho, correct, test_set.group, seed=seed)
table, cmp = sm.repeatability_table(rho, correct)
display(report.table(table, "repeatability"))
display(Markdown(sm.verdict_sentence(primary) + f" The paper (theirs): {sm.CLAIM['theirs']}."))

# %%
if not primary_only:
    fig = vz.plot_rho_groups(rho, correct, title=f"T = {passes}, p = {dropout}, {layer}")

# %% [markdown]
# ### Fig. 4, replicated
#
# The correctly classified image with the highest repeatability (a tumour slice where there is one)
# and the misclassified image with the lowest: input (tumour outline in red on synthetic data),
# deterministic map, the first MC maps with their $\rho$ against the deterministic map, and the
# mean and standard deviation of the $T$ MC maps. On synthetic data the titles also give the share
# of the map's mass inside the tumour mask (white outline). Cases are picked by
# `studies.mri.pick_cases`, assembled by `studies.mri.fig4_case` and drawn by `viz.mri.plot_fig4`.

# %%
def case_title(i):
    return f"true {classes[test_set.y[i]]}\npred {classes[pred[i]]} ({float(det_probs[i, pred[i]]):.2f})"


def mask_of(i):
    return None if test_set.mask is None else test_set.mask[i]


if not primary_only:
    cases = [sm.fig4_case(study, i, gray[i], case_title(i), passes=passes, mask=mask_of(i))
             for i in sm.pick_cases(rho, correct, test_set.y, avoid_class=no_tumour)]
    fig = vz.plot_fig4(cases, n_mc=4)

# %% [markdown]
# ## Where Grad-CAM is taken: before or after the last block's dropout
#
# The same model, the same images and the same seeded passes, with Grad-CAM taken at the two points
# described above (`studies.mri.variant_record`). Undefined passes (constant maps) are counted per
# group rather than silently skipped.

# %%
variants = {explain_point: sm.variant_record(study, correct, passes, test_set.group, seed=seed)}
if not primary_only:
    other = [v for v in EXPLAIN_POINTS if v != explain_point][0]
    other_layer = explained_layer(model, GRADCAM_LAYER, other)
    other_study = sm.MCStudy(**cache.cached("mri_mc_dropout/study", dict(study_config, layer=other_layer, passes=passes),
                                            lambda: sm.mc_study(model, test_set.x, other_layer, passes, p=dropout,
                                                                seed=seed)._asdict()))
    by_point = {explain_point: study, other: other_study}
    variants[other] = sm.variant_record(other_study, correct, passes, test_set.group, seed=seed)
    variants = {k: variants[k] for k in EXPLAIN_POINTS}
    display(report.table(sm.variants_table(variants), "explain_point_variants"))
    fig = vz.plot_variants({k: by_point[k].repeatability(passes) for k in EXPLAIN_POINTS}, correct,
                           titles={k: f"{k} ({explained_layer(model, GRADCAM_LAYER, k)})" for k in EXPLAIN_POINTS})
    display(Markdown(" ".join(
        f"**{k}**: AUROC {v['auroc']:.3f} (95% CI {v['auroc_ci95'][0]:.3f} to {v['auroc_ci95'][1]:.3f}), "
        f"difference {v['effect']:+.3f} (95% CI {v['ci95'][0]:+.3f} to {v['ci95'][1]:+.3f}): {v['verdict']}; "
        f"undefined passes {v['degenerate_passes']['correct']} (correct) / {v['degenerate_passes']['misclassified']} "
        f"(misclassified) of {v['degenerate_passes']['passes_per_image']} per image."
        for k, v in variants.items())))

# %% [markdown]
# ## Why are some errors so repeatable?
#
# A repeatable explanation of a wrong answer is possible when the model is *consistently* wrong: the
# dropout sub-networks agree on the same (wrong) evidence. The table splits the images by true class,
# predicted (= explained) class, the generator's borderline flag (`ambiguous`: faint tumours, or a
# tumour with a neighbouring class's location or look), the tumour's contrast and its size (terciles
# of the mask area), and gives $\rho$ of correct and misclassified images within each level
# (`studies.mri.strata_table`; descriptive, the strata are small). An AUROC below 0.5 means the
# errors of that stratum are the more repeatable ones. Below it: the three most repeatable errors.
#
# **What to look for.** Grad-CAM explains the *predicted* class. If many errors are predicted as one
# class whose maps are broad and stable (on the phantom: "no tumour", whose evidence is the whole
# healthy brain), the errors as a group look repeatable even if, *within* each predicted class,
# correct answers are the more repeatable ones — a composition effect (Simpson's paradox), not
# evidence against the paper's idea. The sentence under the table says, with this run's numbers,
# how many errors are explained as which class and what the AUROC is within predicted classes.

# %%
reversal = None
if not primary_only:
    strata = {"true class": [classes[int(k)] for k in test_set.y], "predicted class": [classes[int(k)] for k in pred]}
    if attrs is not None:
        tumour_slice = attrs["y"] != no_tumour
        strata["borderline (generator)"] = ["ambiguous" if bool(a) else "typical" if bool(t) else "no tumour"
                                            for a, t in zip(attrs["ambiguous"], tumour_slice)]
        strata["contrast"] = ["faint" if bool(f) else "clear" if bool(t) else "no tumour"
                              for f, t in zip(attrs["faint"], tumour_slice)]
    if test_set.mask is not None:
        area = test_set.mask.flatten(1).double().mean(1)
        strata["tumour size"] = sm.tercile_labels(area, valid=area > 0, missing="no tumour")
    strata_tab = sm.strata_table(rho, correct, strata)
    display(report.table(strata_tab.round(3), "strata"))
    within = strata_tab.loc["predicted class"]
    w = (within["n_correct"] * within["n_mis"]).astype(float)
    w_auc = float((within["AUROC"].fillna(0) * w).sum() / w[within["AUROC"].notna()].sum())
    err_pred = pd.Series([classes[int(k)] for k in pred[~correct]]).value_counts()
    top_pred = err_pred.index[0]
    k_top = classes.index(top_pred)
    sel_err, sel_ok = (~correct) & (pred == k_top), correct & (pred == k_top)
    display(Markdown(
        f"{int(err_pred.iloc[0])} of {int((~correct).sum())} errors are predicted as **{top_pred}**. Maps explained "
        f"as {top_pred}: mean ρ {float(rho[sel_err].nanmean()):.3f} for the errors and "
        f"{float(rho[sel_ok].nanmean()):.3f} for correct {top_pred} predictions; maps of correct predictions of the "
        f"other classes: {float(rho[correct & (pred != k_top)].nanmean()):.3f}. Overall AUROC {primary['auroc']:.3f}; "
        f"within predicted classes (weighted by n_correct × n_mis) {w_auc:.3f}: the closer this is to 0.5, the more "
        f"of the overall difference comes from *which class is explained* rather than from being right or wrong."))
    reversal = {"n_mis": int((~correct).sum()), "most_common_error_prediction": top_pred,
                "n_errors_with_that_prediction": int(err_pred.iloc[0]),
                "rho_errors_that_prediction": float(rho[sel_err].nanmean()),
                "rho_correct_that_prediction": float(rho[sel_ok].nanmean()),
                "rho_correct_other_predictions": float(rho[correct & (pred != k_top)].nanmean()),
                "auroc_within_predicted_class": w_auc}
    errs = sm.most_repeatable_errors(rho, correct, 3)
    fig = vz.plot_fig4([sm.fig4_case(study, i, gray[i], case_title(i), passes=passes, mask=mask_of(i)) for i in errs],
                       n_mc=4)

# %% [markdown]
# ## Are the maps right? Fidelity against the tumour mask
#
# A map can be repeatable and point at the wrong place. The phantom knows where the tumour is, so
# for tumour slices we measure (`studies.mri.fidelity_scores`, `fidelity_summary`): the share of the
# deterministic map's mass inside the tumour mask (`metrics.mass_in_mask`, the "energy-based pointing
# game") against the mask's area share, which is what a uniform map scores (chance); the pointing
# game {cite:p}`zhang2018excitation` (is the map's maximum inside the tumour, `metrics.pointing_game`); the IoU / Dice of the
# map's top 10% region with the mask. Intervals are bootstrap 95% intervals over images.
#
# **Deletion / insertion** ({cite:t}`petsiuk2018rise`, `studies.mri.deletion_insertion`): pixels are
# replaced by a blurred copy of the image in the map's order (deletion: the explained class's
# probability should fall fast, low area) or revealed on the blurred image in that order
# (insertion: it should rise fast, high area), against a random order of the same pixels.

# %%
fidelity = fid_scores = None
if not primary_only and test_set.mask is not None:
    fid_scores = sm.fidelity_scores(study.det_map, test_set.mask)
    fidelity = sm.fidelity_summary(fid_scores, test_set.y, classes, seed=seed)
    di = sm.deletion_insertion(model, test_set.x, study.det_map, study.target, steps=deletion_steps, seed=seed)
    fidelity.update({f"{k}_auc": v for k, v in di["auc"].items() if "_random" not in k})
    fidelity.update({f"{k.replace('_random', '')}_auc_random": v for k, v in di["auc"].items() if "_random" in k})
    rows = {"all tumour slices": fidelity, **fidelity["per_class"]}
    display(report.table(pd.DataFrame({name: {"n": r["n"], "mass in mask": r["mass_in_mask"],
                                              "95% CI": f"[{r['mass_in_mask_ci95'][0]:.3f}, {r['mass_in_mask_ci95'][1]:.3f}]",
                                              "chance (area share)": r["chance"],
                                              "excess [95% CI]": f"{r['excess_over_chance']:+.3f} [{r['excess_ci95'][0]:+.3f}, "
                                                                 f"{r['excess_ci95'][1]:+.3f}]",
                                              "pointing game": r["pointing_game"], "IoU top 10%": r["iou_top10"],
                                              "Dice top 10%": r["dice_top10"]} for name, r in rows.items()}).T, "fidelity"))
    fig = vz.plot_perturbation_curves(di["fractions"], di["curves"], di["auc"])
    above = fidelity["mass_in_mask_ci95"][0] > fidelity["chance"]
    display(Markdown(
        f"Mass in the tumour mask {fidelity['mass_in_mask']:.3f} (95% CI {fidelity['mass_in_mask_ci95'][0]:.3f} to "
        f"{fidelity['mass_in_mask_ci95'][1]:.3f}) against chance {fidelity['chance']:.3f}: the interval lies "
        f"**{'above' if above else 'not above'}** chance. Deletion area {fidelity['deletion_auc']:.3f} vs "
        f"{fidelity['deletion_auc_random']:.3f} for a random order; insertion area {fidelity['insertion_auc']:.3f} "
        f"vs {fidelity['insertion_auc_random']:.3f}."))

# %% [markdown]
# ### Sanity check: cascading parameter randomisation
#
# {cite:t}`adebayo2018sanity`: if the maps hardly change when the trained weights are replaced by random
# ones, they show the input (or the architecture), not what the model learned. We re-initialise the
# convolution and linear weights from the head down (`fc`, then `layer4`, `layer3`, … cumulatively;
# `studies.mri.cascading_randomisation`) and give the median Spearman $\rho$ of each randomised
# model's deterministic map with the trained model's, on `n_sanity` evenly spaced test images. The
# check passes when every median stays below 0.5 (`studies.mri.SANITY_THRESHOLD`).

# %%
sanity = None
if not primary_only:
    sub = torch.linspace(0, len(test_set) - 1, min(n_sanity, len(test_set))).round().long()
    sc = sm.cascading_randomisation(model, test_set.x[sub], layer, study.target[sub], seed=seed)
    sanity = {"cascading": sc["steps"], "passes": sc["passes"]}
    display(report.table(pd.DataFrame(sc["steps"]).set_index("randomised_from").round(3).T, "sanity_cascading"))
    show = [int(j) for j in sm.pick_cases(rho[sub], correct[sub], test_set.y[sub], avoid_class=no_tumour)]
    fig = vz.plot_sanity([gray[sub[j]] for j in show], [m[show] for m in sc["maps"]],
                         ["trained"] + [f"random from\n{s['randomised_from']}" for s in sc["steps"]],
                         masks=[mask_of(int(sub[j])) for j in show],
                         row_titles=[case_title(int(sub[j])).replace("\n", ", ") for j in show])
    display(Markdown(f"Grad-CAM at `{layer}` **{'passes' if sc['passes'] else 'fails'}** the cascading check "
                     f"(largest median ρ {max(s['spearman_to_trained'] for s in sc['steps']):.3f}, threshold "
                     f"{sm.SANITY_THRESHOLD}; a constant randomised map counts as ρ = 0: "
                     + ", ".join(f"{s['constant_maps']} of {len(sub)} after {s['randomised_from']}" for s in sc["steps"])
                     + ")."))

# %% [markdown]
# ### Which layer can be right?
#
# At 32 × 32 px the `layer4` maps are 4 × 4 and cover most of the brain; finer stages have finer
# maps. For each stage the table gives the map size, the fidelity of its deterministic map (tumour
# slices) and its stability ($\rho$ over `layer_passes` passes, AUROC correct vs misclassified) on
# the sweep subset (`studies.mri.layer_table`). The chapter's headline stays at `layer4` (the
# paper's choice); the table shows what a finer layer would change.

# %%
sweep_idx = sm.sweep_subset(correct, n_sweep)
if not primary_only:
    layer_names = [explained_layer(model, s, explain_point) for s in layer_stages]
    layer_tab, _ = sm.layer_table(model, test_set.x[sweep_idx], None if test_set.mask is None else test_set.mask[sweep_idx],
                                  correct[sweep_idx], layer_names, layer_passes, p=dropout, seed=seed + 2)
    display(report.table(layer_tab.round(3), "layer_choice"))

# %% [markdown]
# ### Stable and right?
#
# Per tumour slice: fidelity (mass in the mask) against stability ($\rho$), coloured by correct /
# misclassified, and their Spearman correlation across images with a bootstrap 95% interval
# (`studies.mri.fidelity_vs_stability`): is a stable map more often a right map?

# %%
fvs = None
if fid_scores is not None:
    fvs = sm.fidelity_vs_stability(fid_scores["mass"], rho, seed=seed)
    fig = vz.plot_fidelity_vs_stability(fid_scores["mass"], rho, correct, chance=fidelity["chance"],
                                        title=f"Spearman {fvs['spearman']:.2f} [{fvs['ci95'][0]:.2f}, {fvs['ci95'][1]:.2f}], "
                                              f"n = {fvs['n']}")

# %% [markdown]
# ## Predictive vs explanation uncertainty
#
# The same passes also give predictive uncertainty: the MC mean probability
# $\bar p = \frac1T\sum_t p^{(t)}$, its entropy $H[\bar p]$ (total uncertainty) and the mutual
# information $\mathrm{MI} = H[\bar p] - \frac1T\sum_t H[p^{(t)}]$ (the part due to disagreement
# between passes, the epistemic part). Does $\rho$ tell us something the probabilities do not?
# The table gives each score's AUROC for telling correct from misclassified images (scores
# oriented so that higher = more confident) and its rank correlation with $\rho$ across images
# (`studies.mri.uncertainty_table`; entropy and mutual information from `uqxai_lib.metrics`).

# %%
mc_mean = mc_probs.mean(0)
entropy = metrics.predictive_entropy(mc_probs)
mi = metrics.mutual_information(mc_probs)
mc_conf = mc_mean.max(1).values
mc_accuracy = float((mc_mean.argmax(1) == test_set.y).float().mean())
if not primary_only:
    unc_table = sm.uncertainty_table(rho, {"−entropy": -entropy, "−mutual information": -mi,
                                           "MC mean max probability": mc_conf}, correct)
    fig = vz.plot_rho_vs_uncertainty(rho, {"predictive entropy": entropy, "mutual information": mi,
                                           "MC mean max probability": mc_conf}, correct,
                                     spearman={"predictive entropy": -unc_table.loc["−entropy", "Spearman with ρ"],
                                               "mutual information": -unc_table.loc["−mutual information", "Spearman with ρ"],
                                               "MC mean max probability": unc_table.loc["MC mean max probability",
                                                                                        "Spearman with ρ"]})
    display(report.table(unc_table.round(3), "prediction_uncertainty"))
    display(Markdown(f"Accuracy of the MC mean prediction: {100 * mc_accuracy:.1f} % (dropout off: {100 * accuracy:.1f} %)."))

# %% [markdown]
# ### Secondary comparisons
#
# Each correct − misclassified, with its bootstrap 95% interval, a Mann–Whitney p-value and the
# Holm-adjusted p-value over the rows (`studies.mri.secondary_records`, `stats.holm`); verdicts
# from the intervals.

# %%
secondary = None
if not primary_only:
    comps = {f"ρ at {other} ({other_layer})": sm.compare(other_study.repeatability(passes), correct, test_set.group, seed=seed),
             "−predictive entropy": sm.compare(-entropy, correct, test_set.group, seed=seed),
             "−mutual information": sm.compare(-mi, correct, test_set.group, seed=seed)}
    if fid_scores is not None:
        comps["mass in tumour mask (tumour slices)"] = sm.compare(fid_scores["mass"], correct, test_set.group, seed=seed)
    secondary = sm.secondary_records(comps)
    display(report.table(pd.DataFrame(secondary).set_index("name").round(4), "secondary"))

# %% [markdown]
# ## Cautious abstention
#
# A cautious model answers only when it is confident and passes the rest to a radiologist. Sorting
# the test images by a confidence score and answering the most confident share (the *coverage*)
# gives an accuracy–coverage curve; the area under the risk–coverage curve (AURC
# {cite:p}`geifman2019aurc`, risk = 1 −
# accuracy, `metrics.aurc`) summarises it, lower is better. We compare abstaining on low $\rho$
# (the paper's suggestion), on high entropy, on high mutual information, and on a combination of
# explanation and prediction uncertainty (the average of the normalised ranks of $\rho$ and
# −entropy). The oracle ranks every error last; a random order has an expected AURC equal to the
# error rate. Curves and AURC: `studies.mri.abstention` (on `metrics.risk_coverage` / `metrics.aurc`);
# the combined score is `metrics.rank_average`.

# %%
scores = {"ρ (explanation)": rho, "−entropy": -entropy, "−mutual information": -mi,
          "rank average (ρ, −entropy)": metrics.rank_average(rho.nan_to_num(-2.0), -entropy)}
curves, aurc_table = sm.abstention(correct, scores)
if not primary_only:
    fig = vz.plot_abstention(curves, aurc=aurc_table["AURC"].to_dict())
    display(report.table(aurc_table.round(4), "abstention_aurc"))

# %% [markdown]
# ## Sweeps
#
# **Pass count.** The first $T$ passes of the run above give $\rho$ for every $T$ in `t_grid`
# (no new passes needed). **Dropout rate.** For each $p$ in `p_grid` we rerun the passes on a subset
# of `n_sweep` test images that keeps every misclassified image and fills up with evenly spaced
# correct ones. How do the gap in $\rho$ and the AUROC move, and how many passes does the per-image
# estimate need to settle? (Third panel: mean absolute change of $\rho_T$ against the longest run,
# and the share of images within 0.02 of it.) Steps: `studies.mri.prefix_repeatability`,
# `studies.mri.sweep_subset`, `studies.mri.sweep_table` and `studies.mri.settling`.

# %%
if not primary_only:
    prefix = sm.prefix_repeatability(study.rho, t_grid)
    t_table = sm.sweep_table({int(t): r for t, r in zip(t_grid, prefix)}, {int(t): correct for t in t_grid}, "passes T")
    settle = sm.settling(prefix, t_grid)
    sweep_passes = max(passes, max(widget_passes))
    sweep_config = dict(study_config, subset=sweep_idx.tolist(), passes=sweep_passes, p_grid=list(p_grid))
    p_runs = {p: sm.MCStudy(**r) for p, r in cache.cached("mri_mc_dropout/p_sweep", sweep_config, lambda: {
        float(p): sm.mc_study(model, test_set.x[sweep_idx], layer, sweep_passes, p=p, seed=seed + 1)._asdict()
        for p in p_grid}).items()}
    p_table = sm.sweep_table({p: r.repeatability(passes) for p, r in p_runs.items()},
                             {p: correct[sweep_idx] for p in p_runs}, "dropout p")
    fig = vz.plot_sweeps(p_table, t_table, settle)
    display(report.table(p_table.round(3), "sweep_dropout_rate"))
    display(report.table(t_table.round(3), "sweep_passes"))
    display(report.table(settle.round(3), "settling"))

# %% [markdown]
# ### Explore: dropout rate × passes
#
# The widget shows, for the most repeatable correct and the least repeatable misclassified image of
# the sweep subset, the mean and the standard deviation of the first $T$ MC maps at each dropout
# rate, with $\rho$ and the MC prediction. The frames are precomputed (`studies.mri.mc_frame_items`
# gathers their data, `viz.mri.mc_frames` draws them), so the sliders also work in the static book.

# %%
if not primary_only:
    cols = sm.pick_cases(p_runs[float(dropout)].repeatability(passes) if float(dropout) in p_runs else rho[sweep_idx],
                         correct[sweep_idx], test_set.y[sweep_idx], avoid_class=no_tumour)
    shown = [int(sweep_idx[j]) for j in cols]
    frames = vz.mc_frames(sm.mc_frame_items(p_runs, cols, widget_passes, [gray[i] for i in shown],
                                            [f"true {classes[test_set.y[i]]}" for i in shown], classes,
                                            masks=None if test_set.mask is None else [test_set.mask[i] for i in shown]))
    display(widgets.frame_grid(frames, list(p_grid), list(widget_passes), descriptions=("dropout p", "passes T")))

# %% [markdown]
# ## Caveats
#
# - **Synthetic data by default.** The phantom is built so that the classes differ in where and how
#   the tumour looks; its errors come from deliberately borderline cases. Real SARTAJ errors have
#   other causes (slice orientation, contrast, duplicated images). Numbers here are not the paper's.
# - **Small model in the quick profiles.** ResNet18-style and narrow, on small images; `layer4` maps
#   are coarse ($h \times w$ = input / 8), and Spearman on upsampled coarse maps has many ties.
# - **The result depends on the trained model.** Repeatability says how stable the explanation of
#   *this* network is. In our trials, a network trained for a shorter time made errors that were
#   stable under dropout (high $\rho$) and whose MC mean prediction was much worse than the
#   deterministic one; there $\rho$ did not flag the errors. Check the accuracy of the MC mean
#   prediction beside the table before trusting $\rho$ as an error signal.
# - **Few misclassified images.** The statistics of the misclassified group rest on the number shown
#   in the table; the intervals show how noisy the p-values and AUROCs are at that size, and the
#   robustness chapter repeats the primary comparison over training seeds.
# - **Rate used in training vs sampling.** The quick profiles train at `train_dropout` and sample at
#   `dropout`; the dropout sweep shows how much that choice matters.
# - **Reference map.** $\rho$ is measured against the deterministic map, as in the paper; the mean
#   MC map ({cite:t}`salvi2025explainability` also mention it) is another valid reference.
# - **Where the map is taken decides part of the spread.** After the last block's dropout
#   (`post_dropout`) every pass shares one gradient and the spread is the explained layer's own
#   dropout mask; before it (`pre_dropout`, our default) the mask acts through the gradient. The
#   variants table shows how much the result moves with this choice; report it with any $\rho$.
# - **A repeatable error is not a contradiction.** When the model is consistently wrong (a faint
#   tumour read as no tumour, a tumour read as its neighbouring class), every dropout sub-network
#   agrees on the same wrong evidence and $\rho$ is high. The strata table shows which predicted
#   class and which kind of case the repeatable errors come from; on real data, check the same
#   split before reading a low $\rho$ as "the model is unsure".
# - **Stable is not right.** The fidelity section measures whether the maps land on the tumour;
#   where they do not, $\rho$ measures the stability of maps that do not show the evidence.
# - **Verdicts come from intervals.** "higher", "lower" or "no detectable difference" is read
#   from the bootstrap 95% interval of the primary effect (`stats.verdict`), never from comparing two
#   means; with few misclassified images the interval is wide.

# %% [markdown]
# ## Summary

# %%
d = cmp.as_dict()
aurc = aurc_table["AURC"].to_dict()
best = min((k for k in aurc if k in scores), key=aurc.get)
lines = [
    f"- The {arch} with {n_drop} dropout layers reached {100 * accuracy:.1f} % test accuracy "
    f"({d['n_b']} misclassified of {len(correct)}; per class "
    + ", ".join(f"{c} {100 * class_table.loc[c, 'accuracy']:.0f} %" for c in classes) + ").",
    f"- Primary (Grad-CAM at `{layer}`, T = {passes}, p = {dropout}): " + sm.verdict_sentence(primary),
    f"- For abstention the lowest AURC came from **{best}** ({aurc[best]:.4f}); ρ alone: "
    f"{aurc['ρ (explanation)']:.4f}, entropy: {aurc['−entropy']:.4f} (oracle {aurc['oracle (knows the errors)']:.4f}, "
    f"random {aurc['random (expected)']:.4f}).",
]
if not primary_only:
    lines.append("- Where Grad-CAM is taken: " + "; ".join(
        f"{k}: AUROC {v['auroc']:.3f} [{v['auroc_ci95'][0]:.3f}, {v['auroc_ci95'][1]:.3f}], {v['verdict']}"
        for k, v in variants.items()) + (". The verdict is the same at both points."
                                         if len({v["verdict"] for v in variants.values()}) == 1
                                         else ". The verdict depends on where Grad-CAM is taken."))
    lines.append(f"- Across dropout rates the gap in ρ was largest at p = {p_table['gap'].idxmax()} "
                 f"({p_table['gap'].max():+.3f}) and smallest at p = {p_table['gap'].idxmin()} ({p_table['gap'].min():+.3f}).")
if fidelity is not None:
    lines.append(f"- Fidelity: mass in the tumour mask {fidelity['mass_in_mask']:.3f} "
                 f"[{fidelity['mass_in_mask_ci95'][0]:.3f}, {fidelity['mass_in_mask_ci95'][1]:.3f}] vs chance "
                 f"{fidelity['chance']:.3f}; pointing game {fidelity['pointing_game']:.2f}; deletion area "
                 f"{fidelity['deletion_auc']:.3f} (random {fidelity['deletion_auc_random']:.3f}); the maps are "
                 f"{'on the tumour more often than a uniform map (interval above chance), though most of their mass lies outside it' if fidelity['mass_in_mask_ci95'][0] > fidelity['chance'] else 'not clearly on the tumour, so ρ measures the stability of maps that mostly do not show the evidence'}.")
if reversal is not None:
    lines.append(f"- Where the reversal comes from: {reversal['n_errors_with_that_prediction']} of {reversal['n_mis']} errors are "
                 f"explained as **{reversal['most_common_error_prediction']}**, whose maps are very repeatable whether the "
                 f"answer is right or wrong (ρ {reversal['rho_errors_that_prediction']:.3f} vs "
                 f"{reversal['rho_correct_that_prediction']:.3f}); within predicted classes the AUROC is "
                 f"{reversal['auroc_within_predicted_class']:.3f} against {primary['auroc']:.3f} overall.")
if sanity is not None:
    lines.append(f"- Sanity check (cascading randomisation): {'passed' if sanity['passes'] else 'failed'}.")
if fvs is not None:
    lines.append(f"- Fidelity vs stability across images: Spearman {fvs['spearman']:.2f} "
                 f"[{fvs['ci95'][0]:.2f}, {fvs['ci95'][1]:.2f}].")
display(Markdown("\n".join(lines)))

# %%
results = sm.headline(accuracy=accuracy, passes=passes, dropout=dropout, comparison=cmp, aurc=aurc,
                      extra=dict(mc_accuracy=mc_accuracy, n_test=len(test_set), explained_layer=layer,
                                 explain_point=explain_point))
extra = {"primary": primary, "claim": sm.CLAIM, "variants": variants,
         "per_class_accuracy": {c: float(class_table.loc[c, "accuracy"]) for c in classes},
         "training": {"epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
                      "best_val_loss": min(h["val_loss"] for h in fit.history),
                      "last_train_loss": fit.history[-1]["train_loss"]}}
if secondary is not None:
    extra["secondary"] = secondary
if fidelity is not None:
    extra["fidelity"] = fidelity
if sanity is not None:
    extra["sanity"] = sanity
if fvs is not None:
    extra["fidelity_vs_stability"] = fvs
if reversal is not None:
    extra["reversal"] = reversal
results.update(cache.round_sig(cache.finite_or_none(extra)))
report.save_tables(results_path)
cache.atomic_write_json(results_path, results)

# %% [markdown]
# ## What's next
#
# - Run with `data_dir` pointing at SARTAJ and the `full` profile on a GPU to compare with the
#   paper at its own scale.
# - The ECG chapter measures the same idea with test-time noise instead of dropout (aleatoric
#   rather than epistemic uncertainty); the dermoscopy chapter uses a Rashomon set of pruned models.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

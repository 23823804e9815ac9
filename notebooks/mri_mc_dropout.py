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
# tumour. Grad-CAM shows where it looked. Salvi et al. (2025, section 4.2) ask a second question:
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
# 4. check how the result depends on the dropout rate and the number of passes.

# %% [markdown]
# ## Prerequisites
#
# | Concept | Importance | Notes |
# | --- | --- | --- |
# | Grad-CAM | necessary | see the methods page and the primer chapter |
# | Dropout, MC dropout (Gal & Ghahramani 2016) | necessary | dropout kept on at test time |
# | Spearman rank correlation | necessary | Pearson correlation of ranks |
# | Mann–Whitney U, AUROC | helpful | for the table's statistics |
# | Entropy, mutual information | helpful | predictive uncertainty of the MC passes |
#
# **Time to run:** on two otherwise idle CPU cores about a minute from a cold cache for `smoke`
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
# model and training
arch = 'resnet18'
width = 8
small_input = True
weights = None
train_dropout = 0.1
epochs = 10
patience = 4
batch_size = 32
lr = 0.002
# study
passes = 20
dropout = 0.1
t_grid = [2, 5, 10, 20, 50]
p_grid = [0.05, 0.1, 0.2, 0.3, 0.5]
n_sweep = 120
widget_passes = [1, 2, 5, 10, 20]

# %%
import time

import pandas as pd
import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, train, widgets
from uqxai_lib.data.sartaj import load_sartaj, stratified_holdout
from uqxai_lib.data.synthetic_mri import denormalize, make_synthetic_mri
from uqxai_lib.models.resnet_mc import GRADCAM_LAYER, build_resnet_mc, dropout_layers, weights_fingerprint
from uqxai_lib.utils import pick_device, resolve_data_dir, seed_everything
from uqxai_lib.studies import mri as sm
from uqxai_lib.viz import mri as vz

t_start = time.perf_counter()
dev = pick_device(device)
seed_everything(seed)
root = resolve_data_dir(data_dir)
print(f"device: {dev}; data: {'SARTAJ from ' + str(root) if root else 'synthetic phantom (embedded)'}")

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
# With `data_dir` set, the same code reads SARTAJ: the `Testing` folder (394 images) is the test
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
else:
    parts = load_sartaj(root, size=image_size, seed=seed)
    train_set, val_set, test_set = parts["train"], parts["val"], parts["test"]
    data_config = dict(source=str(root), size=image_size, seed=seed)
if len(test_set) > max_test:  # an evenly spaced subset keeps the class mix
    test_set = test_set.subset(torch.linspace(0, len(test_set) - 1, max_test).round().long())
classes = list(train_set.classes)
pd.DataFrame({name: {**{c: int((s.y == k).sum()) for k, c in enumerate(classes)}, "total": len(s)}
              for name, s in [("train", train_set), ("validation", val_set), ("test (studied)", test_set)]}).T

# %%
first = [int(torch.nonzero(test_set.y == k)[0]) for k in range(len(classes))]
fig = vz.plot_gallery(denormalize(test_set.x[first]), classes,
                      masks=None if test_set.mask is None else test_set.mask[first])

# %% [markdown]
# ## Model
#
# The paper adds "dropout layers (rate = 0.5) after each residual block" of a ResNet50, which makes
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
fig = vz.plot_confusion(summary["confusion"], classes, title="test set, dropout off")

# %% [markdown]
# ## Deterministic vs MC-dropout Grad-CAM
#
# For each test image we run $T$ = `passes` stochastic forward passes with every dropout layer on
# at rate $p$ = `dropout` (BatchNorm stays in evaluation mode, so the passes differ only by their
# dropout masks), and compute Grad-CAM at `layer4` in each pass, always for the class the
# *deterministic* model predicts. The deterministic map $M^{\mathrm{det}}$ comes from the ordinary
# forward with dropout off. All maps are upsampled to the input size, as when they are shown.
#
# We run $\max(T, \max T_{\text{grid}})$ passes once: the first $T$ give the main result and
# prefixes give the pass-count sweep below for free. The step lives in `uqxai_lib.studies.mri.mc_study`
# (it calls `uqxai_lib.samplers.mc_dropout` and `uqxai_lib.saliency.grad_cam`, and scores each pass
# with `uqxai_lib.metrics.spearman`); the figures of this chapter are drawn by `uqxai_lib.viz.mri`.

# %%
study_passes = max(passes, max(t_grid))
study_config = dict(data=data_config, model=model_config, weights=weights_fingerprint(model), n_test=len(test_set),
                    passes=study_passes, p=dropout, seed=seed, layer=GRADCAM_LAYER)
t0 = time.perf_counter()
study = sm.MCStudy(**cache.cached("mri_mc_dropout/study", study_config, lambda: sm.mc_study(
    model, test_set.x, GRADCAM_LAYER, study_passes, p=dropout, seed=seed)._asdict()))
print(f"{study_passes} passes x {len(test_set)} images: {time.perf_counter() - t0:.1f} s")
rho = study.repeatability(passes)
mc_probs = study.probs[:passes]

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
gray = denormalize(test_set.x)
no_tumour = classes.index("no_tumor") if "no_tumor" in classes else None
cases = [sm.fig4_case(study, i, gray[i], f"true {classes[test_set.y[i]]}\npred {classes[pred[i]]} "
                      f"({float(det_probs[i, pred[i]]):.2f})", passes=passes,
                      mask=None if test_set.mask is None else test_set.mask[i])
         for i in sm.pick_cases(rho, correct, test_set.y, avoid_class=no_tumour)]
fig = vz.plot_fig4(cases, n_mc=4)

# %% [markdown]
# ## Repeatability of correct and misclassified images
#
# The repeatability of image $b$ is the mean Spearman correlation between its MC maps and its
# deterministic map (`metrics.repeatability`; a pass whose map is constant has no rank order and is
# skipped),
#
# $$
# \rho_b = \frac{1}{T}\sum_{t=1}^{T} \rho_S\big(M^{(t)}_b, M^{\mathrm{det}}_b\big).
# $$
#
# Correct vs misclassified refers to the deterministic prediction (the one the explanation is
# about). The Mann–Whitney U test is two-sided; the AUROC is the probability that a random correct
# image has a higher $\rho$ than a random misclassified one (0.5 = no separation). The paper's
# columns are theirs (real SARTAJ, ResNet50 at 224 px), shown only for orientation. The table is
# `studies.mri.repeatability_table` (via `metrics.compare_groups`).

# %%
table, cmp = sm.repeatability_table(rho, correct)
table

# %%
fig = vz.plot_rho_groups(rho, correct, title=f"T = {passes}, p = {dropout}")
d = cmp.as_dict()
verdict = "higher" if d["mean_a"] > d["mean_b"] else "not higher"
display(Markdown(
    f"Correct images: ρ = {d['mean_a']:.3f} ± {d['sd_a']:.3f} (n = {d['n_a']}); misclassified: "
    f"ρ = {d['mean_b']:.3f} ± {d['sd_b']:.3f} (n = {d['n_b']}). Repeatability is **{verdict}** for correct "
    f"images; Mann–Whitney p = {d['mwu_p']:.2g}, AUROC = {d['auroc']:.3f}. The paper (theirs): 0.76 ± 0.08 vs "
    f"0.54 ± 0.12."))

# %% [markdown]
# On the synthetic phantom we also know where the tumour is. The table gives the mean share of
# each map's mass that falls inside the tumour mask, for tumour slices; the last column is what a
# uniform map would get (`studies.mri.mask_overlap_table`, scored with `metrics.mass_in_mask` after
# upsampling the maps to the mask).

# %%
if test_set.mask is not None:
    display(sm.mask_overlap_table(study.det_map, study.maps[:passes].mean(0), test_set.mask, correct).round(3))
else:
    display(Markdown("SARTAJ has no tumour masks, so the overlap table is skipped."))

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
unc_table = sm.uncertainty_table(rho, {"−entropy": -entropy, "−mutual information": -mi,
                                       "MC mean max probability": mc_conf}, correct)
fig = vz.plot_rho_vs_uncertainty(rho, {"predictive entropy": entropy, "mutual information": mi,
                                       "MC mean max probability": mc_conf}, correct,
                                 spearman={"predictive entropy": -unc_table.loc["−entropy", "Spearman with ρ"],
                                           "mutual information": -unc_table.loc["−mutual information", "Spearman with ρ"],
                                           "MC mean max probability": unc_table.loc["MC mean max probability", "Spearman with ρ"]})
display(unc_table.round(3))
mc_accuracy = float((mc_mean.argmax(1) == test_set.y).float().mean())
display(Markdown(f"Accuracy of the MC mean prediction: {100 * mc_accuracy:.1f} % (dropout off: {100 * accuracy:.1f} %)."))

# %% [markdown]
# ## Cautious abstention
#
# A cautious model answers only when it is confident and passes the rest to a radiologist. Sorting
# the test images by a confidence score and answering the most confident share (the *coverage*)
# gives an accuracy–coverage curve; the area under the risk–coverage curve (AURC, risk = 1 −
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
fig = vz.plot_abstention(curves, aurc=aurc_table["AURC"].to_dict())
aurc_table.round(4)

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
prefix = sm.prefix_repeatability(study.rho, t_grid)
t_table = sm.sweep_table({int(t): r for t, r in zip(t_grid, prefix)}, {int(t): correct for t in t_grid}, "passes T")
settle = sm.settling(prefix, t_grid)
sweep_idx = sm.sweep_subset(correct, n_sweep)
sweep_passes = max(passes, max(widget_passes))
sweep_config = dict(study_config, subset=sweep_idx.tolist(), passes=sweep_passes, p_grid=list(p_grid))
t0 = time.perf_counter()
p_runs = {p: sm.MCStudy(**r) for p, r in cache.cached("mri_mc_dropout/p_sweep", sweep_config, lambda: {
    float(p): sm.mc_study(model, test_set.x[sweep_idx], GRADCAM_LAYER, sweep_passes, p=p, seed=seed + 1)._asdict()
    for p in p_grid}).items()}
print(f"dropout sweep: {len(p_grid)} rates x {sweep_passes} passes x {len(sweep_idx)} images: "
      f"{time.perf_counter() - t0:.1f} s")
p_table = sm.sweep_table({p: r.repeatability(passes) for p, r in p_runs.items()},
                         {p: correct[sweep_idx] for p in p_runs}, "dropout p")
fig = vz.plot_sweeps(p_table, t_table, settle)
display(p_table.round(3))
display(t_table.round(3))
display(settle.round(3))

# %% [markdown]
# ### Explore: dropout rate × passes
#
# The widget shows, for the most repeatable correct and the least repeatable misclassified image of
# the sweep subset, the mean and the standard deviation of the first $T$ MC maps at each dropout
# rate, with $\rho$ and the MC prediction. The frames are precomputed (`studies.mri.mc_frame_items`
# gathers their data, `viz.mri.mc_frames` draws them), so the sliders also work in the static book.

# %%
cols = sm.pick_cases(p_runs[float(dropout)].repeatability(passes) if float(dropout) in p_runs else rho[sweep_idx],
                     correct[sweep_idx], test_set.y[sweep_idx], avoid_class=no_tumour)
shown = [int(sweep_idx[j]) for j in cols]
frames = vz.mc_frames(sm.mc_frame_items(p_runs, cols, widget_passes, [gray[i] for i in shown],
                                        [f"true {classes[test_set.y[i]]}" for i in shown], classes,
                                        masks=None if test_set.mask is None else [test_set.mask[i] for i in shown]))
widgets.frame_grid(frames, list(p_grid), list(widget_passes), descriptions=("dropout p", "passes T"))

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
#   in the table; the p-values and AUROCs are noisy at that size.
# - **Rate used in training vs sampling.** The quick profiles train at `train_dropout` and sample at
#   `dropout`; the dropout sweep shows how much that choice matters.
# - **Reference map.** $\rho$ is measured against the deterministic map, as in the paper; the mean
#   MC map (Salvi et al. also mention it) is another valid reference.

# %% [markdown]
# ## Summary

# %%
gap = d["mean_a"] - d["mean_b"]
aurc = aurc_table["AURC"].to_dict()
best = min((k for k in aurc if k in scores), key=aurc.get)
display(Markdown(
    f"- The {arch} with {n_drop} dropout layers reached {100 * accuracy:.1f} % test accuracy "
    f"({d['n_b']} misclassified of {len(correct)}).\n"
    f"- With T = {passes} passes at p = {dropout}, repeatability was {d['mean_a']:.3f} ± {d['sd_a']:.3f} for "
    f"correct and {d['mean_b']:.3f} ± {d['sd_b']:.3f} for misclassified images (gap {gap:+.3f}, AUROC "
    f"{d['auroc']:.3f}, Mann–Whitney p = {d['mwu_p']:.2g}); the paper (theirs) reports 0.76 ± 0.08 vs 0.54 ± 0.12.\n"
    f"- For abstention the lowest AURC came from **{best}** ({aurc[best]:.4f}); ρ alone: "
    f"{aurc['ρ (explanation)']:.4f}, entropy: {aurc['−entropy']:.4f}, mutual information: "
    f"{aurc['−mutual information']:.4f} (oracle {aurc['oracle (knows the errors)']:.4f}, random "
    f"{aurc['random (expected)']:.4f}).\n"
    f"- Across dropout rates the gap in ρ was largest at p = {p_table['gap'].idxmax()} "
    f"({p_table['gap'].max():+.3f}, AUROC {p_table.loc[p_table['gap'].idxmax(), 'auroc']:.3f}) and smallest at "
    f"p = {p_table['gap'].idxmin()} ({p_table['gap'].min():+.3f}).\n"
    f"- The per-image ρ changes by {settle.iloc[0, 0]:.3f} on average between T = {t_grid[0]} and "
    f"T = {t_grid[-1]} passes."))

# %%
results = sm.headline(accuracy=accuracy, passes=passes, dropout=dropout, comparison=cmp, aurc=aurc,
                      extra=dict(mc_accuracy=mc_accuracy, n_test=len(test_set)))
cache.atomic_write_json(results_path, results)
print(f"results -> {results_path}; notebook time {time.perf_counter() - t_start:.0f} s")

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
# - Salvi M, Seoni S, Campagner A, et al. Explainability and uncertainty: two sides of the same coin
#   for enhancing the interpretability of deep learning models in healthcare. *Int J Med Inform*
#   (2025). Section 4.2 and Fig. 4.
# - Gal Y, Ghahramani Z. Dropout as a Bayesian approximation: representing model uncertainty in deep
#   learning. *ICML* (2016).
# - Selvaraju RR, et al. Grad-CAM: visual explanations from deep networks via gradient-based
#   localization. *ICCV* (2017).
# - He K, Zhang X, Ren S, Sun J. Deep residual learning for image recognition. *CVPR* (2016).
# - Bhuvaji S, et al. Brain Tumor Classification (MRI). Kaggle (2020), doi:10.34740/KAGGLE/DSV/1183165.
# - Geifman Y, Uziel G, El-Yaniv R. Bias-reduced uncertainty estimation for deep neural classifiers.
#   *ICLR* (2019) (AURC).

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
# # Dermoscopy: model multiplicity and the Variable Importance Cloud
#
# ## Overview
#
# Many models fit a data set almost equally well (the *Rashomon set*
# {cite:p}`fisher2019mcr,semenova2022rashomon`), and their explanations can disagree. The Variable
# Importance Cloud (VIC) poster {cite:p}`vic_poster` builds nearly-optimal variants of one
# skin-lesion classifier by masking channels of its last convolutional layer, keeps the variants
# whose validation loss stays close to the optimum, and averages their Grad-CAM++ maps
# {cite:p}`chattopadhay2018gradcampp`. It reports
# that the averaged map (VIC) overlaps the lesion better than the single optimal model's map.
#
# In this chapter you will
#
# 1. train a classifier of benign versus malignant lesions (synthetic dermoscopy by default,
#    HAM10000 when you have it);
# 2. sample pruned models, measure their relative validation loss and keep the nearly-optimal ones;
# 3. sweep the prune ratio (poster Fig. 2) and see where the poster's choice $r = 0.6$ falls on our data;
# 4. build the VIC (consensus) and the variability of the kept models' Grad-CAM++ maps (poster Fig. 4);
# 5. measure the fidelity of the optimal model's map and of the VIC against the lesion mask with
#    IoU and Dice (poster Fig. 3), and check whether the poster's numbers can all hold at once;
# 6. build the variants under which the VIC can differ from the optimal map (pruning site, random
#    ratio, target, aggregation, a calibration-robust filter) and two controls (a blurred optimal
#    map, an ensemble of independently trained models);
# 7. check whether the maps are right at all: mass in the lesion mask against chance, pointing
#    game, deletion / insertion curves, a cascading-randomisation sanity check, and whether stable
#    VICs are the right ones.
#
# **The claim we test** ({cite:p}`vic_poster`; the idea of a variable-importance cloud over the
# set of good models is {cite:t}`dong2020vic`'s): the VIC's mean IoU with the lesion mask is
# *higher* than the optimal model's (theirs: IoU 0.385 → 0.408, DSC 0.878 → 0.923). **Primary
# comparison**, declared before any data are seen: the paired difference IoU(VIC) − IoU(optimal)
# per test image, its mean with a 95 % bootstrap interval over *lesions* (photos of one lesion are
# resampled together) and the Wilcoxon signed-rank p-value (`uqxai_lib.stats.paired_difference`);
# the verdict comes from the interval. Secondary: the same for Dice (Holm-adjusted).
#
# ## Prerequisites
#
# | Concept | Why |
# | --- | --- |
# | Grad-CAM / Grad-CAM++ | the explanation of every model (see the primer chapter) |
# | Cross-entropy, balanced accuracy, AUROC | model quality on an imbalanced task |
# | IoU and Dice of binary masks | fidelity of a map to the lesion |
# | Wilcoxon signed-rank test | paired comparison per image |
#
# Time to run: about a minute (`tiny`), under four minutes on a laptop CPU (`smoke`, the default),
# longer on a GPU for `full` (EfficientNet-B0 at 224 px, 500 candidate models).

# %% tags=["parameters"]
seed = 0
device = "auto"
# a HAM10000 folder; None = synthetic dermoscopy (or $UQXAI_DATA_DIR)
data_dir = None
results_path = "../_build/results/derm_vic.json"
profile = "smoke"
# True: only what the primary comparison needs (no fidelity-by-ratio sweep, widgets, variants, sanity checks)
primary_only = False
# model: "small" | "efficientnet_b0" | "densenet121"; optional local weights file (nothing is downloaded)
arch = "small"
weights_path = None
# channels of the first stage of the small CNN (doubling per stage; arch="small" only)
small_width = 24
image_size = 64
# synthetic data: lesions (1-3 photos each) and benign/malignant atypia distance in SDs
n_lesions = 500
separation = 3.0
# HAM10000: load about this many images (whole lesions); None = all
ham_limit = None
# HAM10000, a partial copy: only these image ids (None = all), or skip the images whose files are absent
ham_image_ids = None
ham_skip_missing = False
# training
epochs = 8
patience = 3
batch_size = 32
lr = 0.003
weight_decay = 0.0001
# Rashomon set: k candidates; keep val loss <= (1 + epsilon) * optimum
k = 100
epsilon = 0.05
# prune ratio of the VIC; None = the largest ratio our sweep supports (see text)
prune_ratio = None
poster_ratio = 0.6
sweep_ratios = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
# fidelity: binarisation rule of the maps; examples shown
fidelity_rule = ["fraction_of_max", 0.5]
n_examples = 4
# variants (which choices decide the result): candidates per set where no closed form applies,
# the range of a random prune ratio, the AUROC tolerance of the loss+AUROC filter
k_general = 20
random_ratio_range = [0.05, 0.95]
auroc_tolerance = 0.01
# control: independently trained models (other seeds) as a true Rashomon set
n_seed_models = 5
# fidelity and sanity: deletion / insertion patch (px; None = one feature-map cell), steps and fill
# ("blur" or "mean"); a cascading randomisation step passes when its median Spearman is below this
deletion_patch = None
deletion_steps = 8
deletion_fill = "blur"
sanity_threshold = 0.5
# widget frames
widget_ratios = [0.2, 0.4, 0.6, 0.8]
widget_epsilons = [0.02, 0.05, 0.1]

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, report, samplers, saliency, stats, train, utils, widgets
from uqxai_lib.data import group_split
from uqxai_lib.data.ham10000 import load_ham10000
from uqxai_lib.data.synthetic_derm import make_synthetic_derm
from uqxai_lib.models.derm_classifier import FEATURE_LAYER, build_derm_classifier, derm_augment, prune_sites, cascade_groups, site_suffix
from uqxai_lib.studies import derm as sd
from uqxai_lib.viz import derm as vd
from uqxai_lib.viz import use_style
from uqxai_lib.viz.common import split_table
from uqxai_lib.cache import finite_or_none

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = utils.pick_device(device)
utils.seed_everything(seed)
rule = tuple(fidelity_rule) if isinstance(fidelity_rule, (list, tuple)) else fidelity_rule
print(f"profile={profile}, device={dev}, arch={arch}, {image_size} px")

# %% [markdown]
# ## Data
#
# Without `data_dir` the chapter uses **synthetic dermoscopy** (`uqxai_lib.data.synthetic_derm`):
# skin with texture, vignetting and hairs, and one lesion per image. Benign lesions are roughly
# symmetric with a regular border and one brown tone; malignant ones are asymmetric and irregular,
# with several colours, blue-white structures and dark dots. How strongly a lesion shows these
# signs is drawn per lesion from two overlapping distributions, so the task cannot be solved
# perfectly. About 19.5 % of the lesions are malignant, as in HAM10000, and each lesion is
# photographed one to three times; the split keeps all photos of a lesion in one part
# (train / validation / test = 60 / 20 / 20 %). Every image has a lesion mask, the ground truth
# for fidelity.
#
# With `data_dir` pointing at HAM10000 (`uqxai_lib.data.ham10000`) the same code runs on the real
# images and the lesion segmentations of HAM10000 {cite:p}`tschandl2018ham10000` (doi:10.7910/DVN/DBW86T,
# CC BY-NC 4.0); malignant = melanoma, basal cell carcinoma and actinic keratosis / Bowen's disease.

# %%
root = utils.resolve_data_dir(data_dir)
if root is None:
    data = make_synthetic_derm(n_lesions=n_lesions, size=image_size, separation=separation, seed=seed)
    source = "synthetic dermoscopy"
else:
    data = load_ham10000(root, size=image_size, limit=ham_limit, seed=seed, image_ids=ham_image_ids,
                         skip_missing=ham_skip_missing)
    source = "HAM10000" + (f" ({data.skipped} images without their files skipped)" if data.skipped else "")
parts = group_split(data.group, [0.6, 0.2, 0.2], seed=seed)
train_set, val_set, test_set = (data.subset(p) for p in parts)
display(Markdown(f"Source: **{source}**, {len(data)} images of {len(data.group.unique())} lesions."))
display(report.table(split_table({"train": train_set, "validation": val_set, "test": test_set}), "split"))

# %%
fig = vd.plot_samples(test_set, per_class=4)
plt.show()

# %% [markdown]
# ## Model
#
# All architectures share one structure (`uqxai_lib.models.derm_classifier`): `features` (the
# convolutional body, whose output is the post-activation map of the last convolution), global
# average pooling and one linear layer. So the logits are exactly
# $z = W\,\mathrm{GAP}(A) + b$ with $A$ the last feature map — which makes masking channels of $A$
# and computing Grad-CAM++ of every masked model cheap closed forms. The `smoke` and `tiny`
# profiles use a small four-stage CNN because EfficientNet-B0 from scratch at 64 px is slow on two
# CPU cores and leaves a 2 × 2 feature map; the `full` profile uses EfficientNet-B0 at 224 px
# (7 × 7 map). Training: Adam, class-weighted cross-entropy, flips and quarter turns, early stopping
# on the validation loss, cached.

# %%
torch.manual_seed(seed)
model = build_derm_classifier(arch, weights_path=weights_path, small_width=small_width)
cfg = {
    "chapter": "derm_vic", "source": source, "arch": arch, "small_width": small_width, "image_size": image_size,
    "n_lesions": n_lesions, "separation": separation, "ham_limit": ham_limit, "seed": seed, "epochs": epochs, "lr": lr,
    "weight_decay": weight_decay, "batch_size": batch_size, "patience": patience, "weights_path": weights_path,
}
fit = train.fit(
    model, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
    class_weight="balanced", patience=patience, seed=seed, device=dev, cache_config=cfg,
    name=f"derm_vic_{arch}", augment=derm_augment,
)
model = fit.model.eval()
probs = train.predict_proba(model, test_set.x, device=dev).cpu()
perf = metrics.classification_summary(probs, test_set.y)
auc = float(metrics.auroc(probs[:, 1], test_set.y))
display(report.table(vd.performance_table(perf, auc), "performance"))
print(f"best epoch {fit.best_epoch} of {len(fit.history)}" + (" (from cache)" if fit.from_cache else ""))

# %% [markdown]
# ## Rashomon set
#
# A candidate model masks a random share $r$ of the $C$ channels of the last feature map (the
# *prune ratio*); nothing is retrained. Its mean validation loss $L_m$ (the same class-weighted
# cross-entropy as in training) is compared with the loss $L^\ast$ of the unpruned model, the
# optimum of our training run. We draw $K$ candidates and keep
#
# $$\mathcal{R}_\varepsilon = \{ m : L_m \le (1 + \varepsilon)\, L^\ast \}.$$
#
# **How we read the poster's "$1 \pm \varepsilon$".** Read literally, $|L_m / L^\ast - 1| \le
# \varepsilon$ would also drop pruned models that are *better* than the optimum on validation data.
# That can happen — $L^\ast$ is optimal for the training loss, not for the validation loss, and a
# mask can remove channels that only fit noise — and discarding such models makes no sense for a
# set of *nearly optimal* models. We use the one-sided rule above (the usual Rashomon-set
# definition) and report how many kept models beat the optimum. The poster samples masks "with a
# random pruning ratio" and then anchors the ratio at 0.6 (its Fig. 2); we read this as: all $K$
# candidates of one set share the ratio $r$, and the masked channels are drawn at random.
#
# *Where it lives:* the sampler is `uqxai_lib.samplers.rashomon` (closed form from the pooled
# features); the sweep over ratios and the relative losses are `uqxai_lib.studies.derm`
# (`prune_ratio_sweep`, `relative_losses`), the figures `uqxai_lib.viz.derm`.

# %%
val_dev, test_dev = val_set.to(dev), test_set.to(dev)
head = model.classifier
cw = train.class_weights(train_set.y, 2).to(dev)
ratios = sorted({float(r) for r in [*sweep_ratios, *widget_ratios, poster_ratio, prune_ratio] if r is not None})
sweep, sets = sd.prune_ratio_sweep(
    model, FEATURE_LAYER, val_dev.x, val_dev.y, ratios, k=k, epsilon=epsilon, seed=seed, head=head, class_weight=cw
)
rel_poster = sd.relative_losses(sets[float(poster_ratio)]).cpu()
fig = vd.plot_relative_losses(rel_poster, epsilon=epsilon, ratio=poster_ratio)
plt.show()
display(
    Markdown(
        f"At the poster's $r = {poster_ratio:g}$ and $\\varepsilon = {epsilon:g}$: "
        f"**{int((rel_poster <= 1 + epsilon).sum())} of {k}** candidates are kept "
        f"(relative loss median {rel_poster.median():.3f}, range {rel_poster.min():.3f}–{rel_poster.max():.3f}); "
        f"{int((rel_poster < 1).sum())} candidates have a lower validation loss than the optimum."
    )
)

# %% [markdown]
# ## Prune-ratio sweep
#
# Poster Fig. 2: how the relative loss of random masks grows with the prune ratio, and how many of
# the $K$ candidates stay within $1 + \varepsilon$. Small ratios keep almost every candidate but the
# candidates are nearly the same model; large ratios remove so much that few survive. We mark the
# poster's $r = 0.6$ and the largest ratio at which at least half of the candidates are kept on our
# data (median relative loss $\le 1 + \varepsilon$). Unless `prune_ratio` is set, the VIC below
# uses that ratio (`uqxai_lib.studies.derm.suggest_ratio`).

# %%
suggested = sd.suggest_ratio(sweep, epsilon)
fig = vd.plot_sweep(sweep, epsilon=epsilon, poster_ratio=poster_ratio, suggested=suggested)
plt.show()
display(report.table(sweep[["ratio", "rel_loss_median", "rel_loss_q05", "rel_loss_q95", "n_kept"]].round(4).set_index("ratio"),
                     "rashomon_sweep"))
if prune_ratio is None:
    # no ratio keeps half of the candidates: take the smallest swept ratio (said in the text below)
    prune_ratio = suggested if suggested is not None else min(ratios)
rset = sets[float(prune_ratio)]
rel = sd.relative_losses(rset).cpu()
kept = rel <= 1 + epsilon
n_kept = int(kept.sum())
assert n_kept == int(rset.kept.sum()), "the sampler's keep rule differs from L <= (1 + epsilon) L*"
display(
    Markdown(
        (f"On our data, at least half of the candidates stay within $1 + \\varepsilon$ up to $r = {suggested:g}$"
         if suggested is not None else "No swept ratio keeps half of the candidates, so we use the smallest one")
        + f" (the poster chose {poster_ratio:g}). The VIC below uses $r = {prune_ratio:g}$: "
        f"**{n_kept} of {k}** candidates kept (median relative loss {rel.median():.3f}; "
        f"{int((rel[kept] < 1).sum())} kept models beat the optimum)."
    )
)
if (sweep["rel_loss_median"] < 1).mean() > 0.5:
    display(
        Markdown(
            f"**Note on this run.** At most ratios the typical pruned model has a *lower* validation loss "
            f"than the unpruned one ($L^\\ast = {rset.base_loss:.3f}$; a constant 50/50 prediction scores "
            f"$\\ln 2 = 0.693$). The trained model is over-confident on held-out lesions, and masking channels "
            "shrinks its logits, which helps. Then the $1 + \\varepsilon$ filter keeps (almost) everything and "
            "this sweep cannot choose a ratio; train on more data or longer (the `smoke` or `full` profile)."
        )
    )

# %% [markdown]
# ## VIC
#
# For every kept model we compute Grad-CAM++ on the last feature map for the class the *unpruned*
# model predicts (fixed, so all models explain the same decision), in closed form from one pass of
# cached activations. Each map is min-max normalised so every kept model has the same vote; the
# **VIC** is their mean (consensus) and the **variability** their standard deviation. Poster Fig. 4:
# input, ground-truth lesion mask, Grad-CAM++ of the optimal model, variability and VIC.
# The maps come from `uqxai_lib.samplers.rashomon_maps`, the VIC and variability from
# `uqxai_lib.studies.derm.vic_and_variability` (built on `uqxai_lib.aggregate`).

# %%
if n_kept == 0:
    raise RuntimeError(
        f"no pruned model is within 1 + epsilon = {1 + epsilon:g} at r = {prune_ratio:g}; "
        "lower prune_ratio or raise epsilon"
    )
stack = samplers.rashomon_maps(model, FEATURE_LAYER, test_dev.x, rset, method="grad_cam_pp", head=head)
opt_maps = saliency.grad_cam_pp(model, test_dev.x, FEATURE_LAYER, target=stack.target).cpu()
vic, variability = sd.vic_and_variability(stack.maps.cpu())
mal = torch.nonzero(test_set.y == 1).flatten()[: (n_examples + 1) // 2]
ben = torch.nonzero(test_set.y == 0).flatten()[: n_examples // 2]
ex = torch.cat([mal, ben])
labels = [f"{test_set.classes[int(test_set.y[i])]} #{int(i)}" for i in ex]
fig = vd.plot_vic_examples(test_set.x[ex], test_set.mask[ex], opt_maps[ex], variability[ex], vic[ex], row_labels=labels)
plt.show()

# %% [markdown]
# **Why the VIC stays close to the optimal map.** In the closed form the Grad-CAM++ channel weights
# $w_k$ are the same for every masked model (a kept channel's activations and gradient do not
# change), so model $m$'s map is $\mathrm{ReLU}(\sum_k m_k w_k A_k)$. Every channel is masked with
# the same probability, so $\mathbb{E}[m_k] = 1 - r$ and the *average pre-ReLU map* is exactly
# $(1 - r)$ times the optimal model's: averaging randomly masked copies of one network gives back
# that network's explanation. The VIC can differ from it only through the ReLU, the per-map
# normalisation and the loss filter, which prefers some channels to others. We measure how far it
# moves with the Spearman correlation of the two maps on each test image.

# %%
rho = metrics.spearman(vic, opt_maps)
display(
    Markdown(
        f"Spearman $\\rho$ between the VIC and the optimal model's map: median **{rho.nanmedian():.3f}** "
        f"(5th percentile {rho.nanquantile(0.05):.3f}) over {int(rho.isfinite().sum())} test images "
        "(constant maps have no rank correlation and are left out)."
    )
)

# %% [markdown]
# ## Fidelity
#
# Poster Fig. 3 compares the maps with the lesion mask by IoU and Dice. A saliency map is not a
# mask, so a threshold rule is part of the result. **Our rule:** upsample the map bilinearly to the
# image size, min-max normalise it, and mark the pixels at or above half of its maximum
# (`fidelity_rule`); the same rule for the optimal model and the VIC, on every test image. Pairs are
# compared per image with the Wilcoxon signed-rank test (two-sided). The scores are
# `uqxai_lib.studies.derm.fidelity_scores` / `per_model_fidelity` / `fidelity_table` (binarisation
# and IoU / Dice from `uqxai_lib.metrics`).
#
# **What the poster's pair of numbers can mean.** For one binarised map and one mask,
# $\mathrm{Dice} = 2\,\mathrm{IoU} / (1 + \mathrm{IoU})$ exactly. This function is concave, so by
# Jensen's inequality the *mean* Dice over images is at most $2\bar{m}/(1+\bar{m})$ for a mean IoU
# $\bar{m}$: a mean IoU of 0.385 allows a mean Dice of at most 0.556, and 0.408 at most 0.580. The
# poster's Dice of 0.878 and 0.923 therefore cannot come from the same binarised maps and masks as
# its IoU values; they would need a different threshold, a different reference (e.g. Dice of soft
# maps, or of another mask), or a different averaging. Our two numbers come from the same binary
# maps and obey the identity (checked below). The poster's "improving by 6 % and 5 %" are the
# relative changes $0.408 / 0.385 = 1.06$ and $0.923 / 0.878 = 1.05$.

# %%
f_opt = sd.fidelity_scores(opt_maps, test_set.mask, rule)
f_vic = sd.fidelity_scores(vic, test_set.mask, rule)
for f in (f_opt, f_vic):  # Dice and IoU of the same binary maps: identity and Jensen bound
    assert torch.allclose(f["dice"], sd.dice_from_iou(f["iou"]), atol=1e-5)
    assert f["dice"].mean() <= sd.dice_upper_bound(f["iou"].mean()) + 1e-6
primary_cmp, comparisons, secondary = sd.fidelity_comparisons(f_opt, f_vic, test_set.group, seed=seed)
primary = stats.primary("IoU, VIC − optimal (paired per image; bootstrap over lesions)", primary_cmp)
table = sd.fidelity_table(f_opt, f_vic, comparisons)
display(report.table(table, "fidelity_vic_vs_optimal"))
if not primary_only:
    per_model = sd.per_model_fidelity(stack.maps.cpu(), test_set.mask, rule)
    fig = vd.plot_model_fidelity(
        per_model, {m: f_opt[m].mean() for m in ("iou", "dice")}, {m: f_vic[m].mean() for m in ("iou", "dice")}
    )
    plt.show()
p_iou, p_dice = comparisons["iou"]["p"], comparisons["dice"]["p"]
d_iou = (f_vic["iou"].mean() - f_opt["iou"].mean()).item()
better = int((per_model["iou"] > f_opt["iou"].mean()).sum()) if not primary_only else None
display(
    Markdown(
        f"Mean IoU: optimal {f_opt['iou'].mean():.3f}, VIC {f_vic['iou'].mean():.3f} "
        f"(difference {d_iou:+.3f}, {100 * d_iou / f_opt['iou'].mean():+.1f} %; Wilcoxon p = {p_iou:.3g}, "
        f"n = {len(test_set)} test images). "
        f"Mean Dice: optimal {f_opt['dice'].mean():.3f}, VIC {f_vic['dice'].mean():.3f} (p = {p_dice:.3g}). "
        f"Bounds from the mean IoU: {sd.dice_upper_bound(f_opt['iou'].mean()):.3f} and "
        f"{sd.dice_upper_bound(f_vic['iou'].mean()):.3f}. "
        + (f"{better} of {n_kept} kept models have a higher mean IoU than the optimal model." if better is not None else "")
    )
)
display(
    Markdown(
        f"**Primary comparison.** IoU(VIC) − IoU(optimal) = {primary['effect']:+.4f}, 95 % interval "
        f"[{primary['ci95'][0]:+.4f}, {primary['ci95'][1]:+.4f}] over {len(test_set.group.unique())} lesions "
        f"(Wilcoxon p = {primary['p']:.3g}): the VIC's IoU is **{primary['verdict']}**"
        + (" than the optimal model's" if primary["verdict"] != "no detectable difference" else "")
        + f" — the poster's direction is **{stats.reproduction(primary['verdict'], sd.CLAIM['expected'])}**. "
        f"Secondary (Dice): {secondary[0]['effect']:+.4f} [{secondary[0]['ci95'][0]:+.4f}, "
        f"{secondary[0]['ci95'][1]:+.4f}], Holm p = {secondary[0]['p_holm']:.3g}, {secondary[0]['verdict']}."
    )
)

# %% [markdown]
# ### Fidelity across prune ratios
#
# Does the VIC get closer to the lesion at other prune ratios? For every ratio of the sweep we
# score the VIC of the kept models and, for comparison, the VIC of *all* $K$ candidates (no loss
# filter — what averaging over heavily pruned, no longer nearly-optimal models would give), with
# the same threshold rule, against the optimal model's mean IoU (`uqxai_lib.studies.derm.fidelity_by_ratio`).

# %%
if not primary_only:
    by_ratio = sd.fidelity_by_ratio(model, FEATURE_LAYER, test_dev.x, test_set.mask, sets, rule=rule, head=head,
                                    target=stack.target)
    fig = vd.plot_fidelity_by_ratio(by_ratio, optimal_iou=float(f_opt["iou"].mean()), poster_ratio=poster_ratio,
                                    chosen=prune_ratio)
    plt.show()
    display(report.table(by_ratio.round(4).set_index("ratio"), "fidelity_by_ratio"))

# %% [markdown]
# ### Prune ratio and tolerance, interactively
#
# How the VIC and the variability of one test image change with the prune ratio $r$ and the
# tolerance $\varepsilon$. The frames are precomputed from the sweep's candidates (for each
# $\varepsilon$ the candidates are re-selected, nothing is re-sampled), so the sliders also work in
# the static book (grid: `uqxai_lib.studies.derm.vic_grid`, frames: `uqxai_lib.viz.derm.vic_frames`).

# %%
if not primary_only:
    img_i = int(ex[0])
    grid = sd.vic_grid(model, FEATURE_LAYER, test_dev.x[img_i : img_i + 1], sets, widget_ratios, widget_epsilons,
                       head=head, target=stack.target[img_i : img_i + 1])
    frames = vd.vic_frames(grid, test_set.x[img_i : img_i + 1], widget_ratios, widget_epsilons)
    if len(widget_epsilons) > 1:
        w = widgets.frame_grid(frames, widget_ratios, widget_epsilons, descriptions=("prune ratio", "epsilon"))
    else:
        w = widgets.frame_slider([row[0] for row in frames], widget_ratios, description="prune ratio")
    display(w)

# %% [markdown]
# ## Variants: which choices decide the result
#
# The closed form above shows that with channels masked *after* the last activation, under global
# average pooling and one linear layer, every pruned model's Grad-CAM++ map is a subset sum of the
# optimal model's channel terms, so the VIC is close to the optimal map by construction. That tests
# linearity, not the poster. Here we build the variants under which the VIC *can* differ
# (`uqxai_lib.studies.derm.run_variants`; masked models from `uqxai_lib.samplers.rashomon` /
# `rashomon_maps` / `rashomon_logits`, pruning sites from
# `uqxai_lib.models.derm_classifier.prune_sites`):
#
# - **pruning site** — (a) `post_activation`: today's mask on the explained feature map;
#   (b) `pre_bn`: the output channels of the last convolution *before* its BatchNorm and ReLU, so a
#   pruned channel becomes the constant $\mathrm{ReLU}(\beta - \gamma\mu/\sigma)$ rather than 0;
#   (c) `earlier_block`: the previous stage's output, so the explained feature map itself changes,
#   non-linearly, with the mask. (The gradient at the explained layer is $W_c / Z$ under GAP + linear
#   in every case; what changes in (c) is the activation $A$ and with it the Grad-CAM++ weights.)
#   Sites (b) and (c) have no closed form: each candidate is evaluated (`k_general` candidates).
# - **ratio** — one fixed ratio $r$ for every candidate (the sweep's choice at site (a); at sites (b)
#   and (c), where each pruned channel changes the model far more, the largest ratio $\le r$ chosen
#   by the same rule), or a *random ratio per
#   candidate* drawn from `random_ratio_range` (the poster: "sample pruned models … with a random
#   pruning ratio").
# - **target** — every model explains the optimal model's class, or its *own* prediction.
# - **aggregation** — each map min-max normalised before averaging (the poster's figures), or the
#   raw mean (larger maps weigh more).
# - **filter** — the loss rule $L_m \le (1+\varepsilon)L^\ast$; the same after temperature-scaling
#   the optimal model and each candidate on the validation set (masking shrinks logits, so a
#   loss-only filter partly rewards calibration); or the loss rule and a validation AUROC within
#   `auroc_tolerance` of the optimum.
#
# For each variant: IoU and Dice of the optimal map and of the VIC, the paired IoU difference
# with its 95 % interval over lesions, the median Spearman correlation of VIC and optimal map, and
# the number of models kept. The poster's direction is "VIC higher".

# %%
if not primary_only:
    sites = prune_sites(model)
    r_star = float(prune_ratio)
    # sites (b) and (c) change the model far more per pruned channel: their fixed ratio is chosen by the
    # same rule as r* (largest ratio whose median relative loss is within 1 + epsilon), among ratios <= r*
    site_ratio = {}
    for site in ("pre_bn", "earlier_block"):
        site_sweep, _ = sd.prune_ratio_sweep(
            model, sites[site], val_dev.x, val_dev.y, [r for r in ratios if r <= r_star], k=k_general,
            epsilon=epsilon, seed=seed, class_weight=cw, suffix=site_suffix(model, sites[site])[0],
        )
        site_ratio[site] = sd.suggest_ratio(site_sweep, epsilon) or min(ratios)
    display(Markdown("Fixed ratio per site: " + ", ".join(
        f"`{site}` r = {r:g}" for site, r in {"post_activation": r_star, **site_ratio}.items())))
    variant_specs = [
        dict(site="post_activation", ratio=r_star, target="optimal", aggregation="normalised", filter="loss"),
        dict(site="post_activation", ratio=r_star, target="own", aggregation="normalised", filter="loss"),
        dict(site="post_activation", ratio=r_star, target="optimal", aggregation="raw", filter="loss"),
        dict(site="post_activation", ratio="random", target="optimal", aggregation="normalised", filter="loss"),
        dict(site="post_activation", ratio=r_star, target="optimal", aggregation="normalised", filter="temperature"),
        dict(site="post_activation", ratio=r_star, target="optimal", aggregation="normalised", filter="loss_auroc"),
        dict(site="post_activation", ratio="random", target="own", aggregation="normalised", filter="temperature"),
        dict(site="pre_bn", ratio=site_ratio["pre_bn"], target="optimal", aggregation="normalised", filter="loss"),
        dict(site="pre_bn", ratio="random", target="own", aggregation="normalised", filter="temperature"),
        dict(site="earlier_block", ratio=site_ratio["earlier_block"], target="optimal", aggregation="normalised",
             filter="loss"),
        dict(site="earlier_block", ratio="random", target="own", aggregation="normalised", filter="temperature"),
    ]
    variants = sd.run_variants(
        model, val_dev.x, val_dev.y, test_dev.x, test_set.mask, test_set.group, opt_maps, f_opt, variant_specs,
        sites=sites, explain_layer=FEATURE_LAYER, head=head, k=k, k_general=k_general, epsilon=epsilon,
        random_range=random_ratio_range, seed=seed, class_weight=cw, rule=rule,
        optimal_target=stack.target, auroc_tolerance=auroc_tolerance,
        given_sets={("post_activation", r_star): rset},  # the first row is the chapter's own VIC
    )
    display(report.table(vd.variants_table(variants).set_index(["site", "ratio", "target", "aggregation", "filter"]),
                         "variants"))

# %% [markdown]
# ### Controls
#
# - **Blurred optimal map.** Averaging maps smooths them, and a smoother map crosses a relative
#   threshold over a larger, rounder area. We blur the optimal model's map with the Gaussian whose
#   roughness (mean absolute difference of neighbouring pixels of the normalised map) is closest to
#   the VIC's (`uqxai_lib.studies.derm.blur_to_match`): if this alone moves the IoU as much as the
#   VIC does, the VIC's change is smoothing, not model multiplicity.
# - **Seed ensemble.** A true Rashomon set: `n_seed_models` models trained independently (other
#   seeds, the same data, architecture and budget; cached), each explaining the optimal model's
#   class with Grad-CAM++; their normalised mean is the VIC the channel-pruning VIC should be held
#   against.

# %%
if not primary_only:
    blurred, blur_sigma = sd.blur_to_match(opt_maps, vic)
    blur_row, _ = sd.variant_row(blurred, opt_maps, f_opt, test_set.mask, test_set.group, n_kept=1, rule=rule,
                                 seed=seed, site="control", ratio="-", target="optimal", aggregation="-",
                                 filter=f"blur sigma={blur_sigma:g}", n_candidates=1)
    with torch.random.fork_rng(devices=[]):  # the ensemble's training leaves the chapter's RNG alone
        seed_models = sd.train_seed_ensemble(
            lambda: build_derm_classifier(arch, weights_path=weights_path, small_width=small_width),
            train_set, val_set, seeds=[seed + 1 + i for i in range(n_seed_models)], cache_config=cfg,
            fit_kwargs=dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                            class_weight="balanced", patience=patience, device=dev, name=f"derm_vic_{arch}",
                            augment=derm_augment),
        )
    ens_maps = sd.ensemble_maps(seed_models, test_dev.x, FEATURE_LAYER, target=stack.target).cpu()
    ens_vic, ens_var = sd.vic_and_variability(ens_maps)
    ens_row, _ = sd.variant_row(ens_vic, opt_maps, f_opt, test_set.mask, test_set.group, n_kept=len(seed_models),
                                rule=rule, seed=seed, site="control", ratio="-", target="optimal",
                                aggregation="normalised", filter="seed ensemble", n_candidates=len(seed_models))
    ens_losses = sd.model_losses(seed_models, val_dev.x, val_dev.y, class_weight=cw)
    base_loss = float(rset.base_loss)
    controls = {
        "blurred_optimal": {"iou": blur_row["iou_vic"], "dice": blur_row["dice_vic"], "sigma": blur_sigma,
                            "delta_iou": blur_row["delta_iou"], "delta_iou_ci95": blur_row["delta_iou_ci95"]},
        "seed_ensemble": {"n_models": len(seed_models), "iou": ens_row["iou_vic"], "dice": ens_row["dice_vic"],
                          "delta_iou": ens_row["delta_iou"], "delta_iou_ci95": ens_row["delta_iou_ci95"],
                          "spearman_vic_optimal_median": ens_row["spearman_vic_optimal_median"],
                          "relative_losses": [float(v) / base_loss for v in ens_losses],
                          "n_within_tolerance": int(sum(float(v) / base_loss <= 1 + epsilon for v in ens_losses))},
    }
    fig = vd.plot_variants(
        variants + [blur_row, ens_row],
        poster_delta=sd.POSTER["iou_vic"] - sd.POSTER["iou_optimal"],
    )
    plt.show()
    display(report.table(vd.variants_table([blur_row, ens_row]).set_index(["site", "filter"]), "controls"))
    agree = [v for v in variants if stats.reproduction(v["verdict"], sd.CLAIM["expected"]) == "reproduced"]
    reversed_ = [v for v in variants if stats.reproduction(v["verdict"], sd.CLAIM["expected"]) == "reversed"]
    display(
        Markdown(
            f"**Which variants reproduce the poster's direction (VIC higher)?** {len(agree)} of {len(variants)}"
            + (": " + "; ".join(vd.variant_label(v) for v in agree) if agree else "")
            + f". Reversed (VIC lower): {len(reversed_)}"
            + (": " + "; ".join(vd.variant_label(v) for v in reversed_) if reversed_ else "")
            + ". The rest show no detectable difference. Median Spearman(VIC, optimal) ranges from "
            f"{min(v['spearman_vic_optimal_median'] for v in variants if v['n_kept']):.3f} to "
            f"{max(v['spearman_vic_optimal_median'] for v in variants if v['n_kept']):.3f}. "
            f"Controls: the optimal map blurred to the VIC's roughness (σ = {blur_sigma:g} layer pixels) changes "
            f"the IoU by {blur_row['delta_iou']:+.4f} [{blur_row['delta_iou_ci95'][0]:+.4f}, "
            f"{blur_row['delta_iou_ci95'][1]:+.4f}] ({blur_row['verdict']}); the VIC of {len(seed_models)} independently "
            f"trained models by {ens_row['delta_iou']:+.4f} [{ens_row['delta_iou_ci95'][0]:+.4f}, "
            f"{ens_row['delta_iou_ci95'][1]:+.4f}] ({ens_row['verdict']}; "
            f"{controls['seed_ensemble']['n_within_tolerance']} of them within 1 + ε of the optimal model's loss, "
            f"Spearman to the optimal map {ens_row['spearman_vic_optimal_median']:.3f})."
        )
    )

# %% [markdown]
# ## Are the maps right? Fidelity and sanity checks
#
# A map can be perfectly repeatable across models and still point at the wrong place. Our data have
# ground-truth lesion masks, so we check the optimal model's Grad-CAM++ map directly
# (`uqxai_lib.studies.derm.fidelity_summary`, general functions in `uqxai_lib.fidelity`):
#
# - **mass in the mask**: the share of the (upsampled) map inside the lesion, with a 95 % interval
#   over lesions, against **chance** = the mask's area share (what an evenly spread map scores);
#   per class as well;
# - **pointing game**: the share of maps whose maximum lies in the lesion;
# - **deletion / insertion** {cite:p}`petsiuk2018rise`: patches of one feature-map cell are replaced by
#   a blurred copy of the image (or put back into it) in the order of the map, and the probability
#   of the explained class is followed; a faithful map makes deletion fall and insertion rise
#   faster than a **random order** of the same patches (areas under the curves).
#
# Then the **sanity check** of {cite:t}`adebayo2018sanity`: the model's parameters are re-initialised
# from the head down, cumulatively (`uqxai_lib.fidelity.cascading_randomisation`), and each
# randomised model's map is compared with the trained model's by Spearman correlation. A map that
# reflects what the model learned should change (low correlation); a map that stays the same is
# driven by the input and the architecture. The check *passes* when every step's median Spearman
# is below `sanity_threshold`.

# %%
if not primary_only:
    patch = deletion_patch or image_size // opt_maps.shape[-1]
    fid, fid_curves = sd.fidelity_summary(
        model, test_dev.x, opt_maps, test_set.mask, test_set.y, stack.target, test_set.group,
        classes=test_set.classes, patch=patch, steps=min(deletion_steps, (image_size // patch) ** 2),
        fill=deletion_fill, seed=seed,
    )
    fig = vd.plot_deletion_insertion(fid_curves, fid, fill=deletion_fill)
    plt.show()
    display(report.table(vd.per_class_fidelity_table(fid), "fidelity_per_class"))
    above = fid["mass_in_mask_ci95"][0] > fid["chance"]
    display(
        Markdown(
            f"Mass in the lesion mask: **{fid['mass_in_mask']:.3f}** [{fid['mass_in_mask_ci95'][0]:.3f}, "
            f"{fid['mass_in_mask_ci95'][1]:.3f}] against chance {fid['chance']:.3f} — the interval lies "
            + ("**above** chance" if above else "**not above** chance")
            + f". Pointing game {fid['pointing_game']:.3f}. Deletion area {fid['deletion_auc']:.3f} (random order "
            f"{fid['deletion_auc_random']:.3f}; lower is more faithful), insertion area {fid['insertion_auc']:.3f} "
            f"(random {fid['insertion_auc_random']:.3f}; higher is more faithful)."
        )
    )

# %%
if not primary_only:
    sanity, sanity_maps = sd.cascading_sanity(
        model, test_dev.x, opt_maps, stack.target, FEATURE_LAYER, cascade_groups(model), threshold=sanity_threshold,
        seed=seed, n_examples=3,
    )
    fig = vd.plot_sanity(test_set.x[:3], opt_maps[:3], sanity_maps, sanity["cascading"])
    plt.show()
    steps_txt = "; ".join(f"{r['randomised_from']}: {r['spearman_to_trained']:.3f}" for r in sanity["cascading"])
    display(
        Markdown(
            f"Median Spearman of the randomised models' maps with the trained model's, from the head down: {steps_txt}. "
            f"Grad-CAM++ at `{FEATURE_LAYER}` **{'passes' if sanity['passes'] else 'fails'}** the cascading "
            f"randomisation check (threshold {sanity_threshold:g}"
            + ("" if sanity["passes"] else "; at least one randomised model keeps a map close to the trained one")
            + ")."
        )
    )

# %% [markdown]
# ### Stable and right?
#
# For each test image: the VIC's mass in the lesion mask (fidelity) against its mean variability
# across the kept models (instability), coloured by whether the classifier was right. The Spearman
# correlation with a 95 % interval over lesions (`uqxai_lib.studies.derm.fidelity_vs_stability`)
# says whether a more stable VIC is also more often a right one (a negative correlation).

# %%
if not primary_only:
    vic_mass, _ = sd.mass_in_mask_scores(vic, test_set.mask)
    fvs = sd.fidelity_vs_stability(vic_mass, variability, test_set.group, seed=seed)
    correct = probs.argmax(1) == test_set.y
    fig = vd.plot_fidelity_vs_stability(vic_mass, variability, correct, chance=fid["chance"],
                                        spearman=fvs["spearman"], ci95=fvs["ci95"])
    plt.show()
    display(
        Markdown(
            f"Spearman(VIC mass in mask, VIC variability) = {fvs['spearman']:+.3f} "
            f"[{fvs['ci95'][0]:+.3f}, {fvs['ci95'][1]:+.3f}] over {fvs['n']} images: "
            + {"lower": "more variable VICs are *less* often on the lesion — stability goes with fidelity here.",
               "higher": "more variable VICs are *more* often on the lesion — stability does not mean right here.",
               "no detectable difference": "no detectable association between stability and fidelity."}[
                stats.verdict(fvs["ci95"])]
        )
    )

# %% [markdown]
# ## Caveats
#
# - **Synthetic data by default.** The lesions, their masks and the link between look and label are
#   simulated; numbers on this page say how the method behaves, not how it performs on patients.
# - **The Rashomon set is narrow.** Masking channels of one trained network explores a small
#   neighbourhood of one model; models trained from other seeds or architectures can disagree far
#   more. The set also depends on $K$, $r$ and $\varepsilon$, and on the validation split.
# - **Fidelity depends on the threshold rule.** IoU and Dice of a saliency map with a lesion mask
#   change with the binarisation; we state ours and apply it equally to both maps. Averaging maps
#   smooths them, which by itself changes the area above a relative threshold.
# - **Lesion overlap is not faithfulness.** A map that covers the lesion need not be what the model
#   uses; the mask is a plausibility reference.
# - **The optimum is a trained model, not a global optimum**, so pruned variants can beat it on
#   validation data (our one-sided reading of $1 \pm \varepsilon$).
# - **Significant is not large.** With a few hundred paired test images the Wilcoxon test detects
#   differences in mean IoU of a thousandth; read the size of the difference, not only its p-value.
#   The poster reports no test and no spread, so we cannot tell whether its 6 % is more than noise.

# %% [markdown]
# ## Summary

# %%
results = finite_or_none(cache.round_sig(
    {
        "balanced_accuracy": perf["balanced_accuracy"],
        "auroc": auc,
        "prune_ratio": float(prune_ratio),
        "suggested_ratio": suggested,
        "epsilon": float(epsilon),
        "n_candidates": int(k),
        "n_kept": n_kept,
        "iou_optimal": f_opt["iou"].mean(),
        "dice_optimal": f_opt["dice"].mean(),
        "iou_vic": f_vic["iou"].mean(),
        "dice_vic": f_vic["dice"].mean(),
        "n_test": len(test_set),
        "spearman_vic_optimal_median": rho.nanmedian(),
        "wilcoxon_p_iou": finite_or_none(p_iou),
        "wilcoxon_p_dice": finite_or_none(p_dice),
        "primary": primary,
        "claim": sd.CLAIM,
        "secondary": secondary,
        "primary_only": bool(primary_only),
        "variants": [
            {key: v[key] for key in ("site", "ratio", "target", "aggregation", "filter", "n_kept", "n_candidates",
                                     "iou_optimal", "iou_vic", "delta_iou", "delta_iou_ci95", "verdict",
                                     "dice_optimal", "dice_vic", "spearman_vic_optimal_median")}
            for v in variants
        ] if not primary_only else [],
        "controls": controls if not primary_only else {},
        "fidelity": fid if not primary_only else {},
        "sanity": sanity if not primary_only else {},
        "fidelity_vs_stability": fvs if not primary_only else {},
        "sweep": [
            {"ratio": r.ratio, "rel_loss_median": r.rel_loss_median, "n_kept": r.n_kept,
             "iou_vic": finite_or_none(f.iou_vic), "iou_all": f.iou_all}
            for r, f in zip(sweep.itertuples(), by_ratio.itertuples())
        ] if not primary_only else [],
    }
))  # NaN (e.g. the AUROC keys of a paired primary) -> null
report.save_tables(results_path)
cache.atomic_write_json(results_path, results)
verdict = primary["verdict"] + (" than" if primary["verdict"] != "no detectable difference" else " from")
display(
    Markdown(
        f"- **Classifier.** Balanced accuracy {results['balanced_accuracy']:.3f}, AUROC {results['auroc']:.3f} "
        f"on {len(test_set)} held-out images ({source}).\n"
        f"- **Rashomon set.** At $r = {prune_ratio:g}$ and $\\varepsilon = {epsilon:g}$, {n_kept} of {k} pruned "
        f"models are nearly optimal. At the poster's $r = {poster_ratio:g}$, "
        f"{int(sweep.set_index('ratio').loc[float(poster_ratio), 'n_kept'])} of {k} are.\n"
        f"- **Fidelity (primary).** The VIC's mean IoU is {verdict} the optimal model's: "
        f"{results['iou_vic']:.3f} vs {results['iou_optimal']:.3f} "
        f"(paired difference {primary['effect']:+.4f}, 95 % interval [{primary['ci95'][0]:+.4f}, "
        f"{primary['ci95'][1]:+.4f}] over lesions; Wilcoxon p = {p_iou:.3g}, n = {len(test_set)}), so the poster's "
        f"direction is {stats.reproduction(primary['verdict'], sd.CLAIM['expected'])} on our data; "
        f"Dice {results['dice_vic']:.3f} vs {results['dice_optimal']:.3f} (p = {p_dice:.3g}). The two maps have "
        f"a median Spearman $\\rho$ of {results['spearman_vic_optimal_median']:.3f}: averaging masked copies of one "
        "network largely returns that network's explanation.\n"
        "- **The poster (theirs):** IoU 0.385 → 0.408 and Dice 0.878 → 0.923 (HAM10000, $r = 0.6$). Its Dice "
        "values exceed the largest mean Dice its IoU values allow for the same binary maps (0.556 and 0.580)."
    )
)
if not primary_only:
    n_rep = sum(stats.reproduction(v["verdict"], sd.CLAIM["expected"]) == "reproduced" for v in variants)
    n_rev = sum(stats.reproduction(v["verdict"], sd.CLAIM["expected"]) == "reversed" for v in variants)
    display(
        Markdown(
            f"- **Variants.** The poster's direction (VIC higher) holds in {n_rep} of {len(variants)} variants and is "
            f"reversed in {n_rev} (table above): the result depends on how a pruned model is built, which class it "
            "explains, how maps are averaged and how nearly-optimal models are filtered — state these choices with "
            "any VIC result.\n"
            f"- **Controls.** Blurring the optimal map to the VIC's roughness: ΔIoU {controls['blurred_optimal']['delta_iou']:+.4f}; "
            f"the VIC of {controls['seed_ensemble']['n_models']} independently trained models: "
            f"ΔIoU {controls['seed_ensemble']['delta_iou']:+.4f} "
            f"[{controls['seed_ensemble']['delta_iou_ci95'][0]:+.4f}, {controls['seed_ensemble']['delta_iou_ci95'][1]:+.4f}].\n"
            f"- **Are the maps right?** Mass in the lesion mask {fid['mass_in_mask']:.3f} "
            f"[{fid['mass_in_mask_ci95'][0]:.3f}, {fid['mass_in_mask_ci95'][1]:.3f}] vs chance {fid['chance']:.3f}; "
            f"deletion area {fid['deletion_auc']:.3f} vs {fid['deletion_auc_random']:.3f} in random order. Cascading "
            f"randomisation: {'passes' if sanity['passes'] else 'fails'} (median Spearman "
            + ", ".join(f"{r['spearman_to_trained']:.2f}" for r in sanity["cascading"]) + "). "
            f"Stability vs fidelity: Spearman {fvs['spearman']:+.3f} [{fvs['ci95'][0]:+.3f}, {fvs['ci95'][1]:+.3f}]."
        )
    )

# %% [markdown]
# ## What's next
#
# - Run with `data_dir` pointing at HAM10000 and the `full` profile (EfficientNet-B0, 224 px,
#   500 candidates) to compare with the poster on real images.
# - Add the spurious ink-mark cue (`uqxai_lib.data.synthetic_derm.add_ink_marks`) to the training
#   images only and check whether the VIC or the variability map reveals the shortcut.
# - Grow the seed ensemble (`n_seed_models`) and vary the architecture to explore a wider Rashomon set.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

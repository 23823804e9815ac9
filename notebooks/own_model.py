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
# # Use it on your own model
#
# ## Overview
#
# Every chapter of this book runs on one instrument, `uqxai_lib.assess`: give it any torch
# classifier, inputs `[B, C, *spatial]` (1-D signals, 2-D images or 3-D volumes), labels, the layer
# to explain and a *source* of uncertainty, and it returns one record. This page does exactly what a
# researcher would do with their own model: define a small network, train it, and assess its
# Grad-CAM maps {cite:p}`selvaraju2017gradcam` under two sources — Monte Carlo dropout
# {cite:p}`gal2016dropout` and test-time noise — in a few lines.
#
# The data are an **embedded synthetic phantom** (the primer's shapes, each with a ground-truth
# mask of the class-defining shape), so every number here is about that phantom, not about a
# clinical data set.
#
# ## Prerequisites
#
# | Concept | Why |
# | --- | --- |
# | Grad-CAM ({doc}`primer_gradcam`) | the explanation whose uncertainty is measured |
# | MC dropout, test-time augmentation | the two sources of variation used here |
#
# Time to run: well under a minute on two CPU cores.

# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None  # unused: this page runs on the embedded shapes phantom
results_path = "../_build/results/own_model.json"
profile = "smoke"
image_size = 48
n_train = 600
n_val = 150
n_test = 160
epochs = 6
samples = 12  # MC-dropout passes and noise draws per image
noise_sd = 0.15  # SD of the test-time Gaussian noise (the images are scaled to about [0, 1])
dropout = 0.25

# %% tags=["hide-input"]
from collections import OrderedDict

from IPython.display import Markdown, display
from torch import nn

from uqxai_lib import cache, report, rules, train, utils
from uqxai_lib.data.synthetic_shapes import make_synthetic_shapes
from uqxai_lib.perturb import gaussian

dev = utils.pick_device(device)
utils.seed_everything(seed)
train_set, val_set, test_set = (make_synthetic_shapes(n, size=image_size, seed=seed + i)
                                for i, n in enumerate((n_train, n_val, n_test)))

# %% [markdown]
# ## Your model
#
# Any `nn.Module` that maps `[B, C, *spatial]` to logits `[B, classes]` will do. This one has a
# convolutional trunk `features` (the layer we explain), a dropout layer inside it — which is what
# MC dropout needs — global average pooling and a linear classifier. It is trained with the book's
# small training loop (`uqxai_lib.train.fit`, cached by its configuration); your own loop works as well.


# %%
def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


model = nn.Sequential(OrderedDict(
    features=nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 32),
                           nn.Dropout2d(dropout)),
    pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), classifier=nn.Linear(32, 3)))
fit = train.fit(model, train_set, val_set, epochs=epochs, batch_size=32, lr=0.003, seed=seed, device=dev,
                cache_config=dict(page="own_model", size=image_size, n=n_train, epochs=epochs, dropout=dropout),
                name="own_model", progress=False)
model = fit.model.eval()

# %% [markdown]
# ## Assess it
#
# Two sources, one call each. `masks` turns on the checks of whether the maps are right (mass in
# the ground-truth mask against chance, pointing game, deletion against a random order); `sanity`
# runs the cascading randomisation check.

# %%
from uqxai_lib import assess

x, y, masks = test_set.x.to(dev), test_set.y, test_set.mask
common = dict(layer="features", masks=masks, n=samples, seed=seed)
records = {
    "MC dropout": assess(model, x, y, source="mc_dropout", sanity=True, **common),
    "test-time noise": assess(model, x, y, source="test_time", perturb=gaussian(noise_sd), **common),
}

# %% [markdown]
# Four test images with the model's own Grad-CAM map (the reference every MC-dropout pass is compared
# with), the ground-truth mask outlined, and each image's ρ; errors have red titles.

# %%
import matplotlib.pyplot as plt

from uqxai_lib.viz import gallery, use_style

use_style()
mc = records["MC dropout"]
show = list(range(4))
fig = gallery([x[i].cpu() for i in show], [mc.reference[i] for i in show], masks=[masks[i] for i in show],
              titles=[f"ρ = {report.fmt_number(mc.stability['rho'][i], 2)}" for i in show],
              wrong=[not mc.correct[i] for i in show], label="Grad-CAM (reference)")
display(fig)
plt.close(fig)

# %% [markdown]
# ## Read the record
#
# Each record holds the same sections for every source: per-image stability (Spearman ρ of each
# sample's map with the model's own map of the clean image, and the top-10 % region overlap, SUE),
# prediction-only scores (entropy, margin, flip rate), the primary comparison of correct against
# misclassified images (effect, AUROC, interval and p from one bootstrap, verdict), fidelity
# against the mask and the cascading randomisation check {cite:p}`adebayo2018sanity`, with intervals
# from the bootstrap {cite:p}`efron1993bootstrap`. The table puts the two sources side by side.

# %%
display(report.table(report.assessment_table(records), "assessment"))

# %% [markdown]
# The same record is plain data: `rec.to_dict()` is JSON, ready to be saved beside your results.
# Its `primary` section for MC dropout:

# %% tags=["hide-output"]
records["MC dropout"].to_dict()["primary"]

# %% [markdown]
# How to read it. A positive effect with an interval above zero says that the maps of correctly
# classified images are *more stable* than those of errors, so instability could flag errors; an
# interval containing zero says this sample cannot tell; "undefined" means a group has fewer than
# the rule book's minimum of items. A stability score is only worth reading if the maps are right
# (mass in mask above chance) and pass the sanity check. Whether it adds anything to the
# prediction-only scores is what the chapters ask next.

# %%
rec = records["MC dropout"]
pr, fi = rec.primary, rec.fidelity
display(Markdown(
    f"- With MC dropout, ρ is {report.fmt_number(pr['effect'])} ({report.fmt_interval(pr['ci95'])}) higher for "
    f"correct images, AUROC {report.fmt_number(pr['auroc'])}: verdict **{pr['verdict']}**"
    + (f" ({pr['reason']})" if pr["reason"] else "") + ".\n"
    f"- The maps put {report.fmt_number(fi['mass_in_mask'])} of their mass in the mask against chance "
    f"{report.fmt_number(fi['chance'])}; the cascading randomisation check is **{rec.sanity['outcome']}**.\n"
    f"- Test-time noise: verdict **{records['test-time noise'].primary['verdict']}**."
))
results = {name: {k: v for k, v in r.to_dict().items() if k in ("config", "primary", "fidelity", "sanity")}
           for name, r in records.items()}
for r in results.values():
    r["fidelity"].pop("per_item_mass", None)
results["rules"] = {k: v for k, v in rules.RULES.items() if not isinstance(v, str)}
report.save_tables(results_path)
cache.atomic_write_json(results_path, cache.round_sig(results))

# %% [markdown]
# ## Other shapes of data
#
# The same call works in one and three spatial dimensions: the doctests of `uqxai_lib.protocol`
# assess a 1-D convolutional model under test-time noise and a 3-D model under MC dropout with a
# volumetric mask. For a Rashomon set pass `source="rashomon"` with `x_val`, `y_val`,
# `prune_ratio` and `epsilon`; for an ensemble `source="ensemble"` with `models=[...]`.
#
# ## What's next
#
# - {doc}`ecg_sue`, {doc}`mri_mc_dropout` and {doc}`derm_vic` run this instrument on the three
#   studies and put the papers' numbers beside ours.
# - The rules it applies (constant maps, empty regions, intervals, the sanity threshold) are listed
#   on the {doc}`../methods` page.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

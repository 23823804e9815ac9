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
# # ECG: are explanations stable under test-time noise? Spatial uncertainty estimation (SUE)

# %% [markdown]
# ## Overview
#
# A classifier separates healthy single-lead ECG windows from windows with signs of coronary
# artery disease (CAD: ST-segment depression, flattened or inverted T waves). Grad-CAM tells us
# *where* in the 2-s window the model looked. Here we ask how **repeatable** that answer is when the
# input is disturbed the way real recordings are: white noise, power-line interference, baseline
# wander and electrode motion. Each window is perturbed $S$ times, explained $S$ times, and the
# agreement of the $S$ maps is summarised by SUE (spatial uncertainty estimation,
# {cite:p}`seoni2024sue`). The claim we test, from {cite:t}`salvi2025explainability` (section 4.1 and
# Table 1): **correct predictions come
# with more repeatable explanations (higher SUE) than misclassifications**, so a low SUE can flag a
# prediction that should not be trusted.
#
# **Primary comparison, declared before any data are seen:** the difference in mean SUE between
# correctly classified and misclassified test windows (clean-prediction definition) under **Gaussian
# noise** at `table_snr_db`, with a 95 % bootstrap interval over *subjects* (windows of one subject
# are not independent) and the AUROC of SUE with its interval (`uqxai_lib.stats.group_difference`).
# The verdict word ("higher", "lower", "no detectable difference") is read from the interval
# (`uqxai_lib.stats.verdict`). The same comparison under the other three perturbations is
# *secondary*, with Holm-adjusted p-values. With `primary_only = True` the notebook computes only
# what the primary needs (the robustness chapter runs it over several training seeds).
#
# You will learn how to
#
# 1. train a small CNN-BiLSTM on seeded synthetic ECG (or on Fantasia + INCART if you have them);
# 2. compute Grad-CAM at the last Conv1d layer and check it against the ground-truth ST–T region;
# 3. run test-time perturbations at a controlled signal-to-noise ratio and compute SUE per window;
# 4. rebuild the paper's Table 1 and judge how well SUE flags misclassifications;
# 5. check whether the maps are *right* (fidelity to the ST–T evidence, deletion / insertion,
#    a randomisation sanity check) before asking whether they are *stable*;
# 6. test SUE fairly: its design choices as variants, prediction-only baselines beside it, and
#    the comparison within severity strata.

# %% [markdown]
# ## Prerequisites
#
# | Concept | Importance | Notes |
# | --- | --- | --- |
# | Grad-CAM | necessary | see the methods page and the primer chapter |
# | SNR in dB, ECG waves (P, QRS, ST, T) | helpful | $\mathrm{SNR} = 10\log_{10}(P_x/P_n)$ |
# | Mann–Whitney U, AUROC | helpful | for the table's statistics |
#
# **Time to run:** a few minutes (`tiny`), about five to ten minutes on two busy CPU cores (`smoke`, the
# default), longer on a GPU at paper scale (`full`). Training and sampling are cached, so a re-run
# is fast.

# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None
results_path = "../_build/results/ecg_sue.json"
profile = "smoke"
# data (synthetic unless data_dir / $UQXAI_DATA_DIR holds Fantasia + INCART)
n_subjects = 600
windows_per_subject = 4
cad_fraction = 0.16
mild_fraction = 0.35
max_windows_per_record = 200
# a partial copy of the real data: Fantasia records and INCART headers to use (None = all 40 / 75),
# INCART records taken as CAD (None = those whose header names coronary artery disease)
fantasia_records = None
incart_records = None
incart_cad_records = None
# model and training
channels = [16, 32, 32]
hidden = 32
epochs = 12
patience = 4
batch_size = 64
lr = 0.002
# study
draws = 10
table_snr_db = 10.0
max_test = 600
snr_grid = [0.0, 5.0, 10.0, 20.0]
n_curve = 100
sue_quantile = 0.9
widget_snrs = [0.0, 10.0, 20.0]
# statistics and checks
primary_only = False  # True: only what the primary comparison needs (no sweep, widgets, variants, checks)
n_boot = 2000  # bootstrap resamples of the primary comparison
n_boot_table = 500  # resamples of each row of the variant / baseline / strata / layer tables
fidelity_steps = 10  # points of the deletion / insertion curves (segments of 0.1 s)
layers = ["features.0", "features.2", "features.4"]  # Grad-CAM layers compared (the last one is used throughout)

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, report, saliency, train, widgets
from uqxai_lib import perturb as P
from uqxai_lib.data.fantasia_incart import load_fantasia_incart
from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg, stratified_group_split
from uqxai_lib.models.cnn_bilstm import CNNBiLSTM
from uqxai_lib.studies import ecg as S
from uqxai_lib.utils import pick_device, resolve_data_dir, seed_everything
from uqxai_lib.viz import ecg as vz
from uqxai_lib.viz import use_style
from uqxai_lib.viz.common import split_table

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = pick_device(device)
seed_everything(seed)
root = resolve_data_dir(data_dir)
FS = 250  # Hz, both for the synthetic windows and for the resampled real records
nstdb = P.load_nstdb(root, fs=FS)  # MIT-BIH Noise Stress Test records, when the data directory holds them
display(Markdown(f"Running on **{dev}** with "
                 f"{'Fantasia + INCART (from `data_dir`)' if root else 'the embedded synthetic ECG'}; "
                 f"noise models: {'NSTDB ' + ', '.join(sorted(nstdb)) + ' records and synthetic' if nstdb else 'synthetic'}."))

# %% [markdown]
# ## Data
#
# Without a data directory the chapter uses the embedded **synthetic ECG**: 2-s windows at 250 Hz
# built from Gaussian-bump beats (P, Q, R, S, ST, T). Heart rate, amplitude, QRS width, QT length,
# baseline and noise vary per synthetic subject. CAD windows show ST depression and a flattened or
# inverted T wave; a share of the CAD subjects (`mild_fraction`) has only *mild* changes that
# overlap the healthy range, so even a good model makes some honest mistakes. Each window has a
# ground-truth mask of the ST–T samples (grey below), the part of the trace that carries the class.
# With `data_dir` set, the same code reads Fantasia (healthy) and INCART (CAD, lead II, resampled
# from 257 Hz) from PhysioNet {cite:p}`goldberger2000physionet`, the selection of
# {cite:t}`acharya2017cad`, instead; those have no mask. Train, validation and test sets are split **by
# subject** with the class ratio kept, so no subject's windows leak from training into the test.
# (Code: `uqxai_lib.data.synthetic_ecg`, `uqxai_lib.data.fantasia_incart`.)

# %%
if root is None:
    data, info = make_synthetic_ecg(n_subjects, windows_per_subject, cad_fraction=cad_fraction,
                                    mild_fraction=mild_fraction, seed=seed, return_info=True)
    data_config = dict(source="synthetic", n_subjects=n_subjects, windows_per_subject=windows_per_subject,
                       cad_fraction=cad_fraction, mild_fraction=mild_fraction, seed=seed)
else:
    data, info = load_fantasia_incart(root, max_windows_per_record=max_windows_per_record, healthy_records=fantasia_records,
                                incart_records=incart_records, cad_records=incart_cad_records), None
    data_config = dict(source=str(root), max_windows_per_record=max_windows_per_record, fantasia_records=fantasia_records,
                       incart_records=incart_records, incart_cad_records=incart_cad_records)
tr_idx, va_idx, te_idx = stratified_group_split(data.group, data.y, [0.6, 0.2, 0.2], seed=seed)
train_set, val_set, test_set = data.subset(tr_idx), data.subset(va_idx), data.subset(te_idx)
if len(test_set) > max_test:  # study an evenly spaced subset of the test windows (keeps the class mix)
    te_idx = te_idx[torch.linspace(0, len(test_set) - 1, max_test).round().long()]
    test_set = data.subset(te_idx)
severity = None if info is None else info["severity"][te_idx]  # 0 healthy, 1 mild CAD, 2 marked CAD
report.table(split_table({"train": train_set, "validation": val_set, "test (studied)": test_set},
                         items="windows", groups="subjects", positive="CAD share", percent=False, digits=3), "split")

# %%
fig = vz.plot_class_examples(test_set.x[:, 0], test_set.y, data.classes, test_set.mask, fs=FS)

# %% [markdown]
# ## Model
#
# A CNN-BiLSTM as in the study behind the paper's Table 1, scaled for CPU: Conv1d blocks
# (Conv1d → BatchNorm → ReLU, max-pooling between them) extract local wave shapes, a bidirectional
# LSTM reads their sequence, and a linear layer gives the two class scores. Training uses Adam,
# class-weighted cross-entropy (CAD is the minority class) and early stopping on the validation
# loss; the weights are cached by a hash of this configuration, so a re-run skips training.
# (Code: `uqxai_lib.models.cnn_bilstm`, `uqxai_lib.train`; the table: `uqxai_lib.viz.ecg`.)

# %%
model = CNNBiLSTM(channels=channels, hidden=hidden)
train_config = dict(data=data_config, model=model.config, epochs=epochs, batch_size=batch_size, lr=lr,
                    patience=patience, seed=seed)
fit = train.fit(model, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                seed=seed, device=dev, name="ecg_cnn_bilstm", cache_config=train_config)
model = fit.model
clf = metrics.classification_summary(train.predict_proba(model, test_set.x, device=dev), test_set.y, positive=1)
report.table(vz.classification_table(clf, paper=S.PAPER_CLASSIFICATION), "classification")

# %% [markdown]
# Our column comes from this run on the held-out subjects; the paper's column is theirs (real
# Fantasia + INCART windows, a full-size model) and is shown for orientation only. The synthetic
# data are built so that the model is good but not perfect: mild CAD subjects overlap the low end
# of the healthy range, so errors go both ways (missed mild CAD, healthy windows called CAD), and
# those errors are what the SUE table below needs. The tiny CI profile trains a much smaller model
# for a few epochs and is weaker.

# %% [markdown]
# ## Perturbations
#
# At test time every window $x$ gets $S$ = `draws` noisy copies. Each noise $n^{(s)}$ is first
# made zero-mean over the window and uncorrelated with it (otherwise a slow baseline wander is mostly
# a constant offset, which the model never sees after standardisation), then scaled **per window**
# so that the signal-to-noise ratio is exactly the one asked for,
#
# $$
# \mathrm{SNR} = 10\log_{10}\frac{\operatorname{var}(x)}{P_n},\qquad P_n = \frac{1}{L}\sum_{t=1}^{L} n_t^2 ,
# $$
#
# and the sum $x + n^{(s)}$ is re-standardised to the clean window's mean and SD, as the clean
# windows were (the methods page gives the details).
#
# The four noise models of the paper's Table 1 are
#
# - **Gaussian noise**: white, all frequencies alike;
# - **power-line interference**: 50 or 60 Hz plus harmonics below Nyquist, with drifting
#   amplitude and phase;
# - **motion artefact / baseline wander**: a sum of slow sinusoids between 0.05 and 0.5 Hz;
# - **electrode motion**: abrupt baseline steps with exponential recovery, narrow spikes and a
#   low-frequency drift (segments of the MIT-BIH Noise Stress Test records `bw` and `em` are used
#   instead when the data directory holds them).
#
# Below, one test window under each noise at `table_snr_db`; the title gives the SNR measured on
# that very copy. (Code: the noise models are `uqxai_lib.perturb`; the achieved SNR is
# `uqxai_lib.studies.ecg.achieved_snr`.)

# %%
gen = torch.Generator().manual_seed(seed)
x_demo = test_set.x[:1]
noisy = {k: P.make_perturbation(k, table_snr_db, FS, nstdb=nstdb)(x_demo, gen)[0, 0] for k in P.PERTURBATIONS}
fig = vz.plot_perturbations(x_demo[0, 0], noisy, S.achieved_snr(x_demo[0, 0], noisy), fs=FS,
                            target_snr_db=table_snr_db)

# %% [markdown]
# ## Explanations and their uncertainty
#
# ### Grad-CAM
#
# Grad-CAM {cite:p}`selvaraju2017gradcam` weights the channels of the last Conv1d block by their
# average gradient and keeps the positive part of the weighted sum,
#
# $$
# M_t = \mathrm{ReLU}\Big(\sum_k \alpha_k A_{k,t}\Big),\qquad
# \alpha_k = \frac{1}{T}\sum_t \frac{\partial y_c}{\partial A_{k,t}} .
# $$
#
# The block works at a quarter of the input rate, so each map is linearly upsampled to the 500
# samples of the window. The class $c$ is always the model's prediction on the **clean** window.
#
# On synthetic data we know where the evidence is: **fidelity** is the share of the map's mass that
# falls inside the ST–T mask, to be compared with the share of the window the mask covers (what a
# map spread evenly would score). (Code: `uqxai_lib.saliency`, `uqxai_lib.metrics.mass_in_mask`.)

# %%
layer = model.cam_layer_name
clean_maps = saliency.upsample(saliency.grad_cam(model, test_set.x.to(dev), layer).cpu(), test_set.x.shape[-1])
clean_probs = train.predict_proba(model, test_set.x, device=dev)
clean_pred = clean_probs.argmax(-1)
has_mask = test_set.mask is not None and not primary_only
sub = torch.linspace(0, len(test_set) - 1, min(n_curve, len(test_set))).round().long()  # windows of the costly checks
fid = None
if has_mask:
    fid = S.fidelity_record(model.to(dev), test_set.x.to(dev), clean_maps, test_set.mask, test_set.y, clean_pred,
                            test_set.group, classes=data.classes, segment=S.SEGMENT, steps=fidelity_steps,
                            curve_index=sub, n_boot=n_boot_table, seed=seed)
    display(report.table(vz.fidelity_table(fid), "fidelity"))
    display(Markdown(S.fidelity_sentence(fid)))
    fig = vz.plot_fidelity(torch.as_tensor(fid["mass"]), test_set.y, fid["chance"], classes=data.classes)
elif test_set.mask is None:
    display(Markdown("Real data carry no ST–T mask, so fidelity is not computed."))

# %% [markdown]
# **Deletion and insertion** {cite:p}`petsiuk2018rise`. The mask is one kind of truth; the model is
# another. We cut the window into 0.1-s segments and set them to 0 (the window's mean after
# standardisation) in the
# order of the map, most salient first, and watch the probability of the explained class fall
# (*deletion*); or start from the all-zero window and restore segments in that order
# (*insertion*). A map that shows what the model uses gives a lower deletion area and a higher
# insertion area than the same segments taken in random order (dashed). The curves and the sanity
# check below use the `n_curve` windows of the SNR sweep (an evenly spaced subset). (Code:
# `uqxai_lib.fidelity`, `uqxai_lib.studies.ecg.fidelity_record`.)

# %%
if has_mask:
    fig = vz.plot_deletion_insertion(fid["curves"], fid["curve_aucs"])

# %% [markdown]
# **Sanity check** {cite:p}`adebayo2018sanity`. If the maps explain the *model*, they must change
# when the model's parameters are destroyed. We re-initialise the model from the head down — the linear
# layer, then the LSTM, then the Conv1d blocks from the last to the first — and compare each
# randomised model's maps with the trained model's (mean Spearman over windows). A map that barely
# changes shows the input's structure, not what the model learned. (Code:
# `uqxai_lib.studies.ecg.cascading_randomisation`, `uqxai_lib.fidelity.cascading_randomisation`.)

# %%
sanity = None
if not primary_only:
    sanity = S.cascading_randomisation(model, test_set.x[sub], layer, clean_pred[sub], size=test_set.x.shape[-1],
                                       seed=seed)
    fig = vz.plot_cascading(sanity["maps"], sanity["cascading"], fs=FS)
    display(Markdown(S.sanity_sentence(sanity)))

# %% [markdown]
# **Which layer?** The maps above come from the last Conv1d block, at a quarter of the input rate.
# Earlier blocks see finer detail. For each candidate layer: map resolution, fidelity of the clean
# maps and the SUE study under Gaussian noise on the `n_curve` windows of the SNR sweep. The
# chapter keeps the last block (the paper's choice); the table shows what that choice costs or gains.

# %%
layer_rows = None
if has_mask:
    layer_rows = cache.cached("ecg_sue/layers", dict(train=train_config, layers=list(layers), draws=draws,
                                                     snr_db=table_snr_db, quantile=sue_quantile, test=te_idx[sub].tolist(),
                                                     seed=seed, n_boot=n_boot_table, nstdb=sorted(nstdb or {}),
                                                     snr_definition=P.SNR_DEFINITION),
                              lambda: S.layer_table(model, test_set.x[sub], test_set.y[sub], test_set.mask[sub], layers,
                                                    snr_db=table_snr_db, draws=draws, seed=seed, quantile=sue_quantile,
                                                    groups=test_set.group[sub], fs=FS, nstdb=nstdb, n_boot=n_boot_table))
    display(report.table(vz.layer_choice_table(layer_rows), "layer_choice"))

# %% [markdown]
# **Where is the model's evidence?** The ST–T mask marks where the generator puts the CAD signs, but
# a model may find other evidence: each window is standardised, so a lower T wave also changes the
# scale of the QRS complex. Per true class, the mean probability of the true class on the clean
# windows, with the ST–T samples set to 0, with every other sample set to 0, and with as many
# random samples set to 0 (`uqxai_lib.studies.ecg.region_occlusion`):

# %%
occl = None
if has_mask:
    occl = S.region_occlusion(model, test_set.x, test_set.mask, test_set.y, classes=data.classes, seed=seed)
    display(report.table(vz.occlusion_table(occl), "occlusion"))
    display(Markdown(S.occlusion_sentence(occl)))

# %% [markdown]
# Zeroing samples *flattens* the trace, and a flat or lowered ST–T segment is exactly the
# generator's CAD sign. A model that learned the class can therefore read any zeroed stretch as CAD:
# if occluding the mask, its complement and random samples all push the probability towards CAD
# alike, the model reacts to flatness wherever it is, a zero baseline is not neutral for it, and the
# deletion / insertion areas above partly measure that as well. It also tells why Grad-CAM finds
# CAD evidence hard to place: the evidence is an *absence* (a missing or inverted T wave), while
# Grad-CAM can only put positive mass where the last block's activations are large. The ST–T mask
# does mark what separates the classes in the generator; what it cannot show is where a
# ReLU-weighted activation map will put "something is missing".

# %% [markdown]
# ### SUE: how repeatable is the map under noise?
#
# Each of the $S$ noisy copies is explained for the clean prediction, and SUE {cite:p}`seoni2024sue`
# measures whether the $S$ maps agree on the most salient samples. As implemented here (see the
# methods page), every map $M^{(s)}$ is binarised at its own $q$-quantile ($q$ = `sue_quantile`,
# the top 10 % of samples) and SUE is the mean pairwise intersection-over-union of these regions,
#
# $$
# R^{(s)} = \{t : M^{(s)}_t \ge Q_q(M^{(s)}),\ M^{(s)}_t > 0\},\qquad
# \mathrm{SUE} = \binom{S}{2}^{-1}\sum_{s<u}\frac{|R^{(s)}\cap R^{(u)}|}{|R^{(s)}\cup R^{(u)}|}\in[0,1],
# $$
#
# so 1 means the salient region never moves.
#
# **What counts as misclassified?** Under test-time perturbation a window has one clean prediction
# and $S$ perturbed ones. We report both readings: (a) *clean* — the prediction on the unperturbed
# window is wrong (the explained class is wrong); (b) *majority* — the most frequent prediction
# over the $S$ perturbed draws is wrong (ties go to the clean prediction). Under (a) the
# misclassified windows are the same for every noise type; under (b) they depend on the noise.
#
# (Code: the study is `uqxai_lib.studies.ecg.sue_study` → `perturbation_sue`, which runs
# `uqxai_lib.samplers.test_time` with a `uqxai_lib.perturb` noise model and scores the maps with
# `uqxai_lib.metrics.sue`; `correctness` and `table_rows` build the table below.)

# %%
kinds = (S.PRIMARY_KIND,) if primary_only else P.PERTURBATIONS  # the primary kind comes first: same seeds
study_config = dict(train=train_config, layer=layer, draws=draws, snr_db=table_snr_db, quantile=sue_quantile,
                    test=te_idx.tolist(), n_test=len(test_set), seed=seed, nstdb=sorted(nstdb or {}), kinds=list(kinds),
                    record="v2: draw_probs", snr_definition=P.SNR_DEFINITION)
study = cache.cached("ecg_sue/table", study_config, lambda: S.sue_study(
    model, test_set.x.to(dev), layer, kinds, table_snr_db, draws, seed=seed, quantile=sue_quantile,
    nstdb=nstdb))
res = {k: S.PerturbationSUE(**v) for k, v in study.items()}
sue = {k: r.sue for k, r in res.items()}
correct = {d: {k: S.correctness(r, test_set.y, d) for k, r in res.items()} for d in ("clean", "majority")}
rows = {d: S.table_rows(sue, correct[d]) for d in ("clean", "majority")}
comp = S.comparisons(sue, correct["clean"], test_set.group, n_boot=n_boot, seed=seed)

# %% [markdown]
# ## Table 1, replicated
#
# Per perturbation at the SNR given by `table_snr_db`: SUE of correctly classified and of
# misclassified windows (mean ± SD and n), the two-sided Mann–Whitney U test, and the AUROC of SUE
# for telling the two groups apart (0.5 = no better than chance, 1 = every correct window has a
# higher SUE than every misclassified one). The columns marked *(paper)* are **theirs**
# ({cite:t}`salvi2025explainability`, Table 1, reporting {cite:t}`seoni2024sue`: real ECG, a
# full-size model; the review's table gives no SNR); they are shown only for orientation. (Code:
# `uqxai_lib.studies.ecg.table_rows`, drawn by
# `uqxai_lib.viz.ecg.sue_table`.)

# %%
display(Markdown(f"**(a) misclassified = clean prediction wrong** (SNR {table_snr_db:g} dB, {draws} draws, "
                 f"{len(test_set)} test windows)"))
display(report.table(vz.sue_table(rows["clean"], paper=S.PAPER_TABLE1), "table1_clean_prediction"))
display(Markdown(f"**(b) misclassified = majority of the {draws} perturbed predictions wrong**"))
display(report.table(vz.sue_table(rows["majority"], paper=S.PAPER_TABLE1), "table1_majority_of_draws"))

# %% [markdown]
# ## The primary comparison and the secondary ones
#
# The declared primary (Gaussian noise, clean definition) with its interval over subjects, then the
# three other perturbations with Holm-adjusted p-values. The sentence is formatted from the
# interval's verdict (`uqxai_lib.stats.verdict`) and its relation to the paper's claim
# (`uqxai_lib.stats.reproduction`); nothing is read off two means.

# %%
pc = comp["by_kind"][S.PRIMARY_KIND]
display(Markdown(S.verdict_sentence(comp["primary"], n_a=pc["n_a"], n_b=pc["n_b"])))
if comp["secondary"]:
    display(Markdown("**Secondary** (Holm over the three):\n\n" + S.secondary_lines(comp["secondary"])))

# %% [markdown]
# ## SUE of correct versus misclassified windows
#
# The paper's claim is that correct predictions come with more repeatable explanations. The
# distributions behind table (a):

# %%
fig = vz.plot_sue_by_correctness(sue, correct["clean"], title="SUE by correctness (clean prediction)")

# %%
comp_major = S.comparisons(sue, correct["majority"], test_set.group, n_boot=n_boot_table, seed=seed)
display(Markdown(S.describe_rows(rows["clean"], comp["by_kind"], definition="clean-prediction")))
display(Markdown(S.describe_rows(rows["majority"], comp_major["by_kind"], definition="majority-of-draws")))

# %% [markdown]
# ## Is the result a design choice? SUE variants
#
# Three choices inside SUE can decide the result before any data are seen. Each is a named
# variant here, computed on the same windows and the same draws (Gaussian noise, the primary):
#
# - **reference**: the mean Jaccard index over *pairs of perturbed maps* (what we call SUE above),
#   or each perturbed map against the *clean map*;
# - **top-region size** $q$: the top 5, 10, 20 or 30 % of samples;
# - **target**: every draw explained for the *clean* prediction (fixed before perturbing), or for
#   *its own* prediction.
#
# **Empty regions.** A map that is zero everywhere (Grad-CAM's ReLU removes everything) has no
# salient region; two such maps would count as perfect agreement (J = 1) and inflate SUE exactly
# where the explanation failed. In the variants, a window with any empty map is **left out** (NaN)
# and counted (`uqxai_lib.metrics.sue(..., empty="nan")`, `metrics.empty_regions`).
#
# **Which variant does the text support?** {cite:t}`salvi2025explainability` (§4.1 and Fig. 2b)
# describe SUE as
# comparing "the saliency maps generated from multiple augmented samples" — the maps of the
# perturbed copies with one another, which is the *pairs* reference; neither the review nor this
# chapter's reading of it gives a top-region size or says which class each perturbed copy is
# explained for, so $q$ and the target stay open choices, and the table shows what they change.
# Read the *own-target* rows with care: a draw whose prediction flips is then explained for the
# other class, so its map moves for that reason alone, and the own-target SUE partly re-measures
# the prediction flip rate (a baseline below) rather than the stability of one explanation.

# %%
var_rows = None
if not primary_only:
    r0 = res[S.PRIMARY_KIND]
    own = cache.cached("ecg_sue/own_target", dict(study_config, kind=S.PRIMARY_KIND),
                       lambda: S.own_target_maps(model, test_set.x, layer, r0, seed=seed + 0, fs=FS, nstdb=nstdb))
    variants = S.sue_variants(r0.maps, clean_maps, own, size=test_set.x.shape[-1])
    var_rows = S.variant_rows(variants, correct["clean"][S.PRIMARY_KIND], test_set.group, n_boot=n_boot_table, seed=seed)
    display(report.table(vz.variants_table(var_rows), "sue_variants"))
    fig = vz.plot_variants(var_rows)

# %% [markdown]
# ## SUE against simpler signals
#
# A prediction that flips under noise, a small softmax margin, or a high predictive entropy of the
# perturbed draws also flag doubtful windows — and they need no explanation at all. On the same
# windows and draws (Gaussian noise): the AUROC of each for telling correct from misclassified
# windows (each oriented so that higher means "more likely correct"), beside SUE's. Does SUE **add**
# anything? A logistic regression on the three baselines, with and without SUE, fitted and scored
# out of fold (five folds grouped by subject, `sklearn` `StratifiedGroupKFold`), and the rank
# average of SUE with the best single baseline. (Code: `uqxai_lib.studies.ecg.baseline_scores`,
# `added_value`.)

# %%
base_rows, added = None, None
if not primary_only:
    scores = S.baseline_scores(r0, clean_probs)
    c0 = correct["clean"][S.PRIMARY_KIND]
    base_rows = S.baseline_rows(scores, c0, test_set.group, n_boot=n_boot_table, seed=seed)
    added = S.added_value(sue[S.PRIMARY_KIND], scores, c0, test_set.group, n_boot=n_boot_table, seed=seed)
    display(report.table(vz.baselines_table(comp["primary"], base_rows, added), "baselines"))
    display(Markdown(S.added_value_sentence(added)))

# %% [markdown]
# ## Confounding: is SUE informative within a severity stratum?
#
# The generator makes errors come mostly from *mild* CAD subjects, whose maps may be less stable for
# a reason of their own (weak ST–T changes). If SUE only told mild from marked CAD, it would look
# informative overall and be useless within a stratum. The AUROC of SUE within each stratum of the
# generator's `severity` (healthy, mild CAD = the ambiguous subjects, marked CAD) and within the CAD
# class:

# %%
strata = None
if severity is not None and not primary_only:
    strata = S.strata_rows(sue[S.PRIMARY_KIND], correct["clean"][S.PRIMARY_KIND], severity, test_set.group,
                           n_boot=n_boot_table, seed=seed)
    display(report.table(vz.strata_table(strata), "severity_strata"))
    display(Markdown(S.strata_sentence(strata)))

# %% [markdown]
# Errors go one way in each stratum: a healthy window can only be called CAD, a CAD window only
# healthy. So if SUE followed the *explained* (predicted) class rather than correctness, the
# healthy and the CAD strata would give AUROCs on opposite sides of 0.5. The mean SUE per true and
# predicted class shows whether it does (`uqxai_lib.studies.ecg.prediction_rows`):

# %%
pred_rows = None
if not primary_only:
    pred_rows = S.prediction_rows(sue[S.PRIMARY_KIND], res[S.PRIMARY_KIND].clean_pred, test_set.y, classes=data.classes)
    display(report.table(vz.prediction_table(pred_rows), "sue_by_prediction"))

# %% [markdown]
# ## Stable and right?
#
# Per window: fidelity of the clean map (mass in the ST–T mask) against its stability (SUE, Gaussian
# noise), coloured by correctness, and the Spearman correlation of the two with its interval over
# subjects. (Code: `uqxai_lib.studies.ecg.fidelity_vs_stability`.)

# %%
fvs = None
if has_mask:
    fvs = S.fidelity_vs_stability(fid["mass"], sue[S.PRIMARY_KIND], test_set.group, n_boot=n_boot_table, seed=seed)
    fig = vz.plot_fidelity_vs_stability(fid["mass"], sue[S.PRIMARY_KIND], correct["clean"][S.PRIMARY_KIND],
                                        fid["chance"], title=f"Spearman {fvs['spearman']:.3f} "
                                                             f"{S.format_ci(fvs['ci95'])}")

# %% [markdown]
# ### Two windows, many maps
#
# Left: the correctly classified window with the highest SUE; right: the misclassified window with
# the lowest SUE (clean definition), under the perturbation whose SUE separates the two groups best
# (highest AUROC in table (a)). The red band is the clean map, the blue lines are maps of perturbed
# copies (all scaled to [0, 1]), the grey band is the ST–T truth.

# %%
kind_ex = S.best_kind(rows["clean"])
examples = S.pick_examples(sue[kind_ex], correct["clean"][kind_ex])
if not primary_only:
    fig = vz.plot_example_pair(test_set.x[:, 0], clean_maps, res[kind_ex].maps, sue[kind_ex], examples, test_set.y,
                               res[kind_ex].clean_pred, classes=data.classes, mask=test_set.mask, fs=FS,
                               caption=f"({vz.PERTURBATION_LABELS[kind_ex]}, {table_snr_db:g} dB)")

# %% [markdown]
# ### SUE against SNR
#
# The same study on `n_curve` test windows over the SNRs in `snr_grid`: how quickly do the
# explanations (left, mean ± SD of SUE) and the predictions (right, share of perturbed draws
# classified correctly) lose their footing as the noise grows? (Code: `uqxai_lib.studies.ecg.sue_sweep`
# and `sue_vs_snr_frame`.)

# %%
if not primary_only:
    curve_idx = torch.linspace(0, len(test_set) - 1, min(n_curve, len(test_set))).round().long()
    curve = cache.cached("ecg_sue/curve", dict(study_config, snr_grid=list(snr_grid), curve=curve_idx.tolist()),
                         lambda: S.sue_sweep(model, test_set.x[curve_idx].to(dev), layer, P.PERTURBATIONS, snr_grid,
                                             draws, seed=seed, quantile=sue_quantile, nstdb=nstdb))
    curve_frame = S.sue_vs_snr_frame(curve, test_set.y[curve_idx], definition="majority")
    fig = vz.plot_sue_vs_snr(curve_frame)

# %% [markdown]
# ## Explore: perturbation type × SNR
#
# One window (the misclassified one above, or the first CAD window when there is none) with its
# first perturbed copy and the maps of all its copies, for every perturbation type and every SNR
# in `widget_snrs`. The frames were computed when the notebook ran; moving the sliders needs no
# kernel.

# %%
if not primary_only:
    _, lo = examples
    i_w = lo if lo is not None else int(torch.nonzero(test_set.y == 1)[0])
    xw = test_set.x[i_w:i_w + 1]
    sweep = S.sue_sweep(model, xw.to(dev), layer, P.PERTURBATIONS, widget_snrs, draws, seed=seed + 1000,
                        keep_maps=True, quantile=sue_quantile, nstdb=nstdb)
    frames = vz.sweep_frames(clean_maps[i_w], sweep, S.first_draws(xw, sweep, fs=FS, nstdb=nstdb),
                             int(test_set.y[i_w]), fs=FS)
    display(widgets.frame_grid(frames, [vz.PERTURBATION_LABELS[k] for k in P.PERTURBATIONS],
                               [f"{s:g} dB" for s in widget_snrs], descriptions=("noise", "SNR")))

# %% [markdown]
# The headline numbers of this run (classification, both tables, the primary and secondary
# comparisons, the claim, variants, baselines, strata, fidelity and the sanity check) go to
# `results_path` as JSON (`uqxai_lib.studies.ecg.headline_numbers`).

# %%
headline = S.headline_numbers(
    clf, rows, snr_db=table_snr_db, draws=draws, n_test=len(test_set), primary=comp["primary"], claim=S.CLAIM,
    secondary=comp["secondary"] or None, sue_variants=var_rows, baselines=base_rows, added_value=added,
    strata=strata, fidelity=S.fidelity_json(fid), sanity=S.sanity_json(sanity), fidelity_vs_stability=fvs,
    layers=layer_rows, occlusion=occl, sue_by_prediction=pred_rows, primary_only=bool(primary_only))
report.save_tables(results_path)
cache.atomic_write_json(results_path, headline)

# %% [markdown]
# ## Caveats
#
# - **Synthetic data.** The default data are generated; the CAD signs are idealised and the
#   ambiguity comes from a chosen share of mild CAD subjects. Numbers here are not clinical results
#   and differ from the paper's, which used real Fantasia + INCART windows.
# - **Absolute SUE values are not comparable with the paper's.** The review's Table 1 gives no SNR
#   and no top-region size; our table uses one SNR (`table_snr_db`) for all four noise types and the
#   top-10 % rule above, and the variant table shows how much the region size and the reference
#   change the result. Compare the *gap* between correct and misclassified windows and its
#   direction, not the levels.
# - **Definition of misclassified.** With the *clean* definition the misclassified windows are the
#   model's clean errors, the same for every noise type and few in number; with the *majority*
#   definition, noise-induced flips count too. The two tables can disagree. With fewer than a
#   handful of misclassified windows the mean, SD, p-value and AUROC of that group are unstable,
#   and with none they are undefined (shown as "–"); the text above says when that happens.
# - **Map resolution.** The Grad-CAM layer works at 62.5 Hz, so the upsampled maps are smooth and
#   a 10 % top region spans only a few layer positions; SUE depends on $q$ and on this resolution.
# - **One model, one seed.** The intervals here are over test subjects; the spread across training
#   seeds is the robustness chapter's (it runs this notebook with `primary_only = True`).
# - **Stable is not right.** SUE measures repeatability only; the fidelity section says whether the
#   maps sit on the ST–T evidence and whether they survive the randomisation check, and the
#   scatter of fidelity against SUE says whether the two go together.

# %% [markdown]
# ## Summary

# %%
display(Markdown(S.summary_markdown(comp, clf=clf, fidelity=fid, sanity=sanity, variants=var_rows,
                                    baselines=base_rows, added=added, strata=strata, fvs=fvs, prediction=pred_rows)))

# %% [markdown]
# We trained a CNN-BiLSTM on single-lead ECG windows, explained it with Grad-CAM at its last Conv1d
# block, perturbed every test window repeatedly with four realistic noise models at a fixed SNR and
# measured the repeatability of the explanations with SUE. Table (a) and the distributions show,
# per noise type, whether and how strongly correct predictions come with more stable maps than
# misclassifications; table (b) repeats the comparison when a prediction that flips under noise
# also counts as an error; the AUROC column says how well a low SUE alone would flag an
# untrustworthy prediction. The SNR sweep shows how fast the maps lose their footing as the noise
# grows and which noise types disturb them most; the widget lets you look at single windows.
#
# The paragraph above this one carries the run's numbers. Read the primary result together with
# the choices it depends on (pairs-of-draws SUE, top 10 %, clean target, Gaussian noise at
# `table_snr_db`, the last Conv1d block) and with three checks that can overturn its meaning: the
# prediction-only baselines (does SUE tell anything a softmax does not?), the strata and the table
# of SUE per predicted class (does SUE flag errors, or the class the model predicted?), and the
# fidelity section (are the maps that are stable also on the evidence?).
#
# ## What's next
#
# - Try other SNRs (`table_snr_db`), more draws or a larger `max_test`, and see how the AUROC of SUE
#   changes.
# - Run with `data_dir` pointing at Fantasia + INCART (and NSTDB) to repeat the study on real ECG.
# - The next chapter turns from noise in the input (aleatoric uncertainty) to uncertainty in the
#   model (epistemic): MC-dropout Grad-CAM on brain MRI.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

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
# agreement of the $S$ maps is summarised by SUE (spatial uncertainty estimation, Seoni et al. 2024).
# The claim we test, from Salvi et al. (2025, section 4.1 and Table 1): **correct predictions come
# with more repeatable explanations (higher SUE) than misclassifications**, so a low SUE can flag a
# prediction that should not be trusted.
#
# You will learn how to
#
# 1. train a small CNN-BiLSTM on seeded synthetic ECG (or on Fantasia + INCART if you have them);
# 2. compute Grad-CAM at the last Conv1d layer and check it against the ground-truth ST–T region;
# 3. run test-time perturbations at a controlled signal-to-noise ratio and compute SUE per window;
# 4. rebuild the paper's Table 1 and judge how well SUE flags misclassifications.

# %% [markdown]
# ## Prerequisites
#
# | Concept | Importance | Notes |
# | --- | --- | --- |
# | Grad-CAM | necessary | see the methods page and the primer chapter |
# | SNR in dB, ECG waves (P, QRS, ST, T) | helpful | $\mathrm{SNR} = 10\log_{10}(P_x/P_n)$ |
# | Mann–Whitney U, AUROC | helpful | for the table's statistics |
#
# **Time to run:** one to two minutes (`tiny`), at most four minutes on two CPU cores (`smoke`, the
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

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from uqxai_lib import cache, metrics, saliency, train, widgets
from uqxai_lib import perturb as P
from uqxai_lib.data.fantasia_incart import load_fantasia_incart
from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg, stratified_group_split
from uqxai_lib.models.cnn_bilstm import CNNBiLSTM
from uqxai_lib.utils import pick_device, resolve_data_dir, seed_everything
from uqxai_lib.viz import ecg as vz
from uqxai_lib.viz.common import split_table

dev = pick_device(device)
seed_everything(seed)
root = resolve_data_dir(data_dir)
FS = 250  # Hz, both for the synthetic windows and for the resampled real records
nstdb = P.load_nstdb(root, fs=FS)  # MIT-BIH Noise Stress Test records, when the data directory holds them
display(Markdown(f"Running on **{dev}** with "
                 f"{'Fantasia + INCART from `' + str(root) + '`' if root else 'the embedded synthetic ECG'}; "
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
# from 257 Hz) instead; those have no mask. Train, validation and test sets are split **by
# subject** with the class ratio kept, so no subject's windows leak from training into the test.

# %%
if root is None:
    data = make_synthetic_ecg(n_subjects, windows_per_subject, cad_fraction=cad_fraction,
                              mild_fraction=mild_fraction, seed=seed)
    data_config = dict(source="synthetic", n_subjects=n_subjects, windows_per_subject=windows_per_subject,
                       cad_fraction=cad_fraction, mild_fraction=mild_fraction, seed=seed)
else:
    data = load_fantasia_incart(root, max_windows_per_record=max_windows_per_record, healthy_records=fantasia_records,
                                incart_records=incart_records, cad_records=incart_cad_records)
    data_config = dict(source=str(root), max_windows_per_record=max_windows_per_record, fantasia_records=fantasia_records,
                       incart_records=incart_records, incart_cad_records=incart_cad_records)
tr_idx, va_idx, te_idx = stratified_group_split(data.group, data.y, [0.6, 0.2, 0.2], seed=seed)
train_set, val_set, test_set = data.subset(tr_idx), data.subset(va_idx), data.subset(te_idx)
if len(test_set) > max_test:  # study an evenly spaced subset of the test windows (keeps the class mix)
    test_set = test_set.subset(torch.linspace(0, len(test_set) - 1, max_test).round().long())
split_table({"train": train_set, "validation": val_set, "test (studied)": test_set},
            items="windows", groups="subjects", positive="CAD share", percent=False, digits=3)

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

# %%
model = CNNBiLSTM(channels=channels, hidden=hidden)
train_config = dict(data=data_config, model=model.config, epochs=epochs, batch_size=batch_size, lr=lr,
                    patience=patience, seed=seed)
fit = train.fit(model, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                seed=seed, device=dev, name="ecg_cnn_bilstm", cache_config=train_config)
model = fit.model
clf = metrics.classification_summary(train.predict_proba(model, test_set.x, device=dev), test_set.y, positive=1)
vz.classification_table(clf)

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
# At test time every window $x$ gets $S$ = `draws` noisy copies $\tilde x^{(s)} = x + n^{(s)}$,
# with the noise scaled **per window** so that the signal-to-noise ratio is exactly the one asked
# for,
#
# $$
# \mathrm{SNR} = 10\log_{10}\frac{P_x}{P_n},\qquad P_v = \frac{1}{L}\sum_{t=1}^{L} v_t^2 .
# $$
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
# that very copy.

# %%
gen = torch.Generator().manual_seed(seed)
x_demo = test_set.x[:1]
noisy = {k: P.make_perturbation(k, table_snr_db, FS, nstdb=nstdb)(x_demo, gen)[0, 0] for k in P.PERTURBATIONS}
fig = vz.plot_perturbations(x_demo[0, 0], noisy, fs=FS, target_snr_db=table_snr_db)

# %% [markdown]
# ## Explanations and their uncertainty
#
# ### Grad-CAM
#
# Grad-CAM weights the channels of the last Conv1d block by their average gradient and keeps the
# positive part of the weighted sum,
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
# map spread evenly would score).

# %%
layer = model.cam_layer_name
clean_maps = saliency.upsample(saliency.grad_cam(model, test_set.x.to(dev), layer).cpu(), test_set.x.shape[-1])
if test_set.mask is not None:
    fidelity = metrics.mass_in_mask(clean_maps, test_set.mask)
    chance = float(test_set.mask.float().mean())
    fig = vz.plot_fidelity(fidelity, test_set.y, chance, classes=data.classes)
    display(Markdown(
        f"Mean fidelity {fidelity.nanmean():.3f} (healthy {fidelity[test_set.y == 0].nanmean():.3f}, "
        f"CAD {fidelity[test_set.y == 1].nanmean():.3f}) against {chance:.3f} for an evenly spread map "
        f"({int(fidelity.isnan().sum())} all-zero maps left out)."))
else:
    fidelity, chance = None, None
    display(Markdown("Real data carry no ST–T mask, so fidelity is not computed."))

# %% [markdown]
# ### SUE: how repeatable is the map under noise?
#
# Each of the $S$ noisy copies is explained for the clean prediction, and SUE (Seoni et al. 2024)
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

# %%
study_config = dict(train=train_config, layer=layer, draws=draws, snr_db=table_snr_db, quantile=sue_quantile,
                    test=te_idx.tolist(), n_test=len(test_set), seed=seed, nstdb=sorted(nstdb or {}))
study = cache.cached("ecg_sue/table", study_config, lambda: P.sue_study(
    model, test_set.x.to(dev), layer, P.PERTURBATIONS, table_snr_db, draws, seed=seed, quantile=sue_quantile,
    nstdb=nstdb))
res = {k: P.PerturbationSUE(**v) for k, v in study.items()}
sue = {k: r.sue for k, r in res.items()}
correct = {d: {k: P.correctness(r, test_set.y, d) for k, r in res.items()} for d in ("clean", "majority")}
rows = {d: vz.table_rows(sue, correct[d]) for d in ("clean", "majority")}

# %% [markdown]
# ## Table 1, replicated
#
# Per perturbation at the SNR given by `table_snr_db`: SUE of correctly classified and of
# misclassified windows (mean ± SD and n), the two-sided Mann–Whitney U test, and the AUROC of SUE
# for telling the two groups apart (0.5 = no better than chance, 1 = every correct window has a
# higher SUE than every misclassified one). The columns marked *(paper)* are **theirs** (Salvi et
# al. 2025, Table 1, from Seoni et al. 2024: real ECG, a full-size model, an SNR they do not
# state); they are shown only for orientation.

# %%
display(Markdown(f"**(a) misclassified = clean prediction wrong** (SNR {table_snr_db:g} dB, {draws} draws, "
                 f"{len(test_set)} test windows)"))
display(vz.sue_table(rows["clean"]))
display(Markdown(f"**(b) misclassified = majority of the {draws} perturbed predictions wrong**"))
display(vz.sue_table(rows["majority"]))

# %% [markdown]
# ## SUE of correct versus misclassified windows
#
# The paper's claim is that correct predictions come with more repeatable explanations. The
# distributions behind table (a):

# %%
fig = vz.plot_sue_by_correctness(sue, correct["clean"], title="SUE by correctness (clean prediction)")

# %%
display(Markdown(vz.describe_rows(rows["clean"], definition="clean-prediction")))
display(Markdown(vz.describe_rows(rows["majority"], definition="majority-of-draws")))

# %% [markdown]
# ### Two windows, many maps
#
# Left: the correctly classified window with the highest SUE; right: the misclassified window with
# the lowest SUE (clean definition), under the perturbation whose SUE separates the two groups best
# (highest AUROC in table (a)). The red band is the clean map, the blue lines are maps of perturbed
# copies (all scaled to [0, 1]), the grey band is the ST–T truth.

# %%
kind_ex = max(rows["clean"], key=lambda k: rows["clean"][k]["auroc"] if rows["clean"][k]["n_mis"] else -1.0)
fig = vz.plot_example_pair(test_set.x[:, 0], clean_maps, res[kind_ex].maps, sue[kind_ex], correct["clean"][kind_ex],
                           test_set.y, res[kind_ex].clean_pred, classes=data.classes, mask=test_set.mask, fs=FS,
                           caption=f"({vz.PERTURBATION_LABELS[kind_ex]}, {table_snr_db:g} dB)")

# %% [markdown]
# ### SUE against SNR
#
# The same study on `n_curve` test windows over the SNRs in `snr_grid`: how quickly do the
# explanations (left, mean ± SD of SUE) and the predictions (right, share of perturbed draws
# classified correctly) lose their footing as the noise grows?

# %%
curve_idx = torch.linspace(0, len(test_set) - 1, min(n_curve, len(test_set))).round().long()
curve = cache.cached("ecg_sue/curve", dict(study_config, snr_grid=list(snr_grid), curve=curve_idx.tolist()),
                     lambda: P.sue_sweep(model, test_set.x[curve_idx].to(dev), layer, P.PERTURBATIONS, snr_grid,
                                         draws, seed=seed, quantile=sue_quantile, nstdb=nstdb))
curve_frame = vz.sue_vs_snr_frame(curve, test_set.y[curve_idx], definition="majority")
fig = vz.plot_sue_vs_snr(curve_frame)

# %% [markdown]
# ## Explore: perturbation type × SNR
#
# One window (the misclassified one above, or the first CAD window when there is none) with its
# first perturbed copy and the maps of all its copies, for every perturbation type and every SNR
# in `widget_snrs`. The frames were computed when the notebook ran; moving the sliders needs no
# kernel.

# %%
_, lo = vz.pick_examples(sue[kind_ex], correct["clean"][kind_ex])
i_w = lo if lo is not None else int(torch.nonzero(test_set.y == 1)[0])
xw = test_set.x[i_w:i_w + 1]
sweep = P.sue_sweep(model, xw.to(dev), layer, P.PERTURBATIONS, widget_snrs, draws, seed=seed + 1000,
                    keep_maps=True, quantile=sue_quantile, nstdb=nstdb)
frames = vz.sweep_frames(xw, clean_maps[i_w], sweep, int(test_set.y[i_w]), fs=FS, nstdb=nstdb)
widgets.frame_grid(frames, [vz.PERTURBATION_LABELS[k] for k in P.PERTURBATIONS], [f"{s:g} dB" for s in widget_snrs],
                   descriptions=("noise", "SNR"))

# %% [markdown]
# The headline numbers of this run (classification, both tables) go to `results_path` as JSON.

# %%
headline = vz.headline_numbers(clf, rows, snr_db=table_snr_db, draws=draws, n_test=len(test_set),
                               fidelity_mean=None if fidelity is None else float(fidelity.nanmean()),
                               fidelity_chance=chance)
cache.atomic_write_json(results_path, headline)

# %% [markdown]
# ## Caveats
#
# - **Synthetic data.** The default data are generated; the CAD signs are idealised and the
#   ambiguity comes from a chosen share of mild CAD subjects. Numbers here are not clinical results
#   and differ from the paper's, which used real Fantasia + INCART windows.
# - **Absolute SUE values are not comparable with the paper's.** Seoni et al. do not state the SNR
#   behind Table 1 nor every detail of their SUE (region size, map resolution); our table uses one
#   SNR (`table_snr_db`) for all four noise types and the top-10 % rule above. Compare the *gap*
#   between correct and misclassified windows and its direction, not the levels.
# - **Definition of misclassified.** With the *clean* definition the misclassified windows are the
#   model's clean errors, the same for every noise type and few in number; with the *majority*
#   definition, noise-induced flips count too. The two tables can disagree. With fewer than a
#   handful of misclassified windows the mean, SD, p-value and AUROC of that group are unstable,
#   and with none they are undefined (shown as "–"); the text above says when that happens.
# - **Map resolution.** The Grad-CAM layer works at 62.5 Hz, so the upsampled maps are smooth and
#   a 10 % top region spans only a few layer positions; SUE depends on $q$ and on this resolution.
# - **One model, one seed.** The spread across training seeds and data draws is not shown.

# %% [markdown]
# ## Summary
#
# We trained a CNN-BiLSTM on single-lead ECG windows, explained it with Grad-CAM at its last Conv1d
# block, perturbed every test window repeatedly with four realistic noise models at a fixed SNR and
# measured the repeatability of the explanations with SUE. Table (a) and the distributions show,
# per noise type, whether and how strongly correct predictions come with more stable maps than
# misclassifications; table (b) repeats the comparison when a prediction that flips under noise
# also counts as an error; the AUROC column says how well a low SUE alone would flag an
# untrustworthy prediction. The SNR sweep shows how fast the maps lose their footing as the noise
# grows and which noise types disturb them most; the widget lets you look at single windows.
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
# - Salvi M, Seoni S, Campagner A, et al. Explainability and uncertainty: two sides of the same
#   coin for enhancing the interpretability of deep learning models in healthcare. *Int J Med
#   Inform* 197 (2025) 105846 (section 4.1, Table 1).
# - Seoni S, Jahmunah V, Salvi M, Barua PD, Molinari F, Acharya UR. Application of uncertainty
#   quantification to artificial intelligence in healthcare: a review of last decade (2013–2023)
#   and SUE: *Information Sciences* 665 (2024) 120383.
# - Acharya UR, Fujita H, Lih OS, Adam M, Tan JH, Chua CK. Automated detection of coronary artery
#   disease using different durations of ECG segments with convolutional neural network.
#   *Knowledge-Based Systems* 132 (2017) 62–71.
# - Selvaraju RR et al. Grad-CAM: visual explanations from deep networks via gradient-based
#   localization. *ICCV* 2017.
# - Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. *Circulation* 101 (2000) e215–e220
#   (Fantasia, INCART, NSTDB).

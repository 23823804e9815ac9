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
# # Robustness: do the three claims survive other training seeds?
#
# ## Overview
#
# Each study chapter trains one model with one seed and reports its primary comparison with a
# bootstrap 95% interval over *test items* {cite:p}`efron1993bootstrap`. That interval says nothing
# about the model: a different
# training seed, or the same seed at another torch thread count (which changes the order of
# floating-point sums and so the trained weights), gives another model and possibly another answer.
# This chapter re-runs every study several times and asks which conclusions hold across training
# seeds: {cite:t}`bouthillier2021variance` show that the variance from data sampling, parameter
# initialisation and hyperparameter choice markedly changes the results of machine-learning benchmarks.
# The claims are those of {cite:t}`salvi2025explainability` (ECG, MRI) and the VIC poster
# {cite:p}`vic_poster` (dermoscopy).
#
# In this chapter you will
#
# 1. run each study (`ecg_sue`, `mri_mc_dropout`, `derm_vic`) for several training seeds with
#    `primary_only=True` (only what its primary comparison needs), as tasks of the Dask sweep
#    (`uqxai_lib.sweep`), one torch thread per task;
# 2. run one seed again at two threads to see the thread-count effect;
# 3. read each run's `primary` record and show, per study, a forest plot of the effect and its
#    interval per seed with the across-seed mean and its 95% interval, the number of seeds that agree
#    in sign, and the paper's number beside ours;
# 4. say which of the three claims survive.
#
# ## Prerequisites
#
# | Concept | Why |
# | --- | --- |
# | The three study chapters and their primary comparisons | this chapter repeats them |
# | Bootstrap confidence intervals | the per-seed intervals (over test items) |
# | Student-t interval of a mean | the across-seed interval (over training seeds) |
#
# Time to run: about 3 minutes in the `tiny` profile (2 seeds), about 7 minutes on two idle CPU cores
# for `smoke` (5 seeds, 18 tasks; see `uqxai_lib/profiles/robustness.yaml`). Finished tasks are kept in
# `_build/sweeps/` and not run again.

# %% tags=["parameters"]
seed = 0  # unused: the studies' training seeds are `seeds`
device = "auto"
data_dir = None
results_path = "../_build/results/robustness.json"
profile = "smoke"
studies = ["ecg_sue", "mri_mc_dropout", "derm_vic"]
seeds = [0, 1, 2, 3, 4]  # training seeds of every study (1 torch thread)
thread_seed = 0  # this seed also runs at 2 torch threads
study_profile = None  # profile of the study notebooks (None: the same as this chapter's)
study_overrides = {}  # per study, parameters on top of its profile, e.g. {"ecg_sue": {"max_test": 300}}
workers = None  # LocalCluster worker processes (None: the machine's cores, one thread each)
sweep_dir = "../_build/sweeps"
notebooks_dir = "."  # where the study notebooks are (papermill runs this one in notebooks/)
profiles_dir = None  # the studies' profiles (None: uqxai_lib/profiles)

# %%
import os
import pathlib

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from uqxai_lib import cache, report, sweep, utils
from uqxai_lib.studies import robustness as R
from uqxai_lib.viz import robustness as vr
from uqxai_lib.viz import use_style

use_style()  # the house figure style (importing uqxai_lib.viz changes no global state)

dev = str(utils.pick_device(device))
run_profile = study_profile or profile
n_workers = workers or sweep.default_workers(1)
TITLES = {"ecg_sue": "ECG: SUE under test-time noise", "mri_mc_dropout": "MRI: MC-dropout repeatability",
          "derm_vic": "Dermoscopy: VIC of a Rashomon set"}
print(f"profile={profile}: studies {studies} at profile {run_profile}, seeds {seeds} (1 thread) + seed "
      f"{thread_seed} at 2 threads, {n_workers} worker(s), device {dev}")


def show(fig):
    """Display a figure once and free it."""
    display(fig)
    plt.close(fig)


# %% [markdown]
# ## Running the studies over seeds
#
# `R.check_studies` makes sure every study notebook accepts `primary_only` (the chapter stops here
# with a message naming the notebook otherwise). `R.study_tasks` builds one sweep task per study and
# seed at one torch thread, plus `thread_seed` at two threads; `sweep.sweep` runs them on a local Dask
# cluster, skipping tasks whose key (notebook source, parameters, seed, package, threads) already
# finished. Each task's kernel has `OMP_NUM_THREADS` fixed, so its result does not depend on how many
# tasks ran at the same time.

# %%
R.check_studies(studies, pathlib.Path(notebooks_dir).resolve())
tasks = R.study_tasks(studies, seeds, profile=run_profile, thread_seed=thread_seed, overrides=study_overrides,
                      device=dev, data_dir=data_dir, notebooks_dir=pathlib.Path(notebooks_dir).resolve(),
                      profiles_dir=profiles_dir,
                      env={k: os.environ[k] for k in ("UQXAI_CACHE_DIR",) if k in os.environ})
# progress (done / total, ETA) goes to stderr, which the book leaves out of the page
rows = sweep.sweep(tasks, out=pathlib.Path(sweep_dir).resolve(), workers=n_workers)
summaries = R.summarize_all(rows, studies, thread_seed=thread_seed)
report.table(pd.DataFrame([{"study": r["notebook"], "seed": r["seed"], "threads": r["threads"], "status": r["status"],
                            "wall time (s)": r["wall_time_s"], "worker": r["worker"]} for r in rows]), "runs")

# %% [markdown]
# ## Per study: effect over seeds
#
# In each forest plot a blue dot is one training seed's primary effect with its bootstrap 95%
# interval over test items (grouped by subject, patient or lesion as in the chapter), the orange
# square is `thread_seed` trained and evaluated at two torch threads, and the black diamond is the
# mean over seeds with its Student-t 95% interval (the variation between training seeds). The dashed
# line is no effect. The paper's number is quoted as a string from the chapter's `claim` record,
# labelled *theirs*: it is not always on the scale of our effect.

# %%
for name in studies:
    s = summaries[name]
    c = s["claim"]
    display(Markdown(f"### {TITLES.get(name, name)}\n\n*Claim* ({c['source']}): {c['text']} "
                     f"Theirs: **{c['theirs']}**. Our primary comparison: `{s['primary_name']}`."))
    show(vr.forest_plot(s, title=TITLES.get(name, name)))
    t1, t2 = s["threads"]["1"], s["threads"]["2"]
    thread_note = ("the 2-thread run did not finish" if t2 is None else
                   f"seed {s['thread_seed']} gives {t1:.4g} at 1 thread and {t2:.4g} at 2 threads "
                   f"(difference {t2 - t1:+.3g})")
    display(Markdown(
        f"- Across {len(s['seeds'])} seeds the mean effect is {s['mean']:.4g}, 95% interval "
        f"[{s['ci95'][0]:.4g}, {s['ci95'][1]:.4g}]: **{s['verdict']}**; the claim is "
        f"**{s['reproduction']}** across seeds.\n"
        f"- {s['sign_agreement']} seeds agree in sign with the mean; {s['reproduced_seeds']} seeds alone "
        f"would have reproduced the claim (their verdicts: {', '.join(s['verdicts_per_seed'])}).\n"
        f"- Thread count: {thread_note}."))

# %% [markdown]
# ## All three claims

# %%
table = pd.DataFrame([{
    "study": name, "claim (theirs)": s["claim"]["theirs"], "expected": s["claim"]["expected"],
    "mean effect": s["mean"], "95% CI (seeds)": f"[{s['ci95'][0]:.3g}, {s['ci95'][1]:.3g}]",
    "sign agreement": s["sign_agreement"], "verdict": s["verdict"], "claim across seeds": s["reproduction"],
    "1 thread": s["threads"]["1"], "2 threads": s["threads"]["2"]} for name, s in summaries.items()])
report.table(table, "claims_across_seeds")

# %%
keys = ("seeds", "effects", "ci95_per_seed", "mean", "ci95", "sign_agreement", "threads", "thread_seed",
        "verdict", "reproduction", "verdicts_per_seed", "reproduced_seeds", "primary_name", "claim")
results = {name: cache.finite_or_none(cache.round_sig({k: s[k] for k in keys})) for name, s in summaries.items()}
report.save_tables(results_path)
cache.atomic_write_json(results_path, results)

# %% [markdown]
# ## Caveats
#
# - **Few seeds.** With 2 (tiny) or 5 (smoke) seeds the Student-t interval is wide; a claim that is
#   "not reproduced" across seeds may still hold with more seeds. The interval is over training
#   seeds only: the data draw of each study is tied to its seed too.
# - **Small profiles.** The smoke studies train small models for a few epochs on synthetic data;
#   `tiny` models are barely trained, so in CI this chapter only checks that everything runs.
# - **Thread count.** One seed at two threads is an example, not a distribution; results also
#   depend on the CPU (its vector units change the summation order) and on the torch version.

# %% [markdown]
# ## Summary

# %%
fate = R.surviving(summaries)
words = {"reproduced": "survive", "not reproduced": "are not reproduced", "reversed": "are reversed"}
lines = [f"- Claims that {words[k]} across {len(seeds)} training seeds: "
         f"{', '.join(TITLES.get(n, n) for n in v) if v else 'none'}." for k, v in fate.items()]
display(Markdown("\n".join(lines) + "\n- Verdicts are chosen from the across-seed 95% interval "
                 "(`stats.seed_summary`, `stats.reproduction`); the per-seed verdicts above show how often a "
                 "single run would have told a different story."))

# %% [markdown]
# ## What's next
#
# - Run more seeds or a larger profile: `make sweep ONLY=ecg_sue SEEDS=0-19 SET="primary_only=true"`,
#   on a Dask cluster with `--scheduler tcp://host:8786` (see the README).
# - Change one setting for every seed (`study_overrides`) and see whether a verdict moves.
# - The reproducibility page explains how thread counts and the cache enter the results.
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```

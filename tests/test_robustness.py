"""uqxai_lib.studies.robustness on fabricated sweep results (known answers), and its forest plot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from uqxai_lib import stats
from uqxai_lib.studies import robustness as R

CLAIM = {"text": "SUE is higher for correct windows.", "expected": "higher", "theirs": "AUROC 0.80",
         "source": "seoni2024sue"}


def _row(tmp: Path, study: str, seed: int, effect: float, half: float = 0.1, threads: int = 1, **extra) -> dict:
    path = tmp / f"{study}-{seed}-{threads}.json"
    ci = [effect - half, effect + half]
    data = {"primary": {"name": "SUE correct - misclassified", "effect": effect, "ci95": ci, "auroc": 0.6,
                        "auroc_ci95": [0.5, 0.7], "p": 0.01, "verdict": "higher"}, "claim": CLAIM, **extra}
    for k in [k for k, v in extra.items() if v is None]:
        data.pop(k)
    path.write_text(json.dumps(data))
    return {"key": f"{study}{seed}{threads}", "notebook": study, "seed": seed, "threads": threads, "status": "ok",
            "results": str(path), "error": None, "failed_cell": None, "executed": None}


def test_summarize_matches_an_independent_t_interval_sign_count_and_thread_effect(tmp_path):
    effects = [0.30, 0.12, -0.01, 0.25, 0.28]
    rows = [_row(tmp_path, "ecg_sue", s, e) for s, e in enumerate(effects)]
    rows.append(_row(tmp_path, "ecg_sue", 0, 0.27, threads=2))
    rec = R.summarize_all(rows, ["ecg_sue"], thread_seed=0)["ecg_sue"]
    assert rec["seeds"] == [0, 1, 2, 3, 4] and rec["effects"] == effects
    assert rec["ci95_per_seed"][2] == pytest.approx([-0.11, 0.09])
    e = np.array(effects)
    half = sps.t.ppf(0.975, 4) * e.std(ddof=1) / math.sqrt(5)
    assert rec["mean"] == pytest.approx(e.mean())
    assert rec["ci95"] == pytest.approx([e.mean() - half, e.mean() + half])
    assert e.mean() - half > 0  # the fabricated seeds agree: the interval excludes 0
    assert rec["sign_agreement"] == "4/5"
    assert {k: v["effect"] for k, v in rec["threads"].items()} == {"1": 0.30, "2": 0.27}
    assert rec["threads"]["2"]["verdict"] == "higher" and rec["rungs"][1]["outcome"] == "same"
    assert rec["seed_summary"] == stats.seed_summary(effects)
    assert rec["verdict"] == "higher" and rec["reproduction"] == "reproduced"  # interval above 0
    assert rec["rungs"][0]["name"] == "across_seeds" and rec["rungs"][0]["outcome"] == "reproduced"
    assert rec["verdicts_per_seed"] == ["higher", "higher", "no detectable difference", "higher", "higher"]
    assert rec["reproduced_seeds"] == "4/5" and rec["claim"]["theirs"] == "AUROC 0.80"
    assert R.surviving({"ecg_sue": rec}) == {"reproduced": ["ecg_sue"], "not reproduced": [], "reversed": [],
                                             "undefined": []}


def test_seeds_that_disagree_give_no_detectable_difference_and_a_reversed_claim(tmp_path):
    rows = [_row(tmp_path, "mri", s, e) for s, e in enumerate([0.2, -0.3, 0.1, -0.2, 0.05])]
    rec = R.summarize_all(rows, ["mri"])["mri"]
    assert rec["verdict"] == "no detectable difference" and rec["reproduction"] == "not reproduced"
    assert rec["threads"]["1"]["effect"] == 0.2 and rec["threads"]["2"] is None  # no 2-thread task
    assert rec["rungs"][1]["outcome"] == "undefined"
    rows = [_row(tmp_path, "derm", s, e) for s, e in enumerate([-0.3, -0.25, -0.35])]
    assert R.summarize_all(rows, ["derm"])["derm"]["reproduction"] == "reversed"


def test_missing_primary_or_claim_key_is_named_with_the_file(tmp_path):
    rows = [_row(tmp_path, "ecg_sue", 0, 0.1), _row(tmp_path, "ecg_sue", 1, 0.2, claim=None)]
    with pytest.raises(R.RobustnessError, match=r"ecg_sue seed 1 .*has no 'claim' key") as e:
        R.collect(rows)
    assert "ecg_sue-1-1.json" in str(e.value)
    bad = _row(tmp_path, "mri", 0, 0.1)
    Path(bad["results"]).write_text(json.dumps({"auroc": 0.5}))
    with pytest.raises(R.RobustnessError, match="has no 'primary' key"):
        R.collect([bad])


def test_failed_tasks_are_all_named_with_their_cells(tmp_path):
    rows = [_row(tmp_path, "ecg_sue", 0, 0.1),
            {**_row(tmp_path, "ecg_sue", 1, 0.1), "status": "error", "error": "ValueError: x", "failed_cell": "cell 3"},
            {**_row(tmp_path, "derm_vic", 2, 0.1), "status": "error", "error": "KeyError: y", "failed_cell": "cell 9"}]
    with pytest.raises(R.RobustnessError, match=r"2 of 3 task\(s\) failed: ecg_sue seed 1 .*cell 3.*derm_vic seed 2"):
        R.collect(rows)
    with pytest.raises(R.RobustnessError, match=r"no finished task of \['mri_mc_dropout'\]"):
        R.summarize_all(rows[:1], ["ecg_sue", "mri_mc_dropout"])


NB = """# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None
results_path = None
profile = "smoke"
{extra}
# %%
x = 1
"""

FAKE_STUDY = """
import math, os

def primary_run(params, *, seed, device="cpu"):
    import torch
    threads = torch.get_num_threads()
    effect = params["base"] + 0.1 * seed + 0.01 * (threads - 1)
    if params.get("undefined_seed") == seed:
        return {"primary": {"effect": math.nan, "ci95": [math.nan, math.nan], "verdict": "undefined",
                            "reason": "3 misclassified"}, "claim": CLAIM}
    return {"primary": {"name": "fake", "effect": effect, "ci95": [effect - 0.05, effect + 0.05],
                        "verdict": "higher" if effect > 0.05 else "no detectable difference"}, "claim": CLAIM}

CLAIM = {"text": "It is higher.", "expected": "higher", "theirs": "0.9 (theirs)", "source": "salvi2025explainability"}
"""


@pytest.fixture
def fake_studies(tmp_path, monkeypatch):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "fake_primary.py").write_text(FAKE_STUDY)
    monkeypatch.syspath_prepend(str(mods))
    nb, prof = tmp_path / "nb", tmp_path / "prof"
    nb.mkdir()
    prof.mkdir()
    for name in R.STUDIES:
        (nb / f"{name}.py").write_text(NB.format(extra="base = 0.0\nundefined_seed = -1\nepochs = 3"))
        (prof / f"{name}.yaml").write_text("tiny:\n  epochs: 1\nsmoke:\n  epochs: 2\n")
    functions = {name: "fake_primary:primary_run" for name in R.STUDIES}
    return tmp_path, nb, prof, functions, mods


def test_check_studies_names_a_missing_primary_function(fake_studies):
    _, _, _, functions, _ = fake_studies
    R.check_studies(list(R.STUDIES), functions)
    with pytest.raises(R.RobustnessError, match=r"study ecg_sue: .*has no 'nope'.*primary_run\(params"):
        R.check_studies(["ecg_sue"], {"ecg_sue": "fake_primary:nope"})
    with pytest.raises(R.RobustnessError, match="no primary function for study 'other'"):
        R.check_studies(["other"], functions)
    assert R.STUDY_FUNCTIONS["mri_mc_dropout"] == "uqxai_lib.studies.mri:primary_run"


def test_study_tasks_one_thread_per_seed_plus_the_thread_seed_at_two(fake_studies):
    _, nb, prof, functions, _ = fake_studies
    tasks = R.study_tasks(["ecg_sue"], [0, 1, 2], profile="tiny", thread_seed=1, overrides={"ecg_sue": {"base": 2.0}},
                          notebooks_dir=nb, profiles_dir=prof, functions=functions)
    assert [(t.seed, t.threads) for t in tasks] == [(0, 1), (1, 1), (2, 1), (1, 2)]
    assert all(isinstance(t, R.sweep.FunctionTask) and t.function == "fake_primary:primary_run" for t in tasks)
    # the chapter's parameters with its profile, the runner's profile/data_dir, the override; no seed/device
    assert tasks[0].parameters == {"base": 2.0, "undefined_seed": -1, "epochs": 1, "profile": "tiny", "data_dir": None}
    assert tasks[1].key != tasks[3].key and tasks[3].env["OMP_NUM_THREADS"] == "2"
    with pytest.raises(R.RobustnessError, match="study_overrides for ecg_sue: lr not a parameter"):
        R.study_tasks(["ecg_sue"], [0], profile="tiny", overrides={"ecg_sue": {"lr": 1}}, notebooks_dir=nb,
                      profiles_dir=prof, functions=functions)


def test_study_tasks_run_on_dask_feed_both_rungs_and_an_undefined_seed_stays_undefined(fake_studies):
    tmp, nb, prof, functions, mods = fake_studies
    tasks = R.study_tasks(["mri_mc_dropout"], [0, 1, 2, 3], profile="tiny", thread_seed=1,
                          overrides={"mri_mc_dropout": {"undefined_seed": 3}}, notebooks_dir=nb, profiles_dir=prof,
                          functions=functions, env={"PYTHONPATH": str(mods)})
    rows = R.sweep.sweep(tasks, out=tmp / "out", workers=2, echo=lambda s: None)
    rec = R.summarize_all(rows, ["mri_mc_dropout"], thread_seed=1)["mri_mc_dropout"]
    assert rec["effects"][:3] == pytest.approx([0.0, 0.1, 0.2]) and math.isnan(rec["effects"][3])
    assert rec["verdicts_per_seed"] == ["no detectable difference", "higher", "higher", "undefined"]
    assert rec["seed_summary"]["n"] == 3 and rec["reproduced_seeds"] == "2/4"
    # 2 threads adds 0.01 to the effect: same verdict word, so the thread rung says "same"
    assert rec["threads"]["2"]["effect"] == pytest.approx(0.11) and rec["rungs"][1]["outcome"] == "same"
    assert rec["rungs"][0]["name"] == "across_seeds"


def test_forest_plot_draws_seeds_thread_point_and_mean(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from uqxai_lib.viz import robustness as vr

    rows = [_row(tmp_path, "s", i, e) for i, e in enumerate([0.1, 0.2, 0.3])] + [_row(tmp_path, "s", 0, 0.15,
                                                                                      threads=2)]
    rec = R.summarize_all(rows, ["s"])["s"]
    fig = vr.forest_plot(rec, title="ECG")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seed 0", "seed 1", "seed 2", "seed 0, 2 threads",
                                                            "mean of 3 seeds"]
    assert any("theirs (paper): AUROC 0.80" in t.get_text() for t in ax.get_legend().get_texts())
    assert "3/3" in ax.get_title()


@pytest.mark.slow
def test_robustness_notebook_end_to_end_on_fake_studies(fake_studies):
    """The chapter, run by the runner, sweeps fake primary functions (each returns a known `primary`)
    and writes robustness.json with the ladder's rungs; the real studies are run by the lead after
    merging."""
    import os
    import shutil
    import subprocess
    import sys

    tmp_path, nb, prof, functions, mods = fake_studies
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "notebooks" / "robustness.py", nb / "robustness.py")
    (prof / "robustness.yaml").write_text(
        f"tiny:\n  seeds: [0, 1, 2]\n  thread_seed: 1\n  workers: 2\n  sweep_dir: {str(tmp_path / 'sweeps')!r}\n"
        f"  profiles_dir: {str(prof)!r}\n  study_profile: smoke\n  study_overrides: {{derm_vic: {{base: -1.0}}}}\n"
        f"  study_functions: {json.dumps(functions)}\n")
    env = dict(os.environ, UQXAI_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(mods), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "uqxai_lib.run", "--only", "robustness", "--profile", "tiny",
                           "--device", "cpu", "--notebooks-dir", str(nb), "--profiles-dir", str(prof), "--no-progress",
                           "--executed-dir", str(tmp_path / "ex"), "--results-dir", str(tmp_path / "res")],
                          capture_output=True, text=True, cwd=root, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((tmp_path / "res" / "robustness.json").read_text())
    assert list(res) == sorted(R.STUDIES)  # (atomic_write_json sorts keys)
    for name, r in res.items():
        base = -1.0 if name == "derm_vic" else 0.0
        assert {"seeds", "effects", "ci95_per_seed", "seed_summary", "mean", "ci95", "sign_agreement", "threads",
                "rungs"} <= set(r)
        assert r["seeds"] == [0, 1, 2]
        assert r["effects"] == pytest.approx([base, base + 0.1, base + 0.2])
        assert r["threads"]["1"]["effect"] == pytest.approx(base + 0.1)
        assert r["threads"]["2"]["effect"] == pytest.approx(base + 0.11)
        assert r["claim"]["theirs"] == "0.9 (theirs)"
        assert [g["name"] for g in r["rungs"]] == ["across_seeds", "across_threads"]
    assert res["ecg_sue"]["sign_agreement"] == "2/3"  # effect 0 at seed 0 has no sign
    assert res["derm_vic"]["sign_agreement"] == "3/3" and res["derm_vic"]["reproduction"] == "reversed"
    # the ladder's rungs read back from the file
    from uqxai_lib import verdicts
    seeds_rung, _ = verdicts.robustness_rungs("derm_vic", "higher", path=tmp_path / "res" / "robustness.json")
    assert seeds_rung["outcome"] == "reversed"
    index = json.loads((tmp_path / "sweeps" / "index.json").read_text())["tasks"]
    assert len(index) == 3 * 4 and {r["threads"] for r in index} == {1, 2}
    assert all(r["function"] == "fake_primary:primary_run" for r in index)

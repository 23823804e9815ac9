"""uqxai_lib.studies.robustness on fabricated sweep results (known answers), and its forest plot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

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
    assert rec["threads"] == {"1": 0.30, "2": 0.27}
    assert rec["verdict"] == "higher" and rec["reproduction"] == "reproduced"  # interval above 0
    assert rec["verdicts_per_seed"] == ["higher", "higher", "no detectable difference", "higher", "higher"]
    assert rec["reproduced_seeds"] == "4/5" and rec["claim"]["theirs"] == "AUROC 0.80"
    assert R.surviving({"ecg_sue": rec}) == {"reproduced": ["ecg_sue"], "not reproduced": [], "reversed": []}


def test_seeds_that_disagree_give_no_detectable_difference_and_a_reversed_claim(tmp_path):
    rows = [_row(tmp_path, "mri", s, e) for s, e in enumerate([0.2, -0.3, 0.1, -0.2, 0.05])]
    rec = R.summarize_all(rows, ["mri"])["mri"]
    assert rec["verdict"] == "no detectable difference" and rec["reproduction"] == "not reproduced"
    assert rec["threads"] == {"1": 0.2, "2": None}  # no 2-thread task
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


def test_check_studies_names_the_missing_primary_only_parameter(tmp_path):
    (tmp_path / "old.py").write_text(NB.format(extra="n = 1"))
    (tmp_path / "new.py").write_text(NB.format(extra="primary_only = False"))
    R.check_studies(["new"], tmp_path)
    with pytest.raises(R.RobustnessError, match=r"notebooks/old.py has no 'primary_only' parameter"):
        R.check_studies(["new", "old"], tmp_path)
    with pytest.raises(R.RobustnessError, match="does not exist"):
        R.check_studies(["gone"], tmp_path)


def test_study_tasks_one_thread_per_seed_plus_the_thread_seed_at_two(tmp_path):
    (tmp_path / "nb").mkdir()
    (tmp_path / "prof").mkdir()
    (tmp_path / "nb" / "a.py").write_text(NB.format(extra="primary_only = False\nepochs = 3"))
    (tmp_path / "prof" / "a.yaml").write_text("tiny:\n  epochs: 1\n")
    tasks = R.study_tasks(["a"], [0, 1, 2], profile="tiny", thread_seed=1, overrides={"a": {"epochs": 2}},
                          notebooks_dir=tmp_path / "nb", profiles_dir=tmp_path / "prof")
    assert [(t.seed, t.threads) for t in tasks] == [(0, 1), (1, 1), (2, 1), (1, 2)]
    assert all(t.parameters["primary_only"] is True and t.parameters["epochs"] == 2 for t in tasks)
    assert tasks[1].key != tasks[3].key and tasks[3].env["OMP_NUM_THREADS"] == "2"


def test_forest_plot_draws_seeds_thread_point_and_mean(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from uqxai_lib.viz import robustness as vr

    rows = [_row(tmp_path, "s", i, e) for i, e in enumerate([0.1, 0.2, 0.3])] + [_row(tmp_path, "s", 0, 0.15, threads=2)]
    rec = R.summarize_all(rows, ["s"])["s"]
    fig = vr.forest_plot(rec, title="ECG")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seed 0", "seed 1", "seed 2", "seed 0, 2 threads",
                                                            "mean of 3 seeds"]
    assert any("theirs (paper): AUROC 0.80" in t.get_text() for t in ax.get_legend().get_texts())
    assert "3/3" in ax.get_title()


STUDY = """# %% tags=["parameters"]
seed = 0
device = "auto"
data_dir = None
results_path = None
profile = "smoke"
primary_only = False
base = 0.0

# %%
import os
from uqxai_lib.cache import atomic_write_json
assert primary_only is True
threads = int(os.environ["OMP_NUM_THREADS"])
effect = base + 0.1 * seed + 0.01 * (threads - 1)
atomic_write_json(results_path, {
    "primary": {"name": "fake", "effect": effect, "ci95": [effect - 0.05, effect + 0.05], "auroc": None,
                "auroc_ci95": [None, None], "p": 0.01, "verdict": "higher"},
    "claim": {"text": "It is higher.", "expected": "higher", "theirs": "0.9 (theirs)", "source": "salvi2025explainability"}})
"""


@pytest.mark.slow
def test_robustness_notebook_end_to_end_on_fake_studies(tmp_path):
    """The chapter, run by the runner, sweeps fake studies (each writes a known `primary`) and writes
    robustness.json with the issue's keys; the real studies are run by the lead after merging."""
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    nb, prof = tmp_path / "nb", tmp_path / "prof"
    nb.mkdir()
    prof.mkdir()
    shutil.copy(root / "notebooks" / "robustness.py", nb / "robustness.py")
    for name in R.STUDIES:
        (nb / f"{name}.py").write_text(STUDY)
    (prof / "robustness.yaml").write_text(
        f"tiny:\n  seeds: [0, 1, 2]\n  thread_seed: 1\n  workers: 2\n  sweep_dir: {str(tmp_path / 'sweeps')!r}\n"
        f"  profiles_dir: {str(prof)!r}\n  study_profile: smoke\n  study_overrides: {{derm_vic: {{base: -1.0}}}}\n")
    env = dict(os.environ, UQXAI_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "uqxai_lib.run", "--only", "robustness", "--profile", "tiny",
                           "--device", "cpu", "--notebooks-dir", str(nb), "--profiles-dir", str(prof), "--no-progress",
                           "--executed-dir", str(tmp_path / "ex"), "--results-dir", str(tmp_path / "res")],
                          capture_output=True, text=True, cwd=root, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((tmp_path / "res" / "robustness.json").read_text())
    assert list(res) == sorted(R.STUDIES)  # (atomic_write_json sorts keys)
    for name, r in res.items():
        base = -1.0 if name == "derm_vic" else 0.0
        assert {"seeds", "effects", "ci95_per_seed", "mean", "ci95", "sign_agreement", "threads"} <= set(r)
        assert r["seeds"] == [0, 1, 2]
        assert r["effects"] == pytest.approx([base, base + 0.1, base + 0.2])
        assert r["threads"]["1"] == pytest.approx(base + 0.1) and r["threads"]["2"] == pytest.approx(base + 0.11)
        assert r["claim"]["theirs"] == "0.9 (theirs)"
    assert res["ecg_sue"]["sign_agreement"] == "2/3"  # effect 0 at seed 0 has no sign
    assert res["derm_vic"]["sign_agreement"] == "3/3" and res["derm_vic"]["reproduction"] == "reversed"
    index = json.loads((tmp_path / "sweeps" / "index.json").read_text())["tasks"]
    assert len(index) == 3 * 4 and {r["threads"] for r in index} == {1, 2}

"""The papermill runner: discovery, profiles, CLI errors, failing notebooks, provenance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from uqxai_lib import run

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
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
"""

GOOD = HEADER + textwrap.dedent('''\
    # %% [markdown]
    # # Good

    # %% tags=["parameters"]
    seed = 0
    device = "auto"
    data_dir = None
    results_path = "../_build/results/good.json"
    profile = "smoke"
    n = 3

    # %%
    import os, sys
    from uqxai_lib.cache import atomic_write_json
    atomic_write_json(results_path, {"n": n, "seed": seed, "profile": profile, "device": device,
                                     "data_dir": data_dir, "executable": sys.executable, "cwd": os.getcwd(),
                                     "cache": os.environ.get("UQXAI_CACHE_DIR")})
    ''')

BAD = HEADER + textwrap.dedent('''\
    # %% tags=["parameters"]
    seed = 0
    device = "auto"
    data_dir = None
    results_path = None
    profile = "smoke"

    # %%
    x = 1

    # %%
    raise ValueError("boom in the third cell")

    # %%
    never = True
    ''')


def _cli(*args, env=None, cwd=ROOT):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "uqxai_lib.run", *args], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=600)


@pytest.fixture
def fake(tmp_path):
    nb, prof = tmp_path / "nb", tmp_path / "prof"
    nb.mkdir()
    prof.mkdir()
    (nb / "good.py").write_text(GOOD)
    (nb / "bad.py").write_text(BAD)
    (prof / "good.yaml").write_text("tiny:\n  n: 5\nsmoke:\n  n: 4\nfull:\n  n: 100\n")
    (prof / "bad.yaml").write_text("tiny: {}\nsmoke: {}\nfull: {}\n")
    dirs = ["--notebooks-dir", str(nb), "--profiles-dir", str(prof), "--executed-dir", str(tmp_path / "ex"),
            "--results-dir", str(tmp_path / "res"), "--no-progress"]
    return tmp_path, dirs


# ------------------------------------------------------------------ discovery and profiles
def test_discover_notebooks_uses_book_order_then_alphabetical(tmp_path):
    for n in ["zeta", "derm_vic", "alpha", "primer_gradcam", "ecg_sue", "_private"]:
        (tmp_path / f"{n}.py").write_text("")
    assert run.discover_notebooks(tmp_path) == ["primer_gradcam", "ecg_sue", "derm_vic", "alpha", "zeta"]


def test_load_profile_reads_requested_key(tmp_path):
    (tmp_path / "nb.yaml").write_text("tiny:\n  epochs: 1\nsmoke:\n  epochs: 5\nfull:\n  epochs: 50\n")
    assert run.load_profile("nb", "tiny", tmp_path) == {"epochs": 1}
    assert run.load_profile("nb", "full", tmp_path) == {"epochs": 50}


def test_load_profile_missing_file_uses_defaults_for_smoke_only(tmp_path):
    assert run.load_profile("new", "smoke", tmp_path) == {}
    with pytest.raises(run.UsageError, match="no profile file.*--profile smoke"):
        run.load_profile("new", "tiny", tmp_path)


@pytest.mark.parametrize("body,match", [
    ("tiny: {a: 1}\n", "no 'full' key"),
    ("full:\n  seed: 3\n", "runner passes itself"),
    ("full: [1, 2]\n", "must be a mapping"),
    ("medium: {}\n", "must map only"),
    ("full: {a: [1\n", "not valid YAML"),
])
def test_load_profile_rejects_malformed_profiles(tmp_path, body, match):
    (tmp_path / "nb.yaml").write_text(body)
    with pytest.raises(run.UsageError, match=match):
        run.load_profile("nb", "full", tmp_path)


def test_repository_profiles_are_valid_and_notebooks_have_parameters_cells():
    names = run.discover_notebooks(ROOT / "notebooks")
    for name in names:
        for profile in run.PROFILES:
            if (ROOT / "uqxai_lib" / "profiles" / f"{name}.yaml").exists() or profile == "smoke":
                assert isinstance(run.load_profile(name, profile, ROOT / "uqxai_lib" / "profiles"), dict)
        import jupytext
        nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), name


def test_provenance_merges_records_and_writes_markdown_table(tmp_path):
    run.merge_provenance(tmp_path, [{"notebook": "a", "status": "ok", "wall_time_s": 1.23, "git_commit": "f" * 40}])
    run.merge_provenance(tmp_path, [{"notebook": "b", "status": "error"}])
    run.merge_provenance(tmp_path, [{"notebook": "a", "status": "error"}])
    data = json.loads((tmp_path / "provenance.json").read_text())
    assert data["notebooks"] == {"a": {"notebook": "a", "status": "error"}, "b": {"notebook": "b", "status": "error"}}
    md = (tmp_path / "provenance.md").read_text().splitlines()
    assert md[0].startswith("| notebook | status |") and len(md) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kernel_environment_sets_and_removes_variables_then_restores_them(monkeypatch):
    monkeypatch.setenv("UQXAI_T_SET", "old")
    monkeypatch.setenv("UQXAI_T_DEL", "there")
    monkeypatch.delenv("UQXAI_T_NEW", raising=False)
    with run._environment({"UQXAI_T_SET": 3, "UQXAI_T_DEL": None, "UQXAI_T_NEW": "x"}):
        assert os.environ["UQXAI_T_SET"] == "3" and os.environ["UQXAI_T_NEW"] == "x"
        assert "UQXAI_T_DEL" not in os.environ
    assert os.environ["UQXAI_T_SET"] == "old" and os.environ["UQXAI_T_DEL"] == "there"
    assert "UQXAI_T_NEW" not in os.environ


def test_environment_info_names_device_and_versions():
    info = run.environment_info("cpu")
    assert info["torch"] == torch.__version__
    assert info["device_name"].startswith("cpu")
    assert len(info["git_commit"]) == 40 or info["git_commit"] == "unknown"
    assert info["python"].count(".") == 2


# ------------------------------------------------------------------ CLI errors: one line, exit 2
def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["--profile", "huge"], ["unknown profile 'huge'", "--profile tiny, smoke or full"]),
    (["--only", "nope"], ["unknown notebook 'nope'", "--only with one of: bad, good"]),
    (["--device", "tpu"], ["unknown device 'tpu'", "auto, cpu, cuda"]),
    (["--data-dir", "/no/such/dir"], ["/no/such/dir", "does not exist"]),
    (["--seed", "abc"], ["--seed must be an integer"]),
    (["--frobnicate"], ["unrecognized arguments: --frobnicate", "--help"]),
])
def test_cli_bad_input_is_one_line_exit_2(fake, args, needles):
    tmp, dirs = fake
    proc = _cli(*dirs, *args)
    _one_line_error(proc, *needles)
    assert not (tmp / "ex").exists()  # nothing ran


def test_cli_missing_env_data_dir_is_one_line_exit_2(fake):
    _, dirs = fake
    _one_line_error(_cli(*dirs, env={"UQXAI_DATA_DIR": "/no/where"}), "$UQXAI_DATA_DIR", "does not exist")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_gpu_is_one_line_exit_2(fake):
    _, dirs = fake
    _one_line_error(_cli(*dirs, "--device", "cuda"), "CUDA is not available", "--device cpu")


def test_cli_profile_without_file_is_one_line_exit_2(fake):
    tmp, dirs = fake
    (tmp / "prof" / "good.yaml").unlink()
    _one_line_error(_cli(*dirs, "--profile", "tiny"), "no profile file", "--profile smoke")


def test_cli_list_prints_run_order(fake):
    _, dirs = fake
    proc = _cli(*dirs, "--list")
    assert proc.returncode == 0 and proc.stdout.split() == ["bad", "good"]


# ------------------------------------------------------------------ execution
@pytest.mark.slow
def test_failing_notebook_is_named_with_its_cell_others_still_run_partial_kept(fake):
    tmp, dirs = fake
    (tmp / "res").mkdir()
    (tmp / "res" / "bad.json").write_text("{}")  # stale result of an earlier run
    (tmp / "res" / "bad.tables.json").write_text("{}")  # and its tables (uqxai_lib.report.save_tables)
    env = {k: v for k, v in os.environ.items() if k != "UQXAI_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-m", "uqxai_lib.run", *dirs, "--profile", "tiny", "--seed", "7"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "1 of 2 notebook(s) failed: bad"
    failure = [l for l in proc.stderr.splitlines() if l.startswith("FAILED  bad")]
    assert failure and "ValueError: boom in the third cell" in failure[-1]
    assert "raise ValueError" in failure[-1] and "executed cell" in failure[-1]

    # the partial notebook is kept: the failing cell has the error, the cell after it never ran
    partial = nbformat.read(tmp / "ex" / "bad.ipynb", as_version=4)
    code = [c for c in partial.cells if c.cell_type == "code"]
    assert any(o.get("ename") == "ValueError" for c in code for o in c.get("outputs", []))
    assert code[-1].get("execution_count") is None

    # the good notebook ran after the bad one with the tiny profile and the runner's parameters
    res = json.loads((tmp / "res" / "good.json").read_text())
    assert res["n"] == 5 and res["seed"] == 7 and res["profile"] == "tiny" and res["data_dir"] is None
    assert res["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert Path(res["cwd"]) == tmp / "nb"
    assert Path(res["executable"]).resolve() == Path(sys.executable).resolve()  # same interpreter
    assert res["cache"] == str(ROOT / ".cache" / "uqxai")  # default cache for the kernel
    assert not (tmp / "res" / "bad.json").exists()  # a failed run leaves no stale result
    assert not (tmp / "res" / "bad.tables.json").exists()
    executed = nbformat.read(tmp / "ex" / "good.ipynb", as_version=4)
    assert executed.metadata.kernelspec.name == "python3"
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)

    prov = json.loads((tmp / "res" / "provenance.json").read_text())["notebooks"]
    assert prov["bad"]["status"] == "error" and "boom" in prov["bad"]["error"]
    good = prov["good"]
    assert good["status"] == "ok" and good["profile"] == "tiny" and good["seed"] == 7
    assert good["parameters"]["n"] == 5 and good["parameters"]["results_path"] == str(tmp / "res" / "good.json")
    assert good["torch"] == torch.__version__ and good["wall_time_s"] > 0
    for key in ("git_commit", "git_dirty", "device_name", "cuda", "python", "timeout_per_cell_s"):
        assert key in good
    assert "| good | ok | tiny | 7 |" in (tmp / "res" / "provenance.md").read_text()


@pytest.mark.slow
def test_profile_key_unknown_to_the_notebook_fails_that_notebook(fake):
    tmp, dirs = fake
    (tmp / "prof" / "good.yaml").write_text("smoke:\n  n_typo: 4\n")
    proc = _cli(*dirs, "--only", "good")
    assert proc.returncode == 1
    assert "n_typo" in proc.stderr and "parameters cell does not define" in proc.stderr



def test_runner_and_cache_agree_on_the_cache_env_variable():
    from uqxai_lib import cache

    assert run.CACHE_DIR_ENV == cache.CACHE_DIR_ENV


def test_parameter_names_reads_assignments_with_comments_and_annotations(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("a = None  # a comment papermill cannot parse\nb: int = 2\nc, d = 3, 4\n"
                                          "# e = 5\n", metadata={"tags": ["parameters"]})]
    p = tmp_path / "n.ipynb"
    nbformat.write(nb, str(p))
    assert run.parameter_names(p) == {"a", "b", "c", "d"}


# ------------------------------------------------------------------ data errors reach the terminal whole
LOADS_ECG = HEADER + textwrap.dedent('''\
    # %% tags=["parameters"]
    seed = 0
    device = "auto"
    data_dir = None
    results_path = None
    profile = "smoke"
    fantasia_records = None
    incart_records = None

    # %%
    from uqxai_lib.data.fantasia_incart import load_fantasia_incart
    data = load_fantasia_incart(data_dir, healthy_records=fantasia_records, incart_records=incart_records)
    ''')


@pytest.mark.slow
def test_runner_terminal_and_provenance_name_every_missing_data_file(tmp_path):
    """A data directory with missing files: the terminal names each one (or the first 20 and a count)
    and says what to do; provenance.json holds the same text."""
    wfdb = pytest.importorskip("wfdb")
    import numpy as np

    data = tmp_path / "my data"  # a path with a space, as users have them
    (data / "fantasia").mkdir(parents=True)
    (data / "incart").mkdir()
    sig = np.stack([np.sin(np.arange(2500) / 7.0), np.cos(np.arange(2500) / 5.0)], 1)
    for r in ["f1o01", "f1o02"]:
        wfdb.wrsamp(r, fs=250, units=["mV", "mV"], sig_name=["RESP", "ECG"], p_signal=sig, fmt=["16", "16"],
                    write_dir=str(data / "fantasia"))
    nb, prof = tmp_path / "nb", tmp_path / "prof"
    nb.mkdir(), prof.mkdir()
    (nb / "few.py").write_text(LOADS_ECG)
    (nb / "many.py").write_text(LOADS_ECG)
    (prof / "few.yaml").write_text("tiny:\n  fantasia_records: [f1o01, f1o03, f2y07]\n  incart_records: [I01, I42]\n")
    (prof / "many.yaml").write_text("tiny: {}\n")  # all 40 + 75 records: 38 + 75 headers missing
    proc = _cli("--notebooks-dir", str(nb), "--profiles-dir", str(prof), "--executed-dir", str(tmp_path / "ex"),
                "--results-dir", str(tmp_path / "res"), "--no-progress", "--profile", "tiny",
                "--data-dir", str(data))
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    few = err[err.index("FAILED  few"):err.index("[2/2]")]
    for f in ["fantasia/f1o03.hea", "fantasia/f2y07.hea", "incart/I01.hea", "incart/I42.hea"]:
        assert f"missing {f}" in few, few
    assert "DataError: data set 'ecg'" in few and "(4 problem(s))" in few
    assert "healthy_records=['f1o01']" in few and "fantasia_records" in few  # what to do
    many = err[err.index("FAILED  many"):err.index("provenance: ")]
    missing = [f"fantasia/{s}.hea" for s in ("f1o03", "f1o04", "f1o05")]
    assert all(f"missing {f}" in many for f in missing) and "(113 problem(s))" in many
    assert many.count("  - missing ") == 20 and "- ... and 93 more" in many  # first 20, then a count
    assert "healthy_records=['f1o01', 'f1o02']" in many and "incart_records" in many
    prov = json.loads((tmp_path / "res" / "provenance.json").read_text())["notebooks"]
    assert all(f"missing {f}" in prov["few"]["error"] for f in ["fantasia/f1o03.hea", "incart/I42.hea"])
    assert "- ... and 93 more" in prov["many"]["error"]


def test_error_text_keeps_every_line_and_the_first_20_items():
    items = [f"missing f{i}.dat" for i in range(30)]
    msg = "set 'x' is incomplete (30 problem(s)):\n" + "\n".join(f"  - {i}" for i in items) + "\nget them from X"
    out = run._error_text(msg)
    lines = out.splitlines()
    assert lines[0] == "set 'x' is incomplete (30 problem(s)):" and lines[-1] == "get them from X"
    assert [l.strip()[2:] for l in lines[1:21]] == items[:20] and lines[21] == "  - ... and 10 more"
    # a message that already counts its rest is left as it is
    pre = "t (30 problem(s)):\n" + "\n".join(f"  - {i}" for i in items[:20]) + "\n  - ... and 10 more\nadvice"
    assert run._error_text(pre) == pre
    r = run.NotebookRun("nb", "error", Path("x.ipynb"), Path("r.json"), {}, 1.0, error=out, failed_cell="cell 3")
    summary = r.summary().splitlines()
    assert summary[0] == "FAILED  nb: cell 3: set 'x' is incomplete (30 problem(s)):"
    assert "missing f19.dat" in r.summary() and "get them from X" in summary[-2]

"""The Dask sweep (uqxai_lib.sweep): task keys, command-line errors, failures, resume after a kill,
an external scheduler, and byte-identity with the sequential runner.

Fake notebooks (no torch, a second each) test the machinery; the primer notebook at the tiny profile
tests that a sweep on two workers gives the same results JSON as ``uqxai_lib.run`` one after another.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from uqxai_lib import run, sweep

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

# Logs every execution (seed and the kernel's thread variable) to a file, waits while `block` exists
# for seeds >= 1 (so a test can kill the sweep mid-way), fails for seed 13.
FAKE = HEADER + textwrap.dedent('''\
    # %% tags=["parameters"]
    seed = 0
    device = "auto"
    data_dir = None
    results_path = None
    profile = "smoke"
    log = ""
    block = ""
    scale = 1

    # %%
    import json, os, pathlib, time
    with open(log, "a") as fh:
        fh.write(json.dumps({"seed": seed, "omp": os.environ.get("OMP_NUM_THREADS"), "scale": scale,
                             "malloc": os.environ.get("MALLOC_TRIM_THRESHOLD_")}) + "\\n")
    while seed >= 1 and block and pathlib.Path(block).exists():
        time.sleep(0.2)

    # %%
    if seed == 13:
        raise ValueError("unlucky seed")
    from uqxai_lib.cache import atomic_write_json
    atomic_write_json(results_path, {"seed": seed, "value": seed * scale})
    ''')


@pytest.fixture
def fake(tmp_path):
    nb, prof = tmp_path / "nb", tmp_path / "prof"
    nb.mkdir()
    prof.mkdir()
    (nb / "fake.py").write_text(FAKE)
    log = tmp_path / "runs.log"
    (prof / "fake.yaml").write_text(f"tiny:\n  log: {str(log)!r}\nsmoke:\n  log: {str(log)!r}\n")
    args = ["--notebooks-dir", str(nb), "--profiles-dir", str(prof), "--out", str(tmp_path / "out"),
            "--profile", "tiny", "--only", "fake"]
    return tmp_path, args, log


def _runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _env(**extra) -> dict:
    e = dict(os.environ)
    e.setdefault("UQXAI_CACHE_DIR", str(ROOT / ".cache" / "uqxai"))
    e.update(extra)
    return e


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "uqxai_lib.sweep", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env or _env(), timeout=timeout)


# ------------------------------------------------------------------ seeds, sets, keys
def test_parse_seeds_ranges_lists_and_errors():
    assert sweep.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert sweep.parse_seeds("3,1,1-2") == [1, 2, 3]
    assert sweep.parse_seeds([2, 0]) == [0, 2]
    for bad in ("", "a-b", "4-1", "-1", "x"):
        with pytest.raises(run.UsageError, match="--seeds"):
            sweep.parse_seeds(bad)


def test_parse_sets_yaml_values_and_repeated_keys_cross():
    assert sweep.parse_sets(None) == [{}]
    assert sweep.parse_sets(["a=1", "b=[1, 2]", "c=x", "d=null"]) == [{"a": 1, "b": [1, 2], "c": "x", "d": None}]
    sets = sweep.parse_sets(["a=1", "b=0.5", "a=2", "b=true"])
    assert sets == [{"a": 1, "b": 0.5}, {"a": 1, "b": True}, {"a": 2, "b": 0.5}, {"a": 2, "b": True}]
    with pytest.raises(run.UsageError, match="key=value"):
        sweep.parse_sets(["novalue"])
    with pytest.raises(run.UsageError, match="passed by the sweep itself"):
        sweep.parse_sets(["seed=3"])


def test_task_key_covers_source_parameters_seed_threads_and_package():
    base = dict(source_text="x = 1", parameters={"n": 1, "results_path": "/a"}, seed=0, threads=1, digest="d")
    k = sweep.task_key(**base)
    assert len(k) == 16 and k == sweep.task_key(**{**base, "parameters": {"results_path": "/b", "n": 1}})
    for change in (dict(source_text="x = 2"), dict(parameters={"n": 2}), dict(seed=1), dict(threads=2),
                   dict(digest="e"), dict(notebook="other")):
        assert sweep.task_key(**{**base, **change}) != k, change


def test_make_tasks_keys_seeds_sets_and_thread_env(fake):
    tmp, _, _ = fake
    tasks = sweep.make_tasks(["fake"], [0, 1], profile="tiny", sets=sweep.parse_sets(["scale=2", "scale=3"]),
                             threads=2, notebooks_dir=tmp / "nb", profiles_dir=tmp / "prof")
    assert [(t.seed, t.parameters["scale"]) for t in tasks] == [(0, 2), (1, 2), (0, 3), (1, 3)]
    assert len({t.key for t in tasks}) == 4
    assert all(t.env["OMP_NUM_THREADS"] == "2" and t.threads == 2 for t in tasks)
    assert all(t.env["MALLOC_TRIM_THRESHOLD_"] is None for t in tasks)  # removed for the kernel
    assert tasks[0].parameters["profile"] == "tiny" and "results_path" not in tasks[0].parameters
    with pytest.raises(run.UsageError, match="not a parameter of fake"):
        sweep.make_tasks(["fake"], [0], profile="tiny", sets=[{"scael": 2}], notebooks_dir=tmp / "nb",
                         profiles_dir=tmp / "prof")


@pytest.mark.parametrize("args, needle", [
    (["--seeds", "4-1"], "--seeds"),
    (["--set", "seed=2"], "passed by the sweep itself"),
    (["--set", "nope=2"], "not a parameter of fake"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--threads-per-task", "0"], "--threads-per-task must be at least 1"),
    (["--profile", "huge"], "unknown profile"),
    (["--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with argument"),
    (["--scheduler", "localhost"], "must be an address"),
])
def test_bad_input_is_one_line_exit_2(fake, capsys, args, needle):
    tmp, base, log = fake
    assert sweep.main([*base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp / "out").exists() and not log.exists()


def test_unknown_notebook_names_the_available_ones(fake, capsys):
    _, base, _ = fake
    assert sweep.main([*base[:-1], "nothere"]) == 2
    err = capsys.readouterr().err
    assert "unknown notebook 'nothere'" in err and "one of: fake" in err


# ------------------------------------------------------------------ running
def test_failed_task_is_named_with_its_cell_others_finish_and_rerun_runs_only_it(fake):
    tmp, base, log = fake
    proc = _cli(*base, "--seeds", "0,13", "--workers", "2", "--threads-per-task", "1")
    assert proc.returncode == 1, proc.stderr
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("FAILED  fake seed 13")]
    assert failed and "ValueError: unlucky seed" in failed[-1] and "executed cell" in failed[-1], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "1 of 2 task(s) failed"
    assert "[2/2]" in proc.stderr and "ETA" in proc.stderr
    index = json.loads((tmp / "out" / "index.json").read_text())["tasks"]
    by_seed = {r["seed"]: r for r in index}
    assert by_seed[0]["status"] == "ok" and by_seed[13]["status"] == "error"
    assert by_seed[0]["threads"] == 1 and by_seed[0]["worker"].startswith("tcp://")
    res = Path(by_seed[0]["results"])
    assert res == tmp / "out" / "fake" / by_seed[0]["key"] / "results.json"
    assert json.loads(res.read_text()) == {"seed": 0, "value": 0}
    assert (res.parent / "executed.ipynb").is_file() and (res.parent / "task.json").is_file()
    assert Path(by_seed[13]["executed"]).is_file() and by_seed[13]["results"] is None
    assert {r["omp"] for r in _runs(log)} == {"1"}  # the kernel ran at the task's thread count
    # a Dask nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its worker; the task kernels run without it
    assert {r["malloc"] for r in _runs(log)} == {None}
    assert not [p for p in (tmp / "out" / "fake").iterdir() if p.name.startswith(".")]  # no work dirs left

    # re-run: the finished task is skipped, only the failed one runs again (and fails again)
    n = len(_runs(log))
    proc = _cli(*base, "--seeds", "0,13", "--workers", "1")
    assert proc.returncode == 1 and "1 already finished, 1 to run" in proc.stderr, proc.stderr
    assert [r["seed"] for r in _runs(log)[n:]] == [13]


@pytest.mark.slow
def test_killed_sweep_reruns_only_unfinished_tasks(fake):
    """Kill a sweep while seed 1 is running (seed 0 done); the re-run executes seed 1 only."""
    tmp, base, log = fake
    block = tmp / "block"
    block.write_text("")
    args = [*base, "--seeds", "0-1", "--workers", "1", "--set", f"block={str(block)!r}"]
    proc = subprocess.Popen([sys.executable, "-m", "uqxai_lib.sweep", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if [r["seed"] for r in _runs(log)] == [0, 1] and (tmp / "out" / "index.json").exists():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.3)
        else:
            pytest.fail("the sweep did not reach seed 1 in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep, its LocalCluster and the kernels
        proc.wait(timeout=60)
    index = json.loads((tmp / "out" / "index.json").read_text())["tasks"]
    assert [(r["seed"], r["status"]) for r in index] == [(0, "ok")]
    block.unlink()
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert "1 already finished, 1 to run" in again.stderr
    assert [r["seed"] for r in _runs(log)] == [0, 1, 1]  # seed 0 was not executed again
    index = json.loads((tmp / "out" / "index.json").read_text())["tasks"]
    assert [(r["seed"], r["status"]) for r in index] == [(0, "ok"), (1, "ok")]
    assert json.loads(Path(index[1]["results"]).read_text()) == {"seed": 1, "value": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_runs_on_a_separately_started_dask_scheduler_and_worker(fake):
    tmp, base, log = fake
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                       str(port), "--no-dashboard"], cwd=tmp, env=_env(), start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                       "--nworkers", "2", "--no-dashboard", "--name", "external"],
                                      cwd=tmp, env=_env(), start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as c:  # wait for both workers
            c.wait_for_workers(2, timeout=120)
        proc = _cli(*base, "--seeds", "0-1", "--scheduler", address)
        assert proc.returncode == 0, proc.stderr
        assert f"scheduler {address} (2 worker(s))" in proc.stderr
        index = json.loads((tmp / "out" / "index.json").read_text())["tasks"]
        assert [(r["seed"], r["status"]) for r in index] == [(0, "ok"), (1, "ok")]
        workers = {r["worker"] for r in index}
        assert all(w.startswith("tcp://127.0.0.1:") and w != address for w in workers)
        assert sorted(r["seed"] for r in _runs(log)) == [0, 1]
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)


@pytest.mark.slow
def test_two_worker_sweep_gives_byte_identical_results_to_sequential_runs(tmp_path):
    """`sweep --only primer_gradcam --seeds 0-1 --profile tiny` on 2 workers == `uqxai_lib.run` seed 0,
    then seed 1, both at one torch thread; each side trains in its own empty cache."""
    proc = _cli("--only", "primer_gradcam", "--seeds", "0-1", "--profile", "tiny", "--workers", "2",
                "--threads-per-task", "1", "--device", "cpu", "--out", str(tmp_path / "sweep"),
                env=_env(UQXAI_CACHE_DIR=str(tmp_path / "cache_sweep")), timeout=1200)
    assert proc.returncode == 0, proc.stderr
    index = {r["seed"]: r for r in json.loads((tmp_path / "sweep" / "index.json").read_text())["tasks"]}
    assert len({r["worker"] for r in index.values()}) == 2  # the two seeds ran in two worker processes
    for seed in (0, 1):
        seq = subprocess.run([sys.executable, "-m", "uqxai_lib.run", "--only", "primer_gradcam", "--profile", "tiny",
                              "--device", "cpu", "--seed", str(seed), "--no-progress",
                              "--results-dir", str(tmp_path / f"res{seed}"), "--executed-dir", str(tmp_path / f"ex{seed}")],
                             capture_output=True, text=True, cwd=ROOT, timeout=1200,
                             env=_env(UQXAI_CACHE_DIR=str(tmp_path / "cache_seq"), OMP_NUM_THREADS="1",
                                      MKL_NUM_THREADS="1"))
        assert seq.returncode == 0, seq.stderr
        ours = Path(index[seed]["results"]).read_bytes()
        assert ours == (tmp_path / f"res{seed}" / "primer_gradcam.json").read_bytes(), seed
    assert Path(index[0]["results"]).read_bytes() != Path(index[1]["results"]).read_bytes()  # seeds differ


# ------------------------------------------------------------------ kernel start races
def test_kernel_start_port_race_is_retried_a_bounded_number_of_times(tmp_path, monkeypatch):
    import papermill

    src = tmp_path / "n.py"
    src.write_text(FAKE)
    calls = []

    def flaky(nb_in, out, **kw):
        calls.append(1)
        if len(calls) <= fails:
            raise RuntimeError("ZMQError: Address already in use (addr='tcp://127.0.0.1:5555')")
        Path(out).write_text(Path(nb_in).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    monkeypatch.setattr(run.time, "sleep", lambda s: None)
    fails = 2
    ex = run.execute_notebook(src, tmp_path / "o.ipynb", {}, cwd=tmp_path, timeout=10, retries=3)
    assert ex.status == "ok" and ex.attempts == 3 and len(calls) == 3
    calls.clear()
    fails = 10
    ex = run.execute_notebook(src, tmp_path / "o.ipynb", {}, cwd=tmp_path, timeout=10, retries=3)
    assert ex.status == "error" and ex.attempts == 4 and "Address already in use" in ex.error


def test_other_errors_are_not_retried(tmp_path, monkeypatch):
    import papermill

    src = tmp_path / "n.py"
    src.write_text(FAKE)
    calls = []

    def broken(nb_in, out, **kw):
        calls.append(1)
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    monkeypatch.setattr(papermill, "execute_notebook", broken)
    ex = run.execute_notebook(src, tmp_path / "o.ipynb", {}, cwd=tmp_path, timeout=10)
    assert ex.status == "error" and ex.attempts == 1 and len(calls) == 1 and "respond" in ex.error


# ------------------------------------------------------------------ function tasks (library functions on Dask)
FAKE_FN = textwrap.dedent('''\
    import json, math, os

    def primary_run(params, *, seed, device="cpu"):
        import torch
        with open(params["log"], "a") as fh:
            fh.write(json.dumps({"seed": seed, "omp": os.environ.get("OMP_NUM_THREADS"),
                                 "torch": torch.get_num_threads(), "device": device,
                                 "malloc": os.environ.get("MALLOC_TRIM_THRESHOLD_")}) + "\\n")
        if seed == 13:
            raise ValueError("unlucky seed")
        return {"primary": {"effect": seed * params["scale"], "ci95": [math.nan, 1.0]}, "claim": {"text": "t"}}

    def not_a_dict(params, *, seed, device="cpu"):
        return [1, 2]
    ''')


@pytest.fixture
def fake_fn(tmp_path, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "fake_study.py").write_text(FAKE_FN)
    monkeypatch.syspath_prepend(str(mod))
    log = tmp_path / "fn.log"
    env = {"PYTHONPATH": str(mod), "MALLOC_TRIM_THRESHOLD_": None}
    return tmp_path, {"log": str(log), "scale": 2}, env, log


def test_function_key_covers_function_parameters_seed_threads_device_and_package():
    k = sweep.function_key("m:f", {"a": 1}, 0, 1, "cpu", digest="d")
    others = [sweep.function_key("m:g", {"a": 1}, 0, 1, "cpu", digest="d"),
              sweep.function_key("m:f", {"a": 2}, 0, 1, "cpu", digest="d"),
              sweep.function_key("m:f", {"a": 1}, 1, 1, "cpu", digest="d"),
              sweep.function_key("m:f", {"a": 1}, 0, 2, "cpu", digest="d"),
              sweep.function_key("m:f", {"a": 1}, 0, 1, "cuda", digest="d"),
              sweep.function_key("m:f", {"a": 1}, 0, 1, "cpu", digest="e")]
    assert len({k, *others}) == 7 and k == sweep.function_key("m:f", {"a": 1}, 0, 1, "cpu", digest="d")


def test_missing_function_is_one_clear_error_before_anything_runs(fake_fn):
    with pytest.raises(sweep.UsageError, match="has no 'nope'"):
        sweep.make_function_tasks("s", "fake_study:nope", {}, [0])
    with pytest.raises(sweep.UsageError, match="cannot import"):
        sweep.make_function_tasks("s", "no_such_module_xyz:primary_run", {}, [0])


def test_function_task_runs_in_its_own_process_with_its_threads_and_writes_json_safe_results(fake_fn):
    tmp, params, env, log = fake_fn
    t1, = sweep.make_function_tasks("fake", "fake_study:primary_run", params, [3], threads=1, env=env)
    t2, = sweep.make_function_tasks("fake", "fake_study:primary_run", params, [3], threads=2, env=env)
    assert t1.key != t2.key
    out = tmp / "out"
    rows = [sweep.execute_function_task(t, out) for t in (t1, t2)]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    runs = _runs(log)
    assert [(r["omp"], r["torch"]) for r in runs] == [("1", 1), ("2", 2)]
    assert all(r["malloc"] is None for r in runs)
    res = json.loads(Path(rows[0]["results"]).read_text())
    assert res == {"primary": {"effect": 6, "ci95": [None, 1.0]}, "claim": {"text": "t"}}
    assert rows[0]["function"] == "fake_study:primary_run" and Path(rows[0]["results"]).parent == t1.dir(out)
    assert sweep.is_finished(t1, out)["key"] == t1.key
    # no half-written directories are left behind
    assert not [p for p in (out / "fake").iterdir() if p.name.startswith(".")]


def test_function_task_failure_names_the_error_and_its_place(fake_fn):
    tmp, params, env, log = fake_fn
    bad, = sweep.make_function_tasks("fake", "fake_study:primary_run", params, [13], env=env)
    row = sweep.execute_function_task(bad, tmp / "out")
    assert row["status"] == "error" and row["error"] == "ValueError: unlucky seed"
    assert "fake_study.py" in row["failed_cell"] and "primary_run" in row["failed_cell"]
    assert sweep.is_finished(bad, tmp / "out") is None
    nd, = sweep.make_function_tasks("fake", "fake_study:not_a_dict", params, [0], env=env)
    assert "returned list, not a dict" in sweep.execute_function_task(nd, tmp / "out")["error"]


def test_function_tasks_on_dask_resume_and_mix_with_notebook_tasks(fake_fn, fake):
    tmp, params, env, log = fake_fn
    _, args, nb_log = fake
    fn_tasks = sweep.make_function_tasks("fake", "fake_study:primary_run", params, [0, 1, 13], env=env)
    nb_tasks = sweep.make_tasks(["fake"], [0], profile="tiny", notebooks_dir=tmp / "nb", profiles_dir=tmp / "prof")
    out = tmp / "out"
    rows = sweep.sweep([*fn_tasks, *nb_tasks], out=out, workers=2, echo=lambda s: None)
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    assert rows[-1]["function"] is None and rows[0]["function"] == "fake_study:primary_run"
    index = sweep.read_index(out)
    assert set(index) == {t.key for t in [*fn_tasks, *nb_tasks]}
    n = len(_runs(log))
    again = sweep.sweep(fn_tasks, out=out, workers=1, echo=lambda s: None)
    assert [r["status"] for r in again] == ["ok", "ok", "error"]
    assert len(_runs(log)) == n + 1  # only the failed seed ran again

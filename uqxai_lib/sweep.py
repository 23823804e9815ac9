"""Seed x parameter sweeps of the chapter notebooks, each run a task of a Dask cluster.

Usage::

    python -m uqxai_lib.sweep --only NAME[,NAME] --seeds 0-4 [--profile P] [--set key=value ...]
                              [--workers N | --scheduler tcp://HOST:PORT] [--threads-per-task T]
                              [--device cpu] [--data-dir PATH] [--out DIR]

Every (notebook, seed, parameter set) is one *task*: one papermill execution through
:func:`uqxai_lib.run.execute_notebook`, the code path of ``python -m uqxai_lib.run``, submitted to
``dask.distributed``. By default a ``LocalCluster(processes=True, n_workers=max(1, cores // T),
threads_per_worker=1)`` runs here; ``--scheduler`` uses a running cluster instead (its workers need
this package importable, the data directory at the same path, and should be started with
``--nthreads 1``: one notebook per worker process).

* Parameters: the profile's (``uqxai_lib/profiles/NAME.yaml``), then ``--set key=value`` (values are
  YAML: ``--set epochs=4 --set "channels=[8, 16]"``; a key given twice, ``--set lr=0.01 --set
  lr=0.003``, makes one parameter set per value, crossed with the other keys), plus the runner's
  ``profile``, ``seed``, ``device``, ``data_dir`` and ``results_path``.
* Torch threads: each task's kernel runs with ``OMP_NUM_THREADS = MKL_NUM_THREADS = T``
  (``--threads-per-task``, default 1), recorded in the index. Results do not depend on how many
  workers ran, only on ``T``.
* Allocator: a Dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (Dask's default
  ``distributed.nanny.pre-spawn-environ``), and the kernels a worker starts inherit it. glibc then
  hands freed memory back to the OS at once and faults it in again on the next batch: a training
  step of the MRI smoke ResNet took 2.1x as long at one thread (118 vs 56 ms measured here), mostly
  system time. Task kernels run with that variable removed (:data:`KERNEL_ENV_UNSET`); the
  numbers do not change, only the time.
* Key: the first 16 hex digits of the sha256 of (notebook source, parameters, seed, package version
  and a digest of its source files, torch threads). A task whose key already finished (``ok``) is
  skipped, so an interrupted sweep resumes where it stopped.
* Output, all written atomically: ``OUT/<notebook>/<key>/{executed.ipynb, results.json, task.json}``
  (a task runs in a hidden sibling directory that is moved into place when it ends) and
  ``OUT/index.json`` (``{"schema": 1, "tasks": [{key, notebook, seed, parameters, threads, status,
  error, failed_cell, wall_time_s, worker, results, executed, finished_utc}, ...]}``). ``OUT`` defaults
  to ``_build/sweeps``.
* Kernel starts that lose a port race (``ZMQError: Address already in use``) are retried.
* One failed task does not stop the others; the exit status is 1 and each failure is named with its
  failing cell. Bad input: one line, exit 2. Progress (done / total, ETA) goes to stderr.

Function tasks (:class:`FunctionTask`, :func:`make_function_tasks`): the same machinery for a library
function ``fn(params, *, seed, device) -> dict`` (e.g. a chapter's ``primary_run``, which the
robustness chapter runs over seeds). Each runs in a fresh Python process started by the worker, with
``OMP_NUM_THREADS = MKL_NUM_THREADS = T`` set before torch is imported, ``torch.set_num_threads(T)``,
``PYTHONHASHSEED=0`` and without ``MALLOC_TRIM_THRESHOLD_``; keyed by a hash of (function, parameters,
seed, device, package version and digest, threads); cached and resumable like notebook tasks
(``OUT/<name>/<key>/{result.json, task.json}``, written atomically); the returned dict is stored
JSON-safe (NaN -> null) as ``result.json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import itertools
import json
import os
import pathlib
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import yaml

from uqxai_lib import __version__
from uqxai_lib import run as runner

__all__ = [
    "DEFAULT_OUT", "Task", "TaskResult", "parse_seeds", "parse_sets", "package_digest", "task_key",
    "make_tasks", "execute_task", "is_finished", "read_index", "sweep", "main",
    "FunctionTask", "function_key", "make_function_tasks", "execute_function_task", "resolve_function",
]

#: Default output directory.
DEFAULT_OUT = runner.REPO_ROOT / "_build" / "sweeps"
#: Environment variables that fix the CPU thread count of a task's kernel.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Variables removed from a task kernel's environment (see the module docstring: Allocator).
KERNEL_ENV_UNSET = ("MALLOC_TRIM_THRESHOLD_",)
UsageError = runner.UsageError


# ----------------------------------------------------------------------------------------------
# tasks and keys
# ----------------------------------------------------------------------------------------------
def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"``, ``"3"``, ``"0-1,7"`` and lists work too.

    >>> parse_seeds("0-2,5")
    [0, 1, 2, 5]
    """
    if isinstance(spec, int):
        spec = [spec]
    if not isinstance(spec, str):
        seeds = [int(s) for s in spec]
    else:
        seeds = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    if hi < lo:
                        raise ValueError
                    seeds.extend(range(lo, hi + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise UsageError(f"--seeds {spec!r} is not a seed list; pass e.g. --seeds 0-4 or --seeds 0,3,7") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"--seeds {spec!r} must name at least one non-negative seed (e.g. --seeds 0-4)")
    return sorted(dict.fromkeys(seeds))


def parse_sets(items: Iterable[str] | dict | None) -> list[dict]:
    """``["a=1", "b=[1, 2]", "a=2"]`` -> [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 2]}] (a repeated key
    gives one parameter set per value). A dict is one parameter set.

    >>> parse_sets(["epochs=2", "lr=0.1", "epochs=4"])
    [{'epochs': 2, 'lr': 0.1}, {'epochs': 4, 'lr': 0.1}]
    """
    if items is None:
        return [{}]
    if isinstance(items, dict):
        return [dict(items)]
    values: dict[str, list] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--set {item!r} must be key=value with a parameter name as key (e.g. --set epochs=4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UsageError(f"--set {item!r}: {raw!r} is not a YAML value; quote strings, e.g. --set 'arch=\"small\"'") from None
        if key in runner.RESERVED:
            raise UsageError(f"--set {key}=... is passed by the sweep itself; use --seeds / --device / --data-dir")
        values.setdefault(key, []).append(value)
    keys = list(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]


def package_digest() -> str:
    """sha256 (16 hex) of the package's ``.py`` and profile files: a code change invalidates sweep keys."""
    h = hashlib.sha256()
    pkg = runner.REPO_ROOT / "uqxai_lib"
    for p in sorted([*pkg.rglob("*.py"), *pkg.glob("profiles/*.yaml")]):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(pkg).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def task_key(source_text: str, parameters: dict, seed: int, threads: int, digest: str | None = None,
             notebook: str = "") -> str:
    """Key of a task: hash of notebook name and source, parameters (without ``results_path``), seed,
    package version and source digest, and torch threads.

    >>> a = task_key("x = 1", {"n": 1}, 0, 1, digest="d")
    >>> a == task_key("x = 1", {"n": 1}, 0, 1, digest="d"), a == task_key("x = 1", {"n": 1}, 0, 2, digest="d")
    (True, False)
    """
    from uqxai_lib.cache import canonical_json

    params = {k: v for k, v in parameters.items() if k != "results_path"}
    payload = canonical_json({"notebook": notebook, "source": hashlib.sha256(source_text.encode()).hexdigest(),
                              "parameters": params,
                              "seed": int(seed), "threads": int(threads), "uqxai_lib": __version__,
                              "digest": digest if digest is not None else package_digest()})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """One (notebook, seed, parameter set) execution. ``parameters`` excludes ``results_path``."""

    notebook: str
    seed: int
    parameters: dict
    threads: int
    key: str
    source: str  # path of notebooks/NAME.py
    cwd: str  # notebooks directory
    timeout: int
    env: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)  # parameters that must exist in the notebook

    def dir(self, out: pathlib.Path) -> pathlib.Path:
        return pathlib.Path(out) / self.notebook / self.key


@dataclass
class TaskResult:
    """Index row of one task."""

    key: str
    notebook: str
    seed: int
    parameters: dict
    threads: int
    status: str  # "ok" | "error"
    wall_time_s: float
    worker: str
    results: str | None
    executed: str | None
    error: str | None = None
    failed_cell: str | None = None
    attempts: int = 1
    finished_utc: str = ""
    function: str | None = None  # "module:qualname" of a function task (None for a notebook)

    def row(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        what = f"{self.notebook} seed {self.seed} (key {self.key}, {self.threads} thread(s))"
        if self.status == "ok":
            return f"ok      {what} ({self.wall_time_s:.0f} s on {self.worker})"
        if self.function:
            return f"FAILED  {what}: {self.function} at {self.failed_cell or 'start'}: {self.error}"
        return f"FAILED  {what}: {self.failed_cell or 'before execution'}: {self.error} (notebook: {self.executed})"


def _short(params: dict, skip=("profile", "device", "data_dir", "seed")) -> str:
    return json.dumps({k: v for k, v in params.items() if k not in skip}, sort_keys=True, default=str)


def make_tasks(names: Sequence[str], seeds: Sequence[int], *, profile: str = "smoke",
               sets: Sequence[dict] | None = None, threads: int = 1, device: str = "cpu",
               data_dir: str | None = None, timeout: int | None = None,
               notebooks_dir: pathlib.Path | None = None, profiles_dir: pathlib.Path | None = None,
               env: dict | None = None) -> list[Task]:
    """The tasks of a sweep, in order notebook, parameter set, seed. Raises :class:`UsageError` for an
    unknown notebook or profile, or a ``--set`` key the notebook's parameters cell does not define."""
    import tempfile

    notebooks_dir = pathlib.Path(notebooks_dir or runner.REPO_ROOT / "notebooks").resolve()
    profiles_dir = pathlib.Path(profiles_dir or runner.REPO_ROOT / "uqxai_lib" / "profiles").resolve()
    if profile not in runner.PROFILES:
        raise UsageError(f"unknown profile {profile!r}; pass --profile tiny, smoke or full")
    if int(threads) < 1:
        raise UsageError(f"--threads-per-task must be at least 1, got {threads}")
    available = runner.discover_notebooks(notebooks_dir)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise UsageError(f"unknown notebook {', '.join(map(repr, unknown)) or 'none given'}; pass --only with "
                         f"one of: {', '.join(available)}")
    sets = list(sets) if sets else [{}]
    timeout = int(timeout or runner.DEFAULT_TIMEOUT[profile])
    digest = package_digest()
    base_env = {**{k: str(int(threads)) for k in THREAD_ENV}, **dict.fromkeys(KERNEL_ENV_UNSET),
                "PYTHONHASHSEED": "0", **(env or {})}
    tasks = []
    for name in names:
        source = notebooks_dir / f"{name}.py"
        text = source.read_text(encoding="utf-8")
        try:
            with tempfile.TemporaryDirectory() as d:
                known = runner.parameter_names(runner._prepare(source, pathlib.Path(d)))
        except Exception:  # an unreadable notebook fails as its task, with the runner's message
            known = None
        prof = runner.load_profile(name, profile, profiles_dir)
        for pset in sets:
            if known is not None and set(pset) - known:
                raise UsageError(f"--set {', '.join(sorted(set(pset) - known))}: not a parameter of {name} "
                                 f"(its parameters cell defines {', '.join(sorted(known))})")
            params = {**prof, **pset}
            for seed in seeds:
                full = runner.notebook_parameters(params, profile=profile, seed=int(seed), device=device,
                                                  data_dir=data_dir, results_path="")
                full.pop("results_path")
                key = task_key(text, full, int(seed), int(threads), digest, notebook=name)
                tasks.append(Task(name, int(seed), full, int(threads), key, str(source), str(notebooks_dir),
                                  timeout, dict(base_env), dict(params)))
    return tasks


# ----------------------------------------------------------------------------------------------
# function tasks
# ----------------------------------------------------------------------------------------------
def resolve_function(spec: str) -> Callable[..., Any]:
    """``"package.module:name"`` -> the function (clear error naming what is missing).

    >>> resolve_function("uqxai_lib.sweep:parse_seeds")("0-1")
    [0, 1]
    """
    import importlib

    mod, sep, name = str(spec).partition(":")
    if not sep or not mod or not name:
        raise UsageError(f"function {spec!r} must be written 'package.module:function'")
    try:
        module = importlib.import_module(mod)
    except ImportError as exc:
        raise UsageError(f"function {spec!r}: cannot import {mod} ({exc})") from None
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise UsageError(f"function {spec!r}: {mod} has no {name!r}")
    if not callable(fn):
        raise UsageError(f"function {spec!r} is not callable")
    return fn


def function_key(function: str, parameters: dict, seed: int, threads: int, device: str = "cpu",
                 digest: str | None = None, name: str = "") -> str:
    """Key of a function task: hash of the task's name (its group, e.g. the study), the function,
    parameters, seed, device, package version and source digest, and torch threads.

    >>> a = function_key("m:f", {"n": 1}, 0, 1, digest="d")
    >>> a == function_key("m:f", {"n": 1}, 0, 1, digest="d"), a == function_key("m:f", {"n": 1}, 0, 2, digest="d")
    (True, False)
    """
    from uqxai_lib.cache import canonical_json

    payload = canonical_json({"name": str(name), "function": str(function), "parameters": parameters, "seed": int(seed),
                              "threads": int(threads), "device": str(device), "uqxai_lib": __version__,
                              "digest": digest if digest is not None else package_digest()})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FunctionTask:
    """One call ``function(parameters, seed=seed, device=device)`` with ``threads`` torch threads.
    ``name`` groups tasks in the output and index (e.g. the study); ``notebook`` is the same name,
    so index rows of both kinds of task read alike."""

    name: str
    function: str  # "package.module:function"
    seed: int
    parameters: dict
    threads: int
    key: str
    device: str = "cpu"
    timeout: int = 3600
    env: dict = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return self.name

    def dir(self, out: pathlib.Path) -> pathlib.Path:
        return pathlib.Path(out) / self.name / self.key


def make_function_tasks(name: str, function: str, parameters: dict, seeds: Sequence[int], *, threads: int = 1,
                        device: str = "cpu", timeout: int = 3600, env: dict | None = None,
                        check: bool = True) -> list[FunctionTask]:
    """Tasks calling ``function`` (``"package.module:function"``) at each seed; ``check`` imports it
    here first, so a missing function is one clear error before anything runs."""
    if check:
        resolve_function(function)
    if int(threads) < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    params = json.loads(json.dumps(dict(parameters), default=str))  # the JSON form the key hashes
    digest = package_digest()
    base_env = {**{k: str(int(threads)) for k in THREAD_ENV}, **dict.fromkeys(KERNEL_ENV_UNSET),
                "PYTHONHASHSEED": "0", **(env or {})}
    return [FunctionTask(str(name), str(function), int(seed), params, int(threads),
                         function_key(function, params, int(seed), int(threads), device, digest,
                                      str(name)), str(device),
                         int(timeout), dict(base_env)) for seed in seeds]


_CHILD = "import sys; from uqxai_lib import sweep; sys.exit(sweep.run_function_file(sys.argv[1]))"


def run_function_file(path: str) -> int:
    """Child-process side of a function task: read ``task_in.json``, set torch threads, call the
    function, write ``result.json`` (JSON-safe) or ``error.json`` next to it; exit status 0 / 1."""
    import traceback

    from uqxai_lib.cache import atomic_write_json, finite_or_none

    work = pathlib.Path(path).parent
    spec = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    try:
        import torch

        torch.set_num_threads(int(spec["threads"]))
        fn = resolve_function(spec["function"])
        out = fn(dict(spec["parameters"]), seed=int(spec["seed"]), device=spec["device"])
        if not isinstance(out, dict):
            raise TypeError(f"{spec['function']} returned {type(out).__name__}, not a dict")
        atomic_write_json(work / "result.json", finite_or_none(out))
        return 0
    except Exception as exc:  # reported to the parent as the task's error
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else None
        atomic_write_json(work / "error.json", {"error": f"{type(exc).__name__}: {runner._first_line(exc)}",
                                                "where": where, "traceback": traceback.format_exc()})
        return 1


def execute_function_task(task: FunctionTask, out: str | os.PathLike) -> dict:
    """Run a :class:`FunctionTask` in a fresh Python process (see the module docstring) inside
    ``OUT/<name>/.<key>.<uuid>/`` and move the directory into place when it ends. Returns the row."""
    import subprocess

    from uqxai_lib.cache import atomic_write_json

    out = pathlib.Path(out)
    final = task.dir(out)
    work = final.parent / f".{task.key}.{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    spec = {"function": task.function, "parameters": task.parameters, "seed": task.seed, "threads": task.threads,
            "device": task.device}
    atomic_write_json(work / "task_in.json", spec)
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV_UNSET}
    for k, v in task.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    root = str(runner.REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    error = where = None
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(work / "task_in.json")], cwd=str(work), env=env,
                              capture_output=True, text=True, timeout=task.timeout)
        (work / "stderr.txt").write_text(proc.stderr[-20000:], encoding="utf-8")
        if proc.returncode != 0:
            try:
                info = json.loads((work / "error.json").read_text(encoding="utf-8"))
                error, where = info["error"], info["where"]
            except (OSError, json.JSONDecodeError, KeyError):
                error = f"the task process exited with status {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        error = f"the task ran past its timeout of {task.timeout} s"
    wall = time.perf_counter() - t0
    ok = error is None and (work / "result.json").is_file()
    if error is None and not ok:
        error = "the task process wrote no result.json"
    res = TaskResult(task.key, task.name, task.seed, task.parameters, task.threads, "ok" if ok else "error",
                     round(wall, 3), _worker_name(), str(final / "result.json") if ok else None, None,
                     error, where, 1, _now(), task.function)
    atomic_write_json(work / "task.json", {**res.row(), "env": task.env})
    if final.exists():
        trash = final.parent / f".{task.key}.old.{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(work, final)
    return res.row()


# ----------------------------------------------------------------------------------------------
# one task (runs on a worker)
# ----------------------------------------------------------------------------------------------
def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # not inside a Dask worker
        return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def execute_task(task: Task, out: str | os.PathLike, progress: bool = False) -> dict:
    """Run ``task`` (through :func:`uqxai_lib.run.execute_notebook`) and move its directory into place.

    The notebook runs in ``OUT/<notebook>/.<key>.<uuid>/`` (its ``results_path`` is ``results.json``
    there); when it ends, ``task.json`` (the index row) is written and the directory replaces
    ``OUT/<notebook>/<key>/`` in one rename, so a finished key is never half-written. Returns the row.
    """
    out = pathlib.Path(out)
    final = task.dir(out)
    work = final.parent / f".{task.key}.{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    results = work / "results.json"
    parameters = {**task.parameters, "results_path": str(results.resolve())}
    ex = runner.execute_notebook(pathlib.Path(task.source), work / "executed.ipynb", parameters,
                                 cwd=pathlib.Path(task.cwd), timeout=task.timeout, check=task.check,
                                 progress=progress, env=task.env)
    status, error = ex.status, ex.error
    if status == "ok" and not results.is_file():
        status, error = "error", f"the notebook did not write its results to results_path ({results.name})"
    res = TaskResult(task.key, task.notebook, task.seed, task.parameters, task.threads, status,
                     round(ex.wall_time_s, 3), _worker_name(),
                     str(final / "results.json") if results.is_file() else None,
                     str(final / "executed.ipynb") if (work / "executed.ipynb").is_file() else None,
                     error, ex.failed_cell, ex.attempts, _now())
    from uqxai_lib.cache import atomic_write_json

    atomic_write_json(work / "task.json", {**res.row(), "env": task.env})
    if final.exists():  # an earlier failed attempt of this key
        trash = final.parent / f".{task.key}.old.{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(work, final)
    return res.row()


def is_finished(task: Task | FunctionTask, out: pathlib.Path) -> dict | None:
    """The stored row if ``task`` already finished ``ok`` under ``out``, else None."""
    d = task.dir(out)
    try:
        row = json.loads((d / "task.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    name = "result.json" if isinstance(task, FunctionTask) else "results.json"
    if row.get("status") == "ok" and (d / name).is_file():
        row.pop("env", None)
        return row
    return None


# ----------------------------------------------------------------------------------------------
# index
# ----------------------------------------------------------------------------------------------
def read_index(out: pathlib.Path) -> dict[str, dict]:
    """Rows of ``OUT/index.json`` by key ({} if there is none)."""
    try:
        data = json.loads((pathlib.Path(out) / "index.json").read_text(encoding="utf-8"))
        return {r["key"]: r for r in data.get("tasks", [])}
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        return {}


def _write_index(out: pathlib.Path, rows: Iterable[dict]) -> pathlib.Path:
    from uqxai_lib.cache import atomic_write_json

    path = pathlib.Path(out) / "index.json"
    with runner._locked(path):
        merged = read_index(out)
        for r in rows:
            merged[r["key"]] = r
        ordered = sorted(merged.values(), key=lambda r: (r["notebook"], _short(r["parameters"]), r["seed"],
                                                         r["threads"]))
        atomic_write_json(path, {"schema": 1, "tasks": ordered})
    return path


# ----------------------------------------------------------------------------------------------
# the sweep
# ----------------------------------------------------------------------------------------------
def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _local_cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(processes=True, n_workers=workers, threads_per_worker=1, dashboard_address=None,
                        silence_logs=40)


def default_workers(threads: int) -> int:
    """``max(1, cores // threads)``."""
    return max(1, (os.cpu_count() or 1) // max(1, int(threads)))


def sweep(tasks: Sequence[Task | FunctionTask], *, out: str | os.PathLike = DEFAULT_OUT, workers: int | None = None,
          scheduler: str | None = None, echo: Callable[[str], None] | None = None) -> list[dict]:
    """Run the unfinished ``tasks`` on Dask and return one index row per task (in ``tasks`` order).

    Finished keys are not run again (their stored row is returned). ``scheduler`` is the address of a
    running cluster; otherwise a LocalCluster of ``workers`` (default :func:`default_workers`) starts
    and stops here. Rows are written to ``OUT/index.json`` as tasks finish.
    """
    from distributed import Client, as_completed

    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    rows: dict[str, dict] = {}
    todo: list[Task] = []
    for t in dict((t.key, t) for t in tasks).values():
        done = is_finished(t, out)
        if done is not None:
            rows[t.key] = done
        else:
            todo.append(t)
    total = len(todo)
    echo(f"sweep: {len(rows) + total} task(s), {len(rows)} already finished, {total} to run -> {out}")
    if rows:
        _write_index(out, rows.values())
    if total:
        threads = {t.threads for t in todo}
        cluster = None
        if scheduler is None:
            n = int(workers or default_workers(max(threads)))
            cluster = _local_cluster(n)
            client = Client(cluster)
            where = f"LocalCluster of {n} worker process(es), 1 task each"
        else:
            client = Client(scheduler, timeout="30s")
            where = f"scheduler {scheduler} ({len(client.scheduler_info().get('workers', {}))} worker(s))"
        echo(f"sweep: running on {where}, {'/'.join(map(str, sorted(threads)))} torch thread(s) per task")
        t0 = time.perf_counter()
        try:
            futures = {client.submit(execute_function_task if isinstance(t, FunctionTask) else execute_task, t,
                                     str(out), key=f"uqxai-{t.notebook}-{t.key}", pure=False, retries=0): t
                       for t in todo}
            n_done = n_failed = 0
            for fut in as_completed(futures):
                t = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # the worker died or could not run the task at all
                    row = TaskResult(t.key, t.notebook, t.seed, t.parameters, t.threads, "error", 0.0,
                                     "unknown", None, None, f"{type(exc).__name__}: {runner._first_line(exc)}",
                                     "before execution (task lost by its worker)", 0, _now(),
                                     getattr(t, "function", None)).row()
                rows[t.key] = row
                _write_index(out, [row])
                n_done += 1
                n_failed += row["status"] != "ok"
                elapsed = time.perf_counter() - t0
                eta = elapsed / n_done * (total - n_done)
                res = TaskResult(**{k: row.get(k) for k in TaskResult.__dataclass_fields__})
                echo(f"[{n_done}/{total}] {res.summary()}; elapsed {_fmt_s(elapsed)}, ETA {_fmt_s(eta)}"
                     + (f", {n_failed} failed" if n_failed else ""))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return [rows[t.key] for t in tasks]


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{message} (see python -m uqxai_lib.sweep --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m uqxai_lib.sweep", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", required=True, help="comma-separated notebook names")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0-4 or 0,2,7 (default 0)")
    p.add_argument("--profile", default="smoke", help="tiny, smoke (default) or full")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (YAML value); repeat a key for several values")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", default=None, help="LocalCluster worker processes (default cores // T)")
    where.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--threads-per-task", default="1", help="torch CPU threads of each task, T (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.add_argument("--data-dir", default=None, help="real data sets (default: $UQXAI_DATA_DIR, else synthetic)")
    p.add_argument("--timeout", default=None, help="per-cell timeout in seconds (default by profile)")
    p.add_argument("--out", default=None, help=f"output directory (default {runner._rel(DEFAULT_OUT)})")
    p.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--profiles-dir", default=None, help=argparse.SUPPRESS)
    return p


def _resolve(args) -> dict:
    threads = runner._int_arg(args.threads_per_task, "--threads-per-task", 1, "at least 1")
    workers = runner._int_arg(args.workers, "--workers", 1, "at least 1") if args.workers is not None else None
    timeout = runner._int_arg(args.timeout, "--timeout", 1, "at least 1 second") if args.timeout is not None else None
    names = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
    seeds = parse_seeds(args.seeds)
    sets = parse_sets(args.set)
    profile = str(args.profile).strip().lower()
    from uqxai_lib.data import DataError
    from uqxai_lib.utils import pick_device, resolve_data_dir

    try:
        device = str(pick_device(args.device))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        resolve_data_dir(args.data_dir)
    except DataError as exc:
        raise UsageError(str(exc).replace("from data_dir", "from --data-dir")) from None
    if args.scheduler is not None and "://" not in args.scheduler:
        raise UsageError(f"--scheduler {args.scheduler!r} must be an address like tcp://127.0.0.1:8786")
    data_dir = str(pathlib.Path(args.data_dir).resolve()) if args.data_dir else None
    tasks = make_tasks(names, seeds, profile=profile, sets=sets, threads=threads, device=device, data_dir=data_dir,
                       timeout=timeout, notebooks_dir=args.notebooks_dir, profiles_dir=args.profiles_dir,
                       env={runner.CACHE_DIR_ENV: os.environ[runner.CACHE_DIR_ENV]})
    out = pathlib.Path(args.out).resolve() if args.out else DEFAULT_OUT
    return dict(tasks=tasks, workers=workers, scheduler=args.scheduler, out=out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 all ok, 1 a task failed, 2 bad input)."""
    os.environ.setdefault(runner.CACHE_DIR_ENV, str(runner.REPO_ROOT / ".cache" / "uqxai"))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    try:
        cfg = _resolve(build_parser().parse_args(argv))
    except UsageError as exc:
        print(f"uqxai_lib.sweep: error: {exc}", file=sys.stderr)
        return 2
    try:
        rows = sweep(cfg["tasks"], out=cfg["out"], workers=cfg["workers"], scheduler=cfg["scheduler"])
    except KeyboardInterrupt:
        print("sweep interrupted; finished tasks are kept and skipped on the next run", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. no scheduler at --scheduler
        print(f"uqxai_lib.sweep: error: {type(exc).__name__}: {runner._first_line(exc)}", file=sys.stderr)
        return 2
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"index: {pathlib.Path(cfg['out']) / 'index.json'}", file=sys.stderr)
    if failed:
        for r in failed:
            print(TaskResult(**{k: r.get(k) for k in TaskResult.__dataclass_fields__}).summary(), file=sys.stderr)
        print(f"{len(failed)} of {len(rows)} task(s) failed", file=sys.stderr)
        return 1
    print(f"{len(rows)} task(s) ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

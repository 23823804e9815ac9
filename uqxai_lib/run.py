"""Papermill driver: execute the chapter notebooks with a profile and record provenance.

Usage::

    python -m uqxai_lib.run [--profile tiny|smoke|full] [--only NAME[,NAME]] [--device auto|cpu|cuda]
                            [--data-dir PATH] [--seed N]

For every selected ``notebooks/NAME.py`` (jupytext percent format) the runner

1. reads it with jupytext, sets the ``python3`` kernelspec and writes a temporary ``.ipynb``;
2. executes it with papermill in ``notebooks/`` with the parameters of
   ``uqxai_lib/profiles/NAME.yaml[<profile>]`` plus ``profile``, ``seed``, ``device``, ``data_dir``
   and ``results_path`` (``_build/results/NAME.json``, absolute), a per-cell timeout and a progress bar;
3. writes the executed notebook to ``book/_executed/NAME.ipynb`` (also when it fails: the partial
   notebook shows where), and merges a provenance record (git commit and dirty flag, profile,
   parameters, seed, device and GPU name, torch/CUDA/Python versions, wall time, status) into
   ``_build/results/provenance.json`` (plus a Markdown table ``provenance.md``).

Exit status: 0 all notebooks ran; 1 at least one failed (each failure is named with its cell); 2 bad
input (unknown profile, notebook or device, missing data directory), reported on one line.
The kernel inherits the environment; ``UQXAI_CACHE_DIR`` defaults to ``<repo>/.cache/uqxai``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import yaml

from uqxai_lib import __version__
from uqxai_lib.report import tables_path

# torch (via uqxai_lib.cache / utils) is imported lazily, so that bad command-line input is reported at once.
CACHE_DIR_ENV = "UQXAI_CACHE_DIR"

__all__ = [
    "DEFAULT_ORDER", "PROFILES", "REPO_ROOT", "RESERVED", "UsageError", "NotebookRun",
    "discover_notebooks", "load_profile", "execute_notebook", "notebook_parameters", "run_notebook", "main",
]

#: Repository root (the directory holding ``notebooks/`` and ``uqxai_lib/``).
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Profile names, smallest first.
PROFILES = ("tiny", "smoke", "full")
#: Chapter order of the book; other notebooks follow alphabetically.
DEFAULT_ORDER = ("primer_gradcam", "own_model", "robustness", "ecg_sue", "mri_mc_dropout", "derm_vic", "cross_study")
#: Parameters the runner always passes; profiles must not set them.
RESERVED = ("profile", "seed", "device", "data_dir", "results_path")
#: Per-cell execution timeout (seconds) by profile; ``--timeout`` overrides.
DEFAULT_TIMEOUT = {"tiny": 900, "smoke": 900, "full": 4 * 3600}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


class UsageError(Exception):
    """Bad command-line input; reported on one line with exit status 2."""


@dataclass
class NotebookRun:
    """Outcome of one notebook execution (also the provenance record, see :meth:`record`)."""

    name: str
    status: str  # "ok" | "error"
    executed_path: pathlib.Path
    results_path: pathlib.Path
    parameters: dict
    wall_time_s: float
    error: str | None = None
    failed_cell: str | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line when ok; when failed, the error's first line after the cell, its other lines
        (every listed problem, e.g. each missing data file, and what to do) indented below."""
        if self.status == "ok":
            return f"ok      {self.name} ({self.wall_time_s:.0f} s) -> {self.executed_path}"
        first, *rest = (self.error or "").splitlines() or [""]
        body = "".join(f"\n        {line}" for line in rest)
        return (f"FAILED  {self.name}: {self.failed_cell or 'before execution'}: {first}{body}"
                f"\n        (partial notebook: {self.executed_path})")


# ----------------------------------------------------------------------------------------------
# discovery and profiles
# ----------------------------------------------------------------------------------------------
def discover_notebooks(notebooks_dir: pathlib.Path) -> list[str]:
    """Names of ``notebooks_dir/*.py`` in book order (:data:`DEFAULT_ORDER`, then alphabetical)."""
    names = {p.stem for p in pathlib.Path(notebooks_dir).glob("*.py") if not p.name.startswith(("_", "."))}
    first = [n for n in DEFAULT_ORDER if n in names]
    return first + sorted(names - set(first))


def load_profile(name: str, profile: str, profiles_dir: pathlib.Path) -> dict:
    """Parameters of ``profile`` from ``profiles_dir/<name>.yaml``.

    A notebook without a profile file runs with its own defaults under ``smoke``; other profiles
    then raise :class:`UsageError`, as do a missing profile key and reserved parameter names.
    """
    path = pathlib.Path(profiles_dir) / f"{name}.yaml"
    if not path.is_file():
        if profile == "smoke":
            return {}
        raise UsageError(f"notebook {name!r} has no profile file {_rel(path)}; add it with a {profile!r} "
                         f"key, or pass --profile smoke to run it with its own defaults")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"profile file {_rel(path)} is not valid YAML ({str(exc).splitlines()[0]}); fix it") from None
    if not isinstance(data, dict) or not set(data) <= set(PROFILES):
        raise UsageError(f"profile file {_rel(path)} must map only {', '.join(PROFILES)} to parameter mappings")
    if profile not in data:
        raise UsageError(f"profile file {_rel(path)} has no {profile!r} key; pass --profile "
                         f"{' or '.join(sorted(data)) or 'smoke'} or add the key")
    params = data[profile] or {}
    if not isinstance(params, dict):
        raise UsageError(f"{_rel(path)}[{profile}] must be a mapping parameter -> value")
    clash = sorted(set(params) & set(RESERVED))
    if clash:
        raise UsageError(f"{_rel(path)}[{profile}] sets {clash}, which the runner passes itself; "
                         f"remove them (use --seed / --device / --data-dir)")
    return dict(params)


def _rel(p: pathlib.Path) -> str:
    try:
        return str(pathlib.Path(p).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


# ----------------------------------------------------------------------------------------------
# provenance
# ----------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment_info(device: str) -> dict:
    """Software and hardware facts for provenance (git, torch, CUDA, Python, device name)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        device_name = f"{dev} ({torch.cuda.get_device_name(idx)})"
    else:
        cpu = platform.processor() or platform.machine()
        device_name = f"cpu ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": None if status is None else bool(status),
        "device_name": device_name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uqxai_lib": __version__,
    }


@contextlib.contextmanager
def _locked(path: pathlib.Path):
    """Exclusive advisory lock on ``path.lock`` (POSIX), so concurrent runners do not lose updates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path.with_suffix(path.suffix + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


PROVENANCE_COLUMNS = ("notebook", "status", "profile", "seed", "device_name", "torch", "cuda", "python",
                      "git_commit", "git_dirty", "wall_time_s", "finished_utc")


def merge_provenance(results_dir: pathlib.Path, records: Sequence[dict]) -> pathlib.Path:
    """Merge per-notebook records into ``provenance.json`` (keyed by notebook) and rewrite ``provenance.md``."""
    from uqxai_lib.cache import atomic_write_json, atomic_write_text

    path = pathlib.Path(results_dir) / "provenance.json"
    with _locked(path):
        data: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                data = {}
        notebooks = data.get("notebooks", {}) if isinstance(data, dict) else {}
        for rec in records:
            notebooks[rec["notebook"]] = rec
        order = discover_notebooks(REPO_ROOT / "notebooks")
        ranked = sorted(notebooks, key=lambda n: (order.index(n) if n in order else len(order), n))
        data = {"schema": 1, "notebooks": {n: notebooks[n] for n in ranked}}
        atomic_write_json(path, data)
        atomic_write_text(path.with_suffix(".md"), provenance_markdown(data))
    return path


def provenance_markdown(data: dict) -> str:
    """Markdown table (one row per notebook) of :data:`PROVENANCE_COLUMNS`."""
    rows = ["| " + " | ".join(PROVENANCE_COLUMNS) + " |", "|" + "---|" * len(PROVENANCE_COLUMNS)]
    for rec in data.get("notebooks", {}).values():
        cells = []
        for c in PROVENANCE_COLUMNS:
            v = rec.get(c)
            if c == "git_commit" and isinstance(v, str):
                v = v[:12]
            if c == "wall_time_s" and isinstance(v, (int, float)):
                v = f"{v:.1f}"
            cells.append("" if v is None else str(v).replace("|", "\\|"))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------------------------
# execution
# ----------------------------------------------------------------------------------------------
#: Problems (``  - `` items) of an error message shown in the terminal and provenance; the rest are counted.
MAX_ITEMS = 20


def _error_text(s: Any, *, max_items: int = MAX_ITEMS, max_lines: int = 80, line_limit: int = 2000) -> str:
    """An exception message for the terminal and provenance: every line, except that of its
    ``- item`` lines (a :class:`~uqxai_lib.data.DataError` lists one missing or corrupt file per
    item) the first ``max_items`` are kept and the rest counted; lines beyond ``max_lines`` are
    counted too, and each line is cut at ``line_limit`` characters.

    >>> print(_error_text("3 missing:\\n  - a\\n  - b\\n  - c\\nget them", max_items=2))
    3 missing:
      - a
      - b
      - ... and 1 more
    get them
    """
    lines = str(s).strip().splitlines()
    out, n_items, dropped = [], 0, 0
    for line in lines:
        is_item = line.lstrip().startswith("- ")
        is_count = is_item and line.lstrip()[2:].startswith("... and ")
        if is_item and not is_count:
            n_items += 1
            if n_items > max_items:
                dropped += 1
                continue
        elif dropped:  # close a run of dropped items before the next line
            out.append(f"  - ... and {dropped} more")
            dropped = 0
        out.append(line if len(line) <= line_limit else line[: line_limit - 3] + "...")
    if dropped:
        out.append(f"  - ... and {dropped} more")
    if len(out) > max_lines:
        out = out[:max_lines] + [f"... ({len(out) - max_lines} more lines)"]
    return "\n".join(out)


def _first_line(s: Any, limit: int = 300) -> str:
    lines = str(s).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _prepare(source: pathlib.Path, tmpdir: pathlib.Path) -> pathlib.Path:
    """jupytext ``.py`` -> temporary ``.ipynb`` with the python3 kernelspec and a ``parameters`` cell check."""
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any("parameters" in (c.metadata.get("tags") or []) for c in nb.cells):
        raise ValueError(f"{_rel(source)} has no cell tagged 'parameters'; tag its parameters cell "
                         f"(# %% tags=[\"parameters\"])")
    out = tmpdir / f"{source.stem}.ipynb"
    nbformat.write(fold_parameter_cells(nb, source.parent), str(out))
    return out


#: cells the book folds (one click away): the defaults and the values papermill injected
FOLDED_TAGS = ("parameters", "injected-parameters")


def fold_parameter_cells(nb: Any, cwd: pathlib.Path | str, root: pathlib.Path | str = REPO_ROOT) -> Any:
    """Tag the ``parameters`` and ``injected-parameters`` cells ``hide-input`` and write the paths
    under ``root`` in the injected cell relative to ``cwd`` (the notebook's working directory), so
    no absolute path of the build machine shows in the book.  Works on the notebook in place and
    returns it; applied before papermill and to the executed notebook.
    """
    root_s = str(pathlib.Path(root).resolve())
    rel = os.path.relpath(root_s, str(pathlib.Path(cwd).resolve()))
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags") or [])
        if not any(t in tags for t in FOLDED_TAGS):
            continue
        if "hide-input" not in tags:
            cell.metadata["tags"] = tags + ["hide-input"]
        if "injected-parameters" in tags:
            cell.source = cell.source.replace(root_s + os.sep, rel + "/").replace(root_s, rel)
    return nb


def _fold_file(path: pathlib.Path, cwd: pathlib.Path) -> None:
    """:func:`fold_parameter_cells` on a notebook file; a notebook that cannot be read stays as it is."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # a partial notebook of a killed kernel: keep it for the error report
        print(f"warning: could not fold the parameter cells of {path.name}: {type(exc).__name__}", file=sys.stderr)
        return
    nbformat.write(fold_parameter_cells(nb, cwd), str(path))


def parameter_names(nb_path: pathlib.Path) -> set[str] | None:
    """Names assigned at top level of the ``parameters`` cell (None if it cannot be parsed)."""
    import ast

    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    for cell in nb.cells:
        if "parameters" in (cell.metadata.get("tags") or []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return None
            names: set[str] = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            names.add(n.id)
            return names
    return None


def _check_known_parameters(nb_path: pathlib.Path, params: dict, name: str) -> None:
    """Profile keys must exist in the notebook's parameters cell (catches typos in profile files)."""
    known = parameter_names(nb_path)
    if known is None:
        return
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"profile of {name!r} sets {unknown}, which its parameters cell does not define; "
                         f"fix uqxai_lib/profiles/{name}.yaml or the notebook")


#: How many times a kernel start that lost a port race (``ZMQError: Address already in use``, papermill
#: issue 511, seen when several kernels start at once) is retried before the run counts as failed.
KERNEL_START_RETRIES = 3
_ENV_LOCK = threading.Lock()


@dataclass
class Execution:
    """Outcome of :func:`execute_notebook`."""

    status: str  # "ok" | "error"
    wall_time_s: float
    error: str | None = None
    failed_cell: str | None = None
    attempts: int = 1


@contextlib.contextmanager
def _environment(env: dict | None):
    """Set ``env`` in ``os.environ`` while the block runs (the kernel inherits it), then restore it.
    A value ``None`` removes the variable for the block.

    Held under a lock: two executions in one process never see each other's variables (a Dask worker
    with several threads then runs its notebooks one at a time; start workers with ``--nthreads 1``).
    """
    if not env:
        yield
        return
    with _ENV_LOCK:
        old = {k: os.environ.get(k) for k in env}
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _port_race(exc: BaseException) -> bool:
    """A kernel that could not start because another one took its port (retrying helps)."""
    msg = f"{type(exc).__name__}: {exc}"
    return "Address already in use" in msg or "Kernel died before replying to kernel_info" in msg


def execute_notebook(
    source: pathlib.Path,
    out: pathlib.Path,
    parameters: dict,
    *,
    cwd: pathlib.Path,
    timeout: int,
    check: dict | None = None,
    progress: bool = True,
    env: dict | None = None,
    retries: int = KERNEL_START_RETRIES,
) -> Execution:
    """Execute the jupytext notebook ``source`` with papermill into ``out`` (``.ipynb``).

    The one implementation of running a chapter, used by :func:`run_notebook` (``python -m
    uqxai_lib.run``) and by :mod:`uqxai_lib.sweep`. ``parameters`` are injected after the
    ``parameters`` cell; the keys of ``check`` must be defined there (typos in profiles fail the run).
    ``env`` is set for the kernel (e.g. ``OMP_NUM_THREADS``). A kernel start that loses a port race
    is retried up to ``retries`` times. Never raises for errors inside the notebook: they are in the
    result, and the partial executed notebook is written to ``out`` (an older ``out`` is removed if
    nothing ran).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, out = pathlib.Path(source), pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.stem}.partial.ipynb"
    status, error, failed_cell, attempt = "ok", None, None, 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"uqxai-{source.stem}-") as tmp, _environment(env):
        while True:
            attempt += 1
            status, error, failed_cell = "ok", None, None
            try:
                nb_in = _prepare(source, pathlib.Path(tmp))
                _check_known_parameters(nb_in, check or {}, source.stem)
                papermill.execute_notebook(
                    str(nb_in), str(partial), parameters=parameters, cwd=str(cwd),
                    kernel_name=KERNELSPEC["name"], execution_timeout=timeout, progress_bar=progress,
                    log_output=False, report_mode=False,
                )
            except PapermillExecutionError as exc:
                status = "error"
                error = f"{exc.ename}: {_error_text(exc.evalue)}"
                failed_cell = f"executed cell {exc.cell_index} (execution count {exc.exec_count}, " \
                              f"starts {_first_line(exc.source, 80)!r})"
            except Exception as exc:  # timeouts, dead kernels, bad notebooks, kernel start races
                status = "error"
                error = f"{type(exc).__name__}: {_error_text(exc)}"
                failed_cell = _failing_cell(partial)
                if _port_race(exc) and failed_cell is None and attempt <= retries:
                    print(f"{source.stem}: kernel start lost a port race ({error}); retry {attempt} of {retries}",
                          file=sys.stderr, flush=True)
                    partial.unlink(missing_ok=True)
                    time.sleep(0.5 * attempt)
                    continue
            break
    wall = time.perf_counter() - t0
    if partial.exists():
        _fold_file(partial, pathlib.Path(cwd))
        os.replace(partial, out)
    elif status == "error":
        out.unlink(missing_ok=True)  # nothing executed: do not leave an older notebook in place
    return Execution(status, wall, error, failed_cell, attempt)


def run_notebook(
    name: str,
    *,
    notebooks_dir: pathlib.Path,
    executed_dir: pathlib.Path,
    results_dir: pathlib.Path,
    profile: str,
    params: dict,
    seed: int,
    device: str,
    data_dir: str | None,
    timeout: int,
    progress: bool = True,
    env: dict | None = None,
) -> NotebookRun:
    """Execute one notebook; never raises for errors inside the notebook (they are in the result)."""
    source = pathlib.Path(notebooks_dir) / f"{name}.py"
    executed_dir, results_dir = pathlib.Path(executed_dir), pathlib.Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = executed_dir / f"{name}.ipynb"
    results_path = (results_dir / f"{name}.json").resolve()
    parameters = notebook_parameters(params, profile=profile, seed=seed, device=device, data_dir=data_dir,
                                     results_path=results_path)
    # a stale result (or its tables, uqxai_lib.report.save_tables) must not survive a failed run
    results_path.unlink(missing_ok=True)
    tables_path(results_path).unlink(missing_ok=True)
    ex = execute_notebook(source, out, parameters, cwd=pathlib.Path(notebooks_dir), timeout=timeout,
                          check=params, progress=progress, env=env)
    if ex.status == "ok" and not results_path.is_file():
        print(f"warning: {name} did not write its results to {results_path}", file=sys.stderr)
    return NotebookRun(name, ex.status, out, results_path, parameters, ex.wall_time_s, ex.error, ex.failed_cell)


def notebook_parameters(params: dict, *, profile: str, seed: int, device: str, data_dir: str | None,
                        results_path: pathlib.Path | str) -> dict:
    """What papermill injects: the profile's parameters plus the runner's :data:`RESERVED` ones."""
    return {**params, "profile": profile, "seed": seed, "device": device, "data_dir": data_dir,
            "results_path": str(results_path)}


def _failing_cell(nb_path: pathlib.Path) -> str | None:
    """Best guess of the cell that was running when execution stopped (last cell started by papermill)."""
    if not nb_path.exists():
        return None
    try:
        import nbformat

        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception:
        return None
    for i, c in enumerate(nb.cells):
        pm = c.get("metadata", {}).get("papermill", {})
        if pm.get("status") == "running" or pm.get("exception"):
            return f"cell {i} (starts {_first_line(c.source, 80)!r})"
    return None


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(f"{message} (see python -m uqxai_lib.run --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m uqxai_lib.run", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", help="tiny (CI), smoke (default, CPU minutes) or full (paper scale)")
    p.add_argument("--only", default=None, help="comma-separated notebook names (default: all)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--data-dir", default=None,
                   help="directory of the real data sets (default: $UQXAI_DATA_DIR, else embedded synthetic data)")
    p.add_argument("--seed", default="0", help="seed passed to every notebook (default 0)")
    p.add_argument("--timeout", default=None, help="per-cell timeout in seconds (default 900; 14400 for full)")
    p.add_argument("--executed-dir", default=None, help="where executed notebooks go (default book/_executed)")
    p.add_argument("--results-dir", default=None,
                   help="where results JSON and provenance go (default _build/results; env UQXAI_RESULTS_DIR)")
    p.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--profiles-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")
    p.add_argument("--list", action="store_true", help="print the notebooks in run order and exit")
    return p


def _int_arg(value: str, flag: str, lo: int, what: str) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be an integer, got {value!r}; pass e.g. {flag} {lo if lo > 0 else 0}") from None
    if v < lo:
        raise UsageError(f"{flag} must be {what}, got {v}")
    return v


def _resolve_args(args) -> dict:
    """Validate everything that can be checked before running; raises UsageError."""
    profile = str(args.profile).strip().lower()
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; pass --profile tiny, smoke or full")
    env_dir = lambda flag, env, default: pathlib.Path(flag or os.environ.get(env) or default).resolve()
    notebooks_dir = pathlib.Path(args.notebooks_dir or REPO_ROOT / "notebooks").resolve()
    profiles_dir = pathlib.Path(args.profiles_dir or REPO_ROOT / "uqxai_lib" / "profiles").resolve()
    executed_dir = env_dir(args.executed_dir, "UQXAI_EXECUTED_DIR", REPO_ROOT / "book" / "_executed")
    results_dir = env_dir(args.results_dir, "UQXAI_RESULTS_DIR", REPO_ROOT / "_build" / "results")
    available = discover_notebooks(notebooks_dir)
    if not available:
        raise UsageError(f"no notebooks found in {notebooks_dir}; run from a checkout of the uqxai repository")
    if args.only:
        wanted = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in available]
        if unknown or not wanted:
            raise UsageError(f"unknown notebook {', '.join(map(repr, unknown)) or repr(args.only)}; "
                             f"pass --only with one of: {', '.join(available)}")
        names = [n for n in available if n in wanted]
    else:
        names = available
    seed = _int_arg(args.seed, "--seed", 0, "a non-negative integer")
    timeout = (_int_arg(args.timeout, "--timeout", 1, "at least 1 second") if args.timeout is not None
               else DEFAULT_TIMEOUT[profile])
    params = {n: load_profile(n, profile, profiles_dir) for n in names}
    from uqxai_lib.data import DataError
    from uqxai_lib.utils import pick_device, resolve_data_dir

    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        data_dir = resolve_data_dir(args.data_dir)
    except DataError as exc:
        msg = str(exc).replace("from data_dir", "from --data-dir")
        raise UsageError(msg) from None
    return dict(profile=profile, names=names, device=str(device), seed=seed, timeout=timeout, params=params,
                data_dir=str(data_dir) if args.data_dir else None, effective_data_dir=data_dir,
                notebooks_dir=notebooks_dir, executed_dir=executed_dir, results_dir=results_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        cfg = _resolve_args(args)
    except UsageError as exc:
        print(f"uqxai_lib.run: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(cfg["names"]))
        return 0
    os.environ.setdefault(CACHE_DIR_ENV, str(REPO_ROOT / ".cache" / "uqxai"))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    env = environment_info(cfg["device"])
    data_note = cfg["effective_data_dir"] or "embedded synthetic data"
    print(f"uqxai: {len(cfg['names'])} notebook(s), profile {cfg['profile']}, device {env['device_name']}, "
          f"seed {cfg['seed']}, data {data_note}, cache {os.environ[CACHE_DIR_ENV]}", file=sys.stderr)
    runs: list[NotebookRun] = []
    for i, name in enumerate(cfg["names"], 1):
        print(f"[{i}/{len(cfg['names'])}] {name}", file=sys.stderr, flush=True)
        started = _dt.datetime.now(_dt.timezone.utc)
        try:
            r = run_notebook(name, notebooks_dir=cfg["notebooks_dir"], executed_dir=cfg["executed_dir"],
                             results_dir=cfg["results_dir"], profile=cfg["profile"], params=cfg["params"][name],
                             seed=cfg["seed"], device=cfg["device"], data_dir=cfg["data_dir"],
                             timeout=cfg["timeout"], progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"interrupted during {name}; caches written so far are kept", file=sys.stderr)
            return 130
        runs.append(r)
        record = {
            "notebook": name, "status": r.status, "error": r.error, "failed_cell": r.failed_cell,
            "profile": cfg["profile"], "seed": cfg["seed"], "device": cfg["device"],
            "data_dir": str(cfg["effective_data_dir"]) if cfg["effective_data_dir"] else None,
            "parameters": r.parameters, "wall_time_s": round(r.wall_time_s, 3),
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "timeout_per_cell_s": cfg["timeout"], "executed_notebook": str(r.executed_path),
            "results": str(r.results_path) if r.results_path.is_file() else None,
            "cache_dir": os.environ[CACHE_DIR_ENV], **env,
        }
        merge_provenance(cfg["results_dir"], [record])
        print(r.summary(), file=sys.stderr, flush=True)
    failed = [r for r in runs if r.status != "ok"]
    print(f"provenance: {cfg['results_dir'] / 'provenance.json'}", file=sys.stderr)
    if failed:
        for r in failed:
            print(r.summary(), file=sys.stderr)
        print(f"{len(failed)} of {len(runs)} notebook(s) failed: {', '.join(r.name for r in failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Robustness chapter: each study's primary comparison over training seeds and torch thread counts.

Steps (the notebook calls them in this order):

1. :func:`check_studies` - every study has its library function ``primary_run(params, *, seed,
   device) -> {"primary", "claim"}`` (:data:`STUDY_FUNCTIONS`; clear error naming the missing one);
2. :func:`study_tasks` - the sweep's function tasks (:func:`uqxai_lib.sweep.make_function_tasks`):
   each study x seed at 1 torch thread, plus one seed at 2 threads (the thread-count effect), with
   the study's parameters as :func:`uqxai_lib.params.chapter_parameters` gives them
   (:func:`study_parameters`);
3. :func:`uqxai_lib.sweep.sweep` runs them (Dask; each task in its own process, cached by key);
4. :func:`collect` - read each finished task's ``primary`` and ``claim`` records (clear error naming
   the missing key and file, or the failed tasks);
5. :func:`summarize` - per study: effects and intervals per seed, across-seed mean and interval
   (:func:`uqxai_lib.stats.seed_summary`), sign agreement, the 1- and 2-thread runs with their
   verdicts, and the ``across_seeds`` / ``across_threads`` rungs of the verdict ladder
   (:mod:`uqxai_lib.verdicts`). Its keys are one study's entry of ``robustness.json``, which the
   study chapters read for their ladders (:func:`uqxai_lib.verdicts.robustness_rungs`).

No study notebook runs here: the chapters carry no branch for this chapter.
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Mapping, Sequence

from uqxai_lib import params as chapter_params
from uqxai_lib import stats, sweep, verdicts

__all__ = ["STUDIES", "STUDY_FUNCTIONS", "RobustnessError", "check_studies", "study_parameters", "study_tasks",
           "collect", "summarize", "summarize_all", "surviving"]

#: The three study chapters, in book order.
STUDIES = ("ecg_sue", "mri_mc_dropout", "derm_vic")
#: Each study's primary, as a library function ``fn(params, *, seed, device) -> {"primary", "claim"}``.
STUDY_FUNCTIONS = {"ecg_sue": "uqxai_lib.studies.ecg:primary_run",
                   "mri_mc_dropout": "uqxai_lib.studies.mri:primary_run",
                   "derm_vic": "uqxai_lib.studies.derm:primary_run"}
#: Keys each task's record must have.
REQUIRED = ("primary", "claim")
PRIMARY_KEYS = ("effect", "ci95", "verdict")
CLAIM_KEYS = ("text", "expected", "theirs", "source")
#: Parameters of a chapter that a task does not pass on (the seed and device are the task's own).
NOT_PASSED = ("seed", "device", "results_path")


class RobustnessError(ValueError):
    """A study cannot be part of the robustness chapter (missing function or record, failed task)."""


def _function(name: str, functions: Mapping[str, str] | None) -> str:
    functions = dict(STUDY_FUNCTIONS if functions is None else functions)
    if name not in functions:
        raise RobustnessError(f"no primary function for study {name!r}; known studies: {', '.join(functions)} "
                              f"(pass study_functions={{{name!r}: 'package.module:function'}})")
    return functions[name]


def check_studies(studies: Sequence[str], functions: Mapping[str, str] | None = None) -> None:
    """Each study's primary function (:data:`STUDY_FUNCTIONS` or ``functions``) can be imported."""
    for name in studies:
        spec = _function(name, functions)
        try:
            sweep.resolve_function(spec)
        except sweep.UsageError as exc:
            raise RobustnessError(
                f"study {name}: {exc}. The robustness chapter runs each study's primary as a library function "
                f"primary_run(params, *, seed, device) -> {{'primary': ..., 'claim': ...}} in "
                f"{spec.partition(':')[0]} (issue 21)") from None


def study_parameters(name: str, profile: str, *, overrides: Mapping | None = None, data_dir: str | None = None,
                     notebooks_dir=None, profiles_dir=None) -> dict:
    """The parameters a study's primary function gets: the chapter's (its parameters cell with its
    ``profile``, :func:`uqxai_lib.params.chapter_parameters`), ``profile`` and ``data_dir`` as the
    runner sets them, then ``overrides``; without :data:`NOT_PASSED`. An override that is not a
    parameter of the chapter is an error naming the chapter's parameters."""
    try:
        base = chapter_params.chapter_parameters(name, profile, notebooks_dir=notebooks_dir, profiles_dir=profiles_dir)
    except (OSError, ValueError) as exc:
        raise RobustnessError(f"study {name}: cannot read its parameters ({exc})") from None
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise RobustnessError(f"study_overrides for {name}: {', '.join(unknown)} not a parameter of {name} "
                              f"(its parameters: {', '.join(sorted(k for k in base if k not in NOT_PASSED))})")
    out = {**base, "profile": profile, "data_dir": data_dir, **overrides}
    return {k: v for k, v in out.items() if k not in NOT_PASSED}


def study_tasks(studies: Sequence[str], seeds: Sequence[int], *, profile: str, thread_seed: int = 0,
                overrides: Mapping[str, Mapping] | None = None, device: str = "cpu", data_dir: str | None = None,
                notebooks_dir=None, profiles_dir=None, env: Mapping | None = None,
                functions: Mapping[str, str] | None = None, timeout: int = 3600) -> list[sweep.FunctionTask]:
    """Function tasks: every study at every seed with 1 torch thread, plus ``thread_seed`` at 2
    threads; each calls the study's primary function with :func:`study_parameters`."""
    overrides = overrides or {}
    tasks: list[sweep.FunctionTask] = []
    for name in studies:
        fn = _function(name, functions)
        prm = study_parameters(name, profile, overrides=overrides.get(name), data_dir=data_dir,
                               notebooks_dir=notebooks_dir, profiles_dir=profiles_dir)
        kw = dict(device=device, env=dict(env or {}), timeout=timeout)
        try:
            tasks += sweep.make_function_tasks(name, fn, prm, list(seeds), threads=1, **kw)
            tasks += sweep.make_function_tasks(name, fn, prm, [int(thread_seed)], threads=2, check=False, **kw)
        except sweep.UsageError as exc:
            raise RobustnessError(f"study {name}: {exc}") from None
    return tasks


def _where(row: Mapping) -> str:
    return f"{row['notebook']} seed {row['seed']} ({row['threads']} thread(s))"


def _failure(row: Mapping) -> str:
    where = f"{row['function']} at {row.get('failed_cell') or 'start'}" if row.get("function") else \
        f"{row.get('failed_cell') or 'before execution'}"
    tail = "" if row.get("function") else f" (executed notebook: {row.get('executed')})"
    return f"{_where(row)} failed: {where}: {row.get('error')}{tail}"


def _read_record(row: Mapping) -> dict:
    path = row.get("results")
    where = _where(row)
    if row.get("status") != "ok" or not path:
        raise RobustnessError(_failure(row))
    data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    for key in REQUIRED:
        if key not in data:
            raise RobustnessError(f"{where}: its result {path} has no {key!r} key; the study's primary function "
                                  f"must return {{'primary': <assess primary section>, 'claim': <the paper's claim>}}")
    missing = [k for k in PRIMARY_KEYS if k not in data["primary"]] + \
              [f"claim.{k}" for k in CLAIM_KEYS if k not in data["claim"]]
    if missing:
        raise RobustnessError(f"{where}: the 'primary'/'claim' records in {path} lack {missing}")
    return {"primary": data["primary"], "claim": data["claim"]}


def collect(rows: Sequence[Mapping]) -> dict[str, dict]:
    """Rows of :func:`uqxai_lib.sweep.sweep` -> ``{study: {"seeds": {seed: primary}, "threads": {t: {seed:
    primary}}, "claim": claim}}``. All failed tasks are named in one error."""
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        raise RobustnessError(f"{len(failed)} of {len(rows)} task(s) failed: " + "; ".join(map(_failure, failed)))
    out: dict[str, dict] = {}
    for r in rows:
        rec = _read_record(r)
        s = out.setdefault(r["notebook"], {"seeds": {}, "threads": {}, "claim": rec["claim"]})
        s["threads"].setdefault(int(r["threads"]), {})[int(r["seed"])] = rec["primary"]
        if int(r["threads"]) == 1:
            s["seeds"][int(r["seed"])] = rec["primary"]
    return out


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _seed_verdict(p: Mapping) -> str:
    """A single run's verdict word: "undefined" when its primary is, else from its interval."""
    ci = [_num(v) for v in p.get("ci95") or [None, None]]
    if p.get("verdict") == "undefined" or not all(math.isfinite(v) for v in ci):
        return "undefined"
    return stats.verdict(ci)


def summarize(collected: Mapping, thread_seed: int = 0) -> dict:
    """One study's robustness record (its entry of ``robustness.json``).

    ``effects`` / ``ci95_per_seed`` / ``verdicts_per_seed`` are per seed at 1 thread (sorted by
    seed; an undefined primary has effect NaN and verdict "undefined"); ``seed_summary`` is
    :func:`uqxai_lib.stats.seed_summary` of the effects (its ``mean``, ``ci95``, ``sign_agreement``
    also at top level); ``threads`` = ``{"1": {effect, ci95, verdict}, "2": {...}}`` for
    ``thread_seed`` (None when that run is missing); ``rungs`` the ``across_seeds`` and
    ``across_threads`` rungs (:mod:`uqxai_lib.verdicts`), and ``reproduction`` the across-seed
    outcome ("reproduced" / "not reproduced" / "reversed" / "undefined").
    """
    seeds = sorted(collected["seeds"])
    prim = [collected["seeds"][s] for s in seeds]
    effects = [_num(p["effect"]) for p in prim]
    summary = stats.seed_summary(effects)
    claim = dict(collected["claim"])
    threads = {}
    for t in (1, 2):
        p = collected["threads"].get(t, {}).get(int(thread_seed))
        threads[str(t)] = None if p is None else {"effect": _num(p["effect"]),
                                                   "ci95": [_num(v) for v in p["ci95"]], "verdict": _seed_verdict(p)}
    per_seed = [_seed_verdict(p) for p in prim]
    seeds_rung = verdicts.across_seeds(summary, claim["expected"], per_seed=per_seed)
    threads_rung = verdicts.across_threads(*((threads[k] or {}).get("verdict") for k in ("1", "2")))
    n_rep = sum(v != "undefined" and stats.reproduction(v, claim["expected"]) == "reproduced" for v in per_seed)
    return {
        "seeds": seeds,
        "effects": effects,
        "ci95_per_seed": [[_num(v) for v in p["ci95"]] for p in prim],
        "seed_summary": summary,
        "mean": summary["mean"],
        "ci95": summary["ci95"],
        "sign_agreement": summary["sign_agreement"],
        "threads": threads,
        "thread_seed": int(thread_seed),
        "verdict": summary["verdict"] if seeds_rung["outcome"] != "undefined" else "undefined",
        "reproduction": seeds_rung["outcome"],
        "rungs": [seeds_rung, threads_rung],
        "verdicts_per_seed": per_seed,
        "reproduced_seeds": f"{n_rep}/{len(per_seed)}",
        "primary_name": prim[0].get("name") or prim[0].get("score") if prim else None,
        "claim": claim,
    }


def summarize_all(rows: Sequence[Mapping], studies: Sequence[str], thread_seed: int = 0) -> dict[str, dict]:
    """:func:`collect` then :func:`summarize` for each of ``studies`` (in that order)."""
    got = collect(rows)
    missing = [s for s in studies if s not in got]
    if missing:
        raise RobustnessError(f"no finished task of {missing}; run them in the sweep")
    return {s: summarize(got[s], thread_seed) for s in studies}


def surviving(summaries: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """Studies grouped by how their claim fares across seeds: ``reproduced`` / ``not reproduced`` /
    ``reversed`` / ``undefined`` (the across-seed rung)."""
    out: dict[str, list[str]] = {"reproduced": [], "not reproduced": [], "reversed": [], "undefined": []}
    for name, s in summaries.items():
        out[s["reproduction"]].append(name)
    return out

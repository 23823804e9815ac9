"""Robustness chapter: each study's primary comparison over training seeds and torch thread counts.

Steps (the notebook calls them in this order):

1. :func:`check_studies` - every study notebook must accept ``primary_only`` (clear error if not);
2. :func:`study_tasks` - the sweep tasks: each study x seed at 1 thread with ``primary_only=True``,
   plus one seed at 2 threads (the thread-count effect);
3. :func:`uqxai_lib.sweep.sweep` runs them (Dask);
4. :func:`collect` - read each finished task's ``primary`` and ``claim`` records (clear error naming
   the missing key and file, or the failed tasks);
5. :func:`summarize` - per study: effects and intervals per seed, across-seed mean and interval
   (:func:`uqxai_lib.stats.seed_summary`), sign agreement, the thread-count effect and the verdicts
   (:func:`uqxai_lib.stats.verdict` / :func:`uqxai_lib.stats.reproduction`).
"""
from __future__ import annotations

import json
import math
import pathlib
import tempfile
from typing import Mapping, Sequence

from uqxai_lib import run as runner
from uqxai_lib import stats, sweep

__all__ = ["STUDIES", "RobustnessError", "check_studies", "study_tasks", "collect", "summarize",
           "summarize_all", "surviving"]

#: The three study chapters, in book order.
STUDIES = ("ecg_sue", "mri_mc_dropout", "derm_vic")
#: Keys each study's results JSON must have (contract of issue 15).
REQUIRED = ("primary", "claim")
PRIMARY_KEYS = ("name", "effect", "ci95", "verdict")
CLAIM_KEYS = ("text", "expected", "theirs", "source")


class RobustnessError(ValueError):
    """A study cannot be part of the robustness chapter (missing parameter or record, failed task)."""


def check_studies(studies: Sequence[str], notebooks_dir: pathlib.Path | None = None) -> None:
    """Each study notebook exists and its parameters cell defines ``primary_only``."""
    notebooks_dir = pathlib.Path(notebooks_dir or runner.REPO_ROOT / "notebooks")
    for name in studies:
        source = notebooks_dir / f"{name}.py"
        if not source.is_file():
            raise RobustnessError(f"study notebook {source} does not exist; studies are {', '.join(STUDIES)}")
        with tempfile.TemporaryDirectory() as d:
            known = runner.parameter_names(runner._prepare(source, pathlib.Path(d))) or set()
        if "primary_only" not in known:
            raise RobustnessError(
                f"notebooks/{name}.py has no 'primary_only' parameter: the robustness chapter runs each study "
                f"with primary_only=True and reads the 'primary' and 'claim' records of its results JSON; add "
                f"`primary_only = False` to its parameters cell and every profile (issue 15)")


def study_tasks(studies: Sequence[str], seeds: Sequence[int], *, profile: str, thread_seed: int = 0,
                overrides: Mapping[str, Mapping] | None = None, device: str = "cpu", data_dir: str | None = None,
                notebooks_dir=None, profiles_dir=None, env: Mapping | None = None) -> list[sweep.Task]:
    """Sweep tasks: every study at every seed with 1 torch thread, plus ``thread_seed`` at 2 threads;
    all with ``primary_only=True`` and the study's ``overrides``."""
    overrides = overrides or {}
    tasks: list[sweep.Task] = []
    for name in studies:
        pset = [{**dict(overrides.get(name, {})), "primary_only": True}]
        kw = dict(profile=profile, sets=pset, device=device, data_dir=data_dir, notebooks_dir=notebooks_dir,
                  profiles_dir=profiles_dir, env=dict(env or {}))
        tasks += sweep.make_tasks([name], list(seeds), threads=1, **kw)
        tasks += sweep.make_tasks([name], [int(thread_seed)], threads=2, **kw)
    return tasks


def _where(row: Mapping) -> str:
    return f"{row['notebook']} seed {row['seed']} ({row['threads']} thread(s))"


def _failure(row: Mapping) -> str:
    return (f"{_where(row)} failed: {row.get('failed_cell') or 'before execution'}: {row.get('error')} "
            f"(executed notebook: {row.get('executed')})")


def _read_record(row: Mapping) -> dict:
    path = row.get("results")
    where = _where(row)
    if row.get("status") != "ok" or not path:
        raise RobustnessError(_failure(row))
    data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    for key in REQUIRED:
        if key not in data:
            raise RobustnessError(f"{where}: its results JSON {path} has no {key!r} key; the study notebook must "
                                  f"write {key!r} (stats.primary(...) and the paper's claim, issue 15)")
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


def summarize(collected: Mapping, thread_seed: int = 0) -> dict:
    """One study's robustness record (the keys of ``robustness.json``) plus verdicts and the claim.

    ``effects`` / ``ci95_per_seed`` are per seed at 1 thread (sorted by seed); ``mean`` / ``ci95`` /
    ``sign_agreement`` come from :func:`uqxai_lib.stats.seed_summary`; ``threads`` holds the effect of
    ``thread_seed`` at 1 and 2 threads; ``verdict`` is the across-seed verdict and ``reproduction``
    how it stands to the claim's expected direction; ``verdicts_per_seed`` the single-seed verdicts.
    """
    seeds = sorted(collected["seeds"])
    prim = [collected["seeds"][s] for s in seeds]
    effects = [_num(p["effect"]) for p in prim]
    summary = stats.seed_summary(effects)
    claim = dict(collected["claim"])
    by_threads = collected["threads"]
    threads = {}
    for t in (1, 2):
        p = by_threads.get(t, {}).get(int(thread_seed))
        threads[str(t)] = None if p is None else _num(p["effect"])
    per_seed_verdicts = [stats.verdict([_num(v) for v in p["ci95"]]) for p in prim]
    return {
        "seeds": seeds,
        "effects": effects,
        "ci95_per_seed": [[_num(v) for v in p["ci95"]] for p in prim],
        "mean": summary["mean"],
        "ci95": summary["ci95"],
        "sign_agreement": summary["sign_agreement"],
        "threads": threads,
        "thread_seed": int(thread_seed),
        "verdict": summary["verdict"],
        "reproduction": stats.reproduction(summary["verdict"], claim["expected"]),
        "verdicts_per_seed": per_seed_verdicts,
        "reproduced_seeds": f"{sum(stats.reproduction(v, claim['expected']) == 'reproduced' for v in per_seed_verdicts)}"
                            f"/{len(per_seed_verdicts)}",
        "primary_name": prim[0]["name"] if prim else None,
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
    ``reversed`` (from the across-seed verdict)."""
    out: dict[str, list[str]] = {"reproduced": [], "not reproduced": [], "reversed": []}
    for name, s in summaries.items():
        out[s["reproduction"]].append(name)
    return out

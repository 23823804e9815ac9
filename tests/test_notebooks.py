"""End to end: every notebook runs in the ``tiny`` profile and the book builds with ``-W``; the same
notebook run twice with the same seed (separate, cold caches) writes byte-identical results JSON.

Everything runs in a temporary copy of the repository (tracked and untracked-but-not-ignored files),
so the repository's ``book/_executed`` and ``_build`` are never touched. The model/sample cache of
the whole-book run is the test session's private cache (shared with other end-to-end tests, e.g. the
browser test, so a second tiny run reuses their entries); the determinism runs each get a fresh one.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from pages import citation_problems, log_problems

from uqxai_lib import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = run.discover_notebooks(ROOT / "notebooks")
# the cheapest notebook for the determinism check
DETERMINISM_NOTEBOOK = "primer_gradcam" if "primer_gradcam" in NOTEBOOKS else (NOTEBOOKS or [None])[0]
OUR_ENV = ("UQXAI_EXECUTED_DIR", "UQXAI_RESULTS_DIR", "UQXAI_DATA_DIR")


def _repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f]


def _copy_repo(dst: Path) -> Path:
    for rel in _repo_files():
        src = ROOT / rel
        if src.is_file():  # deleted-but-tracked files are skipped
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    vendor = ROOT / "book" / "_static" / "vendor"  # git-ignored offline JavaScript, if vendored
    if vendor.is_dir():
        shutil.copytree(vendor, dst / "book" / "_static" / "vendor")
    return dst


def _env(repo: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OUR_ENV}
    env["PYTHONPATH"] = str(repo)  # runner and kernels import the copy's uqxai_lib
    env.update(extra)
    return env


def _runner(repo: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uqxai_lib.run", "--profile", "tiny", "--no-progress", *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=3000)


def _numbers(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """A copy of the repository in which ``python -m uqxai_lib.run --profile tiny`` has run."""
    if not NOTEBOOKS:
        pytest.fail("no notebooks/*.py found")
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    proc = _runner(repo, env=_env(repo))
    return repo, proc


def test_every_notebook_runs_in_the_tiny_profile(tiny_book):
    repo, proc = tiny_book
    assert proc.returncode == 0, f"runner failed:\n{proc.stderr[-6000:]}"
    prov = json.loads((repo / "_build" / "results" / "provenance.json").read_text())["notebooks"]
    assert sorted(prov) == sorted(NOTEBOOKS)  # provenance.json is written with sorted keys
    for name in NOTEBOOKS:
        rec = prov[name]
        assert rec["status"] == "ok" and rec["profile"] == "tiny", rec
        assert rec["wall_time_s"] > 0 and rec["torch"] and rec["python"] and rec["device_name"]
        executed = repo / "book" / "_executed" / f"{name}.ipynb"
        nb = nbformat.read(executed, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "profile = \"tiny\"" in injected[0].source
        results = repo / "_build" / "results" / f"{name}.json"
        assert results.is_file(), f"{name} wrote no results JSON"
        data = json.loads(results.read_text())
        assert isinstance(data, dict) and data, f"{name}: results JSON is empty"
        assert all(math.isfinite(x) for x in _numbers(data)), f"{name}: non-finite number in results"
        assert results.read_text() == json.dumps(data, sort_keys=True, indent=2) + "\n", \
            f"{name}: results must be written with uqxai_lib.cache.atomic_write_json (sorted keys)"
    assert not list((repo / "book" / "_executed").glob(".*.partial.ipynb"))


def test_results_carry_the_records_the_issues_name(tiny_book):
    """The keys other tools read (issues 15 and 17): each study's ``primary`` with a verdict that
    agrees with its interval, the robustness record per study, and the cross-study matrix."""
    from uqxai_lib import stats

    repo, proc = tiny_book
    assert proc.returncode == 0
    res = repo / "_build" / "results"
    studies = [n for n in ("ecg_sue", "mri_mc_dropout", "derm_vic") if n in NOTEBOOKS]
    for name in studies:
        p = json.loads((res / f"{name}.json").read_text())["primary"]
        assert {"name", "effect", "ci95", "auroc", "auroc_ci95", "p", "verdict"} <= set(p), name
        assert p["verdict"] == stats.verdict(p["ci95"]), name
        assert p["ci95"][0] <= p["effect"] <= p["ci95"][1], name
    if "robustness" in NOTEBOOKS:
        rob = json.loads((res / "robustness.json").read_text())
        for name in studies:
            r = rob[name]
            assert len(r["seeds"]) == len(r["effects"]) == len(r["ci95_per_seed"]) >= 2, name
            assert r["ci95"][0] <= r["mean"] <= r["ci95"][1] and set(r["threads"]) == {"1", "2"}, name
            k, n = map(int, r["sign_agreement"].split("/"))
            assert n == len(r["seeds"]) and 0 <= k <= n, name
    if "cross_study" in NOTEBOOKS:
        cs = json.loads((res / "cross_study.json").read_text())
        cam = [r for r in cs["matrix"] if r["items"] == "all"]
        assert {r["source"] for r in cam} == {"test_time", "mc_dropout", "rashomon", "rashomon_finetuned",
                                              "seed_ensemble"}
        # every cell whose stack has at least 2 samples (a Rashomon set with fewer kept models is undefined)
        expected = {(m, s) for m in cs["modalities"] for s in ("test_time", "mc_dropout", "rashomon",
                                                               "rashomon_finetuned", "seed_ensemble")
                    if cs["sources"][f"{m}/{s}"].get("n_kept", 2) >= 2}
        assert len(expected) >= 4 * 4 and {(r["modality"], r["source"]) for r in cam} == expected
        assert len({(r["modality"], r["source"], r["score"]) for r in cam}) == 2 * len(expected) == len(cam)
        assert set(cs["finetuned_sets"]) == set(cs["modalities"])
        assert all(0 <= v["kept"] <= v["candidates"] for v in cs["finetuned_sets"].values())
        cells = [r for r in cs["matrix"] if r["items"] == "case_control"]
        methods = {r["method"] for r in cells}
        assert len(methods - {"grad_cam", "grad_cam_pp"}) >= 6 and {"lime", "kernel_shap"} <= methods
        assert len({(r["method"], r["modality"], r["source"], r["score"]) for r in cells}) == len(cells)
        assert {v["spatial_dims"] for v in cs["modalities"].values()} == {1, 2, 3}
        assert {(r["modality"], r["method"]) for r in cs["fidelity_by_method"]} == {
            (r["modality"], r["method"]) for r in cells}
        for r in cs["matrix"] + cs["baselines"]:
            assert {"modality", "source", "score", "auroc", "auroc_ci95"} <= set(r)
        for r in cs["matrix"]:  # every cell beside its pooled AUROC: the AUROC within each predicted class
            assert "within_class_auroc" in r and len(r["within_class_auroc_ci95"]) == 2, r
        for r in cs["conformal"]:
            assert {"modality", "score", "alpha", "delta", "n_splits", "fraction_risk_le_alpha", "mean_coverage",
                    "mean_risk"} <= set(r) and r["n_splits"] >= 2
        assert cs["literature"] and all({"source", "setting", "figure", "ours"} <= set(r) for r in cs["literature"])
        for r in cs["design"]:
            assert r["verdict"] == stats.verdict(r["delta_ci95"]) or r["delta"] is None


def test_widgets_are_never_folded_away(tiny_book):
    # a widget inside a hide-output fold renders but cannot be slid until the reader opens the fold
    repo, proc = tiny_book
    assert proc.returncode == 0, f"runner failed:\n{proc.stderr[-6000:]}"
    folded = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(repo / "book" / "_executed" / f"{name}.ipynb", as_version=4)
        for i, c in enumerate(nb.cells):
            widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c.get("outputs", []))
            tags = set(c.metadata.get("tags", [])) & {"hide-output", "hide-cell", "remove-output", "remove-cell"}
            if widget and tags:
                folded.setdefault(name, []).append((i, sorted(tags)))
    assert not folded, f"widget cells carry folding tags: {folded}"


def test_book_builds_without_warnings(tiny_book):
    repo, proc = tiny_book
    if not (repo / "_config.yml").is_file():
        pytest.skip("no _config.yml yet")
    assert proc.returncode == 0, "notebooks failed; see test_every_notebook_runs_in_the_tiny_profile"
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", ".", "-W", "-n", "--keep-going"],
                           cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, f"book build failed:\n{build.stdout[-6000:]}\n{build.stderr[-3000:]}"
    html = repo / "_build" / "html"
    problems = {}
    for name in NOTEBOOKS:
        page = html / "book" / "_executed" / f"{name}.html"
        if f"book/_executed/{name}" in (repo / "_toc.yml").read_text():
            assert page.is_file(), f"no page for {name}"
            # no timing / "results ->" lines in the outputs; linked citations and a References section
            text = page.read_text(encoding="utf-8")
            problems[name] = log_problems(text) + citation_problems(text)
    assert not any(problems.values()), {k: v[:5] for k, v in problems.items() if v}
    assert (html / "index.html").is_file()


@pytest.mark.skipif(DETERMINISM_NOTEBOOK is None, reason="no notebook")
def test_same_seed_gives_byte_identical_results_json(tmp_path):
    name = DETERMINISM_NOTEBOOK
    outputs = []
    for i in (1, 2):
        # separate cold caches: the second run must recompute (train, sample) and still agree
        env = _env(ROOT, UQXAI_CACHE_DIR=str(tmp_path / f"cache{i}"))
        proc = _runner(ROOT, "--only", name, "--seed", "0", "--executed-dir", str(tmp_path / f"executed{i}"),
                       "--results-dir", str(tmp_path / f"results{i}"), env=env)
        assert proc.returncode == 0, f"run {i} of {name} failed:\n{proc.stderr[-6000:]}"
        outputs.append((tmp_path / f"results{i}" / f"{name}.json").read_bytes())
    assert outputs[0] == outputs[1], f"{name}: results differ between two runs with seed 0"
    data = json.loads(outputs[0])
    assert list(_numbers(data)), f"{name}: results JSON holds no numbers"
    timing = [k for k in _keys(data) if any(t in k.lower() for t in ("time", "duration", "elapsed", "seconds"))]
    assert not timing, f"{name}: timings belong to provenance, not results: {timing}"

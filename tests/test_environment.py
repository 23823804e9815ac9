"""pyproject.toml and environment.yml name the same packages; the Makefile and CI use them."""
from __future__ import annotations

import pathlib
import re

import tomllib
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """PEP 508 requirement -> normalised project name (PEP 503)."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert m, f"cannot parse requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", m.group(1)).lower()


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_requirements() -> dict[str, str]:
    p = _pyproject()["project"]
    reqs = list(p["dependencies"]) + [r for extra in p.get("optional-dependencies", {}).values() for r in extra]
    own = _name(p["name"])
    return {_name(r): r.replace(" ", "") for r in reqs if _name(r) != own}  # "uqxai[book]": the extras themselves


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for r in dep.get("pip", []):
                out[_name(r)] = r.replace(" ", "")
        elif _name(dep) not in ("python", "pip"):
            out[_name(dep)] = dep.replace(" ", "")
    return out


def test_pyproject_and_environment_yml_name_the_same_packages():
    py, conda = _pyproject_requirements(), _conda_requirements()
    assert set(py) == set(conda), (
        f"only in pyproject.toml: {sorted(set(py) - set(conda))}; only in environment.yml: {sorted(set(conda) - set(py))}"
    )


def test_pyproject_and_environment_yml_use_the_same_version_bounds():
    py, conda = _pyproject_requirements(), _conda_requirements()
    differing = {k: (py[k], conda[k]) for k in py.keys() & conda.keys() if py[k] != conda[k]}
    assert not differing, f"version bounds differ (pyproject, environment.yml): {differing}"


def test_required_packages_are_declared_in_the_core_or_their_extra():
    p = _pyproject()["project"]
    core = {_name(r) for r in p["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in p["optional-dependencies"].items()}
    assert {"torch", "torchvision", "numpy", "scipy", "scikit-learn", "captum", "matplotlib", "pyyaml"} <= core
    book_stack = {"ipywidgets", "papermill", "jupytext", "jupyter-book", "ipykernel", "dask", "distributed", "wfdb",
                  "selenium"}
    assert not core & book_stack, f"the book stack belongs in extras, not the core: {sorted(core & book_stack)}"
    assert {"ipywidgets", "papermill", "jupytext", "jupyter-book", "ipykernel"} <= extras["book"]
    assert {"dask", "distributed"} <= extras["sweep"] and {"wfdb"} <= extras["data"]
    assert {"pytest", "grad-cam", "selenium", "ruff"} <= extras["dev"]
    assert "uqxai[book,sweep,data]" in [r.replace(" ", "") for r in p["optional-dependencies"]["dev"]]


def test_jupyter_book_is_1x_and_torch_is_not_pinned_tightly():
    reqs = _pyproject_requirements()
    assert reqs["jupyter-book"] == "jupyter-book>=1,<2"
    assert "==" not in reqs["torch"] and "<" not in reqs["torch"]
    assert "==" not in reqs["torchvision"] and "<" not in reqs["torchvision"]


def test_environment_yml_python_matches_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pins, "environment.yml must pin python"
    version = pins[0].split("=")[-1]
    lowest = _pyproject()["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, lowest.split(".")))


def test_installed_distribution_satisfies_declared_requirements():
    """The venv running the tests has every declared package (catches a stale install)."""
    from importlib import metadata

    missing = []
    for name in _pyproject_requirements():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    assert not missing, f"not installed: {missing}; run `make install`"


def test_ci_runs_make_test_and_does_not_mask_failures():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and re.search(r"^make test\b", ci, re.M)
    assert "|| true" not in ci


def test_makefile_reinstalls_when_pyproject_changes_and_builds_with_warnings_as_errors():
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): pyproject.toml", mk, re.M)
    assert 'pip install -e ".[dev]"' in mk
    assert "jupyter-book build . -W -n --keep-going" in mk
    assert re.search(r"^clean:", mk, re.M)

"""`pip install .` without extras is enough for `from uqxai_lib import assess` (the light core).

A second virtual environment would cost a torch install in CI; instead a fresh interpreter refuses
every package of the extras (an import blocker on sys.meta_path), imports the package and runs an
assessment, and the third-party modules it loaded are checked against the core dependency list.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: import names of the extras' packages (book, sweep, data, dev) and what they pull in
EXTRAS_ONLY = ["jupyter_book", "jupytext", "papermill", "ipywidgets", "ipykernel", "nbformat", "nbclient",
               "myst_nb", "sphinx", "dask", "distributed", "wfdb", "selenium", "pytest", "pytorch_grad_cam"]

SCRIPT = r"""
import importlib.abc, importlib.metadata, json, sys
BLOCKED = set(%(blocked)r)

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is an extra's package; the core must not import it")
        return None

sys.meta_path.insert(0, Refuse())
before = set(sys.modules)
import torch
from torch import nn
import uqxai_lib
from uqxai_lib import assess
import uqxai_lib.viz, uqxai_lib.protocol, uqxai_lib.rules, uqxai_lib.fidelity
try:
    import uqxai_lib.attribution
except ModuleNotFoundError as e:
    if e.name != "uqxai_lib.attribution":
        raise
net = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Dropout(0.2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                    nn.Linear(4, 2)).eval()
rec = assess(net, torch.randn(12, 1, 32), torch.randint(0, 2, (12,)), layer="1", source="mc_dropout", n=3,
             n_boot=200)
top = sorted({m.split(".")[0] for m in set(sys.modules) - before})
dists = importlib.metadata.packages_distributions()
third = sorted({d for m in top for d in dists.get(m, [])})
print(json.dumps({"third_party": third, "verdict": rec.primary["verdict"]}))
"""


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_core_imports_and_assesses_without_any_extra_and_needs_only_core_dependencies():
    out = subprocess.run([sys.executable, "-c", SCRIPT % {"blocked": EXTRAS_ONLY}], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    import re

    declared = {_norm(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in core}
    # what the core's dependencies bring themselves (torch's own, matplotlib's, ...) is fine; the
    # extras' packages are refused above, so any other distribution must be a declared core one or
    # a dependency of one
    from importlib import metadata

    allowed = set(declared)
    frontier = list(declared)
    while frontier:
        d = frontier.pop()
        try:
            reqs = metadata.requires(d) or []
        except metadata.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:
                continue
            n = _norm(re.match(r"[A-Za-z0-9._-]+", r).group(0))
            if n not in allowed:
                allowed.add(n)
                frontier.append(n)
    # optional imports of core dependencies that load whatever happens to be installed (numpy.f2py tries
    # charset_normalizer and falls back without it)
    optional = {"charset-normalizer"}
    undeclared = sorted(_norm(d) for d in got["third_party"] if _norm(d) not in allowed | optional | {"uqxai"})
    assert not undeclared, f"the core imports packages that are neither core dependencies nor theirs: {undeclared}"
    assert got["verdict"] in ("higher", "lower", "no detectable difference", "undefined")


def test_importing_viz_changes_no_global_matplotlib_state():
    code = ("import matplotlib; before = dict(matplotlib.rcParams); import uqxai_lib.viz; "
            "after = dict(matplotlib.rcParams); "
            "print([k for k in before if before[k] != after[k]])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"

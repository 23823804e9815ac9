"""Checks of a built chapter page (HTML of Jupyter Book 1.x / myst-nb / sphinxcontrib-bibtex), shared by
``test_chapter_pages.py`` (on hand-made pages) and ``test_notebooks.py`` (on the tiny book it builds)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from bs4 import BeautifulSoup

#: a printed timing line: "... 12.3 s", "notebook time 40 s" (at the end of an output line)
TIMING_LINE = re.compile(r"\b\d+(?:\.\d+)?\s?s$")
#: the runner's old "results -> /path/results.json" line
RESULTS_LINE = re.compile(r"results\s*->")


def output_lines(html: str) -> list[str]:
    """The text lines of every cell output of the page (stream, plain-text and HTML outputs)."""
    soup = BeautifulSoup(html, "html.parser")
    lines = []
    for out in soup.select("div.cell_output"):
        lines += [ln.strip() for ln in out.get_text("\n").splitlines() if ln.strip()]
    return lines


def log_problems(html: str) -> list[str]:
    """Timing and "results ->" lines in the page's cell outputs (they belong on the terminal)."""
    problems = []
    for line in output_lines(html):
        if TIMING_LINE.search(line):
            problems.append(f"timing line in an output: {line[:120]!r}")
        if RESULTS_LINE.search(line):
            problems.append(f"'results ->' line in an output: {line[:120]!r}")
    return problems


def citation_problems(html: str) -> list[str]:
    """The page cites with sphinxcontrib-bibtex roles, has a References section listing the cited
    entries, and every citation link resolves to an entry on the same page."""
    soup = BeautifulSoup(html, "html.parser")
    cites = soup.select("span.bibtex-citation a.reference.internal")
    if not cites:
        return ["no {cite} citation on the page"]
    refs = soup.find("section", id=re.compile(r"^references(-\d+)?$"))
    if refs is None:
        return ["no References section"]
    entries = {el.get("id") for el in refs.select("div.citation[id]")}
    if not entries:
        return ["the References section lists no entry"]
    problems = []
    for a in cites:
        target = (a.get("href") or "").lstrip("#")
        if target not in entries:
            problems.append(f"citation {a.get_text()!r} links to {a.get('href')!r}, not to this page's References")
    return problems


def page_checker():
    """``book/tools/check_pages.py`` (the page checker a reader runs on the built book), loaded as a
    module (book/tools is not a package)."""
    path = Path(__file__).resolve().parents[1] / "book" / "tools" / "check_pages.py"
    spec = importlib.util.spec_from_file_location("check_pages", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

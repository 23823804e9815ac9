"""Sphinx extension for the uqxai book (loaded through ``sphinx.local_extensions`` in ``_config.yml``).

It does these small things:

* ``uqxai-json-table`` directive: renders a JSON file written by the pipeline (benchmarks,
  provenance) as tables at build time.  A missing file gives a note saying how to produce it,
  never a warning, so the book builds with ``-W`` before anything has run.
* ``uqxai-verdict NAME`` directive: the verdict box of a study chapter, made by
  :func:`uqxai_lib.report.verdict_box` from ``_build/results/NAME.json`` (and the study's entry
  of ``_build/results/robustness.json`` when it exists); ``uqxai-verdict-table`` gives the table of
  all of them (:func:`uqxai_lib.report.verdict_table`) for the intro page.  Chapter pages get the
  box right after their title without any edit of the notebooks: at ``source-read`` the executed
  notebook's first Markdown cell gains the directive after its ``# `` title line.
* Results that are only a default object repr (``<torch._C.Generator at 0x…>``: a cell whose
  last call returns something) are dropped from chapter pages.
* At the same time absolute paths under the book root (printed by a cell, injected by papermill)
  are written relative to it, and code cells are folded: every code cell gets ``hide-input`` unless it is tagged
  ``show-input`` (or already ``remove-input`` / ``hide-input``); stderr (progress bars, warnings)
  is dropped from every page by ``nb_output_stderr: remove`` in ``_config.yml``.
* Chapter pages (``book/_executed/NAME``) get a ``.py`` and a results ``.json`` entry in the
  download menu, next to the ``.ipynb`` one; the jupytext source ``notebooks/NAME.py`` is copied to
  ``_notebooks/NAME.py`` and ``_build/results/NAME.json`` to ``_results/NAME.json``.  The tables the
  chapter shows (registered by :func:`uqxai_lib.report.table`, saved to ``NAME.tables.json``) are
  written to ``_results/NAME/<table>.csv`` and, all together, ``_results/NAME/NAME_tables.zip``; the
  menu lists each CSV when there are at most :data:`MENU_TABLES`, else the zip.
* Search snippets work from ``file://``: ``_static/uqxai_search_text.js`` (written at build-finished)
  holds each page's main text, and on search.html ``_static/uqxai-search-offline.js`` answers
  searchtools.js's summary ``fetch`` from it (browsers refuse ``fetch`` of ``file://`` pages).
* ``uqxai-bench`` (performance page: the recorded full run with date, machine and spread, smoke
  checks, the sweep of chapter tasks), ``uqxai-run-times`` (reproducibility page: per-chapter and
  total time per profile, with the hardware) and the ``uqxai-runtime`` role (a chapter's time to
  run in its prose), all generated from the benchmark files and the provenance.
* The CSV link of a shortened or folded table (``#uqxai-csv-NAME``, written by
  :func:`uqxai_lib.report.format_table`) is pointed at the chapter's ``_results/NAME/<table>.csv``.
* Launch/thebe machinery is dropped from every page: it names a CDN and, in sphinx-thebe 0.3,
  declares ``THEBE_JS_URL`` twice (a console SyntaxError).
* Nothing else: all other configuration lives in ``_config.yml``.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

EXECUTED_PREFIX = "book/_executed/"
PY_DOWNLOAD_DIR = "_notebooks"
RESULTS_DOWNLOAD_DIR = "_results"
#: a chapter with more tables than this offers them as one zip in the download menu (a long menu reads badly)
MENU_TABLES = 6
#: where the runner writes the chapters' results records (relative to the book root)
RESULTS_DIR = "_build/results"
#: records kept in the repository (relative to the book root): earlier builds' run times
#: (``run_times.json``, book/tools/record_run_times.py) and full benchmark runs (``bench*.json``)
RECORDS_DIR = "book/records"
#: the script (book/_static) that fits tables too wide for their box into it
TABLES_JS = "uqxai-tables.js"
#: a table's CSV link as ``uqxai_lib.report.FormattedTable`` writes it; rewritten to the download
CSV_LINK = re.compile(r"#uqxai-csv-([A-Za-z0-9][A-Za-z0-9_-]{0,63})")
#: chapters whose page opens with a verdict box (others get one when their record has a ``claim``)
STUDIES = ("primer_gradcam", "ecg_sue", "mri_mc_dropout", "derm_vic")
#: short names of the study chapters in the intro's verdict table (others: the page title)
SHORT_TITLES = {"primer_gradcam": "Primer (shapes)", "ecg_sue": "ECG (SUE)", "mri_mc_dropout": "Brain MRI (MC dropout)",
                "derm_vic": "Dermoscopy (VIC)", "robustness": "Robustness (seeds)", "cross_study": "Across modalities"}
#: cell tags that already decide how a code cell's input is shown
INPUT_TAGS = ("show-input", "hide-input", "remove-input", "remove-cell", "hide-cell")


# --------------------------------------------------------------------------- JSON → tables
#: a UTC time stamp as the runner writes it (``datetime.isoformat``)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00|Z)$")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a git commit
    if isinstance(value, str) and ISO_UTC.match(value):
        return f"{value[:10]} {value[11:16]} UTC"  # a time stamp, short enough for a table cell
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _is_records(obj: Any) -> bool:
    return isinstance(obj, list) and bool(obj) and all(isinstance(r, dict) for r in obj)


def _is_table_of_dicts(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, dict) for v in obj.values())


def _records_table(records: list[dict], first: str | None = None):
    header: list[str] = []
    for r in records:
        header += [k for k in r if k not in header]
    if first and first in header:
        header.remove(first)
        header.insert(0, first)
    return header, [[_fmt(r.get(k)) for k in header] for r in records]


def json_tables(obj: Any, title: str = "") -> list[tuple[str, list[str], list[list[str]]]]:
    """Turn a JSON value into ``[(title, header, rows)]`` without knowing its schema.

    >>> json_tables({"a": 1, "b": {"x": 2.5}})
    [('', ['quantity', 'value'], [['a', '1'], ['b', 'x=2.5']])]
    >>> json_tables({"nb1": {"t": 1}, "nb2": {"t": 2, "u": 3}})[0][1:]
    (['name', 't', 'u'], [['nb1', '1', '–'], ['nb2', '2', '3']])
    """
    if _is_records(obj):
        header, rows = _records_table(obj, first="name")
        return [(title, header, rows)]
    if _is_table_of_dicts(obj):
        # one row per key; nested dict-of-dicts values stay as compact text
        records = [{"name": k, **v} for k, v in obj.items()]
        header, rows = _records_table(records, first="name")
        return [(title, header, rows)]
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if not (_is_records(v) or _is_table_of_dicts(v))}
        tables = []
        if scalars:
            tables.append((title, ["quantity", "value"], [[k, _fmt(v)] for k, v in scalars.items()]))
        for k, v in obj.items():
            if k not in scalars:
                tables += json_tables(v, title=k)
        return tables
    if isinstance(obj, list):
        return [(title, ["value"], [[_fmt(v)] for v in obj])]
    return [(title, ["value"], [[_fmt(obj)]])]


def _table_node(header: list[str], rows: list[list[str]]) -> nodes.table:
    table = nodes.table(classes=["uqxai-json-table"])
    tgroup = nodes.tgroup(cols=len(header))
    table += tgroup
    for _ in header:
        tgroup += nodes.colspec(colwidth=1)
    thead = nodes.thead()
    tgroup += thead
    thead += _row(header)
    tbody = nodes.tbody()
    tgroup += tbody
    for r in rows:
        tbody += _row(r)
    return table


def _row(cells: list[str]) -> nodes.row:
    row = nodes.row()
    for c in cells:
        entry = nodes.entry()
        entry += nodes.paragraph(text=c)
        row += entry
    return row


def relative_paths(data: Any, root: Path) -> Any:
    """Strings in ``data`` with the absolute ``root`` (the build machine's checkout) written relative.

    >>> relative_paths({"p": ["/r/x/_build/a.json", "/r/x"]}, Path("/r/x"))
    {'p': ['_build/a.json', '.']}
    """
    base = str(Path(root).resolve())
    if isinstance(data, dict):
        return {k: relative_paths(v, root) for k, v in data.items()}
    if isinstance(data, list):
        return [relative_paths(v, root) for v in data]
    if isinstance(data, str) and base in data:
        return data.replace(base + "/", "").replace(base, ".")
    return data


def select(data: Any, key: str | None = None, columns: list[str] | None = None) -> Any:
    """Pick ``data[key]`` (dotted keys allowed) and keep only ``columns`` of each record.

    >>> select({"notebooks": {"a": {"x": 1, "y": 2}}}, "notebooks", ["y"])
    {'a': {'y': 2}}
    """
    for part in (key or "").split("."):
        if part:
            if not isinstance(data, dict) or part not in data:
                raise KeyError(part)
            data = data[part]
    if columns:
        def keep(rec):
            return {c: rec.get(c) for c in columns} if isinstance(rec, dict) else rec

        if isinstance(data, list):
            data = [keep(r) for r in data]
        elif _is_table_of_dicts(data):
            data = {k: keep(v) for k, v in data.items()}
    return data


class JsonTableDirective(SphinxDirective):
    """``{uqxai-json-table} PATH`` — PATH relative to the book root (the repository root).

    Options: ``:missing:`` text shown when the file does not exist (yet); ``:key:`` a (dotted)
    key to show instead of the whole file; ``:columns:`` comma-separated fields to keep, in order.
    """

    required_arguments = 1
    has_content = False
    option_spec = {"missing": directives.unchanged, "key": directives.unchanged,
                   "columns": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        rel = self.arguments[0]
        path = Path(self.env.srcdir) / rel
        self.env.note_dependency(str(path))
        if not path.is_file():
            text = self.options.get("missing", f"{rel} does not exist yet.")
            note = nodes.note()
            note += nodes.paragraph(text=text)
            return [note]
        columns = [c.strip() for c in self.options.get("columns", "").split(",") if c.strip()]
        try:
            data = relative_paths(json.loads(path.read_text(encoding="utf-8")), Path(self.env.srcdir))
            data = select(data, self.options.get("key"), columns)
        except (OSError, ValueError, KeyError) as exc:
            note = nodes.caution()
            note += nodes.paragraph(
                text=f"{rel} could not be shown ({type(exc).__name__}: {exc}); re-run the step that writes it.")
            return [note]
        out: list[nodes.Node] = []
        for title, header, rows in json_tables(data):
            if columns and header and header[0] == "name" and "name" not in columns:
                header, rows = header[1:], [r[1:] for r in rows]
            if title:
                out.append(nodes.paragraph("", "", nodes.strong(text=title)))
            out.append(_table_node(header, rows))
        return out


# --------------------------------------------------------------------------- verdict boxes
def _report():
    """``uqxai_lib.report`` of this checkout (the book root is the repository root)."""
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    from uqxai_lib import report

    return report


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def seed_record(robustness: Any, name: str) -> dict | None:
    """The across-seed summary (``mean, ci95, n, ...``) of study ``name`` in a robustness record.

    Accepts ``{name: summary}``, ``{"studies": {name: summary}}`` and a summary nested one level
    deeper under ``summary`` / ``seed_summary`` / ``primary``.

    >>> seed_record({"studies": {"ecg_sue": {"summary": {"mean": 0.1, "ci95": [0, 1]}}}}, "ecg_sue")
    {'mean': 0.1, 'ci95': [0, 1]}
    >>> seed_record({"x": 1}, "ecg_sue") is None
    True
    """
    if not isinstance(robustness, dict):
        return None
    for holder in (robustness, robustness.get("studies"), robustness.get("chapters")):
        entry = holder.get(name) if isinstance(holder, dict) else None
        if not isinstance(entry, dict):
            continue
        for cand in (entry, entry.get("summary"), entry.get("seed_summary"), entry.get("primary")):
            if isinstance(cand, dict) and "mean" in cand and "ci95" in cand:
                return cand
    return None


def _bib_keys(app) -> set[str]:
    keys: set[str] = set()
    if "sphinxcontrib.bibtex" not in app.extensions:
        return keys
    for f in getattr(app.config, "bibtex_bibfiles", None) or []:
        try:
            keys |= set(re.findall(r"@\w+\{([^,\s]+),", (Path(app.srcdir) / f).read_text(encoding="utf-8")))
        except OSError:
            pass
    return keys


def _study_inputs(directive: SphinxDirective, name: str) -> tuple[Any, Any]:
    results = Path(directive.env.srcdir) / RESULTS_DIR
    path, rob_path = results / f"{name}.json", results / "robustness.json"
    directive.env.note_dependency(str(path))
    directive.env.note_dependency(str(rob_path))
    return _read_json(path), seed_record(_read_json(rob_path), name)


def _can_cite(app, record: Any) -> bool:
    src = ((record or {}).get("claim") or {}).get("source") if isinstance(record, dict) else None
    return bool(src) and src in _bib_keys(app)


class VerdictDirective(SphinxDirective):
    """``{uqxai-verdict} NAME``: the verdict box of chapter NAME from its results record."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        record, seeds = _study_inputs(self, name)
        text = _report().verdict_box(record if isinstance(record, dict) else None, robustness=seeds,
                                     cite=_can_cite(self.env.app, record))
        return self.parse_text_to_nodes(text)


class VerdictTableDirective(SphinxDirective):
    """``{uqxai-verdict-table}``: one row per study chapter (see :data:`STUDIES`)."""

    has_content = False
    option_spec = {"chapters": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        names = [c.strip() for c in self.options.get("chapters", ",".join(STUDIES)).split(",") if c.strip()]
        records, seeds, titles = {}, {}, {}
        cite = True
        for name in names:
            record, seed = _study_inputs(self, name)
            records[name] = record if isinstance(record, dict) else None
            seeds[name] = seed
            source = ((record.get("claim") or {}).get("source") if isinstance(record, dict) else None)
            cite = cite and (not source or _can_cite(self.env.app, record))
            doc = f"{EXECUTED_PREFIX}{name}"
            label = SHORT_TITLES.get(name)
            if doc not in self.env.found_docs:
                titles[name] = label or name
            else:
                titles[name] = f"{{doc}}`{label} </{doc}>`" if label else f"{{doc}}`/{doc}`"
        text = _report().verdict_table(records, robustness=seeds, titles=titles, cite=cite)
        return self.parse_text_to_nodes(text)


class BenchDirective(SphinxDirective):
    """``{uqxai-bench}``: with ``:show: full`` (default) the latest full benchmark of
    ``_build/results/bench*.json`` and ``book/records/bench*.json`` (a recorded run) as a table with
    its date, machine and spread (:func:`uqxai_lib.report.bench_table`); with ``:show: smoke`` the
    quick / tiny runs as smoke checks with their spread (:func:`uqxai_lib.report.bench_spread_table`);
    with ``:show: sweep`` the sweep over real chapter tasks (``sweep_chapter_tasks``,
    :func:`uqxai_lib.report.bench_sweep_text`).  ``:results:`` a glob relative to the book root
    (replaces both defaults)."""

    has_content = False
    option_spec = {"results": directives.unchanged,
                   "show": lambda a: directives.choice(a, ("full", "smoke", "sweep"))}

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        patterns = ([self.options["results"]] if "results" in self.options
                    else [f"{RESULTS_DIR}/bench*.json", f"{RECORDS_DIR}/bench*.json"])
        self.env.note_dependency(str(root / RESULTS_DIR))
        results = []
        for pattern in patterns:
            for path in sorted(root.glob(pattern)):
                self.env.note_dependency(str(path))
                data = _read_json(path)
                if isinstance(data, dict) and isinstance(data.get("measures"), list):
                    results.append(data)
        report = _report()
        full = report.latest_full(results)
        show = self.options.get("show", "full")
        if show == "full":
            if full is None:
                text = ("**No full benchmark run is recorded in this build**: neither `_build/results/bench*.json` "
                        "nor `book/records/bench*.json` holds a run of the `full` configuration, so this page "
                        "shows no full-size measurement. Run `make bench` (`python -m uqxai_lib.bench --threads 1`, "
                        "minutes on a CPU) and rebuild the book to fill this table.")
            else:
                text = report.bench_table(full)
        elif show == "sweep":
            text = report.bench_sweep_text(results)
        else:
            smoke = [r for r in results if r is not full and r.get("config") != "full"]
            if smoke:
                text = ("Quick / tiny benchmark runs (smaller sizes, where fixed costs weigh more): their "
                        "ratios are smoke checks, not measurements of the targets.\n\n"
                        + report.bench_spread_table(smoke))
            else:
                text = ("No quick benchmark run in this build (`make book` runs "
                        "`python -m uqxai_lib.bench --quick`).")
        return self.parse_text_to_nodes(text + "\n")


def run_times_of(env) -> dict:
    """``{profile: {notebook: record}}`` from this build's provenance and the recorded run times."""
    root = Path(env.srcdir)
    prov, rec = root / RESULTS_DIR / "provenance.json", root / RECORDS_DIR / "run_times.json"
    env.note_dependency(str(prov))
    env.note_dependency(str(rec))
    return _report().run_times(_read_json(prov), _read_json(rec))


def _toc_chapters(env) -> list[str]:
    """Chapter names (``book/_executed/NAME``) in the book's order."""
    names = [d[len(EXECUTED_PREFIX):] for d in getattr(env, "found_docs", ()) if d.startswith(EXECUTED_PREFIX)]
    toc = Path(env.srcdir) / "_toc.yml"
    try:
        order = re.findall(r"file:\s*book/_executed/([A-Za-z0-9_-]+)", toc.read_text(encoding="utf-8"))
    except OSError:
        order = []
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


class RunTimesDirective(SphinxDirective):
    """``{uqxai-run-times}``: per-chapter and total wall time of each profile, with the hardware and
    dates they were measured on, from the provenance (:func:`uqxai_lib.report.run_times_table`)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        times = run_times_of(self.env)
        chapters = _toc_chapters(self.env) or sorted({n for t in times.values() for n in t})
        titles = {n: (f"{{doc}}`{SHORT_TITLES[n]} </{EXECUTED_PREFIX}{n}>`" if n in SHORT_TITLES else
                      f"{{doc}}`/{EXECUTED_PREFIX}{n}`") for n in chapters
                  if f"{EXECUTED_PREFIX}{n}" in self.env.found_docs}
        if not times:
            return self.parse_text_to_nodes(
                "No run times in this build: `_build/results/provenance.json` does not exist (it is written by "
                "`python -m uqxai_lib.run`, part of `make book`) and `book/records/run_times.json` holds none.\n")
        return self.parse_text_to_nodes(_report().run_times_table(times, chapters, titles))


def runtime_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{uqxai-runtime}`NAME``: chapter NAME's time to run, from the provenance (e.g. "34 s with the
    smoke profile on cpu (…); tiny: 5 s; full: not recorded") — never typed in the chapter's prose."""
    env = inliner.document.settings.env
    chapter = text.strip()
    return [nodes.inline(text=_report().runtime_text(chapter, run_times_of(env)), classes=["uqxai-runtime"])], []


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


#: a value's default repr: the cell's last line returned an object nobody meant to show
OBJECT_REPR = re.compile(r"^<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>$")


def is_object_repr(output: Any) -> bool:
    """An ``execute_result`` whose only content is a default object repr such as
    ``<torch._C.Generator at 0x7f…>`` (a cell ending in a call whose return value is not content).

    >>> is_object_repr({"output_type": "execute_result", "data": {"text/plain": ["<torch._C.Generator at 0x7f50>"]}})
    True
    >>> is_object_repr({"output_type": "execute_result", "data": {"text/plain": "0.5"}})
    False
    """
    if not isinstance(output, dict) or output.get("output_type") != "execute_result":
        return False
    data = output.get("data") or {}
    if set(data) != {"text/plain"}:
        return False
    text = data["text/plain"]
    text = "".join(text) if isinstance(text, list) else str(text)
    return bool(OBJECT_REPR.match(text.strip()))


def prepare_chapter_notebook(text: str, name: str, *, verdict: bool) -> str:
    """The executed notebook ``text`` (JSON) of chapter ``name`` as the book shows it.

    * a ``{uqxai-verdict} name`` directive right after the ``# `` title of the first Markdown cell
      (when ``verdict``);
    * every code cell without an input tag (:data:`INPUT_TAGS`) tagged ``hide-input``;
    * results that are only a default object repr (:func:`is_object_repr`) dropped.

    >>> nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# T\\n\\nText"},
    ...                 {"cell_type": "code", "metadata": {}, "source": "1", "outputs": []}]}
    >>> out = json.loads(prepare_chapter_notebook(json.dumps(nb), "x", verdict=True))
    >>> out["cells"][0]["source"].splitlines()[:4], out["cells"][1]["metadata"]["tags"]
    (['# T', '', '```{uqxai-verdict} x', '```'], ['hide-input'])
    """
    try:
        nb = json.loads(text)
    except ValueError:
        return text
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return text
    placed = not verdict
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "code":
            if isinstance(cell.get("outputs"), list):
                cell["outputs"] = [o for o in cell["outputs"] if not is_object_repr(o)]
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if not any(t in tags for t in INPUT_TAGS):
                tags.append("hide-input")
        elif cell.get("cell_type") == "markdown" and not placed:
            lines = _cell_source(cell).split("\n")
            for i, line in enumerate(lines):
                if line.startswith("# "):
                    box = ["", f"```{{uqxai-verdict}} {name}", "```", ""]
                    cell["source"] = "\n".join(lines[: i + 1] + box + lines[i + 1:])
                    placed = True
                    break
    return json.dumps(nb)


def chapter_source_read(app, docname: str, source: list[str]) -> None:
    """Verdict box and folded code on chapter pages (the executed notebooks stay as they are)."""
    name = _chapter_name(docname)
    if name is None or not source:
        return
    record = _read_json(Path(app.srcdir) / RESULTS_DIR / f"{name}.json")
    verdict = name in STUDIES or (isinstance(record, dict) and "claim" in record)
    text = prepare_chapter_notebook(source[0], name, verdict=verdict)
    # no absolute path of the build machine on a page: paths under the book root become relative
    root = str(Path(app.srcdir).resolve())
    text = text.replace(root + "/", "").replace(root, ".")
    # the CSV links of folded / shortened tables (uqxai_lib.report.format_table) point at the download
    up = "../" * docname.count("/")
    source[0] = CSV_LINK.sub(lambda m: f"{up}{RESULTS_DOWNLOAD_DIR}/{name}/{m.group(1)}.csv", text)


# --------------------------------------------------------------------------- page context
def _chapter_name(pagename: str) -> str | None:
    if pagename.startswith(EXECUTED_PREFIX):
        return pagename[len(EXECUTED_PREFIX):]
    return None


def note_py_source(app, doctree) -> None:
    """Rebuild a chapter page when its ``notebooks/NAME.py`` appears or changes, or its saved tables
    (the download menu lists them) change."""
    name = _chapter_name(app.env.docname)
    if name is not None:
        app.env.note_dependency(str(Path(app.srcdir) / "notebooks" / f"{name}.py"))
        tables = Path(app.srcdir) / RESULTS_DIR / f"{name}.tables.json"
        if tables.is_file():
            app.env.note_dependency(str(tables))


def add_py_download(app, pagename, templatename, context, doctree) -> None:
    """Add the jupytext ``.py`` source, the results JSON and the tables' CSV to the download menu of
    chapter pages."""
    name = _chapter_name(pagename)
    if name is None:
        return
    extra = []
    if (Path(app.srcdir) / "notebooks" / f"{name}.py").is_file():
        extra.append({
            "type": "link",
            "url": f"{context['pathto'](PY_DOWNLOAD_DIR, 1)}/{name}.py",
            "text": ".py",
            "tooltip": "Download the notebook source (jupytext percent format)",
            "icon": "fas fa-file-code",
            "label": "download-py-button",
        })
    if (Path(app.srcdir) / RESULTS_DIR / f"{name}.json").is_file():
        extra.append({
            "type": "link",
            "url": f"{context['pathto'](RESULTS_DOWNLOAD_DIR, 1)}/{name}.json",
            "text": "results .json",
            "tooltip": "Download the chapter's numbers (the results record its last cell wrote)",
            "icon": "fas fa-table",
            "label": "download-results-button",
        })
    tables = [t for t, _ in chapter_tables(app, name, warn=True)]
    extra += table_buttons(name, tables, context['pathto'](RESULTS_DOWNLOAD_DIR, 1))
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"][1:1] = extra


def chapter_tables(app, name: str, *, warn: bool = False) -> list[tuple[str, dict]]:
    """The tables chapter ``name`` shows, in its order, from ``_build/results/NAME.tables.json``
    (:func:`uqxai_lib.report.save_tables`); none when the file is missing; a malformed file is a
    build warning when ``warn``."""
    try:
        return _report().load_tables(Path(app.srcdir) / RESULTS_DIR / f"{name}.json")
    except ValueError as exc:
        if warn:
            logger.warning(f"{exc}; the chapter's tables are not offered as CSV", location=f"{EXECUTED_PREFIX}{name}")
        return []


def table_buttons(name: str, tables: list[str], results_url: str) -> list[dict]:
    """Download-menu entries for chapter ``name``'s tables: one per CSV up to :data:`MENU_TABLES`,
    else one for the zip of all of them.

    >>> [b["text"] for b in table_buttons("ecg", ["split", "sue"], "../../_results")]
    ['split.csv', 'sue.csv']
    >>> b, = table_buttons("ecg", [f"t{i}" for i in range(9)], "../../_results"); b["url"], b["text"]
    ('../../_results/ecg/ecg_tables.zip', 'tables .zip (9 CSV)')
    """
    if not tables:
        return []
    if len(tables) > MENU_TABLES:
        return [{
            "type": "link",
            "url": f"{results_url}/{name}/{name}_tables.zip",
            "text": f"tables .zip ({len(tables)} CSV)",
            "tooltip": "Download every table of this chapter, one CSV file each: " + ", ".join(tables),
            "icon": "fas fa-file-zipper",
            "label": "download-tables-button",
        }]
    return [{
        "type": "link",
        "url": f"{results_url}/{name}/{t}.csv",
        "text": f"{t}.csv",
        "tooltip": f"Download the table '{t}' of this chapter (CSV)",
        "icon": "fas fa-file-csv",
        "label": f"download-table-{t}-button",
    } for t in tables]


#: what only sphinx-thebe's inline scripts say (a widget state's base64 data may spell "thebe" by chance)
THEBE_MARKERS = ("THEBE_JS_URL", "thebe_selector", "thebelab", "x-thebe-config")


def is_thebe_script(js: Any) -> bool:
    """A script of sphinx-thebe: its file is named after thebe, or its inline body declares thebe's
    variables.  Only these are dropped; other inline scripts (e.g. widget states) are kept.

    >>> class Js(str):
    ...     def __new__(cls, name, **attrs):
    ...         o = super().__new__(cls, name); o.filename, o.attributes = name, attrs; return o
    >>> is_thebe_script(Js("_static/sphinx-thebe.js")), is_thebe_script(Js("", body='const THEBE_JS_URL = "x"'))
    (True, True)
    >>> is_thebe_script(Js("", type="application/vnd.jupyter.widget-state+json", body='{"v": "..xThebEr.."}'))
    False
    """
    name = str(getattr(js, "filename", "") or "")
    attrs = getattr(js, "attributes", None) or {}
    body = str(attrs.get("body", "") or "")
    kind = str(attrs.get("type", "") or "")
    if kind == "application/vnd.jupyter.widget-state+json":
        return False
    return "thebe" in Path(name).name.lower() or any(m in body for m in THEBE_MARKERS)


def drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts: no CDN URL, no duplicate ``THEBE_JS_URL`` declaration."""
    scripts = context.get("script_files")
    if scripts is None:
        return
    keep = [js for js in scripts if not is_thebe_script(js)]
    context["script_files"] = keep
    css = context.get("css_files")
    if css is not None:
        context["css_files"] = [c for c in css if "thebe" not in str(getattr(c, "filename", "")).lower()]


def drop_thebe_nodes(app, doctree, docname) -> None:
    """Remove the inert thebe config/kernel raw blocks sphinx-thebe appends to every page."""
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "x-thebe-config" in text or text.startswith("<script>kernelName"):
            node.parent.remove(node)


def copy_py_sources(app, exception) -> None:
    """Copy ``notebooks/NAME.py`` and ``_build/results/NAME.json`` of every chapter page into
    ``<outdir>/_notebooks/`` and ``<outdir>/_results/``, and write the chapter's tables as CSV."""
    if exception is not None or app.builder.format != "html":
        return
    for docname in sorted(app.env.found_docs):
        name = _chapter_name(docname)
        if not name:
            continue
        for src, sub in ((Path(app.srcdir) / "notebooks" / f"{name}.py", PY_DOWNLOAD_DIR),
                         (Path(app.srcdir) / RESULTS_DIR / f"{name}.json", RESULTS_DOWNLOAD_DIR)):
            if src.is_file():
                (Path(app.outdir) / sub).mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, Path(app.outdir) / sub / src.name)
                _readable(Path(app.outdir) / sub / src.name)
        write_chapter_tables(app, name)


def _readable(*paths: Path) -> None:
    """Build output readable by a web server running as another user (atomic writes create 0600 files)."""
    for p in paths:
        if p.is_file():
            p.chmod(0o644)


def write_chapter_tables(app, name: str) -> None:
    """``<outdir>/_results/NAME/<table>.csv`` and ``NAME_tables.zip`` from the chapter's saved tables
    (the folder is rebuilt, so a table the chapter no longer shows does not linger)."""
    dest = Path(app.outdir) / RESULTS_DOWNLOAD_DIR / name
    if dest.is_dir():
        shutil.rmtree(dest)
    tables = dict(chapter_tables(app, name))
    if tables:
        report = _report()
        _readable(*report.write_table_csvs(tables, dest), report.write_tables_zip(tables, dest / f"{name}_tables.zip"))


def copy_tables_js(app, exception) -> None:
    """``_static/uqxai-tables.js`` comes with html_static_path (book/_static) in the book; a project
    built with this extension but without that folder gets a copy, so no page asks for a missing file."""
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / TABLES_JS
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(__file__).resolve().parents[1] / "_static" / TABLES_JS, dest)
        _readable(dest)


def copy_widget_fonts(app, exception) -> None:
    """Some widget views (e.g. a selection slider over text labels) ask for the html-manager's icon
    fonts at ``<page dir>/@jupyter-widgets/<hash>.woff2`` whatever require.js maps: put a copy of
    the vendored fonts there, next to the executed chapters, so no page requests a missing file."""
    if exception is not None or app.builder.format != "html":
        return
    src = Path(app.outdir) / "_static" / "vendor" / "html-manager"
    if not src.is_dir():
        return
    dest = Path(app.outdir) / "book" / "_executed" / "@jupyter-widgets"
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix in (".woff2", ".woff", ".ttf", ".eot", ".svg"):
            shutil.copy2(f, dest / f.name)


# --------------------------------------------------------------------------- search snippets offline
#: written at build-finished into ``<outdir>/_static/``: the main text of every page, for search.html
SEARCH_TEXT_JS = "uqxai_search_text.js"
#: the shim in ``book/_static`` that answers searchtools.js's summary fetches from it on file://
SEARCH_SHIM_JS = "uqxai-search-offline.js"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th", "pre",
          "blockquote", "figure", "figcaption", "details", "summary", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr"}
#: left out of the stored text: header links (Sphinx drops them too) and code cells' source (folded on
#: the page; a snippet shows the prose around the hit, and the file stays small)
_SKIP_CLASSES = ("headerlink", "cell_input")
_SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)


class _MainText(HTMLParser):
    """Collects the ``[role="main"]`` element of a page as text plus the ids of its elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, opened an id div, skipped)
        self.in_main = False
        self.done = False
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        a = dict(attrs)
        if not self.in_main:
            if a.get("role") == "main":
                self.in_main = True
                self.stack = [(tag, False, False)]
            return
        if tag in _VOID:
            if tag in _BLOCK and not self.skip:
                self.out.append(" ")
            return
        classes = (a.get("class") or "").split()
        skipped = bool(self.skip) or tag in ("script", "style") or any(c in _SKIP_CLASSES for c in classes)
        if skipped:
            self.skip += 1
        opened = not skipped and bool(a.get("id"))
        if opened:
            self.out.append(f'<div id="{html.escape(a["id"], quote=True)}">')
        self.stack.append((tag, opened, skipped))

    def handle_endtag(self, tag):
        if not self.in_main or self.done or tag in _VOID:
            return
        if not any(t == tag for t, _, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            t, opened, skipped = self.stack.pop()
            if skipped:
                self.skip -= 1
            if opened:
                self.out.append("</div>")
            if t in _BLOCK and not self.skip:
                self.out.append(" ")
            if t == tag:
                break
        if not self.stack:
            self.done = True

    def handle_data(self, data):
        if self.in_main and not self.done and not self.skip:
            self.out.append(html.escape(data, quote=False))


def page_main_text(page_html: str) -> str | None:
    """What Sphinx's search summary reads of a page, small: ``<div role="main">`` with the text of the
    page's ``[role="main"]`` element (scripts, styles, header links and code cells' source dropped,
    white space collapsed) and a ``<div id=…>`` around the text of each element with an id, so
    anchored hits find their section. None when the page has no ``[role="main"]``.

    >>> page_main_text('<nav>menu</nav><article role="main"><section id="a"><h1>Title<a class="headerlink">#</a>'
    ...                '</h1><p>Some  text</p><script>var x = 1;</script></section></article><footer>f</footer>')
    '<div role="main"><div id="a">Title Some text </div></div>'
    """
    parser = _MainText()
    parser.feed(_SCRIPT_RE.sub("", page_html))
    parser.close()
    if not parser.in_main:
        return None
    body = re.sub(r"\s+", " ", "".join(parser.out))
    body = re.sub(r"\s+(</div>)", r" \1", body)
    return f'<div role="main">{body.strip()}</div>'


def search_text_js(texts: dict[str, str]) -> str:
    """The JavaScript file that hands ``{docname: main text}`` to the search shim.

    >>> search_text_js({"a": "<div role=\\"main\\">x</div>"})
    'window.UQXAI_SEARCH_TEXT = {"a": "<div role=\\\\"main\\\\">x</div>"};\\n'
    """
    return "window.UQXAI_SEARCH_TEXT = " + json.dumps(texts, ensure_ascii=False, sort_keys=True) + ";\n"


def add_search_scripts(app, pagename, templatename, context, doctree) -> None:
    """On search.html only: the pages' text and the shim that serves it to the summary fetches."""
    if pagename == "search" and app.builder.format == "html":
        app.add_js_file(SEARCH_TEXT_JS)
        app.add_js_file(SEARCH_SHIM_JS)


def write_search_text(app, exception) -> None:
    """``<outdir>/_static/uqxai_search_text.js`` from every built page (see :func:`page_main_text`)."""
    if exception is not None or app.builder.format != "html" or not hasattr(app.builder, "get_target_uri"):
        return
    texts = {}
    for docname in sorted(app.env.found_docs):
        page = Path(app.outdir) / app.builder.get_target_uri(docname)
        if page.is_file():
            text = page_main_text(page.read_text(encoding="utf-8", errors="replace"))
            if text is not None:
                texts[docname] = text
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    cache = _report_cache()
    cache.atomic_write_text(static / SEARCH_TEXT_JS, search_text_js(texts))
    # the shim comes with html_static_path (book/_static) in the book; a project without it gets a copy
    shim = Path(__file__).resolve().parents[1] / "_static" / SEARCH_SHIM_JS
    if not (static / SEARCH_SHIM_JS).is_file():
        cache.atomic_write_bytes(static / SEARCH_SHIM_JS, shim.read_bytes())
    _readable(static / SEARCH_TEXT_JS, static / SEARCH_SHIM_JS)


def _report_cache():
    _report()  # puts the checkout on sys.path
    from uqxai_lib import cache

    return cache


def setup(app):
    app.add_directive("uqxai-json-table", JsonTableDirective)
    app.add_directive("uqxai-verdict", VerdictDirective)
    app.add_directive("uqxai-verdict-table", VerdictTableDirective)
    app.add_directive("uqxai-bench", BenchDirective)
    app.add_directive("uqxai-run-times", RunTimesDirective)
    app.add_role("uqxai-runtime", runtime_role)
    app.add_js_file(TABLES_JS)  # every page: tables that do not fit get a smaller font, then word breaks
    app.connect("source-read", chapter_source_read)
    app.connect("doctree-read", note_py_source)
    app.connect("html-page-context", add_py_download, priority=502)
    app.connect("html-page-context", drop_thebe, priority=900)
    app.connect("doctree-resolved", drop_thebe_nodes, priority=900)
    app.connect("build-finished", copy_py_sources)
    app.connect("build-finished", copy_widget_fonts)
    app.connect("build-finished", copy_tables_js)
    app.connect("html-page-context", add_search_scripts)
    app.connect("build-finished", write_search_text)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

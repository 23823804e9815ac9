"""Sphinx extension for the uqxai book (loaded through ``sphinx.local_extensions`` in ``_config.yml``).

It does four small things:

* ``uqxai-json-table`` directive: renders a JSON file written by the pipeline (benchmarks,
  provenance) as tables at build time.  A missing file gives a note saying how to produce it,
  never a warning, so the book builds with ``-W`` before anything has run.
* Chapter pages (``book/_executed/NAME``) get a ``.py`` entry in the download menu, next to the
  ``.ipynb`` one; the jupytext source ``notebooks/NAME.py`` is copied to ``_notebooks/NAME.py``.
* Launch/thebe machinery is dropped from every page: it names a CDN and, in sphinx-thebe 0.3,
  declares ``THEBE_JS_URL`` twice (a console SyntaxError).
* Nothing else: all other configuration lives in ``_config.yml``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

EXECUTED_PREFIX = "book/_executed/"
PY_DOWNLOAD_DIR = "_notebooks"


# --------------------------------------------------------------------------- JSON → tables
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
            data = select(json.loads(path.read_text(encoding="utf-8")), self.options.get("key"), columns)
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


# --------------------------------------------------------------------------- page context
def _chapter_name(pagename: str) -> str | None:
    if pagename.startswith(EXECUTED_PREFIX):
        return pagename[len(EXECUTED_PREFIX):]
    return None


def note_py_source(app, doctree) -> None:
    """Rebuild a chapter page when its ``notebooks/NAME.py`` appears or changes."""
    name = _chapter_name(app.env.docname)
    if name is not None:
        app.env.note_dependency(str(Path(app.srcdir) / "notebooks" / f"{name}.py"))


def add_py_download(app, pagename, templatename, context, doctree) -> None:
    """Add the jupytext ``.py`` source to the download menu of chapter pages."""
    name = _chapter_name(pagename)
    if name is None or not (Path(app.srcdir) / "notebooks" / f"{name}.py").is_file():
        return
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].insert(
                1,
                {
                    "type": "link",
                    "url": f"{context['pathto'](PY_DOWNLOAD_DIR, 1)}/{name}.py",
                    "text": ".py",
                    "tooltip": "Download the notebook source (jupytext percent format)",
                    "icon": "fas fa-file-code",
                    "label": "download-py-button",
                },
            )


def drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts: no CDN URL, no duplicate ``THEBE_JS_URL`` declaration."""
    scripts = context.get("script_files")
    if scripts is None:
        return
    keep = []
    for js in scripts:
        name = getattr(js, "filename", "") or ""
        attrs = getattr(js, "attributes", None) or {}
        body = str(attrs.get("body", "") or "")
        kind = str(attrs.get("type", "") or "")
        if "thebe" in f"{name} {kind} {body}".lower():
            continue
        keep.append(js)
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
    """Copy ``notebooks/NAME.py`` of every chapter page into ``<outdir>/_notebooks/``."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / PY_DOWNLOAD_DIR
    for docname in sorted(app.env.found_docs):
        name = _chapter_name(docname)
        src = Path(app.srcdir) / "notebooks" / f"{name}.py" if name else None
        if src is not None and src.is_file():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / src.name)


def setup(app):
    app.add_directive("uqxai-json-table", JsonTableDirective)
    app.connect("doctree-read", note_py_source)
    app.connect("html-page-context", add_py_download, priority=502)
    app.connect("html-page-context", drop_thebe, priority=900)
    app.connect("doctree-resolved", drop_thebe_nodes, priority=900)
    app.connect("build-finished", copy_py_sources)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

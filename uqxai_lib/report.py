r"""Results records → book text: the verdict box of a chapter and the table of all verdicts.

Pure functions from the records the notebooks write (``_build/results/<chapter>.json``) to MyST
Markdown; the book's Sphinx extension (``book/_ext/uqxai_book.py``) inserts their output at build
time, so no number or verdict word in a box is typed by hand.

A study record holds (see the brief's shared contracts):

* ``primary``: :func:`uqxai_lib.stats.primary` of the chapter's one declared comparison
  (``name, effect, ci95, p, verdict, ...``);
* ``claim``: ``{text, expected ("higher" | "lower"), theirs, source}`` — the paper's claim, its
  number (a string, labelled as theirs) and its bibtex key.

A robustness record for a study (optional) summarises the primary effect over training seeds:
``mean, ci95, sign_agreement`` and ``n`` (:func:`uqxai_lib.stats.seed_summary`) or the ``seeds`` /
``effects`` lists of ``_build/results/robustness.json`` (issue 15: ``{study: {seeds, effects,
ci95_per_seed, mean, ci95, sign_agreement, threads}}``).

The verdict is always ``stats.reproduction(stats.verdict(primary.ci95), claim.expected)``: it is
re-derived from the interval in the record, never copied from a text field.

>>> rec = {"primary": {"name": "SUE correct − misclassified", "effect": 0.12, "ci95": [0.05, 0.2],
...                    "p": 0.003, "verdict": "higher"},
...        "claim": {"text": "SUE is higher for correct predictions.", "expected": "higher",
...                  "theirs": "0.93 vs 0.81", "source": "seoni2024sue"}}
>>> reproduction_of(rec)
'reproduced'
>>> print(verdict_box(rec, cite=False).splitlines()[0])
:::{admonition} Verdict: reproduced
"""
from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import stats

__all__ = ["NOT_COMPUTED", "RUNG_TITLES", "fmt_number", "fmt_interval", "interval_verdict", "reproduction_of",
           "seed_reproduction", "verdict_box", "ladder_box", "verdict_table", "bench_table", "bench_spread_table",
           "latest_full", "table", "tables", "clear_tables", "table_record", "ordered_tables", "write_table_csvs",
           "write_tables_zip", "table_csv", "tables_path", "save_tables", "load_tables", "assessment_rows",
           "assessment_table"]

#: what a box or a table row says when a record has no ``primary`` (yet)
NOT_COMPUTED = "not yet computed"


def fmt_number(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, a real minus sign, "n/a" for None / NaN.

    >>> fmt_number(0.012345), fmt_number(-1.5), fmt_number(float("nan")), fmt_number(1234.5)
    ('0.0123', '−1.5', 'n/a', '1.23e+03')
    """
    if x is None or isinstance(x, bool):
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(v):
        return "n/a"
    text = f"{v:.{digits}g}"
    return "−" + text[1:] if text.startswith("-") else text


def fmt_interval(ci: Sequence[Any] | None, digits: int = 3) -> str:
    """``[lo, hi]`` as "lo to hi" (no brackets, so a negative bound cannot be misread).

    >>> fmt_interval([-0.1, 0.25])
    '−0.1 to 0.25'
    """
    if not ci or len(ci) != 2:
        return "n/a"
    return f"{fmt_number(ci[0], digits)} to {fmt_number(ci[1], digits)}"


def _finite_ci(ci: Any) -> list[float] | None:
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        return None
    return [lo, hi] if math.isfinite(lo) and math.isfinite(hi) else None


def interval_verdict(ci: Any) -> str:
    """``stats.verdict`` of an interval; a missing or non-finite interval shows no difference."""
    c = _finite_ci(ci)
    return stats.verdict(c) if c is not None else "no detectable difference"


def _expected(record: Mapping[str, Any]) -> str | None:
    exp = (record.get("claim") or {}).get("expected")
    return exp if exp in ("higher", "lower") else None


def reproduction_of(record: Mapping[str, Any]) -> str | None:
    """"reproduced" / "not reproduced" / "reversed" of a study record, from its primary interval;
    None when the record has no ``primary`` or its claim has no valid ``expected`` direction."""
    prim, exp = record.get("primary"), _expected(record)
    if not isinstance(prim, Mapping) or exp is None:
        return None
    return stats.reproduction(interval_verdict(prim.get("ci95")), exp)


def seed_reproduction(record: Mapping[str, Any], robustness: Mapping[str, Any] | None) -> str | None:
    """The same verdict for the across-seed interval of a robustness record (None without one)."""
    exp = _expected(record)
    if not isinstance(robustness, Mapping) or exp is None or _finite_ci(robustness.get("ci95")) is None:
        return None
    return stats.reproduction(interval_verdict(robustness.get("ci95")), exp)


def _cite(claim: Mapping[str, Any], cite: bool) -> str:
    src = claim.get("source")
    if not src:
        return ""
    return f" {{cite:p}}`{src}`" if cite else f" ({src})"


def _ours(prim: Mapping[str, Any]) -> str:
    p = prim.get("p")
    p_text = f", p = {fmt_number(p, 2)}" if p is not None and fmt_number(p) != "n/a" else ""
    return (f"{prim.get('name', 'primary effect')} = **{fmt_number(prim.get('effect'))}** "
            f"(95% interval {fmt_interval(prim.get('ci95'))}{p_text}): "
            f"{interval_verdict(prim.get('ci95'))}")


def _n_seeds(rob: Mapping[str, Any]) -> int | None:
    """Seeds behind a robustness record: ``n`` (seed_summary) or the length of ``seeds`` / ``effects``."""
    if rob.get("n") is not None:
        return int(rob["n"])
    for key in ("seeds", "effects"):
        if isinstance(rob.get(key), (list, tuple)):
            return len(rob[key])
    return None


def _seeds(rob: Mapping[str, Any]) -> str:
    n = _n_seeds(rob)
    agree = rob.get("sign_agreement")
    extra = f"; {agree} seeds agree in sign" if agree else ""
    return (f"mean **{fmt_number(rob.get('mean'))}** over {n if n is not None else '?'} training seeds "
            f"(95% interval {fmt_interval(rob.get('ci95'))}{extra}): {interval_verdict(rob.get('ci95'))}")


def verdict_box(record: Mapping[str, Any] | None, *, robustness: Mapping[str, Any] | None = None,
                cite: bool = True, title: str | None = None) -> str:
    """MyST admonition summing up a study chapter: the paper's claim, its number (theirs), ours with
    its 95% interval (and across seeds when ``robustness`` is given), and the verdict.

    ``cite=True`` writes the claim's source as a ``{cite:p}`` role (needs sphinxcontrib-bibtex and
    the key in the bibliography); ``False`` writes the key in brackets.  A record without ``primary``
    (or ``None``) gives a box that says the result is not yet computed.  A record with a ``verdict``
    ladder (:func:`uqxai_lib.verdicts.ladder`) gets the ladder box (:func:`ladder_box`); the box
    above stays for records without one.
    """
    record = record or {}
    if isinstance(record.get("verdict"), Mapping) and record["verdict"].get("rungs") is not None:
        return ladder_box(record, cite=cite, title=title)
    claim = record.get("claim") if isinstance(record.get("claim"), Mapping) else {}
    prim = record.get("primary")
    word = reproduction_of(record)
    if not isinstance(prim, Mapping):
        head, cls = f"Verdict: {NOT_COMPUTED}", "uqxai-verdict-missing"
    elif word is None:
        head, cls = "Verdict: no claim to compare with", "uqxai-verdict-missing"
    else:
        head, cls = f"Verdict: {word}", "uqxai-verdict-" + word.replace(" ", "-")
    if title:
        head = f"{title} — {head[len('Verdict: '):]}"
    lines = [f":::{{admonition}} {head}", f":class: uqxai-verdict {cls}", ""]
    if claim.get("text"):
        lines.append(f"**The paper's claim**{_cite(claim, cite)}: {claim['text']}")
        lines.append("")
    if claim.get("theirs"):
        lines.append(f"**Theirs** (the paper's number): {claim['theirs']}")
        lines.append("")
    if isinstance(prim, Mapping):
        lines.append(f"**Ours** (this build): {_ours(prim)}")
        lines.append("")
        if isinstance(robustness, Mapping):
            lines.append(f"**Ours across training seeds**: {_seeds(robustness)}")
            lines.append("")
        if word is not None:
            exp = _expected(record)
            lines.append(f"The paper expects {exp}; the 95% interval of ours says "
                         f"{interval_verdict(prim.get('ci95'))}, so the claim is **{word}** here.")
            sw = seed_reproduction(record, robustness)
            if sw is not None:
                lines.append(f"Across training seeds it is **{sw}**.")
            lines.append("")
    else:
        lines.append(f"Ours: {NOT_COMPUTED} — the chapter's results record has no `primary` "
                     "comparison; run the notebook (`python -m uqxai_lib.run`) and rebuild the book.")
        lines.append("")
    lines.append(":::")
    return "\n".join(lines) + "\n"


#: How the ladder box names each rung (the keys of :data:`uqxai_lib.verdicts.RUNG_ORDER`).
RUNG_TITLES = {
    "direction": "This run",
    "beyond_baselines": "Beyond the prediction-only baselines",
    "maps_right": "Maps in the right place",
    "sanity": "Sanity check (cascading randomisation)",
    "within_class": "Within each predicted class",
    "across_seeds": "Across training seeds",
    "across_threads": "Across torch thread counts",
    "paper_effect": "Against the paper's effect",
    "across_metrics": "Across the table's scores",
}


def _rung_line(rung: Mapping[str, Any]) -> str:
    name = str(rung.get("name", "?"))
    outcome = str(rung.get("outcome", "undefined"))
    detail = rung.get("evidence") or ""
    if outcome in ("undefined", "inconclusive") and rung.get("reason") and rung["reason"] not in detail:
        detail = f"{rung['reason']}" + (f"; {detail}" if detail else "")
    return f"- **{RUNG_TITLES.get(name, name)}**: {outcome}" + (f" — {detail}" if detail else "")


def ladder_box(record: Mapping[str, Any], *, cite: bool = True, title: str | None = None) -> str:
    """MyST admonition of a study's verdict ladder (``record["verdict"]``): the paper's claim, its
    number (theirs), the data line (the synthetic phantom), the headline (the across-seed outcome),
    and one line per rung with its outcome and evidence ("undefined" with its reason).

    >>> rec = {"claim": {"text": "SUE is higher when correct.", "theirs": "0.93 vs 0.81", "source": "k"},
    ...        "verdict": {"claim": "SUE is higher when correct.", "data": "embedded synthetic phantom (ECG)",
    ...                    "headline": "not reproduced",
    ...                    "rungs": [{"name": "direction", "outcome": "reproduced", "evidence": "+0.19"},
    ...                              {"name": "across_seeds", "outcome": "undefined", "evidence": "",
    ...                               "reason": "1 seed"}]}}
    >>> print(ladder_box(rec, cite=False))  # doctest: +NORMALIZE_WHITESPACE
    :::{admonition} Verdict across training seeds: not reproduced
    :class: uqxai-verdict uqxai-verdict-not-reproduced
    <BLANKLINE>
    **The paper's claim** (k): SUE is higher when correct.
    <BLANKLINE>
    **Theirs** (the paper's number, on the paper's data): 0.93 vs 0.81
    <BLANKLINE>
    **Data**: embedded synthetic phantom (ECG)
    <BLANKLINE>
    - **This run**: reproduced — +0.19
    - **Across training seeds**: undefined — 1 seed
    <BLANKLINE>
    :::
    <BLANKLINE>
    """
    lad = record["verdict"]
    claim = record.get("claim") if isinstance(record.get("claim"), Mapping) else {}
    head = str(lad.get("headline") or "undefined")
    top = f"Verdict across training seeds: {head}"
    if title:
        top = f"{title} — {head} across training seeds"
    cls = "missing" if head == "undefined" else head.replace(" ", "-")
    lines = [f":::{{admonition}} {top}", f":class: uqxai-verdict uqxai-verdict-{cls}", ""]
    text = lad.get("claim") or claim.get("text")
    if text:
        lines += [f"**The paper's claim**{_cite(claim, cite)}: {text}", ""]
    if claim.get("theirs"):
        lines += [f"**Theirs** (the paper's number, on the paper's data): {claim['theirs']}", ""]
    lines += [f"**Data**: {lad.get('data') or 'not stated'}", ""]
    rungs = [r for r in lad.get("rungs") or [] if isinstance(r, Mapping)]
    lines += [_rung_line(r) for r in rungs] or ["- no rung computed"]
    lines += ["", ":::"]
    return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table(records: Mapping[str, Mapping[str, Any] | None], *,
                  robustness: Mapping[str, Mapping[str, Any] | None] | None = None,
                  titles: Mapping[str, str] | None = None, cite: bool = True) -> str:
    """MyST table of all chapters' verdicts: one row per record (in the mapping's order).

    ``records`` maps a chapter name to its results record (None when the file is missing);
    ``titles`` maps it to the text of the first column (e.g. a ``{doc}`` link), default the name.
    A record without ``primary`` gets a row that says "not yet computed"; the across-seed column is
    shown when at least one chapter has a robustness record.

    >>> print(verdict_table({"a": None}).splitlines()[2])
    | a | – | – | not yet computed | not yet computed |
    """
    robustness = robustness or {}
    titles = titles or {}
    with_seeds = any(isinstance(robustness.get(n), Mapping) for n in records)
    with_ladder = any(isinstance((r or {}).get("verdict"), Mapping) for r in records.values())
    head = ["Chapter", "The paper's claim", "Theirs (paper's data)",
            "Ours on the synthetic phantom (95% interval)" if with_ladder else "Ours (95% interval)",
            "Across seeds (95% interval)", "Verdict"]
    if not with_seeds:
        del head[4]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rec in records.items():
        rec = rec or {}
        claim = rec.get("claim") if isinstance(rec.get("claim"), Mapping) else {}
        prim = rec.get("primary")
        rob = robustness.get(name)
        claim_text = (claim.get("text") or "–") + (_cite(claim, cite) if claim.get("text") else "")
        lad = rec.get("verdict") if isinstance(rec.get("verdict"), Mapping) else None
        if isinstance(prim, Mapping) and lad is not None:
            ours = f"{fmt_number(prim.get('effect'))} ({fmt_interval(prim.get('ci95'))})"
            one = next((r.get("outcome") for r in lad.get("rungs") or [] if r.get("name") == "direction"), None)
            word = f"{lad.get('headline', 'undefined')} across seeds" + (f" (this run: {one})" if one else "")
            seeds = (f"{fmt_number(rob.get('mean'))} ({fmt_interval(rob.get('ci95'))}), n = {_n_seeds(rob)}"
                     if isinstance(rob, Mapping) else "–")
        elif isinstance(prim, Mapping):
            ours = f"{fmt_number(prim.get('effect'))} ({fmt_interval(prim.get('ci95'))})"
            word = reproduction_of(rec) or "no claim to compare with"
            seeds = (f"{fmt_number(rob.get('mean'))} ({fmt_interval(rob.get('ci95'))}), n = {_n_seeds(rob)}"
                     if isinstance(rob, Mapping) else "–")
            sw = seed_reproduction(rec, rob)
            if sw is not None and sw != word:
                word = f"{word} (across seeds: {sw})"
        else:
            ours, seeds, word = NOT_COMPUTED, "–", NOT_COMPUTED
        cells = [titles.get(name, name), claim_text, claim.get("theirs") or "–", ours, seeds, f"**{word}**"
                 if word != NOT_COMPUTED else word]
        if not with_seeds:
            del cells[4]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- benchmarks
BENCH_COLUMNS = ("Measure", "Ours (s)", "Reference (s)", "Ratio", "Target", "Met")


def _machine_line(machine: Mapping[str, Any] | None) -> str:
    m = machine or {}
    parts = [str(m.get("cpu") or "unknown CPU")]
    if m.get("cpu_cores") is not None:
        parts.append(f"{m['cpu_cores']} cores")
    if m.get("torch_threads") is not None:
        parts.append(f"{m['torch_threads']} torch threads")
    parts.append(f"GPU {m['gpu']}" if m.get("gpu") else "no GPU")
    for k, label in (("torch", "torch"), ("python", "Python")):
        if m.get(k):
            parts.append(f"{label} {m[k]}")
    if m.get("load_avg_1min_at_start") is not None:
        parts.append(f"1-minute load {m['load_avg_1min_at_start']} at the start")
    when = f", {m['date_utc']} UTC" if m.get("date_utc") else ""
    return "; ".join(parts) + when


def _met(v: Any) -> str:
    return "yes" if v is True else "no" if v is False else "–"


def bench_table(result: Mapping[str, Any]) -> str:
    """MyST text for one benchmark result (``python -m uqxai_lib.bench`` JSON): the machine it ran
    on, then one row per measure (measure, ours, reference, ratio, target, met).

    >>> r = {"config": "full", "machine": {"cpu": "EPYC", "cpu_cores": 2},
    ...      "measures": [{"name": "mc", "ours_s": 2.0, "baseline_s": 4.0, "ratio": 2.0, "target": "≥ 1.5", "met": True}]}
    >>> print(bench_table(r).splitlines()[-1])
    | mc | 2 | 4 | 2 | ≥ 1.5 | yes |
    """
    rows = [f"Measured on: {_machine_line(result.get('machine'))} (configuration `{result.get('config', '?')}`).",
            "", "| " + " | ".join(BENCH_COLUMNS) + " |", "|" + "---|" * len(BENCH_COLUMNS)]
    for m in result.get("measures") or []:
        cells = [m.get("name", "?"), fmt_number(m.get("ours_s")), fmt_number(m.get("baseline_s")),
                 fmt_number(m.get("ratio")), m.get("target") or "reported", _met(m.get("met"))]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def bench_spread_table(results: Sequence[Mapping[str, Any]]) -> str:
    """Smoke checks (quick / tiny benchmark runs): per measure the median ratio over the runs and its
    range (min to max), with the number of runs — labelled as smoke checks, never judged.

    >>> rs = [{"config": "quick", "measures": [{"name": "mc", "ratio": r}]} for r in (1.0, 3.0, 2.0)]
    >>> print(bench_spread_table(rs).splitlines()[-1])
    | mc | 2 | 1 to 3 | 3 |
    """
    import statistics

    by: dict[str, list[float]] = {}
    for r in results:
        for m in r.get("measures") or []:
            try:
                v = float(m.get("ratio"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                by.setdefault(str(m.get("name", "?")), []).append(v)
    rows = ["| Measure | Median ratio (smoke check) | Range over runs | Runs |", "|---|---|---|---|"]
    for name, vals in by.items():
        spread = fmt_interval([min(vals), max(vals)]) if len(vals) > 1 else "one run: no spread"
        rows.append(f"| {_cell(name)} | {fmt_number(statistics.median(vals))} | {spread} | {len(vals)} |")
    return "\n".join(rows) + "\n"


def latest_full(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recent (by ``machine.date_utc``) benchmark result of the ``full`` configuration."""
    full = [r for r in results if r.get("config") == "full" or r.get("quick") is False]
    if not full:
        return None
    return max(full, key=lambda r: str((r.get("machine") or {}).get("date_utc") or ""))


# --------------------------------------------------------------------------- tables for download
#: a table's name is a file stem: letters, digits, ``_`` and ``-`` (it becomes ``<name>.csv``)
TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

#: tables the running notebook has shown, by name (see :func:`table`); one kernel runs one notebook
_TABLES: dict[str, dict[str, Any]] = {}


def _check_table_name(name: Any) -> str:
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        raise ValueError(f"table name {name!r} is not a file stem: use 1-64 letters, digits, '_' or '-' "
                         "(starting with a letter or digit), e.g. 'sue_table1'")
    return name


def _label(x: Any) -> str:
    """A column / index label as text; the levels of a MultiIndex label are joined with " / "."""
    if isinstance(x, tuple):
        return " / ".join(str(p) for p in x if str(p) != "")
    return "" if x is None else str(x)


def _cell_value(v: Any) -> Any:
    """A table cell as a JSON value: bool / int / finite float / str; NaN, NA and None become None."""
    import numpy as np

    if v is None or isinstance(v, (bool, np.bool_)):
        return None if v is None else bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, str):
        return v
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # a 0-d tensor / array
        return _cell_value(v.item())
    return str(v)


def table_record(df: Any) -> dict[str, list]:
    """A displayed table (pandas DataFrame, Series or Styler) as ``{"columns": [...], "rows": [[...]]}``.

    A meaningful index (anything but the default 0..n-1 range) becomes the first column(s), named
    after the index (an unnamed index gets the header ""); MultiIndex column labels are joined with
    " / "; values become JSON values (NaN → None).

    >>> import pandas as pd
    >>> table_record(pd.DataFrame({"x": [1.5, float("nan")]}, index=pd.Index(["a", "b"], name="k")))
    {'columns': ['k', 'x'], 'rows': [['a', 1.5], ['b', None]]}
    >>> table_record(pd.DataFrame({"x": [1, 2]}))
    {'columns': ['x'], 'rows': [[1], [2]]}
    """
    import pandas as pd

    frame = getattr(df, "data", None) if type(df).__name__ == "Styler" else df
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"a table must be a pandas DataFrame, Series or Styler, got {type(df).__name__}; "
                        "build one with pandas.DataFrame(...) before registering it")
    idx = frame.index
    default = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    index_cols = [] if default else [_label(n) for n in idx.names]
    columns = index_cols + [_label(c) for c in frame.columns]
    rows = []
    for key, values in zip(idx, frame.itertuples(index=False, name=None)):
        head = [] if default else (list(key) if isinstance(key, tuple) else [key])
        rows.append([_cell_value(v) for v in [*head, *values]])
    return {"columns": columns, "rows": rows}


def table(df: Any, name: str) -> Any:
    """Register a table the notebook shows under ``name`` and return ``df`` unchanged, so a cell can
    write ``display(report.table(df, "name"))`` (or end with ``report.table(df, "name")``).

    :func:`save_tables` (called beside the line that writes the results record) keeps them in
    ``NAME.tables.json``, and the book offers each table as ``_results/<chapter>/<name>.csv``.
    Registering a name again replaces the table (a cell run twice) and keeps its place in the
    chapter's order.

    >>> import pandas as pd
    >>> clear_tables(); _ = table(pd.DataFrame({"a": [1]}), "t1"); tables()["t1"]["rows"]
    [[1]]
    >>> clear_tables()
    """
    _check_table_name(name)
    rec = table_record(df)
    position = _TABLES[name]["position"] if name in _TABLES else len(_TABLES)
    _TABLES[name] = {"position": position, **rec}
    return df


def tables() -> dict[str, dict[str, Any]]:
    """The tables registered by :func:`table` so far, ``{name: {"position", "columns", "rows"}}`` (a copy)."""
    return {k: {"position": v["position"], "columns": list(v["columns"]), "rows": [list(r) for r in v["rows"]]}
            for k, v in _TABLES.items()}


def clear_tables() -> None:
    """Forget the registered tables (a fresh notebook run)."""
    _TABLES.clear()


def tables_path(results_path: str | Path) -> Path:
    """Where the tables of the chapter whose results record is ``results_path`` are kept: beside it,
    ``NAME.json`` → ``NAME.tables.json`` (the record keeps its own schema; the book reads this file).

    >>> tables_path("_build/results/ecg_sue.json").as_posix()
    '_build/results/ecg_sue.tables.json'
    """
    p = Path(results_path)
    return p.with_name(f"{p.stem}.tables.json")


def save_tables(results_path: str | Path) -> Path:
    """Write the registered tables (:func:`tables`) to :func:`tables_path` of ``results_path``,
    atomically (:func:`uqxai_lib.cache.atomic_write_json`); the notebook calls this beside the
    line that writes its results record. Returns the path."""
    from .cache import atomic_write_json

    path = tables_path(results_path)
    atomic_write_json(path, tables())
    return path


def load_tables(results_path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The tables saved beside ``results_path`` in the chapter's order (:func:`ordered_tables`);
    ``[]`` when there is no such file.  A file that is not JSON raises a ValueError naming it."""
    import json

    path = tables_path(results_path)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run the notebook that writes it") from exc
    return ordered_tables(data)


def ordered_tables(record_tables: Any) -> list[tuple[str, dict[str, Any]]]:
    """Saved tables (:func:`tables`, read back from JSON) as ``[(name, table)]`` in the order the
    chapter shows them (``position``; the JSON file itself is written with sorted keys).

    Checks each entry: a file-stem name, ``columns`` a list, ``rows`` a list of lists as long as
    ``columns`` — a ValueError names the table and what is wrong.

    >>> ordered_tables({"b": {"position": 0, "columns": ["x"], "rows": [[1]]},
    ...                 "a": {"position": 1, "columns": ["y"], "rows": []}})[0][0]
    'b'
    """
    if record_tables is None:
        return []
    if not isinstance(record_tables, Mapping):
        raise ValueError(f"saved tables must be a mapping name -> table, got "
                         f"{type(record_tables).__name__}")
    out = []
    for name, t in record_tables.items():
        _check_table_name(name)
        if not isinstance(t, Mapping) or not isinstance(t.get("columns"), list) or not isinstance(t.get("rows"), list):
            raise ValueError(f"table {name!r} needs 'columns' (a list) and 'rows' (a list of lists); "
                             "register it with uqxai_lib.report.table(df, name)")
        width = len(t["columns"])
        for i, r in enumerate(t["rows"]):
            if not isinstance(r, list) or len(r) != width:
                raise ValueError(f"table {name!r}: row {i} has {len(r) if isinstance(r, list) else 'no'} cells, "
                                 f"the header has {width}")
        out.append((name, t))
    return sorted(out, key=lambda kv: (kv[1].get("position", math.inf), kv[0]))


def table_csv(t: Mapping[str, Any]) -> str:
    """One table as CSV text (header row, then the rows; None is an empty cell).

    >>> print(table_csv({"columns": ["a", "b"], "rows": [[1, None], ["x, y", 0.5]]}), end="")
    a,b
    1,
    "x, y",0.5
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(t["columns"])
    writer.writerows([["" if v is None else v for v in r] for r in t["rows"]])
    return buf.getvalue()


def write_table_csvs(record_tables: Any, dest: str | Path) -> list[Path]:
    """Write each saved table to ``dest/<name>.csv`` (UTF-8), each file atomically
    (:func:`uqxai_lib.cache.atomic_write_text`: no half-written file); returns the paths in order."""
    from .cache import atomic_write_text

    dest = Path(dest)
    paths = []
    for name, t in ordered_tables(record_tables):
        path = dest / f"{name}.csv"
        atomic_write_text(path, table_csv(t))
        paths.append(path)
    return paths


def write_tables_zip(record_tables: Any, path: str | Path) -> Path:
    """All saved tables as ``<name>.csv`` members of one zip file, written atomically;
    the members carry a fixed date, so the same tables give the same bytes."""
    from .cache import atomic_write_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, t in ordered_tables(record_tables):
            info = zipfile.ZipInfo(f"{name}.csv", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, table_csv(t).encode("utf-8"))
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# --------------------------------------------------------------------------- assessment records
def _mean_finite(v: Any) -> float:
    xs = [float(x) for x in (v or []) if x is not None and math.isfinite(float(x))]
    return sum(xs) / len(xs) if xs else math.nan


def _sec(rec: Any, name: str) -> Mapping[str, Any] | None:
    return getattr(rec, name) if hasattr(rec, name) else (rec or {}).get(name)


def _fmt_p(p: Any, n_boot: Any = None) -> str:
    """A bootstrap p-value; 0 means below the resolution of the resamples (2 / n_boot).

    >>> _fmt_p(0.0, 2000), _fmt_p(0.0312), _fmt_p(None)
    ('< 0.001', '0.031', 'n/a')
    """
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    if float(p) == 0.0:
        return f"< {fmt_number(2.0 / float(n_boot or 2000), 2)}"
    return fmt_number(p, 2)


def assessment_rows(rec: Any) -> list[tuple[str, str]]:
    """(quantity, value) rows that read one :class:`uqxai_lib.protocol.Assessment` (or its
    ``to_dict()``): stability, the primary comparison, fidelity and sanity, formatted once here.

    >>> rows = dict(assessment_rows({"config": {"score": "rho", "n_samples": 5}, "stability": {"rho": [0.5, 1.0],
    ...     "jaccard": [0.2, None], "n_constant_samples": 1, "n_empty_regions": 0}, "primary": {"effect": 0.1,
    ...     "ci95": [0.0, 0.2], "auroc": 0.6, "auroc_ci95": [0.5, 0.7], "p": 0.05, "verdict": "no detectable difference",
    ...     "n_correct": 20, "n_misclassified": 6, "reason": None}}))
    >>> rows["mean ρ with the reference"], rows["verdict"]
    ('0.75', 'no detectable difference')
    """
    cfg, st, pr = _sec(rec, "config") or {}, _sec(rec, "stability") or {}, _sec(rec, "primary") or {}
    score = {"rho": "ρ", "jaccard": "Jaccard"}.get(cfg.get("score"), str(cfg.get("score")))
    rows = [("samples per item", str(cfg.get("n_samples", "n/a"))),
            ("mean ρ with the reference", fmt_number(_mean_finite(st.get("rho")))),
            ("mean top-q Jaccard (SUE)", fmt_number(_mean_finite(st.get("jaccard")))),
            ("constant sample maps (skipped)", str(st.get("n_constant_samples", "n/a"))),
            ("empty top-q regions (skipped)", str(st.get("n_empty_regions", "n/a"))),
            ("items: correct / misclassified", f"{pr.get('n_correct', 'n/a')} / {pr.get('n_misclassified', 'n/a')}"),
            (f"{score}: correct − misclassified", f"{fmt_number(pr.get('effect'))} ({fmt_interval(pr.get('ci95'))})"),
            (f"AUROC of {score} for correctness", f"{fmt_number(pr.get('auroc'))} ({fmt_interval(pr.get('auroc_ci95'))})"),
            ("p (same bootstrap)", _fmt_p(pr.get("p"), pr.get("n_boot"))),
            ("verdict", str(pr.get("verdict", "n/a")) + (f": {pr['reason']}" if pr.get("reason") else ""))]
    fi = _sec(rec, "fidelity")
    if fi:
        rows += [("mass in mask vs chance", f"{fmt_number(fi.get('mass_in_mask'))} "
                  f"({fmt_interval(fi.get('mass_in_mask_ci95'))}) vs {fmt_number(fi.get('chance'))}"),
                 ("pointing game", fmt_number(fi.get("pointing_game")))]
        if fi.get("deletion_auc") is not None:
            rows.append(("deletion AUC: map vs random order (lower is better)",
                         f"{fmt_number(fi.get('deletion_auc'))} vs {fmt_number(fi.get('deletion_auc_random'))}"))
    sa = _sec(rec, "sanity")
    if sa:
        rows.append(("cascading randomisation", f"{sa.get('outcome')}: {sa.get('reason')}"))
    return rows


def assessment_table(records: Mapping[str, Any]) -> Any:
    """A pandas DataFrame with one column per assessment (e.g. per source), quantities as rows."""
    import pandas as pd

    cols = {name: dict(assessment_rows(rec)) for name, rec in records.items()}
    return pd.DataFrame(cols)

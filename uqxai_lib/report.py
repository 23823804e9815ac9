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

Tables on the page (for chapter notebooks)
------------------------------------------
``report.table(df, name, **page)`` registers the table under ``name`` (its raw values become the
chapter's ``name.csv`` download) and returns it formatted for the book's column
(:func:`format_table`): no index column (a named index becomes the first column; row numbers are
dropped), numbers formatted per column (3 significant digits of the column's largest value as one
fixed precision; whole numbers as such; p-values 2 significant digits), nothing truncated. The
keyword arguments shape what the page shows:

* ``key=["claim", "ours", "verdict"]`` — these columns first;
* ``rename={"ecg_snr_db": "SNR (dB)"}`` — plain words for parameter names (the CSV uses them too);
* ``formats={"AUROC": 2, "p": "sig2", "share": "pct", "time": "{:.0f} s"}`` — a column's rule;
* ``show=[...]`` / ``max_rows=N`` — a narrower or shorter table on the page, with a note and a
  link to the full CSV;
* ``fold="All 24 variants"`` — the table inside a collapsed section (opened on demand).

A wide detail table: ``display(report.table(df, "variants", key=["site", "verdict"],
show=["site", "ΔIoU", "verdict"], fold="Variants: the three key columns (all columns in the CSV)"))``.
Figures and widgets need nothing: the book's CSS keeps every image at its natural aspect ratio.

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

__all__ = ["NOT_COMPUTED", "RUNG_TITLES", "fmt_number", "fmt_interval", "fmt_bracket", "finite_ci", "interval_verdict",
           "reproduction_of", "seed_reproduction", "verdict_box", "ladder_box", "verdict_table", "bench_table", "bench_spread_table",
           "latest_full", "bench_sweep_text", "run_times", "run_times_table", "runtime_text", "fmt_duration",
           "table", "format_table", "FormattedTable", "column_formatter", "tables", "clear_tables", "table_record",
           "ordered_tables", "write_table_csvs", "write_tables_zip", "table_csv", "tables_path", "save_tables",
           "load_tables", "assessment_rows", "assessment_table"]

#: what a box or a table row says when a record has no ``primary`` (yet)
NOT_COMPUTED = "not yet computed"


def _as_finite(x: Any) -> float | None:
    """``float(x)`` when it is a finite number, else None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_number(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, a real minus sign, "n/a" for None / NaN.

    >>> fmt_number(0.012345), fmt_number(-1.5), fmt_number(float("nan")), fmt_number(1234.5)
    ('0.0123', '−1.5', 'n/a', '1.23e+03')
    """
    v = None if isinstance(x, bool) else _as_finite(x)
    if v is None:
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


def fmt_bracket(ci: Sequence[Any] | None, digits: int = 3) -> str:
    """``[lo, hi]`` with ``digits`` decimals, the interval of a table cell; "n/a" unless both bounds
    are finite (the one rule of every table: a missing interval never prints as ``[nan, nan]``).

    >>> fmt_bracket([0.1234, 0.5]), fmt_bracket([float("nan"), 0.5]), fmt_bracket(None)
    ('[0.123, 0.500]', 'n/a', 'n/a')
    """
    c = finite_ci(ci)
    return "n/a" if c is None else f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def finite_ci(ci: Any) -> list[float] | None:
    """``[lo, hi]`` as floats when both bounds are finite numbers, else ``None``
    (the one test of "an interval exists")."""
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        return None
    return [lo, hi] if math.isfinite(lo) and math.isfinite(hi) else None


def interval_verdict(ci: Any) -> str:
    """``stats.verdict`` of an interval; a missing or non-finite interval shows no difference."""
    c = finite_ci(ci)
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
    if not isinstance(robustness, Mapping) or exp is None or finite_ci(robustness.get("ci95")) is None:
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


def ladder_headline_phrase(lad: Mapping[str, Any]) -> str:
    """How a ladder box's title names the rung its headline comes from ("across training seeds" by
    default; "across every score of the table" for the primer's ``across_metrics``).

    >>> ladder_headline_phrase({"headline_rung": "across_metrics"}), ladder_headline_phrase({})
    ('across every score of the table', 'across training seeds')
    """
    rung = lad.get("headline_rung") or "across_seeds"
    return RUNG_TITLES.get(rung, rung).lower() if rung != "direction" else "of this run"


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
    "across_metrics": "Across every score of the table",
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
    where = ladder_headline_phrase(lad)
    top = f"Verdict {where}: {head}"
    if title:
        top = f"{title} — {head} {where}"
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
BENCH_COLUMNS = ("Measure", "Ratio", "Spread of the ratio", "Target", "Met", "Ours (s)", "Reference (s)")


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
    if m.get("git_commit"):
        parts.append(f"commit {str(m['git_commit'])[:12]}")
    return "; ".join(parts)


def _met(v: Any) -> str:
    return "yes" if v is True else "no" if v is False else "–"


def _breakable(name: Any) -> str:
    """A measure's identifier with a zero-width space after each ``_``: long names wrap in a narrow column."""
    return str(name).replace("_", "_\u200b")


def _spread(m: Mapping[str, Any]) -> str:
    """``ratio_range`` of a measure (fastest reference / slowest ours to slowest reference / fastest
    ours over its repeats) as "lo to hi (n repeats)"; "–" when not recorded."""
    rr = finite_ci(m.get("ratio_range"))
    if rr is None:
        return "–"
    n = m.get("repeats")
    return fmt_interval(rr) + (f" ({n} repeats)" if n else "")


def bench_table(result: Mapping[str, Any]) -> str:
    """MyST text for one benchmark result (``python -m uqxai_lib.bench`` JSON): when and on which
    machine it was recorded, then one row per measure (measure, ratio of the medians, its spread over
    the repeats, target, met, both sides' median times).

    >>> r = {"config": "full", "machine": {"cpu": "EPYC", "cpu_cores": 2, "date_utc": "2026-12-01 10:00"},
    ...      "measures": [{"name": "mc", "ours_s": 2.0, "baseline_s": 4.0, "ratio": 2.0, "target": "≥ 1.5",
    ...                    "met": True, "ratio_range": [1.5, 2.5], "repeats": 3}]}
    >>> print(bench_table(r).splitlines()[0])
    Recorded on **2026-12-01 10:00 UTC**, on EPYC; 2 cores; no GPU (configuration `full`).
    >>> print(bench_table(r).splitlines()[-1])
    | mc | 2 | 1.5 to 2.5 (3 repeats) | ≥ 1.5 | yes | 2 | 4 |
    """
    m = result.get("machine") or {}
    when = f"**{m['date_utc']} UTC**" if m.get("date_utc") else "an unrecorded date"
    rows = [f"Recorded on {when}, on {_machine_line(m)} (configuration `{result.get('config', '?')}`).",
            "", "| " + " | ".join(BENCH_COLUMNS) + " |", "|" + "---|" * len(BENCH_COLUMNS)]
    for r in result.get("measures") or []:
        cells = [_breakable(r.get("name", "?")), fmt_number(r.get("ratio")), _spread(r),
                 r.get("target") or "reported", _met(r.get("met")), fmt_number(r.get("ours_s")),
                 fmt_number(r.get("baseline_s"))]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


#: the bench record key (a measure's name, or a top-level key) of the sweep over real chapter tasks
SWEEP_CHAPTER_KEY = "sweep_chapter_tasks"


def bench_sweep_text(results: Sequence[Mapping[str, Any]]) -> str:
    """MyST text for the sweep over real chapter tasks (``sweep_chapter_tasks``: a measure of that
    name, or a top-level key holding one) from the latest benchmark result that has it; a plain
    "not measured in this build" sentence when none has.

    >>> print(bench_sweep_text([]).split(":")[0])
    **Sweep of real chapter tasks**
    >>> r = {"machine": {"date_utc": "2026-12-07 03:00", "cpu": "EPYC"}, "measures": [{"name": "sweep_chapter_tasks",
    ...      "ratio": 1.8, "ours_s": 70.0, "baseline_s": 126.0, "tasks": 4, "workers": 2}]}
    >>> "ratio **1.8**" in bench_sweep_text([r]) and "tasks: 4" in bench_sweep_text([r])
    True
    """
    found = []
    for r in results:
        cand = r.get(SWEEP_CHAPTER_KEY)
        if not isinstance(cand, Mapping):
            cand = next((m for m in r.get("measures") or [] if m.get("name") == SWEEP_CHAPTER_KEY), None)
        if isinstance(cand, Mapping):
            found.append((str((r.get("machine") or {}).get("date_utc") or ""), r, cand))
    if not found:
        return ("**Sweep of real chapter tasks**: not measured in this build (no `sweep_chapter_tasks` "
                "in `_build/results/bench*.json`).\n")
    date, r, m = max(found, key=lambda t: t[0])
    known = {"name", "ratio", "ours_s", "baseline_s", "ratio_range", "repeats", "note", "target", "met"}
    extra = "; ".join(f"{k}: {_fmt_value(v)}" for k, v in m.items() if k not in known)
    lines = [f"**Sweep of real chapter tasks** (`{SWEEP_CHAPTER_KEY}`, recorded {date or 'on an unrecorded date'} "
             f"UTC on {_machine_line(r.get('machine'))}): ratio **{fmt_number(m.get('ratio'))}** "
             f"(sequential {fmt_number(m.get('baseline_s'))} s / sweep {fmt_number(m.get('ours_s'))} s"
             + (f"; spread {_spread(m)}" if _spread(m) != "–" else "") + ")."]
    if extra:
        lines.append(f"Set-up: {extra}.")
    if m.get("note"):
        lines.append(str(m["note"]))
    return "\n\n".join(lines) + "\n"


def _fmt_value(v: Any) -> str:
    if _is_number(v):
        return fmt_number(v) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_value(x) for x in v)
    return str(v)


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


# --------------------------------------------------------------------------- time to run (provenance)
#: the profiles in the order the reproducibility page lists them
PROFILES = ("tiny", "smoke", "full")


def run_times(provenance: Mapping[str, Any] | None, recorded: Mapping[str, Any] | None = None
              ) -> dict[str, dict[str, dict[str, Any]]]:
    """``{profile: {notebook: record}}`` of the notebooks' runs: this build's provenance
    (``_build/results/provenance.json``, ``{"notebooks": {name: record}}``) and a recorded set
    (``book/records/run_times.json``, ``{"profiles": {profile: {name: record}}}``, written from
    earlier builds' provenance by ``book/tools/record_run_times.py``). This build wins where both
    have a chapter; each record keeps ``wall_time_s``, ``status``, ``device_name``, ``finished_utc``
    and gains ``source`` ("this build" / "recorded").

    >>> t = run_times({"notebooks": {"a": {"profile": "tiny", "wall_time_s": 3.0, "status": "ok"}}},
    ...               {"profiles": {"tiny": {"a": {"wall_time_s": 9.0}}, "smoke": {"a": {"wall_time_s": 30.0}}}})
    >>> t["tiny"]["a"]["wall_time_s"], t["tiny"]["a"]["source"], t["smoke"]["a"]["source"]
    (3.0, 'this build', 'recorded')
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for profile, recs in ((recorded or {}).get("profiles") or {}).items():
        for name, rec in (recs or {}).items():
            if isinstance(rec, Mapping):
                out.setdefault(str(profile), {})[name] = {**rec, "source": "recorded"}
    for name, rec in ((provenance or {}).get("notebooks") or {}).items():
        if isinstance(rec, Mapping) and rec.get("profile"):
            out.setdefault(str(rec["profile"]), {})[name] = {**rec, "source": "this build"}
    return out


def fmt_duration(seconds: Any) -> str:
    """A wall time as the page shows it: "48 s", "6 min 05 s", "1 h 02 min" (no-break spaces);
    "–" when unknown.

    >>> [t.replace("\\u00a0", " ") for t in (fmt_duration(47.6), fmt_duration(365), fmt_duration(3720))]
    ['48 s', '6 min 05 s', '1 h 02 min']
    >>> fmt_duration(None)
    '–'
    """
    s = _as_finite(seconds)
    if s is None:
        return "–"
    s, sp = round(s), "\u00a0"  # no line break inside a duration
    if s < 60:
        return f"{s}{sp}s"
    if s < 3600:
        return f"{s // 60}{sp}min{sp}{s % 60:02d}{sp}s"
    return f"{s // 3600}{sp}h{sp}{(s % 3600) // 60:02d}{sp}min"


def _ordered_profiles(times: Mapping[str, Any]) -> list[str]:
    return [p for p in PROFILES if p in times] + sorted(p for p in times if p not in PROFILES)


def run_times_table(times: Mapping[str, Mapping[str, Mapping[str, Any]]], chapters: Sequence[str],
                    titles: Mapping[str, str] | None = None) -> str:
    """MyST: one row per chapter, one column per profile (its wall time, "failed" marked), a total
    row (the sum when every chapter has a time for that profile), then the hardware and dates each
    profile's times were measured on. Profiles without any record are named as not recorded.

    >>> t = {"tiny": {"a": {"wall_time_s": 3, "status": "ok", "device_name": "cpu (x86_64, 2 cores)",
    ...                     "finished_utc": "2026-12-07T03:00:00+00:00", "source": "this build"}}}
    >>> print(run_times_table(t, ["a", "b"]).splitlines()[2].replace("\\u00a0", " "))
    | a | 3 s | not recorded | not recorded |
    """
    titles = titles or {}
    profiles = list(PROFILES) + [p for p in _ordered_profiles(times) if p not in PROFILES]
    head = ["Chapter"] + profiles
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = {p: 0.0 for p in profiles}
    complete = {p: True for p in profiles}
    for name in chapters:
        cells = [titles.get(name, name)]
        for p in profiles:
            rec = (times.get(p) or {}).get(name)
            if rec is None or rec.get("wall_time_s") is None:
                cells.append("not recorded")
                complete[p] = False
                continue
            text = fmt_duration(rec["wall_time_s"])
            if rec.get("status") not in (None, "ok"):
                text += f" ({rec['status']})"
                complete[p] = False
            totals[p] += float(rec["wall_time_s"])
            cells.append(text)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    total = ["**Total**"] + [f"**{fmt_duration(totals[p])}**" if complete[p] and chapters else
                             ("incomplete" if times.get(p) else "not recorded") for p in profiles]
    rows.append("| " + " | ".join(total) + " |")
    lines = ["\n".join(rows), ""]
    for p in profiles:
        recs = [r for n, r in (times.get(p) or {}).items() if n in chapters]
        if not recs:
            lines.append(f"- **{p}**: no run recorded. Run `python -m uqxai_lib.run --profile {p}` (then "
                         "`python book/tools/record_run_times.py` to keep its times) and rebuild the book.")
            continue
        devices = sorted({str(r.get("device_name") or r.get("device") or "unknown device") for r in recs})
        dates = sorted(str(r.get("finished_utc"))[:10] for r in recs if r.get("finished_utc"))
        when = (dates[0] if dates and dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}") if dates else "?"
        sources = sorted({str(r.get("source", "recorded")) for r in recs})
        commits = sorted({str(r.get("git_commit"))[:12] for r in recs if r.get("git_commit")})
        lines.append(f"- **{p}** ({' and '.join(sources)}, {when}): {'; '.join(devices)}"
                     + (f"; commit {', '.join(commits)}" if commits else "") + ".")
    return "\n".join(lines) + "\n"


def runtime_text(name: str, times: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """A chapter's time to run as a sentence fragment, from the provenance: "34 s (smoke profile,
    cpu (…)); tiny: 5 s; full: not recorded".

    >>> t = {"smoke": {"a": {"wall_time_s": 34, "device_name": "cpu (x86_64, 2 cores)"}}}
    >>> runtime_text("a", t).replace("\\u00a0", " ")
    '34 s with the smoke profile on cpu (x86_64, 2 cores); tiny: not recorded; full: not recorded'
    """
    parts, first = [], True
    profiles = ["smoke", "tiny", "full"] + [p for p in _ordered_profiles(times) if p not in PROFILES]
    for p in profiles:
        rec = (times.get(p) or {}).get(name)
        t = fmt_duration(rec.get("wall_time_s")) if rec else "not recorded"
        if first and rec:
            dev = rec.get("device_name") or rec.get("device")
            parts.insert(0, f"{t} with the {p} profile" + (f" on {dev}" if dev else ""))
            first = False
        else:
            parts.append(f"{p}: {t}")
    return "; ".join(parts)


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

    A meaningful index (named, or of labels) becomes the first column(s), named after the index (an
    unnamed index of labels gets the header ""); an unnamed index of integers is row numbers (the
    default 0..n-1, or what sorting / filtering left of it) and is dropped; MultiIndex column labels
    are joined with " / "; values become JSON values (NaN → None).

    >>> import pandas as pd
    >>> table_record(pd.DataFrame({"x": [1.5, float("nan")]}, index=pd.Index(["a", "b"], name="k")))
    {'columns': ['k', 'x'], 'rows': [['a', 1.5], ['b', None]]}
    >>> table_record(pd.DataFrame({"x": [1, 2]}))
    {'columns': ['x'], 'rows': [[1], [2]]}
    >>> table_record(pd.DataFrame({"x": [1, 2, 3]}).sort_values("x", ascending=False).head(2))["columns"]
    ['x']
    """
    import pandas as pd

    frame = getattr(df, "data", None) if type(df).__name__ == "Styler" else df
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"a table must be a pandas DataFrame, Series or Styler, got {type(df).__name__}; "
                        "build one with pandas.DataFrame(...) before registering it")
    idx = frame.index
    # row numbers are not data: an unnamed index of integers (the default 0..n-1, or what is left of
    # it after sorting / filtering) is dropped; a named index or one of labels becomes column(s)
    default = idx.nlevels == 1 and idx.name is None and (
        isinstance(idx, pd.RangeIndex) or (pd.api.types.is_integer_dtype(idx.dtype) and len(idx) > 0) or len(idx) == 0)
    index_cols = [] if default else [_label(n) for n in idx.names]
    columns = index_cols + [_label(c) for c in frame.columns]
    rows = []
    for key, values in zip(idx, frame.itertuples(index=False, name=None)):
        head = [] if default else (list(key) if isinstance(key, tuple) else [key])
        rows.append([_cell_value(v) for v in [*head, *values]])
    return {"columns": columns, "rows": rows}


# --------------------------------------------------------------------------- tables on the page
#: what an empty cell (None, NaN) shows
EMPTY_CELL = "–"
#: column names read as p-values: 2 significant digits per cell, whatever the column's range
P_VALUE = re.compile(r"^(p|p[ _-]?value|p \(.*\)|p_.*|.*\bp-value\b.*|.* p)$", re.I)
#: a float column whose non-zero magnitudes span more than this factor gets significant digits per cell
SPAN_FOR_SIGNIFICANT = 100.0
#: the most decimals a fixed-precision column gets
MAX_DECIMALS = 6


def _minus(text: str) -> str:
    return "−" + text[1:] if text.startswith("-") else text


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def column_formatter(values: Sequence[Any], *, digits: int = 3, name: str = "", spec: Any = None):
    """The function that turns each value of one column into its text on the page.

    ``spec`` (per column, see :func:`format_table`) overrides the rule:

    * an ``int`` ``d``: fixed ``d`` decimals;
    * ``"sig"`` or ``"sigN"``: N (default ``digits``) significant digits per cell;
    * ``"int"``: rounded to a whole number; ``"pct"``: a share shown as a percentage, 1 decimal;
    * a format string such as ``"{:.2f}"`` or a callable ``value -> str``.

    Without a spec: booleans are "yes"/"no"; a column of whole numbers shows whole numbers; a column
    named like a p-value (:data:`P_VALUE`) gets 2 significant digits per cell; other numbers get one
    fixed precision for the whole column — ``digits`` significant digits of its largest magnitude —
    unless its non-zero magnitudes span more than :data:`SPAN_FOR_SIGNIFICANT` (then ``digits``
    significant digits per cell). None and NaN show as :data:`EMPTY_CELL`; negative numbers with a
    real minus sign; text is shown as it is (never shortened).

    >>> f = column_formatter([0.82388, 0.049259, 0.5]); [f(v) for v in (0.82388, 0.049259, -0.5)]
    ['0.824', '0.049', '−0.500']
    >>> f = column_formatter([1.0, 12.0, None]); [f(v) for v in (1.0, 12.0, None)]
    ['1', '12', '–']
    >>> f = column_formatter([0.2, 1e-5], name="p (Holm)"); f(1.234e-5), f(0.2)
    ('1.2e-05', '0.2')
    >>> column_formatter([0.5], spec="pct")(0.5), column_formatter([3.14159], spec=1)(3.14159)
    ('50.0%', '3.1')
    """
    nums = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]

    def empty_or(fn):
        def show(v: Any) -> str:
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return EMPTY_CELL if v is None or math.isnan(v) else _minus(str(v))
            if isinstance(v, bool):
                return "yes" if v else "no"
            if _is_number(v):
                return _minus(fn(float(v)))
            if isinstance(v, (list, tuple)):
                return ", ".join(show(x) for x in v)
            return str(v)
        return show

    if callable(spec):
        return empty_or(spec)
    if isinstance(spec, str) and "{" in spec:
        return empty_or(lambda x: spec.format(x))
    if isinstance(spec, int) and not isinstance(spec, bool):
        return empty_or(lambda x: f"{x:.{spec}f}")
    if spec == "int":
        return empty_or(lambda x: f"{x:.0f}")
    if spec == "pct":
        return empty_or(lambda x: f"{100 * x:.1f}%")
    if isinstance(spec, str) and spec.startswith("sig"):
        n = int(spec[3:] or digits)
        return empty_or(lambda x: f"{x:.{n}g}")
    if spec is not None:
        raise ValueError(f"column {name!r}: format {spec!r} is not one of int decimals, 'sig', 'sigN', 'int', "
                         "'pct', a format string like '{:.2f}' or a callable")
    if nums and all(x == round(x) and abs(x) < 1e15 for x in nums) and \
            all(isinstance(v, int) or (isinstance(v, float) and v == round(v)) for v in values if _is_number(v)):
        return empty_or(lambda x: f"{x:.0f}")
    if P_VALUE.match(str(name).strip()):
        return empty_or(lambda x: f"{x:.2g}")
    nonzero = [abs(x) for x in nums if x != 0]
    if not nonzero:
        return empty_or(lambda x: f"{x:.{digits}g}")
    top, low = max(nonzero), min(nonzero)
    if top / low > SPAN_FOR_SIGNIFICANT or top >= 10 ** (digits + 3):
        return empty_or(lambda x: f"{x:.{digits}g}")
    decimals = min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(top))))
    return empty_or(lambda x: f"{x:.{decimals}f}")


def _wbr(text: str, *, body: bool = False) -> str:
    """HTML text with break opportunities after ``_``, ``/`` and ``.`` of a column name, or after
    ``_`` of a cell (identifiers such as ``post_activation`` wrap; numbers in text stay whole).

    >>> _wbr("rel_loss/q05"), _wbr("0.5_a/b", body=True)
    ('rel_<wbr>loss/<wbr>q05', '0.5_<wbr>a/b')
    """
    import html as _html

    return re.sub(r"(_)(?=\w)" if body else r"([_/.])(?=\w)", r"\1<wbr>", _html.escape(text))


class FormattedTable:
    """A table as the page shows it: ``columns`` and ``rows`` of text (see :func:`format_table`).

    In a notebook it displays as an HTML ``<table class="uqxai-table">`` (numbers right-aligned,
    no index column, long headers break after ``_`` and ``/``), optionally under a note saying which
    rows or columns are only in the CSV, and optionally folded into a ``<details>`` section.
    ``to_frame()`` gives the text as a DataFrame; ``record`` the raw values (what the CSV holds).
    """

    def __init__(self, columns: list[str], rows: list[list[str]], numeric: list[bool], *,
                 record: dict | None = None, name: str | None = None, note: str | None = None,
                 fold: str | None = None, caption: str | None = None):
        self.columns, self.rows, self.numeric = columns, rows, numeric
        self.record, self.name, self.note, self.fold, self.caption = record, name, note, fold, caption

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def _link(self) -> str:
        # the book's extension turns '#uqxai-csv-NAME' into the chapter's CSV download
        return f' (<a class="uqxai-csv" href="#uqxai-csv-{self.name}">{self.name}.csv</a>)' if self.name else ""

    def _repr_html_(self) -> str:
        import html as _html

        head = "".join(f'<th class="{"num" if n else "text"}">{_wbr(c)}</th>'
                       for c, n in zip(self.columns, self.numeric))
        body = "".join("<tr>" + "".join(f'<td class="num">{_html.escape(v)}</td>' if n else
                                         f'<td class="text">{_wbr(v, body=True)}</td>'
                                         for v, n in zip(r, self.numeric)) + "</tr>" for r in self.rows)
        cap = f"<caption>{_html.escape(self.caption)}</caption>" if self.caption else ""
        out = (f'<table class="uqxai-table">{cap}<thead><tr>{head}</tr></thead>'
               f"<tbody>{body}</tbody></table>")
        if self.note:
            out += f'<p class="uqxai-table-note">{_html.escape(self.note)}{self._link()}</p>'
        if self.fold:
            out = (f'<details class="uqxai-fold"><summary>{_html.escape(self.fold)}</summary>'
                   f"{out}</details>")
        return out

    def __repr__(self) -> str:
        widths = [max([len(c)] + [len(r[j]) for r in self.rows]) for j, c in enumerate(self.columns)]
        line = lambda cells: "  ".join(c.rjust(w) if n else c.ljust(w)  # noqa: E731
                                       for c, w, n in zip(cells, widths, self.numeric)).rstrip()
        text = "\n".join([line(self.columns)] + [line(r) for r in self.rows])
        return text + (f"\n{self.note}" if self.note else "")


def format_table(df: Any, *, key: Sequence[str] = (), formats: Mapping[str, Any] | None = None,
                 digits: int = 3, show: Sequence[str] | None = None, rename: Mapping[str, str] | None = None,
                 max_rows: int | None = None, fold: str | None = None, caption: str | None = None,
                 name: str | None = None) -> FormattedTable:
    """A DataFrame (Series, Styler) as a table that fits the book's column.

    * **no index column**: a meaningful index (anything but 0..n-1, e.g. ``set_index("ratio")``)
      becomes ordinary first column(s); the default range index is dropped;
    * **key columns first**: ``key`` names the columns to put first, in that order (e.g.
      ``key=["claim", "ours", "verdict"]``), the others follow in their order;
    * **numbers per column**: :func:`column_formatter` (``digits`` significant digits of the
      column's largest value as one fixed precision, whole numbers as such, p-values 2 significant
      digits); ``formats={"column": spec}`` sets a column's rule (``2`` decimals, ``"sig3"``,
      ``"int"``, ``"pct"``, ``"{:.1f} s"`` or a callable);
    * **no truncation**: every row and every character of text is shown, unless ``max_rows`` or
      ``show`` say otherwise — then a note under the table says what was left out and links the
      chapter's CSV of the whole table (when ``name`` is given: :func:`table` passes it);
    * ``show``: the columns to show (after ``rename``; the CSV keeps all); ``rename``: plain words
      for column names (``{"ecg_snr_db": "SNR (dB)"}``); ``fold``: the summary line of a collapsed
      ``<details>`` section holding the table (a wide or secondary table that the reader opens on
      demand); ``caption``: a caption line above the table.

    >>> import pandas as pd
    >>> t = format_table(pd.DataFrame({"verdict": ["reproduced"], "ours": [0.82388], "n": [12.0]}),
    ...                  key=["ours"])
    >>> t.columns, t.rows
    (['ours', 'verdict', 'n'], [['0.824', 'reproduced', '12']])
    >>> format_table(pd.DataFrame({"x": [1.5]}, index=pd.Index(["a"], name="k"))).rows
    [['a', '1.50']]
    """
    rec = table_record(df)
    columns = [str((rename or {}).get(c, c)) for c in rec["columns"]]
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"table has repeated column names {dup}; rename them (rename={{...}}) so each is unique")
    missing = [k for k in list(key) + list(show or []) + list(formats or {}) if k not in columns]
    if missing:
        raise ValueError(f"column(s) {missing} are not in the table; its columns are {columns}")
    order = [c for c in key] + [c for c in columns if c not in key]
    if show is not None:
        order = [c for c in order if c in show]
    idx = [columns.index(c) for c in order]
    raw_rows = [[r[i] for i in idx] for r in rec["rows"]]
    fmts = [column_formatter([r[j] for r in raw_rows], digits=digits, name=c, spec=(formats or {}).get(c))
            for j, c in enumerate(order)]
    numeric = [bool(raw_rows) and all(_is_number(r[j]) or r[j] is None for r in raw_rows)
               and any(_is_number(r[j]) for r in raw_rows) for j in range(len(order))]
    shown = raw_rows if max_rows is None else raw_rows[:max(0, int(max_rows))]
    rows = [[f(v) for f, v in zip(fmts, r)] for r in shown]
    left = []
    if len(shown) < len(raw_rows):
        left.append(f"{len(shown)} of {len(raw_rows)} rows shown")
    if len(order) < len(columns):
        hidden = [c for c in columns if c not in order]
        left.append(f"{len(hidden)} more column{'s' if len(hidden) > 1 else ''} ({', '.join(hidden)})")
    note = ("; ".join(left) + ": all of it in the table's CSV") if left else None
    if note and not name:
        note = "; ".join(left) + " (register the table with report.table to offer its CSV)"
    return FormattedTable(order, rows, numeric, record=rec, name=name, note=note, fold=fold, caption=caption)


def table(df: Any, name: str, **page: Any) -> FormattedTable:
    """Register a table the notebook shows under ``name`` and return it formatted for the page, so a
    cell writes ``display(report.table(df, "name"))`` (or ends with ``report.table(df, "name")``).

    The registered table keeps the raw values (:func:`table_record`): :func:`save_tables` (called
    beside the line that writes the results record) keeps them in ``NAME.tables.json``, and the book
    offers each table as ``_results/<chapter>/<name>.csv``.  What the page shows is
    :func:`format_table` of ``df`` with the keyword arguments ``page`` (``key``, ``formats``,
    ``digits``, ``show``, ``rename``, ``max_rows``, ``fold``, ``caption``): no index column, numbers
    formatted per column, key columns first, and a link to the CSV when rows or columns are left out.
    Registering a name again replaces the table (a cell run twice) and keeps its place in the
    chapter's order.

    >>> import pandas as pd
    >>> clear_tables(); t = table(pd.DataFrame({"a": [1.23456]}), "t1"); tables()["t1"]["rows"], t.rows
    ([[1.23456]], [['1.23']])
    >>> clear_tables()
    """
    _check_table_name(name)
    shown = format_table(df, name=name, **page)
    rec = shown.record
    if page.get("rename"):  # the CSV carries the plain names the page shows
        rec = {"columns": [str(page["rename"].get(c, c)) for c in rec["columns"]], "rows": rec["rows"]}
    position = _TABLES[name]["position"] if name in _TABLES else len(_TABLES)
    _TABLES[name] = {"position": position, **rec}
    return shown


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
            (f"AUROC of {score} for correctness",
             f"{fmt_number(pr.get('auroc'))} ({fmt_interval(pr.get('auroc_ci95'))})"),
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

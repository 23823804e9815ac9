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

import math
from typing import Any, Mapping, Sequence

from . import stats

__all__ = ["NOT_COMPUTED", "fmt_number", "fmt_interval", "interval_verdict", "reproduction_of",
           "seed_reproduction", "verdict_box", "verdict_table", "bench_table", "bench_spread_table",
           "latest_full"]

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
    (or ``None``) gives a box that says the result is not yet computed.
    """
    record = record or {}
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
    head = ["Chapter", "The paper's claim", "Theirs", "Ours (95% interval)", "Across seeds (95% interval)",
            "Verdict"]
    if not with_seeds:
        del head[4]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rec in records.items():
        rec = rec or {}
        claim = rec.get("claim") if isinstance(rec.get("claim"), Mapping) else {}
        prim = rec.get("primary")
        rob = robustness.get(name)
        claim_text = (claim.get("text") or "–") + (_cite(claim, cite) if claim.get("text") else "")
        if isinstance(prim, Mapping):
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

"""Tests of uqxai_lib.report: verdict boxes and the verdict table are derived from the record's interval."""
import math
import re

import numpy as np
import pytest

from uqxai_lib import report, stats


def _record(effect_shift: float, expected: str = "higher", seed: int = 0, n: int = 200):
    """A study record from simulated scores with a known difference between the two groups."""
    rng = np.random.default_rng(seed)
    in_a = np.arange(n) < n // 2
    values = rng.normal(0.0, 1.0, n) + effect_shift * in_a
    comp = stats.group_difference(values, in_a, n_boot=500, seed=seed)
    return {
        "primary": stats.primary("score correct − misclassified", comp),
        "claim": {"text": "The score is higher for correct predictions.", "expected": expected,
                  "theirs": "0.93 vs 0.81 (their Table 3)", "source": "seoni2024sue"},
    }


@pytest.mark.parametrize("shift, expected, word", [
    (1.0, "higher", "reproduced"),      # clearly higher, paper says higher
    (-1.0, "higher", "reversed"),       # clearly lower, paper says higher
    (0.0, "higher", "not reproduced"),  # no difference
    (-1.0, "lower", "reproduced"),
])
def test_verdict_follows_the_interval_and_the_claimed_direction(shift, expected, word):
    rec = _record(shift, expected)
    lo, hi = rec["primary"]["ci95"]
    # an independent reading of the interval
    direction = "higher" if lo > 0 else "lower" if hi < 0 else None
    oracle = "reproduced" if direction == expected else "not reproduced" if direction is None else "reversed"
    assert oracle == word
    assert report.reproduction_of(rec) == word
    box = report.verdict_box(rec)
    assert box.splitlines()[0] == f":::{{admonition}} Verdict: {word}"
    assert f"uqxai-verdict-{word.replace(' ', '-')}" in box
    assert box.rstrip().endswith(":::")


def test_box_shows_claim_theirs_ours_with_interval_and_citation():
    rec = _record(1.0)
    box = report.verdict_box(rec)
    p = rec["primary"]
    assert "The score is higher for correct predictions." in box
    assert "{cite:p}`seoni2024sue`" in box
    assert "**Theirs** (the paper's number): 0.93 vs 0.81 (their Table 3)" in box
    assert report.fmt_number(p["effect"]) in box
    assert report.fmt_interval(p["ci95"]) in box
    assert "95% interval" in box
    assert "{cite" not in report.verdict_box(rec, cite=False)


def test_verdict_is_recomputed_from_the_interval_not_copied_from_the_record():
    rec = _record(1.0)
    rec["primary"]["verdict"] = "lower"  # a stale or typed word must not leak into the box
    assert report.reproduction_of(rec) == "reproduced"
    assert "Verdict: reproduced" in report.verdict_box(rec)


def test_robustness_record_adds_the_across_seed_mean_and_its_own_verdict():
    rec = _record(1.0)
    effects = [_record(1.0, seed=s)["primary"]["effect"] for s in range(4)] + [-3.0]
    rob = stats.seed_summary(effects)
    box = report.verdict_box(rec, robustness=rob)
    assert f"mean **{report.fmt_number(rob['mean'])}** over 5 training seeds" in box
    assert report.fmt_interval(rob["ci95"]) in box
    assert rob["sign_agreement"] in box
    sw = stats.reproduction(rob["verdict"], "higher")
    assert report.seed_reproduction(rec, rob) == sw
    assert f"Across training seeds it is **{sw}**." in box


def test_missing_primary_or_record_says_not_yet_computed():
    for rec in (None, {}, {"claim": {"text": "x", "expected": "higher"}}):
        box = report.verdict_box(rec)
        assert "Verdict: not yet computed" in box and "uqxai-verdict-missing" in box
        assert report.reproduction_of(rec or {}) is None


def test_nan_interval_reads_as_no_detectable_difference():
    rec = _record(1.0)
    rec["primary"]["ci95"] = [math.nan, math.nan]
    assert report.reproduction_of(rec) == "not reproduced"
    assert "n/a to n/a" in report.verdict_box(rec)


def test_verdict_table_one_row_per_chapter_with_links_and_missing_rows():
    recs = {"ecg_sue": _record(1.0), "mri_mc_dropout": _record(0.0), "derm_vic": None}
    rob = {"ecg_sue": stats.seed_summary([0.8, 1.1, 0.9])}
    table = report.verdict_table(recs, robustness=rob, titles={"ecg_sue": "{doc}`ECG </book/_executed/ecg_sue>`"})
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3
    assert lines[2].startswith("| {doc}`ECG </book/_executed/ecg_sue>` |")
    assert "**reproduced**" in lines[2] and "n = 3" in lines[2]
    assert "**not reproduced**" in lines[3]
    assert lines[4].count(report.NOT_COMPUTED) == 2
    assert "Across seeds" in lines[0]
    no_seeds = report.verdict_table(recs).splitlines()
    assert "Across seeds" not in no_seeds[0] and no_seeds[0].count("|") == 6
    # every row has the header's number of cells
    n = lines[0].count("|")
    assert all(line.count("|") - line.count("\\|") == n for line in lines)


def test_table_cells_escape_pipes():
    rec = _record(1.0)
    rec["claim"]["text"] = "a | b"
    assert "a \\| b" in report.verdict_table({"x": rec})


def test_fmt_number_uses_a_real_minus_and_significant_digits():
    assert report.fmt_number(-0.0123456) == "−0.0123"
    assert report.fmt_number(None) == "n/a"
    assert re.fullmatch(r"−?\d\.\d\de[+−-]\d\d", report.fmt_number(-12345.0))


def test_robustness_json_entry_of_issue_15_is_read_as_is():
    rec = _record(1.0)
    effects = [0.9, 1.1, 1.0, 0.95, 1.05]
    summary = stats.seed_summary(effects)
    entry = {"seeds": [0, 1, 2, 3, 4], "effects": effects, "ci95_per_seed": [[0.5, 1.5]] * 5,
             "mean": summary["mean"], "ci95": summary["ci95"], "sign_agreement": "5/5", "threads": {"1": 1.0, "2": 1.0}}
    box = report.verdict_box(rec, robustness=entry)
    assert "over 5 training seeds" in box and "5/5 seeds agree in sign" in box
    assert "Across training seeds it is **reproduced**." in box
    assert "n = 5" in report.verdict_table({"ecg_sue": rec}, robustness={"ecg_sue": entry})

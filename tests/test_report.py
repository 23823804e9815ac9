"""Tests of uqxai_lib.report: verdict boxes and the verdict table are derived from the record's interval."""
import csv as _csv
import json as _json
import math
import re
import zipfile as _zipfile

import numpy as np
import pandas as pd
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


# --------------------------------------------------------------------------- tables for download


@pytest.fixture
def fresh_tables():
    report.clear_tables()
    yield
    report.clear_tables()


def _shown_tables():
    """Tables shaped like the chapters': a named index, formatted strings, NaN, ints, a MultiIndex."""
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.9, 0.5, 0.25], "val_accuracy": [0.5, float("nan"),
                                                                                                 0.875]})
    split = pd.DataFrame({"images": [10, 4], "malignant %": [20.0, 25.0]}, index=["train", "test"])
    sue = pd.DataFrame({"SUE correct (ours)": ["0.512 ± 0.101", "–"], "n correct": [12, 0],
                        "note": ['a "quoted", comma', "ü, – and ρ"]}).set_index(pd.Index(["Gaussian", "EMG"],
                                                                                         name="perturbation"))
    multi = pd.DataFrame({("IoU", "VIC"): [0.25, 0.5], ("IoU", "opt."): [0.125, 0.75]},
                         index=pd.MultiIndex.from_tuples([("conv", 0.6), ("fc", 0.2)], names=["site", "ratio"]))
    return {"history": history.set_index("epoch"), "split": split, "sue_table1": sue, "variants": multi}


def _oracle_rows(df: pd.DataFrame) -> tuple[list[str], list[list]]:
    """An independent flattening through pandas itself: reset the index, join column levels."""
    flat = df.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" / ".join(c) for c in flat.columns]
    flat = flat.reset_index()
    if df.index.names == [None]:
        flat = flat.rename(columns={"index": ""})
    rows = [[None if isinstance(v, float) and math.isnan(v) else v for v in r] for r in flat.itertuples(index=False)]
    return list(flat.columns), rows


def test_table_returns_the_page_table_and_records_index_columns_and_raw_values(fresh_tables):
    shown = _shown_tables()
    for name, df in shown.items():
        page = report.table(df, name)
        assert isinstance(page, report.FormattedTable)  # display(report.table(df, name)) shows it formatted
        assert page.columns == _oracle_rows(df)[0]  # the index is a plain first column, not an index
    recs = report.tables()
    assert list(recs) == list(shown)
    assert [recs[n]["position"] for n in shown] == [0, 1, 2, 3]
    for name, df in shown.items():
        columns, rows = _oracle_rows(df)
        assert recs[name]["columns"] == columns, name
        assert recs[name]["rows"] == rows, name
    assert recs["variants"]["columns"] == ["site", "ratio", "IoU / VIC", "IoU / opt."]
    assert recs["history"]["rows"][1] == [2, 0.5, None]
    # plain JSON (NaN is not JSON): the results record can carry it as it is
    assert _json.loads(_json.dumps(recs, allow_nan=False)) == recs
    assert isinstance(recs["split"]["rows"][0][1], int) and isinstance(recs["split"]["rows"][0][2], float)


def test_table_accepts_a_styler_and_a_series_and_a_rerun_keeps_its_place(fresh_tables):
    df = pd.DataFrame({"a": [1.0, 2.0]})
    report.table(df.style.format("{:.1f}"), "styled")
    report.table(pd.Series([3, 4], name="b"), "series")
    report.table(pd.DataFrame({"a": [9.0]}), "styled")  # the cell run again
    recs = report.tables()
    assert recs["styled"] == {"position": 0, "columns": ["a"], "rows": [[9.0]]}
    assert recs["series"]["columns"] == ["b"] and recs["series"]["rows"] == [[3], [4]]
    recs["styled"]["rows"].append([0])  # a copy: the registry is not changed through it
    assert report.tables()["styled"]["rows"] == [[9.0]]


@pytest.mark.parametrize("name", ["", "a b", "../x", "x.csv", "-lead", "é", "a" * 65, None])
def test_table_rejects_names_that_are_not_file_stems(fresh_tables, name):
    with pytest.raises(ValueError, match="file stem"):
        report.table(pd.DataFrame({"a": [1]}), name)


def test_table_rejects_what_is_not_a_table(fresh_tables):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        report.table([[1, 2]], "x")


def test_csv_files_round_trip_through_pandas_and_the_csv_module(fresh_tables, tmp_path):
    shown = _shown_tables()
    for name, df in shown.items():
        report.table(df, name)
    # as the book reads them: saved beside the results record (JSON with sorted keys), read back
    saved = report.save_tables(tmp_path / "results" / "ch.json")
    assert saved == tmp_path / "results" / "ch.tables.json"
    assert list(_json.loads(saved.read_text())) == sorted(shown)
    loaded = report.load_tables(tmp_path / "results" / "ch.json")
    assert [n for n, _ in loaded] == list(shown)
    paths = report.write_table_csvs(dict(loaded), tmp_path / "ch")
    assert [p.name for p in paths] == [f"{n}.csv" for n in shown]  # the chapter's order, not sorted
    assert not [p for p in (tmp_path / "ch").iterdir() if p.suffix != ".csv"]  # no temp file left
    for name, df in shown.items():
        columns, rows = _oracle_rows(df)
        with open(tmp_path / "ch" / f"{name}.csv", newline="", encoding="utf-8") as f:
            read = list(_csv.reader(f))
        assert read[0] == columns
        assert read[1:] == [["" if v is None else str(v) for v in r] for r in rows]
        back = pd.read_csv(tmp_path / "ch" / f"{name}.csv", keep_default_na=True)
        assert len(back) == len(df)
        for j, col in enumerate(columns):
            want = [r[j] for r in rows]
            got = back.iloc[:, j].tolist()
            if all(isinstance(v, (int, float)) or v is None for v in want):
                assert np.allclose(np.array(got, dtype=float), np.array([np.nan if v is None else v for v in want],
                                                                        dtype=float),
                                   equal_nan=True, rtol=0, atol=0), (name, col)
            else:
                assert got == want, (name, col)
    assert "ü, – and ρ" in (tmp_path / "ch" / "sue_table1.csv").read_text(encoding="utf-8")


def test_tables_zip_holds_the_same_csv_files_and_is_reproducible(fresh_tables, tmp_path):
    for name, df in _shown_tables().items():
        report.table(df, name)
    recs = report.tables()
    report.write_table_csvs(recs, tmp_path / "csv")
    z1, z2 = report.write_tables_zip(recs, tmp_path / "a.zip"), report.write_tables_zip(recs, tmp_path / "b.zip")
    assert z1.read_bytes() == z2.read_bytes()
    with _zipfile.ZipFile(z1) as zf:
        assert zf.namelist() == [f"{n}.csv" for n in _shown_tables()]
        for n in zf.namelist():
            assert zf.read(n) == (tmp_path / "csv" / n).read_bytes()


def test_ordered_tables_names_a_broken_table(tmp_path):
    with pytest.raises(ValueError, match="'t'.*row 0 has 1 cells, the header has 2"):
        report.write_table_csvs({"t": {"position": 0, "columns": ["a", "b"], "rows": [[1]]}}, tmp_path)
    with pytest.raises(ValueError, match="file stem"):
        report.write_table_csvs({"../evil": {"columns": [], "rows": []}}, tmp_path)
    with pytest.raises(ValueError, match="'columns'"):
        report.ordered_tables({"t": {"rows": []}})
    assert not list(tmp_path.iterdir())
    assert report.ordered_tables(None) == []


def test_load_tables_without_a_file_is_empty_and_a_broken_file_names_itself(tmp_path):
    assert report.load_tables(tmp_path / "x.json") == []
    (tmp_path / "x.tables.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.tables.json is not valid JSON"):
        report.load_tables(tmp_path / "x.json")


# --------------------------------------------------------------------------- tables on the page
def _sig_close(text: str, value: float, digits: int, top: float) -> bool:
    """An independent check of a fixed-precision column: the shown number is within half a unit of
    the last digit that ``digits`` significant digits of the column's largest magnitude keep."""
    unit = 10 ** (math.floor(math.log10(top)) - digits + 1)
    return abs(float(text.replace("−", "-")) - value) <= unit / 2 + 1e-12


def test_format_table_gives_each_float_column_one_precision_of_three_significant_digits():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"IoU": rng.uniform(0.01, 0.9, 20), "loss": rng.uniform(10, 900, 20),
                       "delta": rng.normal(0, 0.05, 20)})
    t = report.format_table(df)
    for j, col in enumerate(df.columns):
        top = float(np.abs(df[col]).max())
        texts = [r[j] for r in t.rows]
        assert len({len(x.split(".")[1]) if "." in x else 0 for x in texts}) == 1, (col, texts)  # one precision
        assert all(_sig_close(x, v, 3, top) for x, v in zip(texts, df[col])), (col, texts[:3])
    assert any(r[2].startswith("−") for r in t.rows) and not any(r[2].startswith("-") for r in t.rows)


def test_format_table_whole_numbers_p_values_empty_cells_and_text_are_shown_plainly():
    long = "a verdict sentence that is long enough to be cut by pandas' default max_colwidth of fifty chars"
    df = pd.DataFrame({"n kept": [3.0, 120.0, None], "p (Holm)": [0.00012345, 0.5, 0.049],
                       "note": [long, "", "x"], "ok": [True, False, True]})
    t = report.format_table(df)
    assert [r[0] for r in t.rows] == ["3", "120", "–"]
    assert [float(r[1]) for r in t.rows] == pytest.approx([0.00012, 0.5, 0.049])
    assert t.rows[0][2] == long and "…" not in t._repr_html_() and "..." not in t._repr_html_()
    assert [r[3] for r in t.rows] == ["yes", "no", "yes"]
    assert t.numeric == [True, True, False, False]


def test_format_table_drops_the_range_index_keeps_a_meaningful_one_and_puts_key_columns_first():
    df = pd.DataFrame({"ours": [0.5, 0.25], "verdict": ["reproduced", "reversed"], "claim": ["c1", "c2"]})
    t = report.format_table(df, key=["claim", "verdict"])
    assert t.columns == ["claim", "verdict", "ours"]
    html = t._repr_html_()
    assert html.count("<th ") == 3 and ">0<" not in html  # no index header, no 0..n-1 cells
    indexed = report.format_table(df.set_index("claim"), key=["verdict"])
    assert indexed.columns == ["verdict", "claim", "ours"] and indexed.rows[0] == ["reproduced", "c1", "0.500"]


def test_format_table_formats_rename_show_rows_and_fold():
    df = pd.DataFrame({"ecg_snr_db": [6.0, 12.0, 24.0], "auroc": [0.61, 0.7, 0.8], "extra": [1, 2, 3]})
    t = report.format_table(df, rename={"ecg_snr_db": "SNR (dB)"}, formats={"auroc": 2, "SNR (dB)": "{:.0f} dB"},
                            show=["SNR (dB)", "auroc"], max_rows=2, fold="All SNR levels", name="snr")
    assert t.columns == ["SNR (dB)", "auroc"] and t.rows == [["6 dB", "0.61"], ["12 dB", "0.70"]]
    assert "2 of 3 rows shown" in t.note and "extra" in t.note
    html = t._repr_html_()
    assert html.startswith('<details class="uqxai-fold"><summary>All SNR levels</summary>')
    assert 'href="#uqxai-csv-snr"' in html
    assert "SNR (dB)" in repr(t)
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the table"):
        report.format_table(df, key=["nope"])
    with pytest.raises(ValueError, match="format 'bad'"):
        report.format_table(df, formats={"auroc": "bad"})


def test_table_registers_raw_values_under_the_plain_names_the_page_shows(fresh_tables):
    df = pd.DataFrame({"k_general": [3, 4], "score": [0.123456, 0.5]})
    page = report.table(df, "t", rename={"k_general": "models in the general set"}, max_rows=1)
    rec = report.tables()["t"]
    assert rec["columns"] == ["models in the general set", "score"] and rec["rows"] == [[3, 0.123456], [4, 0.5]]
    assert page.rows == [["3", "0.123"]]


def test_row_numbers_are_not_shown_but_a_named_integer_index_is(fresh_tables):
    df = pd.DataFrame({"seed": [3, 1, 2], "effect": [0.3, 0.1, 0.2]})
    left = df.sort_values("effect").head(2)  # index [1, 2]: what is left of the row numbers
    assert report.format_table(left).columns == ["seed", "effect"]
    named = df.set_index("seed")
    assert report.format_table(named).columns == ["seed", "effect"] and report.format_table(named).rows[0][0] == "3"


# ------------------------------------------------------------------ the verdict ladder box (issue 22)
def _ladder_record():
    from uqxai_lib import verdicts

    prim = {"effect": 0.186, "ci95": [0.055, 0.315], "verdict": "higher", "n_correct": 30, "n_misclassified": 8}
    rungs = [verdicts.direction(prim, "higher"),
             verdicts.sanity({"outcome": "failed", "reason": "ρ 0.85 > 0.5", "threshold": 0.5,
                              "steps": [{"randomised": "fc", "median_rho": 0.85, "n_constant": 0, "n": 40}]}),
             verdicts.within_class({"verdict": "undefined", "reason": "2 misclassified in classes holding both",
                                    "ci95": [None, None]}, "higher"),
             verdicts.across_seeds(stats.seed_summary([0.2, -0.1, 0.05, 0.1, -0.05]), "higher"),
             verdicts.paper_effect(prim, 0.117)]
    claim = {"text": "SUE is higher for correct predictions.", "expected": "higher", "theirs": "0.93 vs 0.81",
             "source": "seoni2024sue"}
    lad = verdicts.ladder(claim, verdicts.data_line("SyntheticECG", "FANTASIA + INCART"), rungs)
    return {"primary": prim, "claim": claim, "verdict": lad}


def test_ladder_box_shows_claim_data_headline_and_one_line_per_rung():
    rec = _ladder_record()
    box = report.verdict_box(rec, cite=False)
    lines = box.splitlines()
    assert lines[0] == ":::{admonition} Verdict across training seeds: not reproduced"
    assert "uqxai-verdict-not-reproduced" in lines[1]
    assert "**Data**: embedded synthetic phantom (SyntheticECG); the paper used FANTASIA + INCART" in box
    assert "**The paper's claim** (seoni2024sue): SUE is higher for correct predictions." in box
    rung_lines = [ln for ln in lines if ln.startswith("- **")]
    assert len(rung_lines) == len(rec["verdict"]["rungs"]) == 5
    assert rung_lines[0].startswith("- **This run**: reproduced — +0.186 (95 % interval 0.055 to 0.315)")
    assert "- **Sanity check (cascading randomisation)**: failed" in box and "0.85" in box
    # an undefined rung says why
    within = next(ln for ln in rung_lines if "Within each predicted class" in ln)
    assert "undefined" in within and "2 misclassified in classes holding both" in within
    # the paper's effect rung: interval 0.055-0.315 holds 0.117 and is wider than it
    assert "- **Against the paper's effect**: underpowered" in box
    assert lines[-1] == ":::"


def test_records_without_a_ladder_keep_the_single_rung_box():
    rec = _ladder_record()
    old = {k: v for k, v in rec.items() if k != "verdict"}
    box = report.verdict_box(old, cite=False)
    assert box.splitlines()[0] == ":::{admonition} Verdict: reproduced"
    assert "**Ours** (this build)" in box


def test_verdict_table_headline_is_the_across_seed_outcome_with_the_single_run_beside_it():
    rec = _ladder_record()
    table = report.verdict_table({"ecg_sue": rec, "mri": None}, cite=False).splitlines()
    assert "synthetic phantom" in table[0]
    assert "**not reproduced across seeds (this run: reproduced)**" in table[2]

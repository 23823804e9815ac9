"""Cheap checks of the book configuration: toc ↔ notebooks, offline assets, no executor, ext helpers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import book_extension

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTER_ORDER = ["primer_gradcam", "own_model", "ecg_sue", "mri_mc_dropout", "derm_vic", "robustness"]
PAGES = ["book/methods", "book/performance", "book/reproducibility", "book/references"]


def _toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _ext():
    return book_extension()


def test_toc_lists_intro_then_the_chapters_in_order_then_the_pages():
    files = _toc_files()
    assert files[0] == "book/intro"
    n = len(CHAPTER_ORDER)
    assert files[1:n + 1] == [f"book/_executed/{c}" for c in CHAPTER_ORDER]
    # chapters built on the studies (e.g. the cross-study chapter) may follow them, then the pages
    rest = files[n + 1:]
    extra = [f for f in rest if f.startswith("book/_executed/")]
    assert rest[: len(extra)] == extra and rest[len(extra):] == PAGES


def test_every_notebook_source_is_a_chapter_in_the_toc_and_back():
    sources = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))
    chapters = sorted(f.rsplit("/", 1)[1] for f in _toc_files() if f.startswith("book/_executed/"))
    missing_in_toc = set(sources) - set(chapters)
    assert not missing_in_toc, f"notebooks/*.py not in _toc.yml: {sorted(missing_in_toc)}"
    missing_sources = set(chapters) - set(sources)
    assert not missing_sources, f"_toc.yml chapters without notebooks/NAME.py: {sorted(missing_sources)}"


def test_every_book_page_in_the_toc_exists():
    for f in _toc_files():
        if not f.startswith("book/_executed/"):
            assert (ROOT / f"{f}.md").is_file(), f"{f}.md is listed in _toc.yml but missing"


def test_executed_notebooks_and_vendor_files_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "book/_executed/" in ignored and "book/_static/vendor/" in ignored


def test_jupyter_book_never_executes_and_only_builds_the_toc():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["sphinx"]["config"]["nb_execution_mode"] == "off"
    assert CONFIG["only_build_toc_files"] is True
    for pattern in ("notebooks", ".venv", "tests", "uqxai_lib", "_build", "book/_static"):
        assert pattern in CONFIG["exclude_patterns"], f"{pattern} should be excluded from the book"


def test_config_names_no_remote_url_and_no_launch_service():
    text = (ROOT / "_config.yml").read_text()
    assert not re.search(r"https?://|//cdn|unpkg|jsdelivr", text), "_config.yml must not name remote URLs"
    launch = CONFIG["launch_buttons"]
    assert launch["thebe"] is False
    assert not any(launch[k] for k in ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url"))


def test_widget_and_math_scripts_are_local_files_in_the_static_path():
    sc = CONFIG["sphinx"]["config"]
    assert sc["html_static_path"] == ["book/_static"]
    scripts = list(sc["nb_ipywidgets_js"])
    assert scripts == ["vendor/require.js", "uqxai-widgets-assets.js", "vendor/html-manager/embed-amd.js"]
    assert (ROOT / "book" / "_static" / "uqxai-widgets-assets.js").is_file()
    assert sc["mathjax_path"] == "vendor/mathjax/tex-chtml.js"
    vendor_script = (ROOT / "book" / "tools" / "vendor_assets.sh").read_text()
    # every vendored path the config names is produced by the vendoring script
    for produced in ("require.js", "html-manager/", "mathjax"):
        assert produced in vendor_script


def test_vendored_widget_manager_matches_installed_ipywidgets():
    import ipywidgets

    script = (ROOT / "book" / "tools" / "vendor_assets.sh").read_text()
    hm = re.search(r"HTML_MANAGER_VERSION=(\d+)\.(\d+)\.(\d+)", script)
    assert hm, "vendor_assets.sh must pin HTML_MANAGER_VERSION"
    # ipywidgets 8 ⇔ @jupyter-widgets/html-manager 1.0.x (widget protocol 2, controls 2.0.0)
    assert int(ipywidgets.__version__.split(".")[0]) == 8
    assert hm.group(1, 2) == ("1", "0")


def test_makefile_vendors_assets_before_book_and_test():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^book:.*\bassets\b", make, re.M)
    assert re.search(r"^test:.*\bassets\b.*\bbrowser\b", make, re.M)


def test_every_reference_key_cited_in_the_pages_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite[:\w]*\}`([^`]+)`", page.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"a": 1, "b": 0.5}, [("", ["quantity", "value"], [["a", "1"], ["b", "0.5"]])]),
        ([{"name": "x", "ratio": 1.23456}], [("", ["name", "ratio"], [["x", "1.235"]])]),
        ({"n1": {"seed": 0, "ok": True}}, [("", ["name", "seed", "ok"], [["n1", "0", "yes"]])]),
        (
            {"device": "cpu", "measures": [{"name": "mc", "ratio": 2.0}]},
            [("", ["quantity", "value"], [["device", "cpu"]]), ("measures", ["name", "ratio"], [["mc", "2"]])],
        ),
    ],
)
def test_json_tables_turns_any_results_json_into_tables(data, expected):
    assert _ext().json_tables(data) == expected


def test_json_table_directive_builds_with_and_without_the_file(tmp_path):
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    src.mkdir()
    (src / "data.json").write_text('{"wall_s": 1.5, "runs": [{"name": "a", "seed": 0}]}')
    (src / "conf.py").write_text(
        f"import sys; sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\nextensions = ['uqxai_book']\n"
    )
    (src / "index.rst").write_text(
        "T\n=\n\n.. uqxai-json-table:: data.json\n\n.. uqxai-json-table:: nope.json\n   :missing: run make book\n"
    )
    out = tmp_path / "out"
    app = Sphinx(str(src), str(src), str(out), str(tmp_path / "doctrees"), "html",
                 warningiserror=True, status=None)
    app.build()
    html = (out / "index.html").read_text()
    assert "wall_s" in html and "1.5" in html and "<td><p>a</p></td>" in html.replace("\n", "")
    assert "run make book" in html


def _study_record(lo: float, hi: float) -> dict:
    return {"primary": {"name": "SUE correct − misclassified", "effect": (lo + hi) / 2, "ci95": [lo, hi],
                        "p": 0.01, "verdict": "higher"},
            "claim": {"text": "SUE separates correct from wrong predictions.", "expected": "higher",
                      "theirs": "0.93 vs 0.81", "source": "nokey"}}


def _tiny_book(tmp_path, records: dict, *, extra_results: dict | None = None, index_extra: str = "",
               conf_extra: str = "", extra_cells: list | None = None, kept_records: dict | None = None) -> Path:
    """A Sphinx project laid out like the book: executed notebooks and results records, built with -W."""
    import json

    import nbformat

    src = tmp_path / "src"
    (src / "book" / "_executed").mkdir(parents=True)
    (src / "_build" / "results").mkdir(parents=True)
    for name, rec in records.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell(f"# Chapter {name}\n\n## Overview\n\nSome prose."),
            nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print('shown')", metadata={"tags": ["show-input"]}),
            nbformat.v4.new_code_cell("plot_everything()"),
        ] + list(extra_cells or [])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(src / "book" / "_executed" / f"{name}.ipynb"))
        if rec is not None:
            (src / "_build" / "results" / f"{name}.json").write_text(json.dumps(rec))
    for fname, data in (extra_results or {}).items():
        (src / "_build" / "results" / fname).write_text(json.dumps(data))
    for fname, data in (kept_records or {}).items():
        (src / "book" / "records").mkdir(parents=True, exist_ok=True)
        (src / "book" / "records" / fname).write_text(json.dumps(data))
    (src / "conf.py").write_text(
        f"import sys; sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        "extensions = ['myst_nb', 'uqxai_book']\nnb_execution_mode = 'off'\n"
        "myst_enable_extensions = ['colon_fence', 'dollarmath']\nexclude_patterns = ['_build']\n" + conf_extra
    )
    toc = "\n".join(f"book/_executed/{n}" for n in records)
    (src / "index.md").write_text(f"# Intro\n\n```{{uqxai-verdict-table}}\n:chapters: {','.join(records)}\n```\n\n"
                                  f"```{{toctree}}\n{toc}\n```\n" + index_extra)
    out = tmp_path / "out"
    # a separate process: docutils keeps node classes registered across Sphinx apps in one process
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_verdict_boxes_are_inserted_after_each_chapter_title_and_tabled_on_the_intro(tmp_path):
    out = _tiny_book(tmp_path, {"ecg_sue": _study_record(0.05, 0.2), "mri_mc_dropout": _study_record(-0.3, -0.1),
                                "derm_vic": None})
    ecg = (out / "book" / "_executed" / "ecg_sue.html").read_text()
    h1, box, overview = ecg.index("<h1"), ecg.index("uqxai-verdict"), ecg.index("Overview")
    assert h1 < box < overview, "the verdict box sits between the title and the first section"
    assert "Verdict: reproduced" in ecg and "0.93 vs 0.81" in ecg and "0.05 to 0.2" in ecg
    assert "Verdict: reversed" in (out / "book" / "_executed" / "mri_mc_dropout.html").read_text()
    derm = (out / "book" / "_executed" / "derm_vic.html").read_text()
    assert "Verdict: not yet computed" in derm
    intro = (out / "index.html").read_text()
    assert intro.count("<tr") == 4  # header + one row per chapter
    assert "reproduced" in intro and "reversed" in intro and "not yet computed" in intro
    assert 'href="book/_executed/ecg_sue.html"' in intro


def test_chapter_code_is_folded_unless_tagged_show_input(tmp_path):
    out = _tiny_book(tmp_path, {"ecg_sue": _study_record(0.05, 0.2)})
    html = (out / "book" / "_executed" / "ecg_sue.html").read_text()
    assert html.count("tag_hide-input") == 2  # the parameters cell and the untagged cell
    assert "tag_show-input" in html


def test_runner_folds_parameter_cells_and_hides_build_machine_paths(tmp_path):
    import nbformat

    from uqxai_lib import run

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f'results_path = "{repo}/_build/results/x.json"\ndata_dir = "{repo}"',
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    run.fold_parameter_cells(nb, repo / "notebooks", root=repo)
    assert nb.cells[0].metadata.tags == ["parameters", "hide-input"]
    assert nb.cells[1].metadata.tags == ["injected-parameters", "hide-input"]
    assert str(repo) not in nb.cells[1].source
    assert 'results_path = "../_build/results/x.json"' in nb.cells[1].source and 'data_dir = ".."' in nb.cells[1].source
    assert nb.cells[2].metadata.get("tags", []) == []
    run.fold_parameter_cells(nb, repo / "notebooks", root=repo)  # idempotent
    assert nb.cells[0].metadata.tags == ["parameters", "hide-input"]


def test_config_removes_stderr_and_renders_markdown_outputs_as_myst():
    sc = CONFIG["sphinx"]["config"]
    assert sc["nb_output_stderr"] == "remove"
    assert sc["nb_render_markdown_format"] == "myst"
    assert "uqxai.css" in sc["html_css_files"] and (ROOT / "book" / "_static" / "uqxai.css").is_file()


def test_performance_tables_come_from_the_benchmark_files(tmp_path):
    def bench(config, date, ratio):
        return {"config": config, "quick": config != "full",
                "machine": {"cpu": "TestCPU 9000", "cpu_cores": 2, "torch_threads": 1, "date_utc": date},
                "measures": [{"name": "mc_dropout_vs_floor", "ours_s": 1.0, "baseline_s": ratio, "ratio": ratio,
                              "target": "≥ 0.91", "met": ratio >= 0.91 if config == "full" else None}]}

    files = {"bench.json": bench("quick", "2026-12-01 10:00", 0.5), "bench_quick_2.json": bench("quick", "2026-12-01 11:00", 0.7),
             "bench_full_old.json": bench("full", "2026-11-01 10:00", 0.8),
             "bench_full.json": bench("full", "2026-11-20 10:00", 1.03)}
    index = "\n## Full\n\n```{uqxai-bench}\n:show: full\n```\n\n## Smoke\n\n```{uqxai-bench}\n:show: smoke\n```\n"
    out = _tiny_book(tmp_path, {"ecg_sue": None}, extra_results=files, index_extra=index)
    html = (out / "index.html").read_text()
    full = html[html.index('id="full"'):html.index('id="smoke"')]
    smoke = html[html.index('id="smoke"'):]
    assert "TestCPU 9000" in full and "2026-11-20 10:00" in full  # the latest full run, with its machine
    assert "1.03" in full and ">yes<" in full.replace("<p>", "").replace("</p>", "") and "0.8<" not in full
    assert "smoke check" in smoke and "0.6" in smoke and "0.5 to 0.7" in smoke and ">2<" in smoke.replace("<p>", "").replace("</p>", "")


def test_performance_page_shows_the_spread_a_kept_full_run_and_the_chapter_sweep_or_says_none(tmp_path):
    def full(date, ratio, **extra):
        return {"config": "full", "quick": False, "machine": {"cpu": "KeptCPU", "cpu_cores": 16, "date_utc": date},
                "measures": [{"name": "mc_dropout_vs_floor", "ours_s": 1.0, "baseline_s": ratio, "ratio": ratio,
                              "ratio_range": [ratio - 0.1, ratio + 0.2], "repeats": 5, "target": "≥ 0.91",
                              "met": True}], **extra}

    sweep = {"name": "sweep_chapter_tasks", "ratio": 1.7, "ours_s": 80.0, "baseline_s": 136.0, "tasks": 4,
             "workers": 2}
    index = "\n## Full\n\n```{uqxai-bench}\n:show: full\n```\n\n## Sweep\n\n```{uqxai-bench}\n:show: sweep\n```\n"
    kept = {"bench_full.json": full("2026-12-05 09:00", 1.25)}
    out = _tiny_book(tmp_path, {"ecg_sue": None}, kept_records=kept, index_extra=index,
                     extra_results={"bench.json": {**full("2026-12-01 09:00", 0.95),
                                                   "measures": full("x", 0.95)["measures"] + [sweep]}})
    html = (out / "index.html").read_text()
    part = html[html.index('id="full"'):html.index('id="sweep"')]
    assert "2026-12-05 09:00 UTC" in part and "KeptCPU" in part and "1.25" in part  # the newer, kept run
    assert "1.15 to 1.45 (5 repeats)" in part  # its spread
    sweep_part = html[html.index('id="sweep"'):]
    assert "1.7" in sweep_part and "tasks: 4" in sweep_part and "not measured" not in sweep_part
    empty = _tiny_book(tmp_path / "none", {"ecg_sue": None}, index_extra=index)
    html = (empty / "index.html").read_text()
    assert "No full benchmark run is recorded" in html and "not measured in this build" in html


def test_run_times_come_from_provenance_and_kept_records_and_chapters_quote_them(tmp_path):
    import nbformat

    prov = {"notebooks": {"ecg_sue": {"notebook": "ecg_sue", "profile": "tiny", "status": "ok", "wall_time_s": 34.4,
                                      "device_name": "cpu (x86_64, 2 cores, 1 torch threads)",
                                      "finished_utc": "2026-12-07T03:00:00+00:00", "git_commit": "a" * 40}}}
    kept = {"run_times.json": {"profiles": {"smoke": {"ecg_sue": {"status": "ok", "wall_time_s": 400.0,
                                                                  "device_name": "cpu (EPYC, 2 cores)",
                                                                  "finished_utc": "2026-12-06T10:00:00+00:00"}}}}}
    cells = [nbformat.v4.new_markdown_cell("**Time to run:** {uqxai-runtime}`ecg_sue`."),
             nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
                 "display_data", data={"text/html": '<p class="uqxai-table-note">2 of 9 rows shown '
                                                     '(<a class="uqxai-csv" href="#uqxai-csv-sue_table">'
                                                     'sue_table.csv</a>)</p>',
                                       "text/plain": "t"})])]
    index = "\n## Times\n\n```{uqxai-run-times}\n```\n"
    out = _tiny_book(tmp_path, {"ecg_sue": None}, extra_results={"provenance.json": prov}, kept_records=kept,
                     index_extra=index, extra_cells=cells)
    html = (out / "index.html").read_text().replace("\xa0", " ").replace("&nbsp;", " ")
    times = re.sub(r"<[^>]+>", " ", html[html.index('id="times"'):])
    times = re.sub(r"\s+", " ", times)
    assert "34 s" in times and "6 min 40 s" in times and "not recorded" in times  # tiny, smoke, full
    assert "tiny (this build, 2026-12-07)" in times and "smoke (recorded, 2026-12-06)" in times
    assert "cpu (EPYC, 2 cores)" in times and "full : no run recorded" in times.replace("**", "")
    page = (out / "book" / "_executed" / "ecg_sue.html").read_text().replace("\xa0", " ").replace("&nbsp;", " ")
    assert "6 min 40 s with the smoke profile on cpu (EPYC, 2 cores); tiny: 34 s; full: not recorded" in page
    assert 'href="../../_results/ecg_sue/sue_table.csv"' in page and "#uqxai-csv-" not in page


def test_verdict_box_shows_the_across_seed_summary_of_robustness_json(tmp_path):
    rob = {"ecg_sue": {"seeds": [0, 1, 2, 3, 4], "effects": [0.1, 0.12, 0.08, 0.11, 0.09],
                       "ci95_per_seed": [[0.0, 0.2]] * 5, "mean": 0.1, "ci95": [0.08, 0.12],
                       "sign_agreement": "5/5", "threads": {"1": 0.1, "2": 0.1}}}
    out = _tiny_book(tmp_path, {"ecg_sue": _study_record(0.05, 0.2)}, extra_results={"robustness.json": rob})
    html = (out / "book" / "_executed" / "ecg_sue.html").read_text()
    assert "over 5 training seeds" in html and "0.08 to 0.12" in html and "5/5 seeds agree" in html
    assert "Across seeds" in (out / "index.html").read_text()


def _tables(n: int) -> dict:
    """``n`` registered tables as report.save_tables writes them (through report.table)."""
    import pandas as pd

    from uqxai_lib import report

    report.clear_tables()
    for i in range(n):
        report.table(pd.DataFrame({"kind": ["Gaussian", "EMG, baseline"], "SUE": [0.5 + i, float("nan")]}),
                     f"table_{i}")
    out = report.tables()
    report.clear_tables()
    return out


def test_chapter_tables_are_written_as_csv_and_offered_in_the_download_menu(tmp_path):
    import csv
    import html as html_lib
    import zipfile

    book_theme = ("html_theme = 'sphinx_book_theme'\n"
                  "html_theme_options = {'use_download_button': True, 'use_fullscreen_button': False}\n")
    records = {"ecg_sue": _study_record(0.05, 0.2), "derm_vic": _study_record(0.05, 0.2),
               "mri_mc_dropout": _study_record(0.1, 0.2)}
    # as the notebooks save them (report.save_tables beside the results record)
    saved = {"ecg_sue.tables.json": _tables(2), "derm_vic.tables.json": _tables(8)}
    out = _tiny_book(tmp_path, records, extra_results=saved, conf_extra=book_theme)
    results = out / "_results"

    def links(page):
        text = (out / "book" / "_executed" / f"{page}.html").read_text()
        return [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+)"[^>]*class="btn[^"]*dropdown-item', text)]

    ecg_links = links("ecg_sue")
    assert "../../_results/ecg_sue/table_0.csv" in ecg_links and "../../_results/ecg_sue/table_1.csv" in ecg_links
    assert "../../_results/ecg_sue.json" in ecg_links
    for h in ecg_links:  # every menu link resolves to a file of the built book
        if not h.startswith(("http", "#")):
            assert (out / "book" / "_executed" / h).resolve().is_file(), h
    assert (results / "ecg_sue" / "table_0.csv").stat().st_mode & 0o044 == 0o044  # readable by a web server
    with open(results / "ecg_sue" / "table_0.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["kind", "SUE"], ["Gaussian", "0.5"], ["EMG, baseline", ""]]
    derm_links = links("derm_vic")
    assert "../../_results/derm_vic/derm_vic_tables.zip" in derm_links  # many tables: one zip entry
    assert not [h for h in derm_links if h.endswith(".csv")]
    with zipfile.ZipFile(results / "derm_vic" / "derm_vic_tables.zip") as zf:
        assert zf.namelist() == [f"table_{i}.csv" for i in range(8)]
    assert sorted(p.name for p in (results / "derm_vic").glob("*.csv")) == sorted(f"table_{i}.csv" for i in range(8))
    # a chapter without saved tables: no CSV entry, no folder
    assert not [h for h in links("mri_mc_dropout") if "csv" in h or "zip" in h]
    assert not (results / "mri_mc_dropout").exists()


def test_search_page_gets_the_pages_text_and_the_offline_shim(tmp_path):
    book_theme = "html_theme = 'sphinx_book_theme'\n"
    out = _tiny_book(tmp_path, {"ecg_sue": _study_record(0.05, 0.2), "derm_vic": None}, conf_extra=book_theme)
    search = (out / "search.html").read_text()
    assert '_static/uqxai_search_text.js' in search and '_static/uqxai-search-offline.js' in search
    chapter = (out / "book" / "_executed" / "ecg_sue.html").read_text()
    assert "uqxai_search_text.js" not in chapter and "uqxai-search-offline.js" not in chapter
    assert (out / "_static" / "uqxai-search-offline.js").is_file()
    js = (out / "_static" / "uqxai_search_text.js").read_text(encoding="utf-8")
    assert js.startswith("window.UQXAI_SEARCH_TEXT = ") and js.rstrip().endswith(";")
    texts = json.loads(js[len("window.UQXAI_SEARCH_TEXT = "):].rstrip().rstrip(";"))
    assert {"index", "book/_executed/ecg_sue", "book/_executed/derm_vic"} <= set(texts)
    ecg = texts["book/_executed/ecg_sue"]
    assert ecg.startswith('<div role="main">') and "Some prose." in ecg and "Verdict: reproduced" in ecg
    assert 'id="overview"' in ecg  # anchored hits find their section
    assert "<script" not in js and "headerlink" not in js and "¶" not in ecg and "#" not in ecg.replace('id="', "")
    assert "plot_everything()" not in ecg  # code cells' source (folded on the page) is left out
    assert (out / "_static" / "uqxai_search_text.js").stat().st_mode & 0o044 == 0o044  # a web server may read it
    page_bytes = len(chapter.encode())
    assert len(ecg.encode()) < page_bytes / 3, "the stored text should be much smaller than the page"

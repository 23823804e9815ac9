"""Cheap checks of the book configuration: toc ↔ notebooks, offline assets, no executor, ext helpers."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTER_ORDER = ["primer_gradcam", "ecg_sue", "mri_mc_dropout", "derm_vic", "robustness"]
PAGES = ["book/methods", "book/performance", "book/reproducibility", "book/references"]


def _toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _ext():
    spec = importlib.util.spec_from_file_location("uqxai_book", ROOT / "book" / "_ext" / "uqxai_book.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_toc_lists_intro_then_the_chapters_in_order_then_the_pages():
    files = _toc_files()
    assert files[0] == "book/intro"
    n = len(CHAPTER_ORDER)
    assert files[1:n + 1] == [f"book/_executed/{c}" for c in CHAPTER_ORDER]
    assert files[n + 1:] == PAGES


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

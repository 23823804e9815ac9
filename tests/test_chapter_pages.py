"""What a chapter page shows besides its content: no timing or "results ->" lines and no build-machine
paths printed by the notebooks (timing stays on the terminal that runs papermill: the runner reports
each notebook's wall time), and linked citations with a References section.

The notebooks are checked statically here (cheap); ``test_notebooks.py`` applies the same page
checks (``pages``) to the tiny book it builds."""
from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest
from pages import citation_problems, log_problems, output_lines, page_checker

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
#: names whose value is a path of the build machine (or its timing clock)
PATH_NAMES = {"results_path", "root", "data_dir", "sweep_dir", "notebooks_dir", "profiles_dir"}
SHOWN = {"print", "Markdown", "display"}


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]


def _shown_names(tree: ast.AST) -> list[tuple[str, str]]:
    """(shown by, name) for every Name read inside a print / Markdown / display call."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SHOWN:
            for arg in ast.walk(node):
                if isinstance(arg, ast.Name) and arg is not node.func:
                    out.append((node.func.id, arg.id))
    return out


def _yields_path(expr: ast.AST) -> bool:
    """Whether the value of ``expr`` contains one of :data:`PATH_NAMES` (not merely tests it)."""
    if isinstance(expr, ast.Name):
        return expr.id in PATH_NAMES
    if isinstance(expr, ast.IfExp):
        return _yields_path(expr.body) or _yields_path(expr.orelse)
    if isinstance(expr, ast.BinOp):
        return _yields_path(expr.left) or _yields_path(expr.right)
    if isinstance(expr, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) and _yields_path(v.value) for v in expr.values)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in ("str", "repr", "Path"):
        return any(_yields_path(a) for a in expr.args)
    if isinstance(expr, ast.Attribute):
        return _yields_path(expr.value)
    return False


def _root_shown_as_text(tree: ast.AST) -> bool:
    """A path name's value inside a print / Markdown / display call (``root if root else ...`` is fine)."""
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SHOWN
               and any(_yields_path(a) for a in node.args) for node in ast.walk(tree))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prints_no_timing_and_no_machine_paths(nb):
    problems = []
    for i, src in enumerate(_code_cells(nb)):
        if "perf_counter" in src or "time.time(" in src:
            problems.append(f"code cell {i} times itself (the runner reports wall time on the terminal)")
        if "results ->" in src:
            problems.append(f"code cell {i} prints a 'results ->' line")
        if "echo=print" in src.replace(" ", ""):
            problems.append(f"code cell {i} sends progress lines to stdout (the page); leave them on stderr")
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        if _root_shown_as_text(tree):
            problems.append(f"code cell {i} shows a path of the build machine "
                            f"({sorted({n for _, n in _shown_names(tree) if n in PATH_NAMES})})")
    assert not problems, f"{nb.name}: {problems}"


def test_root_check_tells_a_path_from_a_test_of_it():
    assert _root_shown_as_text(ast.parse("print(f'data: {root}')"))
    assert _root_shown_as_text(ast.parse("display(Markdown('from ' + str(root)))"))
    assert _root_shown_as_text(ast.parse("print(f'results -> {results_path}')"))
    assert not _root_shown_as_text(ast.parse("print(f\"data: {'real' if root else 'synthetic'}\")"))
    assert not _root_shown_as_text(ast.parse("x = str(root)"))


def _page(outputs: list[str], body: str = "") -> str:
    cells = "".join(f'<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi">'
                    f'<pre><span></span>{o}</pre></div></div>' for o in outputs)
    return f"<html><body><article class='bd-article'><section id='t'><h1>T</h1>{body}{cells}</section></article></body></html>"


def test_log_problems_flag_timing_and_results_lines_only():
    page = _page(["device: cpu; data: synthetic phantom (embedded)",
                  "Grad-CAM at layer4.1: 20 passes x 60 images: 12.3 s",
                  "results -&gt; /home/u/uqxai/_build/results/mri.json; notebook time 40 s",
                  "best epoch 3 of 5 (from cache)"])
    assert output_lines(page)[0] == "device: cpu; data: synthetic phantom (embedded)"
    problems = log_problems(page)
    assert len(problems) == 3, problems  # the timing line, and the results line (also a timing line)
    assert any("12.3 s" in p for p in problems) and any("results ->" in p for p in problems)
    assert log_problems(_page(["mean SUE 0.91 (95% interval 0.88, 0.93)", "4 passes"])) == []
    # prose outside the outputs is not a log
    assert log_problems(_page([], body="<p>a window of 2 s</p>")) == []


CITE = ('<span class="bibtex-citation" id="id1">[<a class="reference internal" href="{href}" '
        'title="Gal and Ghahramani">GG16</a>]</span>')
REFS = ('<section id="references"><h2>References</h2><div class="docutils container" id="id3">'
        '<div role="list" class="citation-list"><div class="citation" id="id8" role="doc-biblioentry">'
        '<span class="label">[<a role="doc-backlink" href="#id1">GG16</a>]</span><p>Gal, Ghahramani.</p>'
        '</div></div></div></section>')


def test_citation_problems_need_linked_cites_and_a_local_references_list():
    assert citation_problems(_page([], body=f"<p>MC dropout {CITE.format(href='#id8')}</p>{REFS}")) == []
    assert citation_problems(_page([], body="<p>Gal &amp; Ghahramani (2016)</p>")) == \
        ["no {cite} citation on the page"]
    assert citation_problems(_page([], body=f"<p>{CITE.format(href='#id8')}</p>")) == ["no References section"]
    other = citation_problems(_page([], body=f"<p>{CITE.format(href='../references.html#id8')}</p>{REFS}"))
    assert len(other) == 1 and "not to this page's References" in other[0]


# --------------------------------------------------------------------------- the page checker's verdicts
def _checker():
    return page_checker()


def _measured(**kw):
    base = {"url": "u", "ready": True, "screens": 3.0, "column": 676.0, "images": [], "tables": [], "reprs": []}
    return {**base, **kw}


def test_page_checker_flags_squashed_figures_wide_tables_reprs_and_long_pages():
    check = _checker()
    true = {"natural_w": 1400, "natural_h": 600, "shown_w": 676.0, "shown_h": 676.0 * 600 / 1400,
            "section": "a", "src": ""}
    squashed = {**true, "shown_h": 600.0}  # the width capped by max-width, the height left at its inline px
    fits = {"width": 676.0, "column": 676.0, "section": "t", "head": ""}
    ok = check.page_problems(_measured(images=[true], tables=[fits]))
    assert ok == []
    too_wide = {"width": 1047.0, "column": 688.0, "section": "Variants", "head": "site"}
    bad = check.page_problems(_measured(images=[true, squashed], tables=[too_wide],
                                        reprs=["torch._C.Generator at 0x7f50818519d0"], screens=25.0))
    assert len(bad) == 4
    assert "aspect off by" in bad[0] and "1047 px wide in a 688 px column" in bad[1]
    assert "Generator" in bad[2] and "25.0 screens" in bad[3]
    # the tiny book: height reported, not judged
    assert check.page_problems(_measured(screens=25.0), max_screens=None) == []
    # one CSS pixel of rounding is not a squashed figure, even on a small image
    small = {"natural_w": 30, "natural_h": 20, "shown_w": 30.0, "shown_h": 20.6, "section": "", "src": ""}
    assert not check.squashed(small)


def test_page_checker_finds_object_reprs_and_lists_pages_in_toc_order(tmp_path):
    check = _checker()
    assert check.REPR.search("<torch._C.Generator at 0x7f50818519d0>")
    assert not check.REPR.search("a shift of 0x10 at 0 dB")
    html = tmp_path / "_build" / "html"
    for doc in ("book/intro", "book/_executed/b", "book/_executed/a", "book/methods"):
        (html / f"{doc}.html").parent.mkdir(parents=True, exist_ok=True)
        (html / f"{doc}.html").write_text("<html></html>")
    (tmp_path / "_toc.yml").write_text("root: book/intro\nparts:\n  - chapters:\n      - file: book/_executed/b\n"
                                       "      - file: book/_executed/a\n      - file: book/methods\n"
                                       "      - file: book/gone\n")
    assert check.book_pages(html) == ["book/intro", "book/_executed/b", "book/_executed/a", "book/methods"]
    assert check.book_pages(html, ["a"]) == ["book/_executed/a"]
    with pytest.raises(ValueError, match=r"no page \['zzz'\]"):
        check.book_pages(html, ["zzz"])
    assert [check.is_chapter(d) for d in ("book/_executed/a", "book/methods")] == [True, False]

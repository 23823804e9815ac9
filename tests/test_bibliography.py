"""Citations: every key the book cites (chapter notebooks, pages, claim sources, the literature
table) is an entry of ``book/references.bib``; chapters cite with ``{cite}`` roles and end with a
References section generated from the bibliography; no plain-text author-year citations in prose."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest
import yaml
from pybtex.database import parse_file, parse_string

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "book" / "references.bib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
LITERATURE = ROOT / "uqxai_lib" / "studies" / "literature.yaml"
#: ``{cite}``, ``{cite:p}``, ``{cite:t}``, ... roles and their comma-separated keys
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
#: a ``{bibliography}`` block that lists only what its page cites
LOCAL_BIBLIOGRAPHY = re.compile(r"```\{bibliography\}[^\n]*\n:filter: docname in docnames\n```")
#: plain-text citations: "Smith et al.", "Smith et al. (2020)", "Gal & Ghahramani 2016"
PLAIN_CITATION = re.compile(r"\bet al\.|\b[A-Z][a-z]+ (?:&|and) [A-Z][a-z]+,? \(?(?:19|20)\d\d\b")


def _bib_keys() -> set[str]:
    return set(parse_file(str(BIB), bib_format="bibtex").entries.keys())


def _markdown(path: Path) -> str:
    nb = jupytext.read(path)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _cited(text: str) -> set[str]:
    return {k.strip() for group in CITE.findall(text) for k in group.split(",")}


def _claim_sources() -> dict[str, str]:
    """``{"module.NAME": source}`` of every module-level ``*CLAIM*`` dict literal in uqxai_lib/studies."""
    out = {}
    for path in sorted((ROOT / "uqxai_lib" / "studies").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name) and "CLAIM" in t.id and isinstance(node.value, ast.Dict):
                    for k, v in zip(node.value.keys, node.value.values):
                        if isinstance(k, ast.Constant) and k.value == "source" and isinstance(v, ast.Constant):
                            out[f"{path.stem}.{t.id}"] = v.value
    return out


def test_bibliography_parses_without_duplicate_keys():
    # pybtex (sphinxcontrib-bibtex's parser) raises on a duplicate key in strict mode (the default)
    keys = _bib_keys()
    raw = re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), re.M)
    assert len(raw) == len(set(raw)) == len(keys), "duplicate keys in references.bib"


def test_every_key_cited_in_a_chapter_notebook_is_in_the_bibliography():
    keys = _bib_keys()
    missing = {nb.name: sorted(_cited(_markdown(nb)) - keys) for nb in NOTEBOOKS}
    assert not any(missing.values()), f"cited but not in references.bib: {missing}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_cites_with_roles_and_ends_with_its_own_references(nb):
    text = _markdown(nb)
    assert _cited(text), f"{nb.name} cites nothing with {{cite}} roles"
    plain = [m.group(0) for m in PLAIN_CITATION.finditer(text)]
    assert not plain, f"{nb.name}: plain-text citations (use {{cite:t}} / {{cite:p}}): {plain}"
    refs = text.rsplit("## References", 1)
    assert len(refs) == 2, f"{nb.name} has no '## References' section"
    assert LOCAL_BIBLIOGRAPHY.search(refs[1].replace("\r\n", "\n")), \
        f"{nb.name}: the References section must be a ```{{bibliography}}``` block with :filter: docname in docnames"
    assert not re.search(r"^\s*[-*] ", refs[1], re.M), f"{nb.name}: a hand-typed reference list after '## References'"


def test_plain_citation_pattern_catches_what_it_should():
    assert PLAIN_CITATION.search("as Salvi et al. (2025) show")
    assert PLAIN_CITATION.search("MC dropout (Gal & Ghahramani 2016)")
    assert not PLAIN_CITATION.search("{cite:t}`gal2016dropout` and the 2016 paper")


def test_every_claim_source_is_a_key_of_the_bibliography():
    sources = _claim_sources()
    # the four chapters with a paper's claim declare one (a test that finds none checks nothing)
    assert {"primer.CLAIM", "ecg.CLAIM", "mri.CLAIM", "derm.CLAIM"} <= set(sources), sources
    keys = _bib_keys()
    missing = {name: src for name, src in sources.items() if src not in keys}
    assert not missing, f"claim sources not in references.bib: {missing}"


def test_literature_rows_are_entries_of_the_bibliography_and_cited_in_the_cross_study_chapter():
    rows = yaml.safe_load(LITERATURE.read_text(encoding="utf-8"))
    assert rows, "literature.yaml is empty"
    bib = parse_file(str(BIB), bib_format="bibtex").entries
    cited = _cited(_markdown(ROOT / "notebooks" / "cross_study.py"))
    for row in rows:
        key = row["key"]
        for field in ("key", "source"):
            if field in row:
                assert row[field] in bib, f"literature row {field} {row[field]!r} is not in references.bib"
        own = parse_string(row["bibtex"], "bibtex").entries
        assert list(own) == [key], f"the bibtex of row {key!r} defines {list(own)}"
        ours, theirs = bib[key], own[key]
        assert ours.type == theirs.type and dict(ours.fields) == dict(theirs.fields), \
            f"references.bib's entry {key!r} differs from literature.yaml's bibtex"
        assert key in cited, f"literature row {key!r} is not cited in the cross-study chapter's prose"

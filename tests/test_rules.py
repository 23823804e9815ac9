"""The methods page states the rule book exactly as uqxai_lib.rules defines it."""
from __future__ import annotations

import pathlib
import re

from uqxai_lib import protocol, rules

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_methods_page_carries_the_rule_book_of_the_code():
    page = (ROOT / "book" / "methods.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- rules:start -->\n(.*?)<!-- rules:end -->", page, re.S)
    assert m, "book/methods.md must hold the rule book between <!-- rules:start --> and <!-- rules:end -->"
    assert m.group(1) == rules.markdown(), (
        "book/methods.md and uqxai_lib.rules disagree; paste the output of "
        "`python -c 'from uqxai_lib import rules; print(rules.markdown(), end=\"\")'` between the markers")


def test_the_rule_book_names_every_rule_and_the_protocol_uses_its_constants():
    md = rules.markdown()
    for name, value in rules.RULES.items():
        assert f"`{name}`" in md and str(value) in md
    # the record's own defaults are the rule book's
    import inspect

    sig = inspect.signature(protocol.assess)
    assert sig.parameters["q"].default == rules.TOP_Q and sig.parameters["n_boot"].default == rules.N_BOOT


def test_the_rule_texts_quote_the_numbers_they_use():
    assert str(rules.SANITY_MAX_SPEARMAN) in rules.SANITY_AGGREGATION
    assert str(rules.N_BOOT) in rules.INTERVAL_METHOD and str(rules.LEVEL) in rules.INTERVAL_METHOD
    assert str(rules.MIN_GROUP_SIZE) in rules.UNDEFINED_RULE and str(rules.MIN_MODELS) in rules.UNDEFINED_RULE

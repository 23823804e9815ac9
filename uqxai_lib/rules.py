"""The rule book of the book's protocol: every rule :func:`uqxai_lib.assess` applies, as a named constant.

The methods page quotes these constants and texts (a test fails when page and code disagree), and
every chapter, the robustness sweep, the cross-study chapter and a user's own model run on them, so
one book has one set of rules.

>>> TOP_Q, MIN_GROUP_SIZE, MIN_MODELS
(0.9, 5, 2)
"""
from __future__ import annotations

__all__ = [
    "TOP_Q",
    "MIN_GROUP_SIZE",
    "MIN_MODELS",
    "MIN_SAMPLES",
    "N_BOOT",
    "LEVEL",
    "SANITY_MAX_SPEARMAN",
    "SANITY_MAX_CONSTANT_SHARE",
    "DELETION_STEPS",
    "CONSTANT_MAP_RULE",
    "EMPTY_REGION_RULE",
    "SANITY_AGGREGATION",
    "INTERVAL_METHOD",
    "UNDEFINED_RULE",
    "RULES",
]

#: Top-q region: the positions of a map at or above its q-quantile that are also > 0 (top 10 %).
TOP_Q = 0.9
#: A group (correct or misclassified items) with fewer defined items makes a comparison undefined.
MIN_GROUP_SIZE = 5
#: A Rashomon set or ensemble with fewer kept models has no variation to measure: undefined.
MIN_MODELS = 2
#: Samples per item needed to measure stability at all (pairs of samples for the Jaccard score).
MIN_SAMPLES = 2
#: Bootstrap resamples of every interval and bootstrap p-value.
N_BOOT = 2000
#: Interval level; p < 1 - LEVEL exactly when the interval excludes the null value.
LEVEL = 0.95
#: Cascading randomisation passes when the median Spearman of every step stays below this value.
SANITY_MAX_SPEARMAN = 0.5
#: A step where more than this share of randomised maps is constant makes the check inconclusive.
SANITY_MAX_CONSTANT_SHARE = 0.5
#: Points of each deletion / insertion curve (the input changed in this many equal steps).
DELETION_STEPS = 8

CONSTANT_MAP_RULE = (
    "A constant map (all positions tied, e.g. an all-zero Grad-CAM) has no ranking: its Spearman rho "
    "with the reference is undefined, so that sample is skipped and counted (n_constant_samples); an "
    "item whose reference map is constant has no defined rho at all (NaN, counted in "
    "n_constant_reference). A constant map is never counted as agreement (rho = 1) nor as rho = 0."
)
EMPTY_REGION_RULE = (
    "A map whose top-q region is empty (no position above zero) has nothing to overlap: every pair "
    "of samples that involves it is undefined and skipped (counted in n_empty_regions); an item with "
    "no defined pair has no Jaccard score (NaN). Two empty regions never count as agreement (J = 1)."
)
SANITY_AGGREGATION = (
    "Cascading randomisation (Adebayo et al. 2018): the model is re-initialised from the output "
    "down, one module group more per step; each step's maps are compared with the trained model's "
    "maps at the explained layer's resolution (no upsampling) by Spearman rho per item; the step's "
    "value is the median rho over the items whose randomised map is not constant (constant maps are "
    "counted, not scored). Outcome: failed when a step's median rho is at least "
    f"{SANITY_MAX_SPEARMAN}; otherwise inconclusive when a step has more than "
    f"{SANITY_MAX_CONSTANT_SHARE:.0%} constant randomised maps; otherwise passed."
)
INTERVAL_METHOD = (
    f"Percentile bootstrap with {N_BOOT} seeded resamples at level {LEVEL}: whole groups (patients, "
    "subjects, lesions) are resampled when groups are given, else items within each compared group "
    "(stratified). The p-value comes from the same resamples (two-sided: twice the smaller share of "
    f"resampled effects on either side of the null), so p < {1 - LEVEL:.2f} exactly when the interval "
    "excludes the null."
)
UNDEFINED_RULE = (
    f"A comparison with fewer than {MIN_GROUP_SIZE} defined items in a group, a Rashomon set or "
    f"ensemble with fewer than {MIN_MODELS} models, or a stack where every map is constant is "
    "'undefined' (with its reason), never 'no detectable difference'."
)

#: name -> value, the table the methods page renders.
RULES = {
    "TOP_Q": TOP_Q,
    "MIN_GROUP_SIZE": MIN_GROUP_SIZE,
    "MIN_MODELS": MIN_MODELS,
    "MIN_SAMPLES": MIN_SAMPLES,
    "N_BOOT": N_BOOT,
    "LEVEL": LEVEL,
    "SANITY_MAX_SPEARMAN": SANITY_MAX_SPEARMAN,
    "SANITY_MAX_CONSTANT_SHARE": SANITY_MAX_CONSTANT_SHARE,
    "DELETION_STEPS": DELETION_STEPS,
    "CONSTANT_MAP_RULE": CONSTANT_MAP_RULE,
    "EMPTY_REGION_RULE": EMPTY_REGION_RULE,
    "SANITY_AGGREGATION": SANITY_AGGREGATION,
    "INTERVAL_METHOD": INTERVAL_METHOD,
    "UNDEFINED_RULE": UNDEFINED_RULE,
}

_VALUE_TEXT = {
    "TOP_Q": "top-q region of a map: positions at or above its q-quantile and above 0",
    "MIN_GROUP_SIZE": "fewest defined items per compared group (else 'undefined')",
    "MIN_MODELS": "fewest kept models of a Rashomon set or ensemble (else 'undefined')",
    "MIN_SAMPLES": "fewest samples per item",
    "N_BOOT": "bootstrap resamples of every interval and p-value",
    "LEVEL": "interval level",
    "SANITY_MAX_SPEARMAN": "cascading randomisation fails at a median rho of at least this",
    "SANITY_MAX_CONSTANT_SHARE": "more constant randomised maps than this share: inconclusive",
    "DELETION_STEPS": "points of a deletion / insertion curve",
}


def markdown() -> str:
    """The rule book as the Markdown section the methods page carries between its
    ``<!-- rules:start -->`` and ``<!-- rules:end -->`` markers (a test keeps the two equal;
    regenerate with ``python -m uqxai_lib.rules``)."""
    lines = ["| rule | value | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {RULES[k]} | {_VALUE_TEXT[k]} |" for k in _VALUE_TEXT]
    lines.append("")
    for k in ("CONSTANT_MAP_RULE", "EMPTY_REGION_RULE", "SANITY_AGGREGATION", "INTERVAL_METHOD", "UNDEFINED_RULE"):
        lines += [f"- **{k.replace('_', ' ').capitalize()}** (`{k}`). {RULES[k]}", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover - prints the methods page's rule book
    print(markdown(), end="")

"""verdicts: each rung's rule on simulated data with known answers, and the ladder's contract."""
import json

import numpy as np
import pytest

from uqxai_lib import stats, verdicts


def _primary(effect, sd, n_correct, n_wrong, seed=0):
    """A primary section (the assess record's keys) from simulated per-item scores."""
    rng = np.random.default_rng(seed)
    v = np.r_[rng.normal(effect, sd, n_correct), rng.normal(0, sd, n_wrong)]
    ok = np.r_[np.ones(n_correct, bool), np.zeros(n_wrong, bool)]
    d = stats.group_difference(v, ok, n_boot=500, seed=seed)
    return {"score": "rho", "effect": d["effect"], "ci95": d["ci95"], "verdict": stats.verdict(d["ci95"]),
            "reason": None, "n_correct": n_correct, "n_misclassified": n_wrong, "mde": stats.mde(v, ok)}


@pytest.mark.parametrize("effect, expected, want", [(0.3, "higher", "reproduced"), (0.0, "higher", "not reproduced"),
                                                   (-0.3, "higher", "reversed"), (-0.3, "lower", "reproduced")])
def test_direction_reads_the_interval_against_the_claim(effect, expected, want):
    r = verdicts.direction(_primary(effect, 0.2, 200, 60), expected)
    assert r["name"] == "direction" and r["outcome"] == want
    assert "200 correct vs 60 misclassified" in r["evidence"]


def test_direction_undefined_passes_the_primary_reason():
    prim = {"effect": None, "ci95": [None, None], "verdict": "undefined", "n_correct": 40, "n_misclassified": 3,
            "reason": "3 misclassified items (fewer than 5)"}
    r = verdicts.direction(prim, "higher")
    assert r["outcome"] == "undefined" and r["reason"] == prim["reason"]
    with pytest.raises(verdicts.VerdictError, match="expected"):
        verdicts.direction(prim, "up")


def test_paper_effect_excluded_when_a_precise_null_rules_out_their_gap():
    prim = _primary(0.0, 0.15, 400, 150)   # MRI-like: narrow interval around 0
    assert prim["ci95"][1] - prim["ci95"][0] < 0.1
    r = verdicts.paper_effect(prim, 0.22, mde=prim["mde"])
    assert r["outcome"] == "excluded" and "theirs +0.22" in r["evidence"] and "minimal detectable" in r["evidence"]


def test_paper_effect_underpowered_when_our_interval_is_wider_than_their_effect():
    prim = _primary(0.1, 0.4, 30, 6)       # few errors: interval wider than 0.22
    assert prim["ci95"][0] < 0.22 < prim["ci95"][1]
    assert prim["ci95"][1] - prim["ci95"][0] > 0.22
    assert verdicts.paper_effect(prim, 0.22)["outcome"] == "underpowered"


def test_paper_effect_compatible_and_undefined():
    prim = _primary(0.22, 0.1, 400, 200)
    assert verdicts.paper_effect(prim, 0.22)["outcome"] == "compatible"
    assert verdicts.paper_effect(prim, None)["outcome"] == "undefined"
    assert verdicts.paper_effect({"verdict": "undefined", "ci95": [None, None], "reason": "r"}, 0.2)["reason"] == "r"


def test_beyond_baselines_adds_nothing_for_a_noisy_copy_and_adds_for_new_information():
    rng = np.random.default_rng(1)
    n = 400
    ok = rng.random(n) < 0.75
    ent = -1.5 * ok + rng.normal(0, 1, n)
    copy = verdicts.beyond_baselines(stats.added_value(ent + rng.normal(0, 1, n), {"entropy": ent}, ok, n_boot=300))
    assert copy["outcome"] == "adds nothing" and "strongest baseline (entropy alone)" in copy["evidence"]
    new = verdicts.beyond_baselines(stats.added_value(1.5 * ok + rng.normal(0, 1, n), {"entropy": ent}, ok, n_boot=300))
    assert new["outcome"] == "adds"
    few = verdicts.beyond_baselines(stats.added_value(ent[:40], {"entropy": ent[:40]}, np.r_[np.ones(37), np.zeros(3)]))
    assert few["outcome"] == "undefined" and "3 misclassified" in few["reason"]


def test_maps_right_above_at_and_below_chance():
    fid = {"mass_in_mask": 0.4, "mass_in_mask_ci95": [0.35, 0.45], "chance": 0.2}
    assert verdicts.maps_right(fid)["outcome"] == "above chance"
    assert verdicts.maps_right({**fid, "mass_in_mask_ci95": [0.15, 0.25]})["outcome"] == "at chance"
    below = verdicts.maps_right({**fid, "mass_in_mask": 0.1, "mass_in_mask_ci95": [0.05, 0.15]})
    assert below["outcome"] == "at chance" and "below chance" in below["evidence"]
    assert verdicts.maps_right(None)["outcome"] == "undefined"


def test_sanity_passes_the_outcome_through_with_its_evidence():
    sec = {"outcome": "inconclusive", "reason": "60 of 60 randomised maps constant", "threshold": 0.5,
           "steps": [{"randomised": "fc", "median_rho": None, "n_constant": 60, "n": 60}]}
    r = verdicts.sanity(sec)
    assert r["outcome"] == "inconclusive" and r["reason"] == sec["reason"] and "60 of 60" in r["evidence"]
    f = verdicts.sanity({"outcome": "failed", "reason": "rho 0.85 > 0.5", "threshold": 0.5,
                         "steps": [{"randomised": "fc", "median_rho": 0.85, "n_constant": 0, "n": 40},
                                   {"randomised": "lstm", "median_rho": 0.3, "n_constant": 0, "n": 40}]})
    assert f["outcome"] == "failed" and "0.85 (after randomising fc)" in f["evidence"]
    assert verdicts.sanity(None)["outcome"] == "inconclusive"


def test_within_class_not_reproduced_when_the_score_only_tracks_the_predicted_class():
    rng = np.random.default_rng(2)
    n = 1500
    pred = rng.random(n) < 0.5
    ok = np.where(pred, rng.random(n) < 0.6, rng.random(n) < 0.9)
    score = np.where(pred, 0.4, 0.8) + rng.normal(0, 0.05, n)
    assert verdicts.direction({**stats.group_difference(score, ok, n_boot=300), "verdict": "higher"},
                              "higher")["outcome"] == "reproduced"   # pooled: looks like an error detector
    r = verdicts.within_class(stats.stratified_auroc(score, ok, pred, n_boot=300), "higher")
    assert r["outcome"] == "not reproduced" and "within the predicted class" in r["evidence"]
    real = verdicts.within_class(stats.stratified_auroc(score + 0.05 * ok, ok, pred, n_boot=300), "higher")
    assert real["outcome"] == "reproduced"
    assert verdicts.within_class(stats.stratified_auroc(score - 0.05 * ok, ok, pred, n_boot=300),
                                 "higher")["outcome"] == "reversed"


@pytest.mark.parametrize("effects, want", [([0.1, 0.12, 0.09, 0.11, 0.1], "reproduced"),
                                           ([0.1, -0.1, 0.05, -0.04, 0.0], "not reproduced"),
                                           ([-0.1, -0.12, -0.09], "reversed"), ([0.1], "undefined")])
def test_across_seeds_from_seed_summary(effects, want):
    r = verdicts.across_seeds(stats.seed_summary(effects), "higher", per_seed=["higher"] * len(effects))
    assert r["outcome"] == want
    if want != "undefined":
        assert f"{len(effects)} of {len(effects)} seeds reproduce alone" in r["evidence"]


def test_across_threads_same_flips_undefined():
    assert verdicts.across_threads("lower", "lower")["outcome"] == "same"
    assert verdicts.across_threads("lower", "no detectable difference")["outcome"] == "flips"
    assert verdicts.across_threads(None, "higher")["outcome"] == "undefined"


def test_robustness_rungs_read_the_robustness_record(tmp_path):
    rec = {"mri_mc_dropout": {"seed_summary": stats.seed_summary([-0.05, -0.04, -0.045]),
                              "verdicts_per_seed": ["lower", "no detectable difference", "lower"],
                              "threads": {"1": {"verdict": "lower"}, "2": {"verdict": "no detectable difference"}}}}
    p = tmp_path / "robustness.json"
    p.write_text(json.dumps(rec))
    seeds, threads = verdicts.robustness_rungs("mri_mc_dropout", "higher", path=p)
    assert seeds["outcome"] == "reversed" and threads["outcome"] == "flips"
    missing = verdicts.robustness_rungs("ecg_sue", "higher", path=p)
    assert [r["outcome"] for r in missing] == ["undefined", "undefined"]
    assert "has not run" in verdicts.robustness_rungs("x", "higher", path=tmp_path / "none.json")[0]["reason"]


def test_ladder_headline_is_the_across_seeds_outcome_and_rungs_are_ordered():
    rungs = [verdicts.across_seeds(stats.seed_summary([0.0, 0.1, -0.1]), "higher"),
             verdicts.direction(_primary(0.3, 0.2, 100, 40), "higher"),
             verdicts.across_threads("higher", "higher")]
    lad = verdicts.ladder({"text": "SUE is higher when correct.", "expected": "higher"},
                          verdicts.data_line("SyntheticECG", "FANTASIA"), rungs)
    assert lad["headline"] == "not reproduced" and lad["claim"] == "SUE is higher when correct."
    assert [r["name"] for r in lad["rungs"]] == ["direction", "across_seeds", "across_threads"]
    assert lad["data"].startswith("embedded synthetic phantom (SyntheticECG)")
    text = " ".join(verdicts.sentences(lad))
    assert "In this run the claim is reproduced" in text and "Across training seeds the claim is not reproduced" in text
    with pytest.raises(verdicts.VerdictError, match="headline rung 'across_seeds' is missing"):
        verdicts.ladder("c", "d", rungs[1:])
    with pytest.raises(verdicts.VerdictError, match="more than once"):
        verdicts.ladder("c", "d", [rungs[0], rungs[0]])
    with pytest.raises(verdicts.VerdictError, match="outcome"):
        verdicts.ladder("c", "d", [{**rungs[0], "outcome": "higher"}])


def test_every_rung_outcome_set_holds_undefined_or_inconclusive():
    for name, outs in verdicts.OUTCOMES.items():
        assert ("undefined" in outs) or name == "sanity"
    assert set(verdicts.RUNG_ORDER) == set(verdicts.RUNG_TITLES)

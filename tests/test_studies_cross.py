"""studies.cross: per-item scores against loops and scipy, the logistic model against scikit-learn,
added value and conformal rows on simulated data with known structure."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from uqxai_lib import metrics, stats
from uqxai_lib.studies import cross


def _stack(seed=0, s=5, b=6, n=20, c=3):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(s, b, n, generator=g)
    probs = torch.softmax(torch.randn(s, b, c, generator=g) * 2, -1)
    ref = torch.rand(b, n, generator=g)
    pred = torch.randint(0, c, (b,), generator=g)
    return maps, probs, ref, pred


def test_item_scores_match_loops():
    """The book's one rule book: pairs with an empty top region and constant sample maps are skipped."""
    import itertools

    maps, probs, ref, pred = _stack()
    maps[1, 2] = 0.0   # empty map in one sample of item 2
    maps[3, 4] = 0.5   # constant (degenerate) map in one sample of item 4
    out = cross.item_scores(maps, probs, ref, pred, quantile=0.8)
    s, b = maps.shape[:2]
    for i in range(b):
        regions = []
        for k in range(s):
            m = maps[k, i].double().numpy()
            regions.append(set(np.flatnonzero((m >= np.quantile(m, 0.8)) & (m > 0))))
        js = [len(a & c) / len(a | c) for a, c in itertools.combinations(regions, 2) if a and c]
        assert out["jaccard"][i] == pytest.approx(np.mean(js), abs=1e-9)
        rhos = [spearmanr(maps[k, i].double().numpy(), ref[i].double().numpy()).statistic for k in range(s)
                if np.ptp(maps[k, i].double().numpy()) > 0]
        assert out["spearman"][i] == pytest.approx(np.mean(rhos), abs=1e-6)
        p = probs[:, i].double().mean(0).numpy()
        top = np.sort(p)[::-1]
        assert out["margin"][i] == pytest.approx(top[0] - top[1], abs=1e-9)
        assert out["entropy"][i] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-9)
        ent_each = np.mean([-(q * np.log(q)).sum() for q in probs[:, i].double().numpy()])
        assert out["mutual_information"][i] == pytest.approx(max(0.0, -(p * np.log(p)).sum() - ent_each), abs=1e-9)
        assert out["flip_rate"][i] == pytest.approx(np.mean([int(probs[k, i].argmax()) != int(pred[i])
                                                             for k in range(s)]))
    assert out["n_empty"] == 0       # item 2 keeps its defined pairs
    assert out["n_degenerate"] == 2  # the empty map of item 2 is constant too


def test_within_class_auroc_of_a_score_that_tracks_the_predicted_class_is_one_half():
    rng = np.random.default_rng(0)
    n = 400
    pred = rng.integers(0, 2, n)
    correct = np.where(pred == 0, rng.random(n) < 0.9, rng.random(n) < 0.5)  # class 0 is mostly right
    score = np.where(pred == 0, 1.0, 0.0) + rng.random(n) * 1e-9  # only says "predicted class 0"
    rows = cross.matrix_rows("m", "s", {"jaccard": score, "spearman": score, "entropy": -score, "margin": score,
                                        "mutual_information": -score, "flip_rate": -score,
                                        "n_empty": 0, "n_degenerate": 0},
                             correct, strata=pred, n_boot=300)
    r = next(r for r in rows if r["score"] == "jaccard")
    assert r["auroc"] > 0.6                                  # pooled, the class passes for correctness
    lo, hi = r["within_class_auroc_ci95"]
    assert lo < 0.5 < hi and abs(r["within_class_auroc"] - 0.5) < 0.1


def test_item_scores_spearman_nan_only_for_a_constant_reference():
    maps, probs, ref, pred = _stack()
    ref[0] = 1.0
    out = cross.item_scores(maps, probs, ref, pred)
    assert math.isnan(out["spearman"][0]) and np.isfinite(out["spearman"][1:]).all()


def test_item_scores_reject_mismatched_shapes():
    maps, probs, ref, pred = _stack()
    with pytest.raises(ValueError, match="shapes disagree"):
        cross.item_scores(maps, probs[:, :3], ref, pred)
    with pytest.raises(ValueError, match="S>=2"):
        cross.item_scores(maps[:1], probs[:1], ref, pred)


def test_confidence_orients_uncertainties_downwards():
    c = cross.confidence({"entropy": [0.2], "flip_rate": [0.5], "jaccard": [0.7], "n_empty": 3})
    assert c == {"entropy": pytest.approx([-0.2]), "flip_rate": pytest.approx([-0.5]), "jaccard": pytest.approx([0.7])}


def test_matrix_rows_auroc_and_aurc_follow_stats_and_metrics():
    rng = np.random.default_rng(0)
    ok = rng.random(80) < 0.7
    scores = {"jaccard": rng.random(80) + 0.3 * ok, "entropy": rng.random(80) - 0.3 * ok}
    rows = cross.matrix_rows("ecg", "test_time", scores, ok, n_boot=300)
    by = {r["score"]: r for r in rows}
    assert by["jaccard"]["auroc"] == pytest.approx(stats.auroc(scores["jaccard"], ok))
    assert by["entropy"]["auroc"] == pytest.approx(stats.auroc(-scores["entropy"], ok))
    assert by["entropy"]["aurc"] == pytest.approx(metrics.aurc(torch.as_tensor(ok),
                                                               torch.as_tensor(-scores["entropy"])))
    lo, hi = by["jaccard"]["auroc_ci95"]
    assert lo < by["jaccard"]["auroc"] < hi
    assert by["jaccard"]["kind"] == "explanation" and by["entropy"]["kind"] == "baseline"


def _simulated(seed, informative_extra):
    rng = np.random.default_rng(seed)
    n = 600
    ok = rng.random(n) < 0.75
    base = rng.normal(size=n) + 0.8 * ok                         # baseline carries some signal
    extra_signal = rng.normal(size=n) + (1.2 * ok if informative_extra else 0.0)
    scores = {"margin": base, "entropy": -base + 0.1 * rng.normal(size=n), "jaccard": extra_signal,
              "spearman": rng.normal(size=n)}
    return scores, ok


def test_added_value_detects_an_informative_explanation_score():
    scores, ok = _simulated(2, informative_extra=True)
    res = cross.added_value(scores, ok, baselines=("margin", "entropy"), n_boot=400)
    assert res["delta_ci95"][0] > 0 and res["verdict"] == "higher"
    assert res["auroc_combined"] > res["auroc_baselines"]


def test_added_value_finds_nothing_in_pure_noise_most_of_the_time():
    verdicts = [cross.added_value(*_simulated(s, informative_extra=False), baselines=("margin", "entropy"),
                                  n_boot=300, seed=s)["verdict"] for s in range(8)]
    assert verdicts.count("higher") <= 2  # a 95% interval rarely excludes 0 when nothing is added


def test_conformal_rows_cover_every_oriented_score():
    scores, ok = _simulated(3, informative_extra=True)
    rows = cross.conformal_rows("mri", "mc_dropout", scores, ok, n_splits=20)
    assert {r["score"] for r in rows} == set(scores)
    for r in rows:
        assert r["n_splits"] == 20 and 0 <= r["mean_coverage"] <= 1 and r["alpha"] == 0.1


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv1d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                               torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(6, 2)).eval()


def test_run_source_matches_the_samplers_and_explain_loops():
    from uqxai_lib import saliency, samplers

    m = _tiny_model()
    x = torch.randn(5, 1, 16, generator=torch.Generator().manual_seed(0))
    pred, ref = cross.reference_maps(m, x, "1", "grad_cam")
    assert torch.equal(pred, m(x).argmax(1)) and ref.shape == (5, 16)
    mc = cross.run_source("mc_dropout", m, x, pred, layer="1", method="grad_cam", mc_passes=4, seed=3)
    want = samplers.mc_dropout(m, x, "1", 4, method="grad_cam", target=pred, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mc.maps, want.maps)
    jitter = {"a": lambda v, g: v + 0.1 * torch.randn(v.shape, generator=g), "b": lambda v, g: v * 1.1}
    tt = cross.run_source("test_time", m, x, pred, layer="1", method="grad_cam", perturbations=jitter,
                          draws_per_kind=2, seed=1)
    assert tt.maps.shape == (4, 5, 16) and torch.allclose(tt.maps[2], saliency.explain(m, x * 1.1, "1", pred))
    members = [_tiny_model(s) for s in (1, 2)]
    ens = cross.run_source("seed_ensemble", m, x, pred, layer="1", method="grad_cam", members=members)
    assert torch.allclose(ens.maps[1], saliency.explain(members[1], x, "1", pred))
    assert torch.allclose(ens.probs[0], torch.softmax(members[0](x), -1))


def test_run_source_rashomon_reports_too_few_kept_models_instead_of_failing():
    m = _tiny_model()
    x = torch.randn(8, 1, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (8,), generator=torch.Generator().manual_seed(2))
    pred, _ = cross.reference_maps(m, x, "1", "grad_cam")
    kw = dict(layer="1", method="grad_cam", x_val=x, y_val=y, head=m[5], seed=0)
    all_kept = cross.run_source("rashomon", m, x, pred, rashomon_k=6, prune_ratio=0.5, epsilon=100.0, **kw)
    assert all_kept.info["n_kept"] == 6 and all_kept.maps.shape == (6, 8, 16)
    one = cross.run_source("rashomon", m, x, pred, rashomon_k=1, prune_ratio=0.5, epsilon=100.0, **kw)
    assert one.info["n_kept"] == 1 and one.maps.shape[0] == 0
    with pytest.raises(ValueError, match="unknown source"):
        cross.run_source("bootstrap", m, x, pred, layer="1", method="grad_cam")


def test_fine_tuned_rashomon_source_explains_the_kept_models_and_is_empty_below_two():
    from uqxai_lib import attribution, saliency

    m = _tiny_model()
    x = torch.randn(5, 1, 16, generator=torch.Generator().manual_seed(4))
    pred = m(x).argmax(1)
    kept = [_tiny_model(s) for s in (3, 4, 5)]
    st = cross.run_source("rashomon_finetuned", m, x, pred, layer="1", method="grad_cam", finetuned=kept,
                          members=[_tiny_model(9), _tiny_model(10)])  # the seed ensemble is not used
    assert st.maps.shape == (3, 5, 16) and st.info == {"n_kept": 3}
    for i, k in enumerate(kept):
        assert torch.allclose(st.maps[i], saliency.explain(k, x, "1", pred))
        assert torch.allclose(st.probs[i], torch.softmax(k(x), -1))
    one = cross.run_source("rashomon_finetuned", m, x, pred, layer="1", method="grad_cam", finetuned=kept[:1])
    assert one.maps.shape[0] == 0 and one.info["n_kept"] == 1
    occ = cross.method_stack("rashomon_finetuned", "occlusion", m, x, pred, layer="1", finetuned=kept, max_models=2)
    assert occ.maps.shape[:2] == (2, 5) and occ.info == {"n_kept": 3, "n_explained": 2}
    torch.testing.assert_close(occ.maps[1], attribution.explain(kept[1], x, pred, "occlusion"))
    assert cross.method_stack("rashomon_finetuned", "occlusion", m, x, pred, layer="1",
                              finetuned=kept[:1]).maps.shape[0] == 0
    assert cross.PROTOCOL_SOURCE["rashomon_finetuned"] == "ensemble" and "rashomon_finetuned" in cross.SOURCES


def test_operating_points_follow_the_conformal_threshold_on_the_test_part():
    from uqxai_lib import conformal

    scores, ok = _simulated(4, informative_extra=True)
    conf = scores["jaccard"]
    out = cross.operating_points(conf, ok, [0.05, 0.2], delta=0.1, seed=1)
    test = np.asarray(out["test_index"])
    cal = np.setdiff1d(np.arange(ok.size), test)
    for pt in out["points"]:
        t = conformal.ltt_threshold(conf[cal], ok[cal], alpha=pt["alpha"], delta=0.1)
        assert pt["threshold"] == t.threshold
        ans = np.asarray(pt["answered"])
        assert pt["coverage"] == pytest.approx(ans.mean())
        if ans.any():
            assert pt["risk"] == pytest.approx((~ok[test][ans]).mean())
    # a looser risk bound never answers fewer items
    assert out["points"][1]["coverage"] >= out["points"][0]["coverage"]


def test_auroc_difference_is_paired_and_its_interval_covers_the_known_answer():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    n = 400
    ok = rng.random(n) < 0.6
    noise = rng.normal(size=n)                     # AUROC 0.5 in the population
    informative = rng.normal(size=n) + 1.5 * ok    # AUROC Phi(1.5 / sqrt 2) = 0.856 in the population
    res = stats.auroc_difference(noise, informative, ok, n_boot=500, seed=0)
    u = lambda v: mannwhitneyu(v[ok], v[~ok]).statistic / (ok.sum() * (~ok).sum())  # independent AUROC
    assert res["auroc_a"] == pytest.approx(u(noise)) and res["auroc_b"] == pytest.approx(u(informative))
    assert res["delta"] == pytest.approx(u(informative) - u(noise))
    lo, hi = res["delta_ci95"]
    assert lo < 0.856 - 0.5 < hi and lo > 0 and res["verdict"] == "higher"
    same = stats.auroc_difference(informative, informative, ok, n_boot=200)
    assert same["delta"] == 0 and same["delta_ci95"] == [0.0, 0.0]  # paired: identical scores, no spread
    assert same["verdict"] == "no detectable difference"
    a = informative.copy()
    a[:7] = np.nan
    assert stats.auroc_difference(a, noise, ok, n_boot=100)["n_nan"] == 7
    with pytest.raises(ValueError, match="one value per item"):
        stats.auroc_difference(noise[:-1], noise, ok)


# ----------------------------------------------------------------------------- beyond Grad-CAM
def test_case_control_takes_equal_numbers_of_errors_and_correct_items():
    ok = np.r_[np.ones(30, bool), np.zeros(7, bool)]
    idx = cross.case_control(ok, 5, seed=1)
    assert len(idx) == 10 and ok[idx].sum() == 5 and np.all(np.diff(idx) > 0)
    assert len(cross.case_control(ok, 50)) == 14  # capped by the smaller group
    assert not np.array_equal(idx, cross.case_control(ok, 5, seed=2))


def test_method_stack_uses_attribution_sample_stack_and_cams_use_run_source():
    from uqxai_lib import attribution

    m = _tiny_model()
    x = torch.randn(4, 1, 16, generator=torch.Generator().manual_seed(0))
    pred = m(x).argmax(1)
    st = cross.method_stack("mc_dropout", "integrated_gradients", m, x, pred, layer="1", mc_passes=3, seed=2,
                            options={"n_steps": 4})
    want = attribution.sample_stack(m, x, source="mc_dropout", method="integrated_gradients", n=3, target=pred,
                                    generator=torch.Generator().manual_seed(2), n_steps=4)
    assert torch.equal(st.maps, want.maps) and st.maps.shape == (3, 4, 16)
    cam = cross.method_stack("mc_dropout", "grad_cam", m, x, pred, layer="1", mc_passes=3, seed=2)
    assert torch.equal(cam.maps, cross.run_source("mc_dropout", m, x, pred, layer="1", method="grad_cam",
                                                  mc_passes=3, seed=2).maps)
    members = [_tiny_model(s) for s in (1, 2)]
    ens = cross.method_stack("seed_ensemble", "occlusion", m, x, pred, layer="1", members=members)
    torch.testing.assert_close(ens.maps[0], attribution.explain(members[0], x, pred, "occlusion"))


def test_method_rows_follow_the_protocol_and_added_value():
    from uqxai_lib import protocol

    g = torch.Generator().manual_seed(3)
    s, b = 4, 40
    y = torch.randint(0, 3, (b,), generator=g)
    target = y.clone()
    target[:12] = (y[:12] + 1) % 3  # 12 errors
    reference = torch.rand(b, 10, generator=g)
    # errors get noisier samples: their stability is lower
    noise = torch.where(target != y, 1.0, 0.1)[None, :, None]
    maps = (reference[None] + noise * torch.rand(s, b, 10, generator=g)).clamp(min=0)
    probs = torch.softmax(torch.randn(s, b, 3, generator=g), -1)
    clean = torch.softmax(4.0 * torch.nn.functional.one_hot(target, 3).float(), -1)  # predicts the target
    rows = cross.method_rows("ECG", "test_time", "integrated_gradients", {"maps": maps, "probs": probs}, reference,
                             clean, y, target, n_boot=200)
    assert [r["score"] for r in rows] == ["jaccard", "spearman"]
    rec = protocol.evaluate(maps, reference, probs, clean, y, target=target, source="test_time", score="rho",
                            n_boot=200)
    sp = rows[1]
    assert sp["auroc"] == pytest.approx(rec.primary["auroc"]) and sp["auroc_ci95"] == rec.primary["auroc_ci95"]
    assert sp["auroc"] > 0.8 and sp["verdict"] == "higher" and sp["method"] == "integrated_gradients"
    ok = (target == y).numpy()
    conf = np.asarray(rec.stability["rho"], dtype=float)
    assert sp["aurc"] == pytest.approx(metrics.aurc(torch.as_tensor(ok), torch.as_tensor(conf)))
    assert np.isfinite(sp["added_delta"]) and len(sp["added_ci95"]) == 2
    # within each predicted class: the pairs of stats.stratified_auroc (errors are noisier in every class)
    wc = stats.stratified_auroc(conf, ok, target.numpy(), n_boot=200, seed=0)
    assert sp["within_class_auroc"] == pytest.approx(wc["auroc"]) and sp["within_class_auroc_ci95"] == wc["ci95"]
    assert sp["within_class_auroc"] > 0.8
    empty = cross.method_rows("ECG", "rashomon", "lime", {"maps": maps[:1], "probs": probs[:1]}, reference, clean, y,
                              target)
    assert all(r["verdict"] == "undefined" and "1 sample" in r["reason"] for r in empty)
    assert all(math.isnan(r["within_class_auroc"]) for r in empty)


def test_fidelity_row_gives_mass_in_mask_against_chance():
    masks = torch.zeros(6, 10, dtype=torch.bool)
    masks[:, 2:4] = True
    masks[5] = False  # no mask: skipped
    maps = torch.zeros(6, 10)
    maps[:, 2] = 3.0
    maps[:, 7] = 1.0
    row = cross.fidelity_row("ECG", "occlusion", maps, masks, n_boot=100)
    assert row["mass_in_mask"] == pytest.approx(0.75) and row["chance"] == pytest.approx(0.2)
    assert row["lift"] == pytest.approx(3.75) and row["n_items"] == 5 and row["pointing_game"] == 1.0


def _simulated_cells(seed=5, b=40):
    """Item scores of two sources on one modality: 'good' separates errors, 'noise' does not."""
    rng = np.random.default_rng(seed)
    ok = np.r_[np.ones(b - 12, bool), np.zeros(12, bool)]
    def sc(signal):
        base = {k: rng.random(b) for k in cross.BASELINE_SCORES}
        return {"jaccard": rng.random(b) + signal * ok, "spearman": rng.random(b) + signal * ok, **base,
                "n_empty": 0, "n_degenerate": 0}
    return {("A", "test_time"): sc(1.5), ("A", "mc_dropout"): sc(0.0)}, {"A": ok}, {"A": None}


def test_design_rows_compare_default_and_alternative_with_the_paired_difference():
    scores, correct, groups = _simulated_cells()
    alt = dict(scores["A", "mc_dropout"])
    design = {("A", "test_time", "worse design"): (alt, ("jaccard",)),
              ("A", "mc_dropout", "no samples"): (None, cross.EXPLANATION_SCORES)}
    rows = cross.design_rows(design, scores, correct, groups, n_boot=300, seed=0)
    assert [(r["source"], r["score"]) for r in rows] == [("test_time", "jaccard"), ("mc_dropout", "jaccard"),
                                                         ("mc_dropout", "spearman")]
    want = stats.auroc_difference(cross.confidence(scores["A", "test_time"], ["jaccard"])["jaccard"],
                                  cross.confidence(alt, ["jaccard"])["jaccard"], correct["A"], n_boot=300, seed=0)
    assert rows[0]["delta"] == pytest.approx(want["delta"]) and rows[0]["verdict"] == want["verdict"] == "lower"
    assert all(math.isnan(r["delta"]) and r["verdict"] == "fewer than 2 samples" for r in rows[1:])


def test_abstention_best_rules_and_operating_points_follow_their_building_blocks():
    from uqxai_lib import conformal

    scores, correct, _ = _simulated_cells()
    alphas, rows, summary = cross.abstention(scores, correct, ["A"], alpha=0.1, delta=0.1, n_splits=20, seed=0)
    assert alphas["A"] == pytest.approx(conformal.choose_alpha(correct["A"]))
    want = cross.conformal_rows("A", "test_time", scores["A", "test_time"], correct["A"], alpha=alphas["A"],
                                delta=0.1, n_splits=20, seed=0)
    assert json.dumps(rows[:len(want)], default=str) == json.dumps(want, default=str)  # NaN risks included
    assert summary["A"] == conformal.summary(rows)
    best = cross.best_rules(rows, ["A"])
    expl, base = best["A"]
    assert expl["score"] in cross.EXPLANATION_SCORES and base["score"] in cross.BASELINE_SCORES
    assert expl["mean_coverage"] == max(r["mean_coverage"] for r in rows if r["score"] in cross.EXPLANATION_SCORES)
    ops = cross.rule_operating_points(best, scores, correct, alphas, delta=0.1, calibration_fraction=0.5, seed=0)
    label = f"{expl['source']}: {expl['score']}"
    conf = cross.confidence(scores["A", expl["source"]], [expl["score"]])[expl["score"]]
    one = cross.operating_points(conf, correct["A"], [alphas["A"]], delta=0.1, calibration_fraction=0.5, seed=0)
    assert list(ops["A"]) == [label, f"{base['source']}: {base['score']}"]
    assert ops["A"][label]["points"] == one["points"]


def test_literature_rows_and_summary_lines_state_the_records():
    scores, correct, groups = _simulated_cells()
    lit = [{"key": "k1", "modality": "ecg", "source_kind": "seeds", "setting": "s", "figure": "ρ 0.5"},
           {"key": "k2", "modality": "ecg", "source_kind": "other", "setting": "s", "figure": "ρ 0.4"}]
    scores = {**scores, ("ECG", "seed_ensemble"): None}
    scores["ECG", "test_time"] = scores["A", "test_time"]
    rows = cross.literature_rows(lit, scores)
    assert rows[0]["ours"] == "n/a" and rows[0]["figure"] == "ρ 0.5 (theirs)"
    assert rows[1]["ours"].startswith("ECG, test_time: mean Spearman ρ")
    assert cross.load_literature() and all("key" in e for e in cross.load_literature())
    sc = {k: v for k, v in scores.items() if k[0] == "A"}
    matrix, baselines = cross.all_matrix_rows(sc, correct, groups, {"A": np.zeros(40, int)}, n_boot=200, seed=0)
    added = cross.all_added_value(sc, correct, folds=3, n_boot=200, seed=0)
    cells = [{"modality": "A", "method": "lime", "source": "test_time", "score": "jaccard", "auroc": 0.9,
              "auroc_ci95": [0.8, 0.97], "verdict": "higher", "added_verdict": "no detectable difference"}]
    text = cross.summary_lines(["A"], matrix, baselines, added, cells, {"A": {"items": 20, "misclassified": 10}},
                               {"A": {"spearman_lift_vs_best_auroc": 0.5, "n_methods": 3}}, [], labels={"lime": "LIME"})
    best = max(matrix, key=lambda r: r["auroc"])
    assert f"{best['source']} / {best['score']} AUROC {best['auroc']:.2f}" in text
    assert "1 of 1 method cells" in text and "LIME test_time / jaccard AUROC 0.90 [0.80, 0.97]" in text
    assert "+0.50 (3 methods" in text and "of 0 explanation scores rerun" in text


def test_summary_lines_state_the_finetuned_sets_from_their_records():
    """The fifth source's bullet: a set with < 2 kept models is undefined; a kept set shows its own AUROC
    beside the pruned set's and its added-value verdict, numbers taken from the matrix rows."""
    def row(source, score, auc):
        return {"modality": "B", "source": source, "score": score, "auroc": auc, "auroc_ci95": [auc - 0.1, auc + 0.05]}

    matrix = [row("rashomon_finetuned", "jaccard", 0.61), row("rashomon", "jaccard", 0.47),
              row("rashomon_finetuned", "spearman", float("nan")), row("test_time", "jaccard", 0.7)]
    added = [{"modality": "B", "source": "rashomon_finetuned", "verdict": "no detectable difference"}]
    fin = {"A": {"candidates": 4, "kept": 1, "relative loss min": 1.04, "relative loss max": 1.9},
           "B": {"candidates": 4, "kept": 3, "relative loss min": 0.98, "relative loss max": 1.07}}
    line = cross._finetuned_line(["A", "B"], matrix, added, fin)
    assert "A keeps 1 of 4 (relative held-out loss 1.04 to 1.90), too few for a stack" in line
    assert "B keeps 3 of 4 (relative held-out loss 0.98 to 1.07): jaccard AUROC 0.61 [0.51, 0.66] (pruned set 0.47)" in line
    assert "spearman" not in line  # an undefined cell is not stated as a number
    assert "added to the baselines: no detectable difference" in line and "reported rather than tuned away" in line
    fin["A"]["kept"] = 2
    assert "tuned away" not in cross._finetuned_line(["A", "B"], matrix, added, fin)

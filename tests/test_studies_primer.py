"""Tests of the primer chapter's analysis steps (uqxai_lib.studies.primer)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uqxai_lib import metrics, saliency
from uqxai_lib.studies import primer as sp


def _case():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 4, 4, generator=g)
    mask = torch.zeros(5, 16, 16, dtype=torch.bool)
    mask[:, 2:9, 3:10] = True
    return maps, mask


def test_localisation_scores_equal_the_metrics_on_upsampled_maps():
    maps, mask = _case()
    s = sp.localisation_scores(maps, mask, ("quantile", 0.8))
    up = saliency.upsample(maps, (16, 16))
    assert torch.allclose(s["mass_in_mask"], metrics.mass_in_mask(up, mask))
    region = metrics.binarize(up, ("quantile", 0.8))
    assert torch.allclose(s["iou"], metrics.iou(region, mask))
    assert torch.allclose(s["dice"], metrics.dice(region, mask))


def test_mass_in_mask_matches_a_float64_numpy_computation():
    maps, mask = _case()
    up = F.interpolate(maps[:, None].double(), size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    up = np.clip(up.numpy(), 0, None)
    k = mask.numpy()
    expected = (up * k).sum(axis=(1, 2)) / up.sum(axis=(1, 2))
    got = sp.localisation_scores(maps, mask)["mass_in_mask"].double().numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_mask_at_resolution_scores_better_than_a_uniform_map():
    _, mask = _case()
    ref = sp.mask_at_resolution(mask, (4, 4))
    assert ref.shape == (5, 4, 4) and float(ref.max()) == 1.0
    s = sp.localisation_scores(ref, mask)
    assert (s["mass_in_mask"] > mask.float().mean()).all() and (s["iou"] > 0.5).all()


def test_score_table_means_and_chance_row():
    maps, mask = _case()
    s = sp.localisation_scores(maps, mask)
    t = sp.score_table({"a": s}, chance=0.25, digits=4)
    assert list(t.index) == ["a", "uniform map (chance)"]
    assert t.loc["a", "iou"] == pytest.approx(float(s["iou"].mean()), abs=1e-4)
    assert t.loc["uniform map (chance)", "mass_in_mask"] == 0.25


def test_threshold_sweep_matches_fraction_of_max_rule():
    maps, mask = _case()
    out = sp.threshold_sweep(maps, mask, [0.3, 0.7])
    expected = sp.localisation_scores(maps, mask, ("fraction_of_max", 0.7))["iou"].mean()
    assert out.shape == (2,) and torch.isclose(out[1], expected)


def test_threshold_regions_keep_positions_at_or_above_the_share_of_the_maximum():
    maps, mask = _case()
    region = sp.threshold_regions(maps, (16, 16), 0.6)
    up = saliency.upsample(maps, (16, 16)).clamp(min=0).numpy()
    expected = up >= 0.6 * up.max(axis=(1, 2), keepdims=True)
    assert region.dtype == torch.bool and region.shape == (5, 16, 16)
    assert (region.numpy() == expected).mean() > 0.995  # ties at the boundary aside
    # the IoU of these regions is the sweep's IoU at that threshold
    assert torch.isclose(metrics.iou(region, mask).mean(), sp.threshold_sweep(maps, mask, [0.6])[0])


def test_mean_scores_and_mass_by_correctness_skip_nan_and_empty_groups():
    s = {"m": {"mass_in_mask": torch.tensor([0.2, float("nan"), 0.6, 1.0])}}
    assert sp.mean_scores(s["m"]) == {"mass_in_mask": pytest.approx(0.6)}
    ok, wrong = sp.mass_by_correctness(s, torch.tensor([True, True, True, False]))
    assert ok["m"] == pytest.approx(0.4) and wrong["m"] == pytest.approx(1.0)
    ok, wrong = sp.mass_by_correctness(s, torch.ones(4, dtype=torch.bool))
    assert np.isnan(wrong["m"])


def test_shape_errors_are_clear():
    maps, mask = _case()
    with pytest.raises(ValueError, match=r"maps \[B, h, w\]"):
        sp.localisation_scores(maps[0], mask)


def test_primary_comparison_is_the_paired_difference_and_valid_json():
    import json

    from scipy.stats import wilcoxon

    g = torch.Generator().manual_seed(1)
    b = torch.rand(40, generator=g)
    a = b + 0.05 + 0.01 * torch.randn(40, generator=g)
    rec = sp.primary_comparison({"A": {"mass_in_mask": a}, "B": {"mass_in_mask": b}}, a="A", b="B", n_boot=300)
    d = (a - b).double().numpy()
    assert rec["effect"] == pytest.approx(d.mean())
    assert rec["p"] == pytest.approx(wilcoxon(d).pvalue)
    lo, hi = rec["ci95"]
    assert lo < d.mean() < hi and rec["verdict"] == "higher"
    json.dumps(rec, allow_nan=False)  # no NaN in the record
    assert rec["auroc"] is None


def test_sample_items_is_seeded_includes_errors_and_never_repeats():
    correct = torch.ones(50, dtype=torch.bool)
    correct[[3, 17, 40]] = False
    a, b = sp.sample_items(correct, 10, seed=5), sp.sample_items(correct, 10, seed=5)
    assert torch.equal(a, b) and len(set(a.tolist())) == 10
    assert int((~correct[a]).sum()) == 2
    assert len(sp.sample_items(correct[:4], 10)) == 4


def test_claim_names_a_key_of_the_bibliography():
    from pathlib import Path

    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    assert f"{{{sp.CLAIM['source']}," in bib and sp.CLAIM["expected"] in ("higher", "lower")


def test_primer_verdict_judges_the_claim_by_every_score_of_the_table():
    import torch

    from uqxai_lib.studies import primer as sp

    g = torch.Generator().manual_seed(0)
    n = 60
    base = {"mass_in_mask": torch.rand(n, generator=g), "iou": torch.rand(n, generator=g),
            "dice": torch.rand(n, generator=g)}
    mixed = {"Grad-CAM": base, "Grad-CAM++": {"mass_in_mask": base["mass_in_mask"] - 0.1,
                                              "iou": base["iou"] + 0.1, "dice": base["dice"] + 0.1}}
    lad = sp.primer_verdict(mixed, chance=0.1, n_boot=300)
    rungs = {r["name"]: r["outcome"] for r in lad["rungs"]}
    assert lad["headline"] == rungs["across_metrics"] == "depends on the metric"
    assert rungs["direction"] == "reversed"          # the declared primary alone would say "reversed"
    better = {"Grad-CAM": base, "Grad-CAM++": {k: v + 0.1 for k, v in base.items()}}
    assert sp.primer_verdict(better, chance=0.1, n_boot=300)["headline"] == "reproduced"
    assert "synthetic" in lad["data"]

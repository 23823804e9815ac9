"""Tests of the benchmark script (uqxai_lib.bench): it runs, prints one ratio line per measure and
writes the JSON schema the performance page reads. No timing assertions: speed is measured by
running the script, not by tests."""
import json
import math

import pytest
import torch

from uqxai_lib import bench

EXPECTED = [
    "mc_dropout_vs_floor",
    "mc_dropout_vs_pytorch_grad_cam",
    "rashomon_maps_vs_pytorch_grad_cam",
    "rashomon_filter_vs_masked_forward",
    "ecg_test_time_vs_captum",
    "spearman_vs_scipy",
    "ig_samples_vs_captum_loop",
    "occlusion_samples_vs_captum_loop",
    "sweep_2_workers_vs_sequential",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "sub" / "bench.json"
    lines: list[str] = []
    result = bench.run("tiny", device="cpu", echo=lines.append)
    bench.cache.atomic_write_json(out, result)
    return out, lines


def test_tiny_bench_writes_the_schema_the_book_reads(tiny_run):
    out, _ = tiny_run
    data = json.loads(out.read_text())
    assert set(data) == {"machine", "measures", "quick", "config"}
    assert data["quick"] is True and data["config"] == "tiny"
    assert data["machine"]["cpu_cores"] >= 1 and data["machine"]["torch"]
    assert [m["name"] for m in data["measures"]] == EXPECTED
    for m in data["measures"]:
        assert {"name", "ratio", "target", "ours_s", "baseline_s", "note", "met"} <= set(m)
        assert isinstance(m["note"], str) and m["note"] and isinstance(m["target"], str)
        assert m["met"] is None  # targets hold for the full sizes only; tiny/quick runs are not judged
        if not m["target"].startswith("reported"):
            assert m["target"].endswith("at full size (not judged at tiny size)"), m["target"]
    assert "peak_mem_mb" in data["measures"][0]
    for m in data["measures"]:  # median with its spread
        assert m["ours_min_s"] <= m["ours_s"] <= m["ours_max_s"], m["name"]
        assert m["baseline_min_s"] <= m["baseline_s"] <= m["baseline_max_s"], m["name"]
        assert m["repeats"] >= 1


def test_ratios_and_times_are_positive_finite_numbers(tiny_run):
    out, _ = tiny_run
    for m in json.loads(out.read_text())["measures"]:
        for key in ("ratio", "ours_s", "baseline_s"):
            v = m[key]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (m["name"], key, v)
        assert m["ratio"] == pytest.approx(m["baseline_s"] / m["ours_s"], rel=2e-3)


def test_one_ratio_line_per_measure(tiny_run):
    _, lines = tiny_run
    assert [ln.split()[:2] for ln in lines] == [["ratio", n] for n in EXPECTED]
    assert all(float(ln.split()[2]) > 0 for ln in lines)


def test_main_writes_json_and_prints_ratio_lines(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bench.main(["--tiny", "--only", "spearman", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("ratio spearman_vs_scipy ")
    assert json.loads(out.read_text())["measures"][0]["name"] == "spearman_vs_scipy"


@pytest.mark.parametrize("argv, match", [
    (["--only", "nonsense"], "unknown measure"),
    (["--repeats", "0"], "repeats must be"),
    (["--device", "tpu"], "device"),
    (["--threads", "0"], "threads must be"),
])
def test_bad_arguments_exit_2_with_a_one_line_message(tmp_path, capsys, argv, match):
    out = tmp_path / "b.json"
    assert bench.main(["--tiny", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_time_spread_warms_up_at_the_same_shape_and_reports_median_min_max():
    seen = []
    clock = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # three timed calls: 1 s, 3 s, 2 s

    def f(n=10):
        seen.append(n)

    real = bench.time.perf_counter
    bench.time.perf_counter = lambda: next(clock)
    try:
        t = bench.time_spread({"f": f}, repeats=3, device=torch.device("cpu"), warmup={"f": lambda: f(1)})
    finally:
        bench.time.perf_counter = real
    assert seen == [10, 10, 10, 10]  # the warm-up is the full-size call, not the smaller one offered
    assert t["f"] == {"median": 2.0, "min": 1.0, "max": 3.0, "repeats": 3}


def test_time_interleaved_reports_a_median_per_function():
    calls = []
    t = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               repeats=3, device=torch.device("cpu"))
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert calls == ["a", "b"] * 4  # one warm-up round, then interleaved repeats


def test_sweep_of_real_chapter_tasks_runs_both_sides_cold_and_is_full_size_only(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="full benchmark only"):
        bench.run("tiny", only=["sweep_chapter"], echo=None)
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path / "not_used"))  # each side gets its own cold cache
    (m,) = bench.bench_sweep_chapter_tasks(dict(study="mri_mc_dropout", profile="tiny", seeds=2, workers=2,
                                                repeats=1), torch.device("cpu"))
    rec = m.record()
    assert rec["name"] == "sweep_chapter_tasks" and rec["tasks"] == 2 and rec["study"] == "mri_mc_dropout"
    assert rec["ours_s"] > 0 and rec["baseline_s"] > 0 and rec["met"] is None
    assert not (tmp_path / "not_used").exists()  # the tasks trained in their own caches, not the caller's
    from uqxai_lib import report

    assert "sweep_chapter_tasks" in report.bench_sweep_text([{"machine": {}, "measures": [rec]}])

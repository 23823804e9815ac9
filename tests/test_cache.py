import json
from collections import namedtuple

import numpy as np
import pytest
import torch

import uqxai_lib
from uqxai_lib import cache

Stack = namedtuple("Stack", "maps probs")


def test_config_hash_ignores_key_order_and_tuple_vs_list():
    assert cache.config_hash({"a": 1, "b": (1, 2)}) == cache.config_hash({"b": [1, 2], "a": 1})


def test_config_hash_changes_with_any_value_and_nested_value():
    base = {"lr": 1e-3, "model": {"width": 8}}
    h = cache.config_hash(base)
    assert cache.config_hash({"lr": 1e-4, "model": {"width": 8}}) != h
    assert cache.config_hash({"lr": 1e-3, "model": {"width": 16}}) != h
    assert cache.config_hash({"lr": 1e-3, "model": {"width": 8}, "extra": None}) != h


def test_config_hash_is_16_hex_of_sha256_including_package_version(monkeypatch):
    h = cache.config_hash({"x": 1})
    assert len(h) == 16 and int(h, 16) >= 0
    monkeypatch.setattr(uqxai_lib, "__version__", "999.0")
    assert cache.config_hash({"x": 1}) != h


def test_config_hash_numpy_scalars_equal_python_numbers():
    assert cache.config_hash({"a": np.int64(3), "b": np.float32(0.5)}) == cache.config_hash({"a": 3, "b": 0.5})


def test_config_hash_rejects_unserialisable_values_and_non_string_keys():
    with pytest.raises(TypeError, match="JSON"):
        cache.config_hash({"f": object()})
    with pytest.raises(TypeError, match="keys must be strings"):
        cache.config_hash({1: "a"})
    with pytest.raises(TypeError, match="mapping"):
        cache.config_hash([1, 2])


def test_cache_root_uses_env_else_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    monkeypatch.delenv("UQXAI_CACHE_DIR")
    monkeypatch.chdir(tmp_path)
    assert cache.cache_root() == tmp_path / ".cache" / "uqxai"


def test_atomic_writes_create_parents_and_leave_no_temp_files(tmp_path):
    p = tmp_path / "a" / "b" / "x.bin"
    cache.atomic_write_bytes(p, b"hello")
    assert p.read_bytes() == b"hello"
    cache.atomic_write_bytes(p, b"again")
    assert p.read_bytes() == b"again"
    cache.atomic_write_json(tmp_path / "r.json", {"z": np.float64(1.5), "a": torch.tensor([1, 2])})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2], "z": 1.5}
    assert (tmp_path / "r.json").read_text().index('"a"') < (tmp_path / "r.json").read_text().index('"z"')
    cache.atomic_torch_save({"w": torch.arange(3)}, tmp_path / "m.pt")
    assert torch.equal(torch.load(tmp_path / "m.pt")["w"], torch.arange(3))
    leftovers = [q.name for q in tmp_path.rglob("*") if q.name.endswith(".tmp")]
    assert leftovers == []


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    p = tmp_path / "r.json"
    cache.atomic_write_json(p, {"ok": 1})
    with pytest.raises(ValueError):
        cache.atomic_write_json(p, {"bad": float("nan")})  # NaN is not JSON
    with pytest.raises(TypeError):
        cache.atomic_write_json(p, {"bad": object()})
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["r.json"]


def test_atomic_torch_save_interrupted_keeps_previous_entry(tmp_path):
    p = tmp_path / "m.pt"
    cache.atomic_torch_save(torch.ones(2), p)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        cache.atomic_torch_save({"x": Boom()}, p)
    assert torch.equal(torch.load(p), torch.ones(2))
    assert [q.name for q in tmp_path.iterdir()] == ["m.pt"]


def test_cached_computes_once_then_loads_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.randn(4), "n": 3}

    a = cache.cached("models/toy", {"width": 4}, compute)
    b = cache.cached("models/toy", {"width": 4}, compute)
    assert len(calls) == 1
    assert torch.equal(a["w"], b["w"]) and b["n"] == 3
    path = cache.cache_path("models/toy", {"width": 4})
    assert path.exists() and path.parent == tmp_path / "models" / "toy"
    assert json.loads(path.with_suffix(".json").read_text())["config"] == {"width": 4}
    cache.cached("models/toy", {"width": 5}, compute)
    assert len(calls) == 2


def test_cached_roundtrips_namedtuples(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    v = cache.cached("samples/x", {"k": 1}, lambda: Stack(torch.zeros(2), torch.ones(2)))
    w = cache.cached("samples/x", {"k": 1}, lambda: pytest.fail("should be cached"))
    assert torch.equal(w[0], v.maps) and torch.equal(w[1], v.probs)


def test_cached_recomputes_unreadable_entry_with_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    path = cache.cache_path("k", {"a": 1})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="recomputing"):
        assert cache.cached("k", {"a": 1}, lambda: 42) == 42
    assert cache.cached("k", {"a": 1}, lambda: 0) == 42


def test_cached_compute_error_leaves_no_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("k", {"a": 1}, boom)
    assert not cache.cache_path("k", {"a": 1}).exists()


@pytest.mark.parametrize("kind", ["", "../escape", "/abs", "a/../../b"])
def test_cached_rejects_kinds_that_escape_the_cache(kind):
    with pytest.raises(ValueError, match="kind"):
        cache.cache_path(kind, {})


def test_round_sig_keeps_six_significant_digits_like_format_g():
    vals = [0.000123456789, 98765.4321, -2.5e-10, 1 / 3]
    out = cache.round_sig(vals)
    assert out == [float(f"{v:.6g}") for v in vals]
    assert cache.round_sig({"t": torch.tensor([0.1234567]), "i": np.int64(2), "b": np.bool_(True)}) == {
        "t": [0.123457], "i": 2, "b": True}


def test_cached_key_includes_torch_thread_count_and_device(tmp_path, monkeypatch):
    """A result computed at one torch thread count (or on one device) is not reused at another."""
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    before = torch.get_num_threads()
    calls = []

    def compute():
        calls.append(torch.get_num_threads())
        return len(calls)

    try:
        torch.set_num_threads(1)
        assert cache.cached("models/t", {"w": 1}, compute, device="cpu") == 1
        assert cache.cached("models/t", {"w": 1}, compute, device="cpu") == 1  # same runtime: reused
        p1 = cache.cache_path("models/t", {"w": 1}, "cpu")
        torch.set_num_threads(2)
        assert cache.cached("models/t", {"w": 1}, compute, device="cpu") == 2  # 2 threads: recomputed
        p2 = cache.cache_path("models/t", {"w": 1}, "cpu")
        assert cache.cached("models/t", {"w": 1}, compute, device="cuda") == 3  # other device: recomputed
        assert calls == [1, 2, 2]
        assert p1 != p2 and p1.exists() and p2.exists()
        side = json.loads(p2.with_suffix(".json").read_text())
        assert side["runtime"] == {"torch_threads": 2, "device": "cpu"}
        torch.set_num_threads(1)
        assert cache.cached("models/t", {"w": 1}, compute, device="cpu") == 1  # back at 1: the old entry
    finally:
        torch.set_num_threads(before)


def test_runtime_key_device_defaults_to_the_one_pick_device_chose(monkeypatch):
    from uqxai_lib import utils

    monkeypatch.setattr(cache, "_current_device", None)
    utils.pick_device("cpu")
    assert cache.runtime_key() == {"torch_threads": torch.get_num_threads(), "device": "cpu"}
    assert cache.runtime_key("cuda:1")["device"] == "cuda:1"

import random

import numpy as np
import pytest
import torch

from uqxai_lib.data import DataError
from uqxai_lib.utils import pick_device, resolve_data_dir, seed_everything


def test_pick_device_auto_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device().type == expected


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu "])
def test_pick_device_cpu_spellings(spec):
    assert pick_device(spec) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "tpu", "cuda:x", "", "cuda:-1", "mps"])
def test_pick_device_rejects_unknown_spec_and_says_what_to_pass(spec):
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        pick_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_pick_device_cuda_without_cuda_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        pick_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_cuda_index_out_of_range():
    with pytest.raises(ValueError, match="does not exist"):
        pick_device(f"cuda:{torch.cuda.device_count()}")


def test_seed_everything_seeds_python_numpy_torch_and_returns_generator():
    g1 = seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g1).item())
    g2 = seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g2).item())
    assert a == b
    assert isinstance(g1, torch.Generator) and g1.device.type == "cpu"
    seed_everything(124)
    assert random.random() != a[0]


@pytest.mark.parametrize("bad", [1.5, "3", -1, True, 2**32])
def test_seed_everything_rejects_non_integer_or_out_of_range(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


def test_resolve_data_dir_none_without_env_means_synthetic(monkeypatch):
    monkeypatch.delenv("UQXAI_DATA_DIR", raising=False)
    assert resolve_data_dir(None) is None
    assert resolve_data_dir("") is None


def test_resolve_data_dir_prefers_explicit_path_over_env(tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    arg_dir = tmp_path / "arg"
    arg_dir.mkdir()
    monkeypatch.setenv("UQXAI_DATA_DIR", str(env_dir))
    assert resolve_data_dir(arg_dir) == arg_dir.resolve()
    assert resolve_data_dir(str(arg_dir)) == arg_dir.resolve()
    assert resolve_data_dir(None) == env_dir.resolve()


def test_resolve_data_dir_missing_path_is_data_error_naming_path_and_source(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="nope.*data_dir.*does not exist"):
        resolve_data_dir(missing)
    monkeypatch.setenv("UQXAI_DATA_DIR", str(missing))
    with pytest.raises(DataError, match=r"\$UQXAI_DATA_DIR"):
        resolve_data_dir(None)


def test_resolve_data_dir_file_is_not_a_directory(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        resolve_data_dir(f)

"""Small shared helpers: device choice, seeding, data-directory resolution.

>>> pick_device("cpu")
device(type='cpu')
>>> g = seed_everything(0); torch.rand(1, generator=g).item() == torch.rand(1, generator=seed_everything(0)).item()
True
>>> resolve_data_dir(None) is None or "UQXAI_DATA_DIR" in os.environ
True
"""
from __future__ import annotations

import os
import pathlib
import random
import re

import numpy as np
import torch

from uqxai_lib.data import DataError

__all__ = ["DATA_DIR_ENV", "pick_device", "seed_everything", "resolve_data_dir"]

#: Environment variable naming the real-data directory (used when no path is passed).
DATA_DIR_ENV = "UQXAI_DATA_DIR"

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def pick_device(spec: str = "auto") -> torch.device:
    """Turn a device spec into a :class:`torch.device`.

    Parameters
    ----------
    spec : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        Unknown spec, CUDA requested but not available, or a CUDA index that does not exist.

    The chosen device is also recorded for cache keys (:func:`uqxai_lib.cache.set_device`).

    >>> pick_device("CPU")
    device(type='cpu')
    >>> pick_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'tpu'; pass one of: auto, cpu, cuda, cuda:N
    """
    dev = _pick_device(spec)
    from uqxai_lib import cache

    cache.set_device(dev)
    return dev


def _pick_device(spec) -> torch.device:
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ValueError(f"device must be a string, got {type(spec).__name__}; pass auto, cpu, cuda or cuda:N")
    s = spec.strip().lower()
    if not _DEVICE_RE.match(s):
        raise ValueError(f"unknown device {spec!r}; pass one of: auto, cpu, cuda, cuda:N")
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available here; pass --device cpu or auto")
    dev = torch.device(s)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {spec!r} does not exist ({torch.cuda.device_count()} CUDA device(s)); "
            f"pass cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA).

    Returns a fresh CPU :class:`torch.Generator` seeded with ``seed``, to be passed explicitly
    to functions that draw random numbers.

    >>> a = torch.randn(3, generator=seed_everything(7))
    >>> b = torch.randn(3, generator=seed_everything(7))
    >>> bool((a == b).all())
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def resolve_data_dir(path: str | os.PathLike | None) -> pathlib.Path | None:
    """Where real data live: ``path``, else ``$UQXAI_DATA_DIR``, else ``None`` (embedded synthetic data).

    Raises
    ------
    DataError
        A path is given (directly or via the environment) but is not an existing directory.
    """
    source = "data_dir"
    if path is None or (isinstance(path, str) and path.strip() == ""):
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env:
            return None
        path, source = env, f"${DATA_DIR_ENV}"
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"data directory {str(p)!r} (from {source}) does not exist; pass an existing directory "
            f"or leave it unset to use the embedded synthetic data"
        )
    if not p.is_dir():
        raise DataError(f"data directory {str(p)!r} (from {source}) is not a directory; pass a directory")
    return p.resolve()


def load_state_file(path: str | os.PathLike, *, if_missing: str) -> dict:
    """The state dict saved at ``path`` (on the CPU; a ``{"state_dict": ...}`` checkpoint is unwrapped).

    Only tensors are loaded (``weights_only=True``); nothing is ever downloaded. A missing file raises
    ``FileNotFoundError`` naming it, followed by ``if_missing`` (what to pass instead).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {os.fspath(path)!r} does not exist; {if_missing}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state

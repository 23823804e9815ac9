"""Content-addressed cache for expensive steps, and atomic writes.

An entry lives at ``<cache_root()>/<kind>/<hash>.pt``; the hash covers the canonical JSON of the
configuration, the package version *and* the runtime that computed it (torch's CPU thread count and
the device, see :func:`runtime_key`), so a changed parameter, a new code version, or a run at another
thread count (which changes floating-point summation order and so the trained model) never reuses a
stale entry. Every write goes to a temporary file in the target directory first and
is then moved into place with :func:`os.replace`, so an interrupted run never leaves a half-written
file behind and simply recomputes what is missing on the next run.

>>> import tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_json(d / "r.json", {"b": 1, "a": [1.5, 2]})
>>> (d / "r.json").read_text()
'{\\n  "a": [\\n    1.5,\\n    2\\n  ],\\n  "b": 1\\n}\\n'
>>> config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
True
>>> len(config_hash({"a": 1}))
16
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import pathlib
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

import numpy as np
import torch

import uqxai_lib

__all__ = [
    "CACHE_DIR_ENV",
    "canonical_json",
    "config_hash",
    "cache_root",
    "cache_path",
    "runtime_key",
    "set_device",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "cached",
    "round_sig",
]

T = TypeVar("T")

#: Environment variable overriding the cache location.
CACHE_DIR_ENV = "UQXAI_CACHE_DIR"


def _jsonable(obj: Any) -> Any:
    """``default=`` hook for :func:`json.dumps`: common scientific types to plain JSON."""
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(
        f"cannot turn {type(obj).__name__} into JSON; describe it with plain numbers/strings/lists/dicts"
    )


def _check_keys(obj: Any) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"config keys must be strings, got {k!r} ({type(k).__name__})")
            _check_keys(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_keys(v)


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, tuples as lists, NumPy/torch scalars as numbers.

    >>> canonical_json({"b": (1, 2), "a": np.float64(0.5)})
    '{"a":0.5,"b":[1,2]}'
    """
    _check_keys(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable, allow_nan=True)


def config_hash(config: Mapping) -> str:
    """First 16 hex characters of the sha256 of ``canonical_json(config)`` and ``uqxai_lib.__version__``.

    >>> config_hash({"lr": 1e-3}) != config_hash({"lr": 1e-4})
    True
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (dict), got {type(config).__name__}")
    payload = canonical_json({"config": config, "uqxai_lib": uqxai_lib.__version__})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def cache_root() -> pathlib.Path:
    """``$UQXAI_CACHE_DIR`` if set, else ``<cwd>/.cache/uqxai``."""
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    return pathlib.Path(env).expanduser() if env else pathlib.Path.cwd() / ".cache" / "uqxai"


#: Device named in cache keys when a caller passes none; :func:`uqxai_lib.utils.pick_device` sets it.
_current_device: str | None = None


def set_device(device: str | torch.device | None) -> None:
    """Record the device this process computes on (for :func:`runtime_key`); ``None`` forgets it."""
    global _current_device
    _current_device = None if device is None else str(torch.device(device))


def runtime_key(device: str | torch.device | None = None) -> dict:
    """What a cached result depends on besides its configuration: ``{"torch_threads", "device"}``.

    ``torch_threads`` is :func:`torch.get_num_threads` now (set it with ``OMP_NUM_THREADS`` or
    :func:`torch.set_num_threads` *before* computing); ``device`` is ``device`` if given, else the one
    recorded by :func:`set_device` (``utils.pick_device`` calls it), else ``"cuda"`` / ``"cpu"`` by
    what this machine has.

    >>> sorted(runtime_key("cpu"))
    ['device', 'torch_threads']
    >>> runtime_key("cpu")["device"]
    'cpu'
    """
    if device is not None:
        dev = str(torch.device(device))
    elif _current_device is not None:
        dev = _current_device
    else:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return {"torch_threads": int(torch.get_num_threads()), "device": dev}


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"cache kind must be a non-empty string such as 'models/ecg', got {kind!r}")
    p = pathlib.PurePosixPath(kind)
    if p.is_absolute() or ".." in p.parts or "\\" in kind:
        raise ValueError(f"cache kind {kind!r} must be a relative path without '..' (e.g. 'models/ecg')")


def cache_path(kind: str, config: Mapping, device: str | torch.device | None = None) -> pathlib.Path:
    """Where :func:`cached` keeps the entry for ``(kind, config)`` computed now on ``device``
    (the key includes :func:`runtime_key`)."""
    _check_kind(kind)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (dict), got {type(config).__name__}")
    return cache_root() / kind / f"{config_hash({'config': config, 'runtime': runtime_key(device)})}.pt"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, ``os.replace``)."""
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys and a trailing newline, atomically.

    NumPy and torch scalars/arrays become plain numbers/lists. NaN/inf are rejected (not JSON).
    """
    text = json.dumps(obj, sort_keys=True, indent=2, default=_jsonable, allow_nan=False)
    atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it into place;
    on any error the temp file is removed and ``path`` is left as it was."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(p: str | os.PathLike) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def cached(kind: str, config: Mapping, compute: Callable[[], T], *, device: str | torch.device | None = None) -> T:
    """Return the cached result of ``compute()`` for ``(kind, config)``, computing and storing it if absent.

    Parameters
    ----------
    kind : str
        Sub-directory of the cache root, e.g. ``"models/ecg"`` or ``"samples/mri"``.
    config : Mapping
        Everything the result depends on (plain JSON-able values); hashed by :func:`config_hash`.
    compute : callable
        Zero-argument function producing the value; it must be storable with :func:`torch.save`.
    device : str or torch.device, optional
        Device ``compute`` runs on (default: see :func:`runtime_key`). The key also holds torch's
        current CPU thread count, so a result computed at 1 thread is not reused at 2 threads.

    Notes
    -----
    Entries are loaded with ``torch.load(..., weights_only=False)``: only load caches you wrote.
    A file that cannot be read (e.g. from an incompatible torch version) is recomputed with a warning.
    A human-readable copy of the configuration is written next to each entry (``<hash>.json``).
    """
    path = cache_path(kind, config, device)
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # unreadable entry: recompute rather than fail
            warnings.warn(f"cache entry {path} could not be read ({exc!r}); recomputing it", stacklevel=2)
    value = compute()
    atomic_torch_save(value, path)
    try:
        atomic_write_text(
            path.with_suffix(".json"),
            json.dumps({"kind": kind, "config": config, "runtime": runtime_key(device),
                        "uqxai_lib": uqxai_lib.__version__},
                       sort_keys=True, indent=2, default=_jsonable) + "\n",
        )
    except (TypeError, ValueError):
        pass
    return value


def round_sig(x: Any, digits: int = 6) -> Any:
    """Round every float in a nested structure to ``digits`` significant digits (for results JSON).

    >>> round_sig({"a": 0.123456789, "b": [1234567.89, 3], "c": "x"})
    {'a': 0.123457, 'b': [1234570.0, 3], 'c': 'x'}
    """
    if isinstance(x, Mapping):
        return {k: round_sig(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_sig(v, digits) for v in x]
    if isinstance(x, torch.Tensor):
        return round_sig(x.detach().cpu().tolist(), digits)
    if isinstance(x, np.ndarray):
        return round_sig(x.tolist(), digits)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if x == 0 or not math.isfinite(x):
            return x
        return float(f"{x:.{digits}g}")
    return x


def finite_or_none(x: Any) -> Any:
    """Replace NaN / infinite floats by ``None`` in a nested structure (valid JSON); the rest as is.

    >>> finite_or_none({"a": float("nan"), "b": [0.5, float("inf")], "c": "x"})
    {'a': None, 'b': [0.5, None], 'c': 'x'}
    """
    if isinstance(x, Mapping):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    if isinstance(x, (float, np.floating)) and not math.isfinite(float(x)):
        return None
    if isinstance(x, np.floating):
        return float(x)
    return x

"""Data manifests: which files a real data set consists of, where to get them, and their checksums.

A manifest is ``data_manifests/<name>.yaml`` at the repository root::

    name: ecg                                  # must equal the file name
    title: Fantasia + St Petersburg INCART     # optional, human readable
    source: https://physionet.org/...          # where to get the data (required)
    license: ODC-By 1.0                        # optional
    citation: Goldberger et al. 2000           # optional
    files:                                     # required, one entry per file (paths relative to the data root)
      - path: fantasia/f1o01.dat
        sha256: 0123...abcd                    # optional; when present it is checked
        url: https://physionet.org/.../f1o01.dat   # optional per-file source (else ``source``)
      - path: incart/I01.hea                   # a bare string is a path without checksum
    globs:                                     # optional: patterns that must match >= min_count files
      - pattern: Training/glioma_tumor/*.jpg
        min_count: 100

``files`` may also be a mapping ``path: sha256`` (or ``path: {sha256: ..., url: ...}``).
:func:`load_manifest` normalises all forms to ``files: [{"path", "sha256", "url"}]``.

**Pinning your copy.** The shipped manifests cannot pin digests (the data could not be downloaded
where they were written), so every ``sha256: null`` is a no-op. Once you trust your copy::

    python -m uqxai_lib.data.pin fill ecg /data/uqxai      # writes /data/uqxai/uqxai-ecg.manifest.yaml
    python -m uqxai_lib.data.pin verify ecg /data/uqxai    # later: every file present and unchanged?

``fill`` checks the copy against the shipped manifest (all files present, folder counts reached;
``--allow-missing`` pins a partial copy), then writes a *local* manifest with the sha256 of every
listed file and of every file matched by a ``globs`` pattern, next to the data (``--out`` elsewhere).
The shipped manifest is never changed. ``verify`` checks a copy against its local manifest (or
the shipped one when there is none) and lists every missing or changed file; exit status 0 / 1.
The ECG loader uses a local manifest it finds in the data directory (:func:`manifest_for`), so its
digests are checked on every load. The command (``fill``, ``verify``) lives in
:mod:`uqxai_lib.data.pin`, above the loaders whose layout it needs to find a copy's root.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import pathlib
from collections.abc import Iterable, Mapping

import yaml

from uqxai_lib.data import DataError, data_error

__all__ = ["MANIFEST_DIR", "available_manifests", "count_matches", "matching_files", "load_manifest",
           "load_manifest_file", "local_manifest_path", "manifest_for", "sha256_file",
           "verify_files"]

#: ``data_manifests/`` at the repository root (two levels above this package directory).
MANIFEST_DIR = pathlib.Path(__file__).resolve().parents[2] / "data_manifests"


def available_manifests(directory: pathlib.Path | None = None) -> list[str]:
    """Names of the manifests in ``directory`` (default :data:`MANIFEST_DIR`)."""
    d = pathlib.Path(directory) if directory is not None else MANIFEST_DIR
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_manifest(name: str, *, directory: str | os.PathLike | None = None) -> dict:
    """Read and validate ``data_manifests/<name>.yaml``.

    Returns a dict with at least ``name``, ``source`` and ``files`` (a list of dicts with keys
    ``path``, ``sha256`` (str or None) and ``url``), plus ``globs`` (list of ``{pattern, min_count}``)
    and any other keys of the file (``license``, ``citation``, ...).

    Raises
    ------
    DataError
        Unknown name (the message lists the available ones) or a malformed manifest.
    """
    d = pathlib.Path(directory) if directory is not None else MANIFEST_DIR
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"manifest name must be a plain name such as 'ecg', got {name!r}")
    path = d / f"{name}.yaml"
    if not path.is_file():
        have = ", ".join(available_manifests(d)) or "none"
        raise DataError(f"no data manifest {name!r} at {path}; available: {have}")
    return load_manifest_file(path, name)


def load_manifest_file(path: str | os.PathLike, name: str) -> dict:
    """Read and validate a manifest file at any ``path`` (e.g. a local one written by :func:`fill`)."""
    path = pathlib.Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"data manifest {path} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise DataError(f"data manifest {path} cannot be read ({exc})") from None
    return _normalise(raw, path, name)


def local_manifest_path(name: str, root: str | os.PathLike) -> pathlib.Path:
    """Where :func:`fill` writes the local manifest of data set ``name`` whose files lie under ``root``."""
    return pathlib.Path(root) / f"uqxai-{name}.manifest.yaml"


def manifest_for(name: str, root: str | os.PathLike) -> dict:
    """The local manifest of ``root`` (digests of the user's copy) when present, else the shipped one."""
    local = local_manifest_path(name, root)
    return load_manifest_file(local, name) if local.is_file() else load_manifest(name)


def _normalise(raw, path: pathlib.Path, name: str) -> dict:
    def bad(msg: str) -> DataError:
        return DataError(f"data manifest {path}: {msg}")

    if not isinstance(raw, Mapping):
        raise bad("top level must be a mapping with keys name, source, files")
    m = dict(raw)
    m.setdefault("name", name)
    if m["name"] != name:
        raise bad(f"'name: {m['name']}' does not match the file name {name!r}")
    if not isinstance(m.get("source"), str) or not m["source"].strip():
        raise bad("'source' (where to get the data, a URL or DOI) is required")
    files = m.get("files", [])
    if isinstance(files, Mapping):
        files = [{"path": k, **(v if isinstance(v, Mapping) else {"sha256": v})} for k, v in files.items()]
    if not isinstance(files, list):
        raise bad("'files' must be a list of {path, sha256, url} entries or a mapping path -> sha256")
    out = []
    for i, f in enumerate(files):
        if isinstance(f, str):
            f = {"path": f}
        if not isinstance(f, Mapping) or not isinstance(f.get("path"), str) or not f["path"].strip():
            raise bad(f"files[{i}] needs a 'path' string")
        p = pathlib.PurePosixPath(f["path"])
        if p.is_absolute() or ".." in p.parts:
            raise bad(f"files[{i}].path {f['path']!r} must be relative to the data directory, without '..'")
        sha = f.get("sha256")
        if sha is not None:
            sha = str(sha).strip().lower()
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise bad(f"files[{i}].sha256 for {f['path']!r} is not a 64-character hex digest")
        out.append({**f, "path": str(p), "sha256": sha, "url": f.get("url") or m["source"]})
    globs = []
    for i, g in enumerate(m.get("globs") or []):
        if isinstance(g, str):
            g = {"pattern": g}
        if not isinstance(g, Mapping) or not isinstance(g.get("pattern"), str):
            raise bad(f"globs[{i}] needs a 'pattern' string")
        mc = g.get("min_count", 1)
        if not isinstance(mc, int) or mc < 0:
            raise bad(f"globs[{i}].min_count must be a non-negative integer")
        globs.append({**g, "min_count": mc, "url": g.get("url") or m["source"]})
    if not out and not globs:
        raise bad("lists no 'files' (or 'globs'); nothing could be verified")
    m["files"], m["globs"] = out, globs
    return m


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(
    root: str | os.PathLike,
    manifest: Mapping,
    *,
    check_sha256: bool = True,
    only: Iterable[str] | None = None,
    advice: str | Iterable[str] = "",
) -> None:
    """Check that every file of ``manifest`` exists under ``root`` (and matches its sha256).

    Parameters
    ----------
    root : path
        The data directory (e.g. ``--data-dir``).
    manifest : Mapping
        As returned by :func:`load_manifest`.
    check_sha256 : bool
        Also compare checksums of files that have one in the manifest.
    only : iterable of str, optional
        Paths or ``fnmatch`` patterns (relative to ``root``) restricting which manifest files are
        checked; each must match at least one manifest entry. Glob entries are then skipped.
    advice : str or list of str
        What to do, appended to the error message (e.g. the loader option that uses a partial copy).

    Raises
    ------
    DataError
        Listing every missing file, every checksum mismatch and every under-populated glob (the first
        20 and a count; ``.problems`` holds all), each with where to get it, then ``advice``.
    """
    root = pathlib.Path(root)
    name = manifest.get("name", "?")
    if not root.is_dir():
        raise DataError(f"data directory {str(root)!r} for {name!r} does not exist; get the data from "
                        f"{manifest.get('source', '?')} and pass its directory")
    entries = list(manifest.get("files", []))
    globs = list(manifest.get("globs", []))
    if only is not None:
        patterns = [only] if isinstance(only, str) else list(only)
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(e["path"], p) for e in entries)]
        bad = [p for p in unmatched if any(c in p for c in "*?[")]
        if bad:
            raise DataError(f"manifest {name!r} has no file matching {bad}; check the 'only' argument")
        # a plain path the manifest lacks (e.g. a local manifest of a partial copy) is checked for presence
        extra = [{"path": p, "sha256": None, "url": manifest.get("source", "?")} for p in unmatched]
        entries = [e for e in entries if any(fnmatch.fnmatchcase(e["path"], p) for p in patterns)] + extra
        globs = []
    problems: list[str] = []
    for e in entries:
        f = root / e["path"]
        if not f.is_file():
            problems.append(f"missing {e['path']} (get it from {e['url']})")
        elif check_sha256 and e.get("sha256"):
            got = sha256_file(f)
            if got != e["sha256"]:
                problems.append(f"corrupt {e['path']}: sha256 {got} != expected {e['sha256']} "
                                f"(download it again from {e['url']})")
    for g in globs:
        n = count_matches(root, g["pattern"])
        if n < g["min_count"]:
            problems.append(f"only {n} files match {g['pattern']} (expected >= {g['min_count']}; "
                            f"get them from {g['url']})")
    if problems:
        raise data_error(f"data set {name!r} under {root} is incomplete", problems, advice)


def count_matches(root: str | os.PathLike, pattern: str) -> int:
    """How many :func:`matching_files` ``pattern`` has under ``root``."""
    return len(matching_files(root, pattern))


def matching_files(root: str | os.PathLike, pattern: str) -> list[pathlib.Path]:
    """Files under ``root`` matching ``pattern`` (``dir/*.jpg``), sorted, the file-name part compared
    case-insensitively (``.JPG`` counts as ``*.jpg``); hidden files (``.DS_Store``, macOS ``._*``) never count."""
    root = pathlib.Path(root)
    parent, _, name = pattern.replace("\\", "/").rpartition("/")
    if not parent:
        dirs = [root]
    elif any(c in parent for c in "*?["):
        dirs = [d for d in root.glob(parent) if d.is_dir()]
    else:
        dirs = [root / parent] if (root / parent).is_dir() else []
    name = name.lower()
    return sorted(p for d in dirs for p in d.iterdir()
                  if not p.name.startswith(".") and p.is_file() and fnmatch.fnmatchcase(p.name.lower(), name))

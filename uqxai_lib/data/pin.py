"""``python -m uqxai_lib.data.pin {fill,verify} NAME DATA_DIR``: pin the sha256 digests of your copy
of a real data set in a local manifest, and check a copy later (see :mod:`uqxai_lib.data.manifest`
for the manifest format and the local manifests).

This module sits above the loaders: the root of a SARTAJ or HAM10000 copy may be one folder below
the directory given, and only their loaders know their layout (:func:`data_root`).
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable

import yaml

from uqxai_lib.data import DataError, ham10000, sartaj
from uqxai_lib.data.manifest import (
    available_manifests,
    load_manifest,
    load_manifest_file,
    local_manifest_path,
    manifest_for,
    matching_files,
    sha256_file,
    verify_files,
)

__all__ = ["data_root", "fill", "main"]


def data_root(name: str, data_dir: str | os.PathLike) -> pathlib.Path:
    """The folder the paths of manifest ``name`` are relative to (SARTAJ and HAM10000 may sit one level down)."""
    finders = {"sartaj": sartaj.find_root, "ham10000": ham10000.find_root}
    return finders[name](data_dir) if name in finders else pathlib.Path(data_dir)


def fill(name: str, data_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
         allow_missing: bool = False) -> pathlib.Path:
    """Write a local manifest with the sha256 of every file of ``name`` present under ``data_dir``.

    The copy is first checked against the shipped manifest (missing files, folder counts, pinned
    digests); a :class:`DataError` lists every problem unless ``allow_missing``. Returns the path
    written (default :func:`local_manifest_path`). The shipped manifest is not changed.
    """
    from uqxai_lib.cache import atomic_write_text

    shipped = load_manifest(name)
    root = data_root(name, data_dir)
    try:
        verify_files(root, shipped, advice="pin a partial copy with --allow-missing, or complete it first")
    except DataError:
        if not allow_missing or not root.is_dir():
            raise
    files, seen = [], set()
    for e in shipped["files"]:
        f = root / e["path"]
        if f.is_file():
            files.append({"path": e["path"], "sha256": sha256_file(f), "url": e["url"]})
            seen.add(e["path"])
    for g in shipped["globs"]:
        for f in matching_files(root, g["pattern"]):
            rel = f.relative_to(root).as_posix()
            if rel not in seen:
                files.append({"path": rel, "sha256": sha256_file(f), "url": g["url"]})
                seen.add(rel)
    if not files:
        raise DataError(f"no file of data set {name!r} under {root}; nothing to pin")
    body = {k: v for k, v in shipped.items() if k not in ("files", "globs")}
    body.update(local_of=f"data_manifests/{name}.yaml", data_root=str(root.resolve()),
                globs=[{"pattern": g["pattern"], "min_count": g["min_count"]} for g in shipped["globs"]],
                files=files)
    path = pathlib.Path(out) if out is not None else local_manifest_path(name, root)
    header = (f"# Local manifest of {name!r}: sha256 of the files of one copy, written by\n"
              f"#   python -m uqxai_lib.data.pin fill {name} {data_dir}\n"
              f"# Check the copy later with: python -m uqxai_lib.data.pin verify {name} {data_dir}\n")
    atomic_write_text(path, header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return path


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m uqxai_lib.data.pin {fill,verify} NAME DATA_DIR``; exit 0 ok, 1 problems, 2 bad usage."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m uqxai_lib.data.pin",
                                description="Pin (fill) and check (verify) the sha256 digests of your copy of a data set.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("fill", help="write a local manifest with the digests of the files under DATA_DIR")
    pv = sub.add_parser("verify", help="check DATA_DIR against its local manifest (or the shipped one)")
    for q in (pf, pv):
        q.add_argument("name", help=f"data set: {', '.join(available_manifests())}")
        q.add_argument("data_dir")
    pf.add_argument("--out", default=None, help="where to write (default DATA_DIR/uqxai-NAME.manifest.yaml)")
    pf.add_argument("--allow-missing", action="store_true", help="pin a partial copy (missing files are left out)")
    pv.add_argument("--manifest", default=None, help="local manifest to check against (default: the one in DATA_DIR)")
    args = p.parse_args(None if argv is None else list(argv))
    try:
        if args.cmd == "fill":
            path = fill(args.name, args.data_dir, out=args.out, allow_missing=args.allow_missing)
            m = load_manifest_file(path, args.name)
            print(f"wrote {path}: sha256 of {len(m['files'])} file(s) of {args.name!r}; "
                  f"check the copy later with: python -m uqxai_lib.data.pin verify {args.name} {args.data_dir}")
            return 0
        root = data_root(args.name, args.data_dir)
        if args.manifest:
            m, which = load_manifest_file(args.manifest, args.name), args.manifest
        else:
            local = local_manifest_path(args.name, root)
            m, which = manifest_for(args.name, root), (local if local.is_file() else "the shipped manifest")
        verify_files(root, m)
        pinned = sum(1 for e in m["files"] if e.get("sha256"))
        print(f"ok: {args.name!r} under {root} matches {which} ({len(m['files'])} file(s), {pinned} with sha256"
              + ("" if pinned else "; none pinned: run `fill` to pin your copy") + ")")
        return 0
    except DataError as exc:
        problems = getattr(exc, "problems", None)
        if problems:  # the command line lists every problem, not only the first 20, then the advice
            lines = str(exc).splitlines()
            print(lines[0], file=sys.stderr)
            print("\n".join(f"  - {q}" for q in problems), file=sys.stderr)
            print("\n".join(line for line in lines[1:] if not line.startswith("  - ")), file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

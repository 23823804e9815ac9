#!/usr/bin/env python3
"""Keep this build's run times: merge ``_build/results/provenance.json`` into ``book/records/run_times.json``.

The reproducibility page (``{uqxai-run-times}``) and the chapters' time to run (``{uqxai-runtime}``)
show this build's provenance and, for the profiles this build did not run, the times kept here.
Each notebook's latest record per profile is kept: status, wall time, device, date, commit.

Usage (from the repository root)::

    python book/tools/record_run_times.py [--provenance _build/results/provenance.json]
                                          [--out book/records/run_times.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: the fields of a provenance record that the pages use
KEEP = ("status", "wall_time_s", "device_name", "finished_utc", "git_commit", "git_dirty", "torch", "python",
        "seed", "platform")


def merge(recorded: dict, provenance: dict) -> tuple[dict, int]:
    """``recorded`` (``{"profiles": {profile: {notebook: record}}}``) updated with the provenance's
    records (a newer ``finished_utc`` replaces an older one); returns it and the number updated.

    >>> merge({}, {"notebooks": {"a": {"profile": "tiny", "wall_time_s": 3.0, "finished_utc": "2026"}}})
    ({'schema': 1, 'profiles': {'tiny': {'a': {'wall_time_s': 3.0, 'finished_utc': '2026'}}}}, 1)
    """
    profiles = dict((recorded or {}).get("profiles") or {})
    n = 0
    for name, rec in ((provenance or {}).get("notebooks") or {}).items():
        if not isinstance(rec, dict) or not rec.get("profile") or rec.get("wall_time_s") is None:
            continue
        old = (profiles.get(rec["profile"]) or {}).get(name) or {}
        if str(old.get("finished_utc") or "") > str(rec.get("finished_utc") or ""):
            continue
        profiles.setdefault(rec["profile"], {})[name] = {k: rec[k] for k in KEEP if k in rec}
        n += 1
    return {"schema": 1, "profiles": {p: dict(sorted(v.items())) for p, v in sorted(profiles.items())}}, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--provenance", default="_build/results/provenance.json")
    ap.add_argument("--out", default="book/records/run_times.json")
    args = ap.parse_args(argv)
    prov = Path(args.provenance)
    if not prov.is_file():
        print(f"record_run_times: {prov} does not exist; run `python -m uqxai_lib.run` first", file=sys.stderr)
        return 2
    out = Path(args.out)
    recorded = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    merged, n = merge(recorded, json.loads(prov.read_text(encoding="utf-8")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"record_run_times: {n} notebook record(s) from {prov} kept in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

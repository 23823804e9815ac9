"""Real ECG data of the ``ecg_sue`` chapter: Fantasia (healthy) and St Petersburg INCART (CAD).

* **Fantasia** (PhysioNet ``fantasia``, 40 healthy subjects, 250 Hz): records ``f1o01``-``f1o10``,
  ``f1y01``-``f1y10``, ``f2o01``-``f2o10``, ``f2y01``-``f2y10``; the channel named ``ECG`` is used.
  One record = one subject.
* **INCART** (PhysioNet ``incartdb``, 75 records ``I01``-``I75`` of 32 Holter patients, 257 Hz,
  12 leads): lead ``II`` of the records of patients with coronary artery disease, resampled to
  250 Hz (polyphase, 250/257). Acharya et al. (2017) used the recordings of 7 CAD patients
  (80,000 healthy and 15,300 CAD 2-s segments overall). Which records are CAD is read from each
  header's diagnosis comment (``Coronary artery disease``) unless the manifest key
  ``incart_cad_records`` (or the ``cad_records`` argument) lists them explicitly. The real headers
  carry three comment lines: ``<age>: 65 <sex>: F <diagnoses> Coronary artery disease, ...``,
  ``patient 1`` and per-record findings such as ``PVCs, noise``. The subject id is the patient
  number of the ``patient N`` line (:func:`patient_key`), so the records of one patient never land
  in two splits (17 CAD records, 7 patients).

**A partial copy** works by naming what it holds: ``healthy_records`` (Fantasia),
``incart_records`` (INCART headers to search for CAD) and ``cad_records`` (INCART records used as
CAD, no header search); the ``ecg_sue`` notebook exposes them as ``fantasia_records``,
``incart_records`` and ``incart_cad_records``. When files are missing, the error lists them and
the exact option value that uses only the complete records present.

Signals are cut into non-overlapping 2-s windows (500 samples), windows with missing values or a
flat line are dropped, and every window is standardised (zero mean, unit SD). Expected layout under
the data directory (see ``data_manifests/ecg.yaml``)::

    <data_dir>/fantasia/f1o01.hea, f1o01.dat, ...
    <data_dir>/incart/I01.hea, I01.dat, ...
    <data_dir>/nstdb/bw.hea, bw.dat, em.*, ma.*      # optional, used by uqxai_lib.perturb

Missing or corrupt files raise :class:`~uqxai_lib.data.DataError` naming each file and where to
get it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import DataError, LabeledArrays, data_error
from .synthetic_ecg import CLASSES, standardize

__all__ = [
    "FANTASIA_RECORDS",
    "INCART_RECORDS",
    "load_fantasia_incart",
    "select_incart_cad",
    "patient_key",
    "cut_windows",
    "read_lead",
]

FANTASIA_RECORDS = tuple(f"f{s}{a}{i:02d}" for s in (1, 2) for a in ("o", "y") for i in range(1, 11))
INCART_RECORDS = tuple(f"I{i:02d}" for i in range(1, 76))
_CAD_PATTERN = re.compile(r"coronary\s+artery\s+disease|\bCAD\b|ischemic\s+heart\s+disease", re.IGNORECASE)


def cut_windows(sig: np.ndarray, fs: float, window_s: float = 2.0, max_windows: int | None = None) -> np.ndarray:
    """Non-overlapping windows ``[W, n]`` of a 1-D signal, dropping non-finite or flat windows.

    ``max_windows`` keeps that many windows evenly spread over the record.

    >>> cut_windows(np.arange(10.0), fs=2, window_s=2).tolist()
    [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    """
    n = int(round(fs * window_s))
    k = len(sig) // n
    w = np.asarray(sig[: k * n], dtype=np.float64).reshape(k, n)
    ok = np.isfinite(w).all(1)
    ok[ok] &= w[ok].std(1) > 1e-6
    w = w[ok]
    if max_windows is not None and len(w) > max_windows:
        w = w[np.linspace(0, len(w) - 1, max_windows).round().astype(int)]
    return w


def read_lead(path: Path, lead: str | Sequence[str]) -> tuple[np.ndarray, float]:
    """Read one lead (first name in ``lead`` that matches, case-insensitive) of a WFDB record."""
    import wfdb

    names = [lead] if isinstance(lead, str) else list(lead)
    try:
        hdr = wfdb.rdheader(str(path))
        have = [s.strip().lower() for s in hdr.sig_name]
        ch = next((have.index(n.lower()) for n in names if n.lower() in have), None)
        if ch is None:
            raise DataError(f"record {path} has no lead {names} (it has {hdr.sig_name})")
        rec = wfdb.rdrecord(str(path), channels=[ch], physical=True)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - name the file and the cause
        raise DataError(f"WFDB record {path} could not be read ({type(e).__name__}: {e}); download it again") from e
    return np.asarray(rec.p_signal[:, 0], dtype=np.float64), float(rec.fs)


_PATIENT_LINE = re.compile(r"^\s*patient\s*(?:no\.?|#|:)?\s*(\d+)\b", re.IGNORECASE)


def patient_key(comments: Sequence[str]) -> str:
    """Subject key of an INCART header from its comment lines.

    The ``patient N`` line when there is one (``"patient 3"``); else the demographic line (the one
    holding ``<age>``); else the whole description, whitespace-normalised and lower-cased. The
    per-record findings line (``PVCs, noise``) never enters the key.

    >>> patient_key(["<age>: 65 <sex>: F <diagnoses> Coronary artery disease", "patient 1", "PVCs, noise"])
    'patient 1'
    >>> patient_key(["<age>: 65 <sex>: F <diagnoses> CAD", "Atrial fibrillation"])
    '<age>: 65 <sex>: f <diagnoses> cad'
    """
    lines = [str(c).strip() for c in comments or [] if str(c).strip()]
    for line in lines:
        m = _PATIENT_LINE.match(line)
        if m:
            return f"patient {int(m.group(1))}"
    demo = [line for line in lines if "<age>" in line.lower()]
    return re.sub(r"\s+", " ", " ".join(demo or lines)).strip().lower()


def select_incart_cad(root: Path, records: Sequence[str] = INCART_RECORDS) -> tuple[list[str], dict[str, str]]:
    """INCART records whose header comments name coronary artery disease, and each record's patient key
    (:func:`patient_key`); records with the same key come from the same Holter patient.
    Every unreadable header is named in one :class:`DataError`."""
    import wfdb

    cad, patient, bad = [], {}, []
    for r in records:
        try:
            hdr = wfdb.rdheader(str(root / r))
        except Exception as e:  # noqa: BLE001
            bad.append(f"{root / r}.hea could not be read ({type(e).__name__}: {e})")
            continue
        comments = list(hdr.comments or [])
        patient[r] = patient_key(comments)
        if _CAD_PATTERN.search(" ".join(comments)):
            cad.append(r)
    if bad:
        raise data_error("INCART headers are unreadable", bad,
                         "download them again from https://physionet.org/content/incartdb/1.0.0/")
    return cad, patient


def _complete(root: Path, folder: str, records: Sequence[str], exts: Sequence[str]) -> list[str]:
    return [r for r in records if all((root / folder / f"{r}{e}").is_file() for e in exts)]


def _pylist(names: Sequence[str]) -> str:
    return "[" + ", ".join(repr(n) for n in names) + "]"


def _resample(sig: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    if abs(fs_in - fs_out) < 1e-9:
        return sig
    from fractions import Fraction

    from scipy.signal import resample_poly

    fr = Fraction(fs_out / fs_in).limit_denominator(2000)
    good = np.isfinite(sig)
    sig = np.where(good, sig, 0.0)
    out = resample_poly(sig, fr.numerator, fr.denominator)
    if not good.all():  # keep gaps visible so the windows holding them are dropped
        bad = resample_poly((~good).astype(float), fr.numerator, fr.denominator) > 1e-3
        out[bad] = np.nan
    return out


def load_fantasia_incart(
    data_dir: str | os.PathLike,
    *,
    fs: float = 250.0,
    window_s: float = 2.0,
    max_windows_per_record: int | None = None,
    cad_records: Sequence[str] | None = None,
    healthy_records: Sequence[str] | None = None,
    incart_records: Sequence[str] | None = None,
    check_sha256: bool = True,
    manifest: Mapping | None = None,
) -> LabeledArrays:
    """Load Fantasia (healthy) and INCART CAD windows as :class:`LabeledArrays`.

    Parameters
    ----------
    data_dir : path
        Directory holding ``fantasia/`` and ``incart/`` (layout in the module docstring).
    fs, window_s : float
        Output sampling rate [Hz] and window length [s] (250 Hz x 2 s = 500 samples).
    max_windows_per_record : int, optional
        Cap on windows per record (evenly spread); ``None`` keeps all.
    cad_records : sequence of str, optional
        INCART records to use as CAD; default: manifest ``incart_cad_records`` if set, else the
        records whose header diagnosis names coronary artery disease.
    healthy_records : sequence of str, optional
        Fantasia records (default all 40).
    incart_records : sequence of str, optional
        INCART records whose headers are searched for CAD when ``cad_records`` is not given
        (default all 75).
    check_sha256 : bool
        Verify checksums of files that have one in the manifest.
    manifest : mapping, optional
        A loaded manifest (default: the local manifest ``uqxai-ecg.manifest.yaml`` of ``data_dir``
        written by ``python -m uqxai_lib.data.pin fill ecg <data_dir>``, whose digests are then
        checked, else the shipped ``data_manifests/ecg.yaml``).

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 1, L] (standardised per window), ``y`` (0 healthy, 1 CAD), ``group`` subject
        id (Fantasia record index 0..39; INCART patients, keyed by :func:`patient_key`, from 1000 on),
        ``mask`` None.
    """
    from .manifest import manifest_for, verify_files

    root = Path(data_dir)
    m = dict(manifest) if manifest is not None else manifest_for("ecg", root)
    healthy = list(healthy_records) if healthy_records is not None else list(FANTASIA_RECORDS)
    unknown = sorted(set(healthy) - set(FANTASIA_RECORDS))
    if unknown:
        raise DataError(f"unknown Fantasia records {unknown}; valid names are f1o01..f2y10")
    if cad_records is None and m.get("incart_cad_records"):
        cad_records = list(m["incart_cad_records"])
    search = list(cad_records) if cad_records is not None else list(incart_records or INCART_RECORDS)
    bad = sorted(set(search) - set(INCART_RECORDS))
    if bad:
        raise DataError(f"unknown INCART records {bad}; valid names are I01..I75")
    # 1) headers of every record we may need; say which option uses the records present
    have_f = _complete(root, "fantasia", healthy, (".hea", ".dat"))
    advice = []
    if len(have_f) < len(healthy):
        advice.append(f"Fantasia: {len(have_f)} of the {len(healthy)} requested records are complete here; "
                      f"to use only these, pass healthy_records={_pylist(have_f)} "
                      f"(notebook parameter fantasia_records)." if have_f else
                      "Fantasia: no complete record (.hea + .dat) here; put the files under "
                      f"{root / 'fantasia'}.")
    have_h = _complete(root, "incart", search, (".hea",))
    if len(have_h) < len(search):
        what = "CAD records" if cad_records is not None else "headers to search for CAD"
        advice.append(f"INCART: {len(have_h)} of the {len(search)} {what} are here; to use only these, pass "
                      + (f"cad_records={_pylist(have_h)} (notebook parameter incart_cad_records)"
                         if cad_records is not None else
                         f"incart_records={_pylist(have_h)} (notebook parameter incart_records)")
                      + ", or name the CAD records with cad_records=[...] (notebook parameter incart_cad_records, "
                        "or incart_cad_records in data_manifests/ecg.yaml).")
    verify_files(root, m, check_sha256=check_sha256,
                 only=[f"fantasia/{r}.hea" for r in healthy] + [f"incart/{r}.hea" for r in search],
                 advice=advice)
    cad_sel, patient = select_incart_cad(root / "incart", search)
    cad = list(cad_records) if cad_records is not None else cad_sel
    if not cad:
        raise DataError(f"no INCART record under {root / 'incart'} names coronary artery disease in its header; "
                        "pass cad_records=[...] (notebook parameter incart_cad_records) or set "
                        "incart_cad_records in data_manifests/ecg.yaml")
    # 2) signal files of the selected records
    have_c = _complete(root, "incart", cad, (".hea", ".dat"))
    advice = list(advice)
    if len(have_c) < len(cad):
        advice.append(f"INCART: {len(have_c)} of the {len(cad)} CAD records are complete here; to use only these, "
                      f"pass cad_records={_pylist(have_c)} (notebook parameter incart_cad_records).")
    verify_files(root, m, check_sha256=check_sha256,
                 only=[f"fantasia/{r}.dat" for r in healthy] + [f"incart/{r}.dat" for r in cad], advice=advice)
    key = {r: patient.get(r) or r for r in cad}
    keys = sorted(set(key.values()))
    jobs = [(root / "fantasia" / r, "ECG", 0, i) for i, r in enumerate(healthy)]
    jobs += [(root / "incart" / r, ("II", "MLII"), 1, 1000 + keys.index(key[r])) for r in cad]
    xs, ys, gs, bad = [], [], [], []
    for path, lead, label, group in jobs:
        try:
            sig, f_in = read_lead(path, lead)
        except DataError as e:  # collect every unreadable record, report them together
            bad.append(str(e))
            continue
        w = cut_windows(_resample(sig, f_in, fs), fs, window_s, max_windows_per_record)
        xs.append(w), ys.append(np.full(len(w), label, np.int64)), gs.append(np.full(len(w), group, np.int64))
    if bad:
        raise data_error(f"{len(bad)} ECG record(s) under {root} cannot be used", bad,
                         "Download them again (PhysioNet), or leave them out with healthy_records / cad_records "
                         "(notebook parameters fantasia_records / incart_cad_records).")
    x = torch.from_numpy(np.concatenate(xs))
    if len(x) == 0:
        raise DataError(f"no usable {window_s}-s window in the records under {root}")
    return LabeledArrays(
        x=standardize(x)[:, None, :],
        y=torch.from_numpy(np.concatenate(ys)),
        classes=CLASSES,
        mask=None,
        group=torch.from_numpy(np.concatenate(gs)),
    )

r"""Seeded synthetic single-lead ECG windows: the embedded default data of the ``ecg_sue`` chapter.

Every window is 2 s of one lead at 250 Hz (500 samples). Each beat is a sum of Gaussian bumps
(P, Q, R, S, an ST-segment term and T), placed at the R-peak times of a slightly irregular rhythm:

.. math::

    s(t) = a \sum_k \sum_{w \in \{P,Q,R,S,ST,T\}} h_w \exp\!\Big(-\frac{(t - t_k - o_w)^2}{2\sigma_w^2}\Big)
           + b(t) + \varepsilon(t)

with a baseline :math:`b` (offset plus slow wander) and small white noise :math:`\varepsilon`.

* **healthy**: isoelectric ST segment, upright T wave;
* **CAD** (coronary artery disease, ischaemic pattern): ST-segment depression and a flattened or
  inverted T wave.

Heart rate, amplitude, QRS width, QT length, P/S amplitudes, baseline and noise level vary *per
synthetic subject* (and a little per window and per beat), so windows group by subject and the
``group`` field must be respected when splitting. A share ``mild_fraction`` of the CAD subjects
has only mild changes (slight ST depression, slightly lowered T) that overlap the low end of the
healthy range: the ambiguity is physiological, labels are never flipped. A good classifier is
therefore near, not at, 100 % accurate and its errors concentrate on the mild subjects.

The ground-truth relevance ``mask`` marks the ST–T samples of every beat (from the J point to the
end of the T wave): the part of the trace that carries the class.

>>> d = make_synthetic_ecg(n_subjects=10, windows_per_subject=3, seed=0)
>>> tuple(d.x.shape), d.x.dtype, tuple(d.mask.shape), d.classes
((30, 1, 500), torch.float32, (30, 500), ('healthy', 'CAD'))
>>> bool((d.group[0::3] == d.group[2::3]).all())
True
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import DataError, LabeledArrays, group_split

__all__ = [
    "CLASSES", "FS", "WINDOW_S", "make_synthetic_ecg", "standardize", "stratified_group_split", "SyntheticECGInfo",
]

CLASSES = ("healthy", "CAD")
FS = 250
WINDOW_S = 2.0


def standardize(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-window standardisation over the last dimension: zero mean, unit SD (float32).

    >>> standardize(torch.tensor([[1.0, 2.0, 3.0]])).mean().abs().item() < 1e-6
    True
    """
    x = x.double()
    m = x.mean(-1, keepdim=True)
    s = x.std(-1, unbiased=False, keepdim=True).clamp_min(eps)
    return ((x - m) / s).float()


def stratified_group_split(groups: Tensor, y: Tensor, fractions: Sequence[float], *, seed: int) -> list[Tensor]:
    """:func:`~uqxai_lib.data.group_split` run per class, so every split keeps the class ratio.

    Groups (subjects) must be pure (one class each, as for ECG subjects). Returns sorted LongTensors.

    >>> g = torch.arange(20).repeat_interleave(2); y = (g >= 16).long()
    >>> parts = stratified_group_split(g, y, [0.5, 0.5], seed=0)
    >>> [int(y[p].sum()) for p in parts]
    [4, 4]
    """
    groups, y = torch.as_tensor(groups), torch.as_tensor(y)
    for c in y.unique():
        if set(groups[y == c].tolist()) & set(groups[y != c].tolist()):
            raise DataError("a group holds windows of two classes; stratified_group_split needs pure groups")
    parts: list[list[Tensor]] = [[] for _ in fractions]
    for c in y.unique():
        rows = torch.nonzero(y == c).flatten()
        for i, p in enumerate(group_split(groups[rows], fractions, seed=seed + int(c))):
            parts[i].append(rows[p])
    return [torch.sort(torch.cat(p)).values for p in parts]


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _n(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


class SyntheticECGInfo(dict):
    """Per-window generation parameters (``severity`` 0 healthy, 1 mild CAD, 2 marked CAD, ``st_dep``,
    ``t_factor``, ``heart_rate``), returned when ``return_info=True``."""


def _subject_params(n_subjects: int, n_cad: int, mild_fraction: float, g: torch.Generator) -> dict[str, Tensor]:
    perm = torch.randperm(n_subjects, generator=g)
    label = torch.zeros(n_subjects, dtype=torch.long)
    label[perm[:n_cad]] = 1
    n_mild = int(round(mild_fraction * n_cad))
    severity = label.clone() * 2
    severity[perm[:n_mild]] = 1  # the first n_mild CAD subjects are mild
    p = {
        "label": label,
        "severity": severity,
        "rr": 60.0 / _u(g, n_subjects, 52.0, 105.0),  # s
        "amp": _u(g, n_subjects, 0.6, 1.6),  # mV of R
        "qrs_w": _u(g, n_subjects, 0.8, 1.35),
        "qt": _u(g, n_subjects, 0.9, 1.1),
        "p_amp": _u(g, n_subjects, 0.06, 0.2),
        "q_amp": _u(g, n_subjects, 0.0, 0.15),
        "s_amp": _u(g, n_subjects, 0.05, 0.35),
        "t_base": _u(g, n_subjects, 0.30, 0.40),
        "noise": _u(g, n_subjects, 0.005, 0.03),  # mV
        "wander": _u(g, n_subjects, 0.0, 0.1),  # mV
    }
    # ST depression (fraction of R, positive = depressed) and T-wave factor (1 = normal, <0 inverted)
    st = _u(g, n_subjects, -0.02, 0.025)
    tf = _u(g, n_subjects, 0.85, 1.3)
    mild, marked = severity == 1, severity == 2
    st[mild] = _u(g, int(mild.sum()), 0.035, 0.10)
    tf[mild] = _u(g, int(mild.sum()), 0.3, 0.8)
    st[marked] = _u(g, int(marked.sum()), 0.08, 0.25)
    tf[marked] = _u(g, int(marked.sum()), -0.8, 0.4)
    p["st_dep"], p["t_factor"] = st, tf
    return p


def _render(w: dict[str, Tensor], n_samples: int, fs: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Render windows from per-window parameters ``w`` (tensors [N]); returns (signal float64, mask).

    Every sample only sees the two beats whose support (P onset to T end, < 0.75 s) can reach it,
    so the cost is O(N x L) per wave instead of O(N x beats x L).
    """
    n = len(w["rr"])
    f32 = lambda v: v.float()[:, None, None]  # noqa: E731  [N] -> [N, 1, 1]
    t = torch.arange(n_samples, dtype=torch.float64) / fs  # [L]
    dur = n_samples / fs
    lead = 0.48  # a beat influences samples up to this long after its R peak
    k_beats = int(math.ceil((dur + 2 * lead) / float(w["rr"].min()))) + 2
    phase = torch.rand(n, generator=g, dtype=torch.float64) * w["rr"]
    k = torch.arange(k_beats, dtype=torch.float64) - 1.0
    beat_t = phase[:, None] + k[None, :] * w["rr"][:, None]  # [N, K] R-peak times
    beat_t = beat_t + 0.012 * w["rr"][:, None] * _n(g, n, k_beats)  # beat-to-beat variability (stays sorted)
    idx = torch.searchsorted(beat_t, (t[None, :] - lead).expand(n, n_samples).contiguous())
    idx = idx.clamp(0, k_beats - 2)
    tau = torch.stack([t - beat_t.gather(1, idx), t - beat_t.gather(1, idx + 1)], 1).float()  # [N, 2, L]
    qw, qt = f32(w["qrs_w"]), f32(w["qt"] * torch.sqrt(w["rr"] / 0.8))  # Bazett-like QT scaling
    t_peak, t_sig = 0.045 * qw + 0.215 * qt, 0.042 * qt
    waves = [  # (offset from R [s], height relative to R, sigma [s])
        (-0.165 * qt, f32(w["p_amp"]), 0.022),
        (-0.026 * qw, -f32(w["q_amp"]), 0.008 * qw),
        (0.0, 1.0, 0.0105 * qw),
        (0.028 * qw, -f32(w["s_amp"]), 0.009 * qw),
        (0.045 * qw + 0.075 * qt, -f32(w["st_dep"]), 0.042 * qt),  # ST segment (depression < 0)
        (t_peak, f32(w["t_base"] * w["t_factor"]), t_sig),  # T wave
    ]
    sig = torch.zeros(n, 2, n_samples)
    for off, h, s in waves:
        sig += h * torch.exp((-0.5 * ((tau - off) / s) ** 2).clamp_min(-40.0))  # clamp: no slow underflow path
    sig = sig.sum(1).double()
    # ST-T mask: J point to end of T (T peak + 2.5 sigma) of every beat
    mask = ((tau >= 0.04 * qw) & (tau <= t_peak + 2.5 * t_sig)).any(1)
    sig = sig * w["amp"][:, None]
    f_w = _u(g, n, 0.05, 0.4)[:, None]
    ph = _u(g, n, 0.0, 2 * math.pi)[:, None]
    base = w["offset"][:, None] + w["wander"][:, None] * torch.sin(2 * math.pi * f_w * t[None] + ph)
    sig = sig + base + w["noise"][:, None] * _n(g, n, n_samples)
    return sig, mask


def make_synthetic_ecg(
    n_subjects: int = 200,
    windows_per_subject: int = 20,
    *,
    cad_fraction: float = 0.16,
    mild_fraction: float = 0.35,
    fs: int = FS,
    duration: float = WINDOW_S,
    seed: int = 0,
    return_info: bool = False,
) -> LabeledArrays | tuple[LabeledArrays, SyntheticECGInfo]:
    """Generate seeded synthetic ECG windows of healthy and CAD subjects.

    Parameters
    ----------
    n_subjects : int
        Number of synthetic subjects (each has its own heart rate, amplitude, morphology, noise).
    windows_per_subject : int
        2-s windows per subject (consecutive-looking: same subject, new rhythm phase, jitter).
    cad_fraction : float
        Share of CAD subjects in (0, 1); the default 0.16 mirrors the paper's 80,000 : 15,300.
    mild_fraction : float
        Share of CAD subjects with mild changes overlapping the healthy range, in [0, 1].
    fs, duration : int, float
        Sampling rate [Hz] and window length [s]; default 250 Hz x 2 s = 500 samples.
    seed : int
        Everything is drawn from one ``torch.Generator`` seeded with this.
    return_info : bool
        Also return per-window generation parameters (:class:`SyntheticECGInfo`).

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 1, L] standardised per window, ``y`` int64 (0 healthy, 1 CAD),
        ``mask`` bool [N, L] (ST–T samples), ``group`` int64 subject id, ``classes=("healthy","CAD")``.
        Rows are ordered subject by subject.
    """
    if n_subjects < 2 or windows_per_subject < 1:
        raise DataError(f"need n_subjects >= 2 and windows_per_subject >= 1, got {n_subjects}, {windows_per_subject}")
    if not 0.0 < cad_fraction < 1.0:
        raise DataError(f"cad_fraction must be in (0, 1), got {cad_fraction}")
    if not 0.0 <= mild_fraction <= 1.0:
        raise DataError(f"mild_fraction must be in [0, 1], got {mild_fraction}")
    n_samples = int(round(fs * duration))
    if fs <= 0 or n_samples < 32:
        raise DataError(f"fs * duration must give at least 32 samples, got fs={fs}, duration={duration}")
    n_cad = min(max(1, int(round(cad_fraction * n_subjects))), n_subjects - 1)
    g = torch.Generator().manual_seed(int(seed))
    sp = _subject_params(n_subjects, n_cad, mild_fraction, g)
    subj = torch.arange(n_subjects).repeat_interleave(windows_per_subject)
    n = len(subj)
    w = {k: v[subj] for k, v in sp.items() if v.dtype == torch.float64}
    w["rr"] = w["rr"] * (1.0 + 0.04 * _n(g, n))  # window-to-window heart-rate change
    w["amp"] = w["amp"] * (1.0 + 0.05 * _n(g, n))
    w["st_dep"] = w["st_dep"] + 0.01 * _n(g, n)
    w["t_factor"] = w["t_factor"] + 0.06 * _n(g, n)
    w["offset"] = 0.2 * _n(g, n)
    sig, mask = _render(w, n_samples, fs, g)
    data = LabeledArrays(
        x=standardize(sig)[:, None, :],
        y=sp["label"][subj].clone(),
        classes=CLASSES,
        mask=mask,
        group=subj.clone(),
    )
    if not return_info:
        return data
    info = SyntheticECGInfo(
        severity=sp["severity"][subj].clone(),
        st_dep=w["st_dep"].float(),
        t_factor=w["t_factor"].float(),
        heart_rate=(60.0 / w["rr"]).float(),
    )
    return data, info

r"""Test-time perturbations, one function per kind, seeded by a ``torch.Generator``: ECG noise models
set by their signal-to-noise ratio, and image augmentations (section *Images* below).

Every perturbation is a ``perturb(x, generator) -> x'`` callable of :func:`uqxai_lib.samplers.test_time`;
randomness comes only from the generator handed in.

**ECG.** Four kinds (``PERTURBATIONS``), the ones of Salvi et al. (2025), Table 1:

``gaussian``
    white Gaussian noise;
``powerline``
    power-line interference: 50 or 60 Hz plus the harmonics below Nyquist, with slowly drifting
    amplitude and phase;
``baseline``
    motion artefact / baseline wander: a sum of sinusoids between 0.05 and 0.5 Hz (NSTDB ``bw``
    segments when available);
``electrode``
    electrode-motion artefact: abrupt baseline steps with exponential recovery, spikes and a
    low-frequency drift (NSTDB ``em`` segments when available).

**What the SNR of a perturbation means.** The model sees every window standardised (zero mean,
unit SD per window and channel), so a constant offset over a window is invisible to it. More than
half of the raw baseline-wander power over a 2-s window is such an offset; counted as noise, it
would make "0 dB" change the waveform's shape by far less than 0 dB's worth. Therefore, per
window and channel,

1. the noise :math:`n` is drawn, its window mean removed and the part of it that is correlated
   with the clean window within the window projected out, so that :math:`n_0` is zero-mean and
   uncorrelated with :math:`x` (the usual premise of an SNR, under which powers add);
2. it is scaled *exactly* so that

   .. math::

       \mathrm{SNR} = 10 \log_{10} \frac{P(x - \bar x)}{P(n_0)},\qquad P(v) = \frac{1}{L}\sum_{l} v_{l}^2 ,

   with :math:`x` the clean window (for a standardised window :math:`P(x - \bar x) = 1`);
3. the sum :math:`x + n_0` is re-standardised to the clean window's mean and SD
   (:func:`restandardize`), as the clean input was standardised.

Step 3 multiplies signal and noise parts by the same factor, so the perturbed input consists of
a signal part and a noise part whose power ratio is exactly the SNR, and its correlation with the
clean window is exactly :math:`r = (1 + 10^{-\mathrm{SNR}/10})^{-1/2}` for every kind: the SNR
can be read back from the clean and perturbed windows alone (:func:`achieved_snr_db`).
:func:`scaled_noise` returns the noise part (before the common factor) for checks.
Shapes are ``[B, C, L]``; randomness comes only from the ``torch.Generator`` handed in, so a
perturbation is a ``samplers.test_time`` callable::

    perturb = make_perturbation("powerline", snr_db=10, fs=250)
    x_noisy = perturb(x, generator)

**Images.** Three kinds (``IMAGE_PERTURBATIONS``) for ``x`` ``[B, C, H, W]`` (the inputs as the model
sees them, e.g. standardised); every image of the batch gets its own random draw:

``gaussian``
    additive white noise :math:`x + \sigma \varepsilon`, :math:`\varepsilon \sim N(0, 1)` per pixel;
``affine``
    a small random rotation (uniform in :math:`\pm` ``degrees``) and shift (uniform in
    :math:`\pm` ``shift`` of the image side), bilinear, border values repeated;
``brightness_contrast``
    :math:`(x - \bar x_b) \cdot c + \bar x_b + \beta`, with :math:`\bar x_b` the image's mean,
    :math:`\log c` uniform in :math:`\pm \log(1 + \text{contrast})` and :math:`\beta` uniform in
    :math:`\pm` ``brightness`` (in the units of ``x``).

:func:`make_image_perturbation` sets each kind by one ``strength`` in [0, 1].

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.sin(torch.linspace(0, 20, 500)).repeat(4, 1, 1)
>>> n = scaled_noise("gaussian", x, 6.0, torch.Generator().manual_seed(0))
>>> bool(((snr_db(x - x.mean(-1, keepdim=True), n) - 6.0).abs() < 1e-3).all())
True
>>> y = make_perturbation("gaussian", 6.0)(x, torch.Generator().manual_seed(0))
>>> bool(torch.allclose(y, restandardize(x, x + n), atol=1e-5))
True
>>> tuple(make_image_perturbation("affine", 0.5)(torch.zeros(2, 3, 8, 8), g).shape)
(2, 3, 8, 8)
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PERTURBATIONS",
    "NSTDB_RECORDS",
    "SNR_DEFINITION",
    "make_perturbation",
    "noise",
    "scale_to_snr",
    "scaled_noise",
    "restandardize",
    "achieved_snr_db",
    "snr_db",
    "power",
    "load_nstdb",
    "PERTURBATION_LABELS",
    "IMAGE_PERTURBATIONS",
    "make_image_perturbation",
    "gaussian",
    "affine",
    "brightness_contrast",
]

PERTURBATIONS = ("gaussian", "powerline", "baseline", "electrode")
#: Display names of the kinds (the paper's Table 1 rows).
PERTURBATION_LABELS = {
    "gaussian": "Gaussian noise",
    "powerline": "Power-line interference",
    "baseline": "Motion artefact (baseline wander)",
    "electrode": "Electrode motion",
}
#: NSTDB noise records: ``bw`` baseline wander, ``em`` electrode motion, ``ma`` muscle artefact (360 Hz).
NSTDB_RECORDS = ("bw", "em", "ma")
#: Which NSTDB record a kind draws from when records are given.
NSTDB_FOR_KIND = {"baseline": "bw", "electrode": "em"}
SNR_RANGE_DB = (-30.0, 80.0)
#: What an SNR means here (module docstring); put it in cache keys of perturbation results so that
#: results computed under an earlier definition are never reused.
SNR_DEFINITION = ("v2: noise without its window mean and uncorrelated with the window, scaled to "
                  "P(x - mean x) / P(n0) per window and channel, re-standardised")

Perturbation = Callable[[Tensor, torch.Generator], Tensor]


def power(v: Tensor) -> Tensor:
    """Mean power per window, ``mean(v**2)`` over all but the first dimension (float64)."""
    return v.double().pow(2).flatten(1).mean(1)


def snr_db(x: Tensor, n: Tensor) -> Tensor:
    """Per-window SNR in dB of clean ``x`` against noise ``n`` (same shape ``[B, ...]``)."""
    return 10.0 * torch.log10(power(x) / power(n))


def scale_to_snr(x: Tensor, n: Tensor, snr: float) -> Tensor:
    """Scale noise ``n`` per window so that ``snr_db(x, result) == snr`` (exactly, up to rounding).

    A window with zero signal power gets zero noise; a zero noise window cannot be scaled and raises.
    """
    px, pn = power(x), power(n)
    if bool((pn <= 0).any() & (px > 0).any()):
        raise ValueError("a noise window has zero power and cannot be scaled to an SNR")
    k = torch.sqrt(px / (pn.clamp_min(1e-300) * 10.0 ** (snr / 10.0)))
    return (n.double() * k.view(-1, *([1] * (n.dim() - 1)))).to(x.dtype)


# ----------------------------------------------------------------------------------- noise kinds
def _rand(g: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=g, device=g.device, dtype=torch.float64)


def _randn(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, device=g.device, dtype=torch.float64)


def _time(n: int, fs: float, g: torch.Generator) -> Tensor:
    return torch.arange(n, dtype=torch.float64, device=g.device) / fs


def _gaussian(b: int, c: int, n: int, fs: float, g: torch.Generator, mains_hz: float | None) -> Tensor:
    return _randn(g, b, c, n)


def _powerline(b: int, c: int, n: int, fs: float, g: torch.Generator, mains_hz: float | None) -> Tensor:
    t = _time(n, fs, g)[None, None]  # [1, 1, L]
    if mains_hz is None:
        f0 = torch.where(_rand(g, b) < 0.5, 50.0, 60.0)
    else:
        f0 = torch.full((b,), float(mains_hz), dtype=torch.float64, device=g.device)
    f0 = (f0 * (1.0 + 0.002 * (2 * _rand(g, b) - 1)))[:, None, None]  # mains frequency tolerance
    # drifting amplitude (0.1-1 Hz modulation) and phase (slow wobble), per window and channel
    am = 1.0 + 0.3 * torch.sin(2 * math.pi * (0.1 + 0.9 * _rand(g, b, c, 1)) * t + 2 * math.pi * _rand(g, b, c, 1))
    pm = 0.5 * torch.sin(2 * math.pi * (0.05 + 0.45 * _rand(g, b, c, 1)) * t + 2 * math.pi * _rand(g, b, c, 1))
    out = torch.zeros(b, c, n, dtype=torch.float64, device=g.device)
    for k, (lo, hi) in enumerate([(1.0, 1.0), (0.1, 0.4), (0.05, 0.2)], start=1):
        rel = lo + (hi - lo) * _rand(g, b, c, 1)
        phi = 2 * math.pi * _rand(g, b, c, 1)
        below = (k * f0 < fs / 2).double()  # harmonics above Nyquist would alias: leave them out
        out += below * rel * torch.sin(2 * math.pi * k * f0 * t + k * pm + phi)
    return am * out


def _baseline(b: int, c: int, n: int, fs: float, g: torch.Generator, mains_hz: float | None) -> Tensor:
    t = _time(n, fs, g)[None, None, None]  # [1, 1, 1, L]
    m = 4
    f = 0.05 + 0.45 * _rand(g, b, c, m, 1)
    amp = _rand(g, b, c, m, 1) * (0.05 / f)  # more power at lower frequency
    phi = 2 * math.pi * _rand(g, b, c, m, 1)
    return (amp * torch.sin(2 * math.pi * f * t + phi)).sum(2)


def _electrode(b: int, c: int, n: int, fs: float, g: torch.Generator, mains_hz: float | None) -> Tensor:
    t = _time(n, fs, g)[None, None, None]  # [1, 1, 1, L]
    # abrupt baseline steps with exponential recovery (1-3 per window)
    m = 3
    t_step = _rand(g, b, c, m, 1) * n / fs
    height = _randn(g, b, c, m, 1) * (_rand(g, b, c, m, 1) < torch.tensor([1.0, 0.6, 0.3],
                                                                          device=g.device).view(1, 1, m, 1))
    tau = 0.1 + 0.6 * _rand(g, b, c, m, 1)
    dt = t - t_step
    steps = (height * (dt >= 0) * torch.exp(-dt.clamp_min(0) / tau)).sum(2)
    # spikes (few, narrow, both signs)
    s = 4
    t_sp = _rand(g, b, c, s, 1) * n / fs
    h_sp = 1.5 * _randn(g, b, c, s, 1) * (_rand(g, b, c, s, 1) < 0.5)
    spikes = (h_sp * torch.exp((-0.5 * ((t - t_sp) / 0.006) ** 2).clamp_min(-40.0))).sum(2)
    # low-frequency drift
    f = 0.1 + 0.9 * _rand(g, b, c, 2, 1)
    drift = (0.4 * _randn(g, b, c, 2, 1) * torch.sin(2 * math.pi * f * t + 2 * math.pi * _rand(g, b, c, 2, 1))).sum(2)
    out = steps + spikes + drift
    return out + 1e-3 * _randn(g, b, c, n)  # never exactly zero


_KINDS = {"gaussian": _gaussian, "powerline": _powerline, "baseline": _baseline, "electrode": _electrode}


def _from_record(rec: Tensor, b: int, c: int, n: int, g: torch.Generator) -> Tensor:
    """Random length-``n`` segments of a noise record ``[channels, samples]`` (random channel/offset)."""
    if rec.shape[-1] < n:
        raise ValueError(f"NSTDB record has {rec.shape[-1]} samples, fewer than the window length {n}")
    rec = rec.to(device=g.device, dtype=torch.float64)
    ch = torch.randint(rec.shape[0], (b, c), generator=g, device=g.device)
    start = torch.randint(rec.shape[-1] - n + 1, (b, c), generator=g, device=g.device)
    idx = start[..., None] + torch.arange(n, device=g.device)
    seg = rec[ch[..., None], idx]
    return seg + 1e-6 * _randn(g, b, c, n)


def _check_gen(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (seed it for reproducible draws)")


def _check_kind(kind: str) -> None:
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose one of {PERTURBATIONS}")


def _check_snr(snr: float) -> float:
    try:
        s = float(snr)
    except (TypeError, ValueError):
        raise ValueError(f"snr_db must be a number in dB, got {snr!r}") from None
    if not math.isfinite(s) or not SNR_RANGE_DB[0] <= s <= SNR_RANGE_DB[1]:
        raise ValueError(f"snr_db must be finite and within {SNR_RANGE_DB} dB, got {snr!r}")
    return s


def noise(
    kind: str,
    shape: tuple[int, int, int],
    generator: torch.Generator,
    *,
    fs: float = 250.0,
    mains_hz: float | None = None,
    nstdb: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Unscaled noise of ``kind`` shaped ``[B, C, L]`` (float64, on the generator's device).

    ``nstdb``: records from :func:`load_nstdb`; the ``baseline`` kind then draws ``bw`` segments and
    ``electrode`` draws ``em`` segments (resampled to ``fs``).
    """
    _check_kind(kind)
    if len(shape) != 3:
        raise ValueError(f"shape must be (B, C, L), got {tuple(shape)}")
    b, c, n = (int(v) for v in shape)
    rec_name = NSTDB_FOR_KIND.get(kind)
    if nstdb is not None and rec_name in nstdb:
        return _from_record(nstdb[rec_name], b, c, n, generator)
    return _KINDS[kind](b, c, n, float(fs), generator, mains_hz)


def restandardize(clean: Tensor, noisy: Tensor, eps: float = 1e-12) -> Tensor:
    """``noisy`` with each window and channel moved to the mean and SD (over the last dimension) of
    ``clean``: the perturbed input standardised the way the clean one was.

    >>> x = torch.tensor([[[0.0, 2.0, 4.0]]])
    >>> restandardize(x, torch.tensor([[[5.0, 6.0, 7.0]]])).tolist()
    [[[0.0, 2.0, 4.0]]]
    """
    c, v = clean.double(), noisy.double()
    mu, sd = c.mean(-1, keepdim=True), c.std(-1, unbiased=False, keepdim=True)
    vm, vs = v.mean(-1, keepdim=True), v.std(-1, unbiased=False, keepdim=True)
    return ((v - vm) * (sd / vs.clamp_min(eps)) + mu).to(clean.dtype)


def scaled_noise(
    kind: str,
    x: Tensor,
    snr_db: float,
    generator: torch.Generator,
    *,
    fs: float = 250.0,
    mains_hz: float | None = None,
    nstdb: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Zero-mean noise of ``kind`` for windows ``x`` ``[B, C, L]``, uncorrelated with each window, scaled
    so that ``10 log10(P(x - mean x) / P(noise)) == snr_db`` per window and channel (steps 1-2 of the
    module docstring).

    ``make_perturbation(kind, snr_db, ...)(x, g)`` equals ``restandardize(x, x + scaled_noise(kind, x,
    snr_db, g, ...))`` for a generator in the same state (the same draws).
    """
    n = noise(kind, tuple(x.shape), generator, fs=fs, mains_hz=mains_hz, nstdb=nstdb).to(x.device)
    xd = x.double()
    xc = xd - xd.mean(-1, keepdim=True)
    n0 = n - n.mean(-1, keepdim=True)
    xx = (xc * xc).sum(-1, keepdim=True)
    n0 = n0 - torch.where(xx > 0, (n0 * xc).sum(-1, keepdim=True) / xx.clamp_min(1e-300), 0.0) * xc
    b, c, length = x.shape
    out = scale_to_snr(xc.reshape(b * c, 1, length), n0.reshape(b * c, 1, length), _check_snr(snr_db))
    return out.reshape(b, c, length).to(x.dtype)


def achieved_snr_db(clean: Tensor, perturbed: Tensor) -> Tensor:
    """SNR in dB of a perturbed window against its clean one, per window and channel (``[B, C]`` for
    ``[B, C, L]``), from their correlation ``r``: ``10 log10(r^2 / (1 - r^2))``. Exact for the outputs
    of :func:`make_perturbation` (its noise is uncorrelated with the window); otherwise the SNR of the
    part of the perturbed window not explained by the clean one.

    >>> x = torch.sin(torch.linspace(0, 20, 500)).repeat(2, 1, 1)
    >>> y = make_perturbation("baseline", 4.0)(x, torch.Generator().manual_seed(0))
    >>> [round(v, 4) for v in achieved_snr_db(x, y).flatten().tolist()]
    [4.0, 4.0]
    """
    xc = clean.double() - clean.double().mean(-1, keepdim=True)
    yc = perturbed.double() - perturbed.double().mean(-1, keepdim=True)
    r2 = (xc * yc).sum(-1) ** 2 / ((xc * xc).sum(-1) * (yc * yc).sum(-1))
    return 10.0 * torch.log10(r2 / (1.0 - r2))


def make_perturbation(
    kind: str,
    snr_db: float,
    fs: float = 250.0,
    *,
    mains_hz: float | None = None,
    nstdb: Mapping[str, Tensor] | None = None,
) -> Perturbation:
    """Return ``perturb(x, generator)``: ``x`` plus zero-mean noise of ``kind`` at exactly ``snr_db``
    per window, re-standardised to the clean window's mean and SD (see the module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`PERTURBATIONS`.
    snr_db : float
        Target SNR in dB (``10 log10(P(x - mean x) / P(n - mean n))`` per window), within
        :data:`SNR_RANGE_DB`.
    fs : float
        Sampling rate of the windows [Hz].
    mains_hz : float, optional
        Power-line frequency; ``None`` draws 50 or 60 Hz per window.
    nstdb : mapping, optional
        Noise records from :func:`load_nstdb` (used by ``baseline`` and ``electrode``).
    """
    _check_kind(kind)
    snr = _check_snr(snr_db)
    if not (isinstance(fs, (int, float)) and fs > 0):
        raise ValueError(f"fs must be a positive sampling rate in Hz, got {fs!r}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() == 2:
            return perturb(x[:, None], generator)[:, 0]
        if x.dim() != 3:
            raise ValueError(f"x must be shaped [B, C, L] (or [B, L]), got {tuple(x.shape)}")
        _check_gen(generator)
        n = scaled_noise(kind, x, snr, generator, fs=fs, mains_hz=mains_hz, nstdb=nstdb)
        return restandardize(x, x + n)

    perturb.kind, perturb.snr_db, perturb.fs = kind, snr, fs  # type: ignore[attr-defined]
    perturb.__name__ = f"{kind}_{snr:g}dB"
    return perturb


# ----------------------------------------------------------------------------------- images
IMAGE_PERTURBATIONS = ("gaussian", "affine", "brightness_contrast")


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"image perturbations take x shaped [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")


def _uniform(g: torch.Generator, n: int, half_width: float) -> Tensor:
    return (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * half_width


def gaussian(sigma: float) -> Perturbation:
    """Additive Gaussian noise with standard deviation ``sigma`` (units of ``x``)."""
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x)
        _check_gen(generator)
        e = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return x + float(sigma) * e.to(device=x.device, dtype=x.dtype)

    perturb.__name__ = f"gaussian_{sigma:g}"
    return perturb


def affine(degrees: float, shift: float) -> Perturbation:
    """Random rotation in ±``degrees`` and shift in ±``shift`` (share of the side), per image."""
    if not (degrees >= 0 and 0 <= shift < 1):
        raise ValueError(f"need degrees >= 0 and 0 <= shift < 1, got {degrees}, {shift}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x)
        _check_gen(generator)
        b = x.shape[0]
        ang = _uniform(generator, b, math.radians(degrees))
        tx, ty = _uniform(generator, b, 2 * shift), _uniform(generator, b, 2 * shift)  # grid units span 2
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
        grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    perturb.__name__ = f"affine_{degrees:g}deg_{shift:g}"
    return perturb


def brightness_contrast(brightness: float, contrast: float) -> Perturbation:
    """Random brightness offset in ±``brightness`` and contrast factor in [1/(1+c), 1+c], per image."""
    if not (brightness >= 0 and contrast >= 0):
        raise ValueError(f"brightness and contrast must be >= 0, got {brightness}, {contrast}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x)
        _check_gen(generator)
        b = x.shape[0]
        c = torch.exp(_uniform(generator, b, math.log1p(contrast))).to(device=x.device, dtype=x.dtype)
        beta = _uniform(generator, b, brightness).to(device=x.device, dtype=x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * c.view(b, 1, 1, 1) + mean + beta.view(b, 1, 1, 1)

    perturb.__name__ = f"brightness_{brightness:g}_contrast_{contrast:g}"
    return perturb


def make_image_perturbation(kind: str, strength: float) -> Perturbation:
    """One knob per kind, ``strength`` in [0, 1]: gaussian σ = strength (x is standardised);
    affine ±15°·strength and ±10 %·strength shift; brightness ±strength, contrast ±50 %·strength.
    """
    if kind not in IMAGE_PERTURBATIONS:
        raise ValueError(f"unknown image perturbation {kind!r}; use one of {IMAGE_PERTURBATIONS}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    if kind == "gaussian":
        return gaussian(strength)
    if kind == "affine":
        return affine(15.0 * strength, 0.1 * strength)
    return brightness_contrast(strength, 0.5 * strength)


# ----------------------------------------------------------------------------------- NSTDB
def load_nstdb(
    data_dir: str | os.PathLike | None,
    *,
    fs: float = 250.0,
    records: tuple[str, ...] = NSTDB_RECORDS,
    subdir: str = "nstdb",
) -> dict[str, Tensor] | None:
    """Load MIT-BIH Noise Stress Test records (``bw``, ``em``, ``ma``) resampled to ``fs``.

    Looks for ``<data_dir>/<subdir>/<rec>.hea`` (or directly ``<data_dir>/<rec>.hea``). Returns
    ``None`` when ``data_dir`` is ``None`` or holds no NSTDB record (the synthetic noise models are
    used then); returns the records found otherwise, each a float32 tensor ``[channels, samples]``
    standardised per channel. A record whose files are present but unreadable raises ``DataError``.
    """
    from .data import DataError

    if data_dir is None:
        return None
    root = Path(data_dir)
    for base in (root / subdir, root):
        found = [r for r in records if (base / f"{r}.hea").exists()]
        if found:
            break
    else:
        return None
    import numpy as np
    import wfdb
    from scipy.signal import resample_poly

    out: dict[str, Tensor] = {}
    for r in found:
        try:
            rec = wfdb.rdrecord(str(base / r))
        except Exception as e:  # noqa: BLE001 - report which file and why
            raise DataError(
                f"NSTDB record {base / r} could not be read ({e}); re-download it from "
                "https://physionet.org/content/nstdb/1.0.0/"
            ) from e
        sig = np.asarray(rec.p_signal, dtype=np.float64).T  # [channels, samples]
        if abs(rec.fs - fs) > 1e-9:
            fr = _fraction(fs / rec.fs)
            sig = resample_poly(sig, fr[0], fr[1], axis=-1)
        sig = (sig - sig.mean(-1, keepdims=True)) / np.maximum(sig.std(-1, keepdims=True), 1e-12)
        out[r] = torch.from_numpy(sig.astype(np.float32))
    return out


def _fraction(ratio: float) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(ratio).limit_denominator(1000)
    return f.numerator, f.denominator

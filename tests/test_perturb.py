"""Tests for the perturbations: ECG (exact SNR, spectra, seeds, errors) and images (each kind against a
float64 re-computation with the same draws)."""
import math

import numpy as np
import pytest
import torch

from uqxai_lib import perturb as PI
from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg
from uqxai_lib.perturb import (
    PERTURBATIONS,
    achieved_snr_db,
    load_nstdb,
    make_perturbation,
    noise,
    restandardize,
    scale_to_snr,
    scaled_noise,
    snr_db,
)

FS = 250


@pytest.fixture(scope="module")
def x():
    return make_synthetic_ecg(n_subjects=8, windows_per_subject=4, seed=0).x


def _np_restandardize(clean, noisy):
    c, v = np.asarray(clean, np.float64), np.asarray(noisy, np.float64)
    return (v - v.mean(-1, keepdims=True)) / v.std(-1, keepdims=True) * c.std(-1,
                                                                              keepdims=True) + c.mean(-1, keepdims=True)


@pytest.mark.parametrize("kind", PERTURBATIONS)
@pytest.mark.parametrize("snr", [-5.0, 0.0, 6.0, 20.0, 35.0])
def test_achieved_snr_within_0p1_db_per_window(x, kind, snr):
    """y = restandardize(x, x + n0) with n0 zero-mean and 10 log10(P(x - mean x) / P(n0)) = snr exactly."""
    y = make_perturbation(kind, snr, fs=FS)(x, torch.Generator().manual_seed(1))
    n0 = scaled_noise(kind, x, snr, torch.Generator().manual_seed(1), fs=FS).double().numpy()
    xn = x.double().numpy()
    assert np.abs(n0.mean(-1)).max() < 1e-5  # no constant offset in the noise (float32)
    # independent float64 numpy computation of 10 log10(P_x / P_n), signal without its window mean
    xc = xn - xn.mean(-1, keepdims=True)
    achieved = 10 * np.log10((xc**2).mean((1, 2)) / (n0**2).mean((1, 2)))
    assert np.abs(achieved - snr).max() < 0.1
    # the perturbed input is x + n0 re-standardised like the clean window (its mean and SD)
    assert np.allclose(y.double().numpy(), _np_restandardize(xn, xn + n0), atol=1e-4)
    assert np.allclose(y.double().numpy().std(-1), xn.std(-1), atol=1e-4)
    assert np.allclose(y.double().numpy().mean(-1), xn.mean(-1), atol=1e-4)
    assert y.shape == x.shape and y.dtype == x.dtype
    # the noise is uncorrelated with the window, so the perturbed window's correlation with the clean
    # one is exactly (1 + 10^(-snr/10))^(-1/2) (numpy's corrcoef), and the SNR reads back from (x, y)
    assert np.abs((xc * n0).sum(-1)).max() < 1e-3 * np.sqrt((xc**2).sum(-1) * (n0**2).sum(-1)).max()
    r = np.array([np.corrcoef(a[0], b[0])[0, 1] for a, b in zip(xn, y.double().numpy())])
    assert np.allclose(r, (1 + 10 ** (-snr / 10)) ** -0.5, atol=1e-4)
    assert (achieved_snr_db(x, y) - snr).abs().max() < 0.01


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_snr_is_exact_on_unstandardised_windows_with_an_offset(kind):
    """Windows in mV with a baseline offset (as a real record before standardisation)."""
    g = torch.Generator().manual_seed(3)
    x = 0.8 + 0.5 * torch.randn(6, 2, 500, generator=g, dtype=torch.float64).cumsum(-1) / 20
    n0 = scaled_noise(kind, x, 3.0, torch.Generator().manual_seed(4), fs=FS).numpy()
    xc = x.numpy() - x.numpy().mean(-1, keepdims=True)
    assert np.abs(10 * np.log10((xc**2).mean((1, 2)) / (n0**2).mean((1, 2))) - 3.0).max() < 1e-6
    y = make_perturbation(kind, 3.0, fs=FS)(x, torch.Generator().manual_seed(4)).numpy()
    assert np.allclose(y.mean(-1), x.numpy().mean(-1)) and np.allclose(y.std(-1), x.numpy().std(-1))


def test_baseline_wander_raw_noise_is_mostly_offset_which_is_removed(x):
    """The reason for the definition: over a 2-s window much of the raw wander is a constant."""
    n = noise("baseline", (64, 1, 500), torch.Generator().manual_seed(0), fs=FS).numpy()
    offset_share = (n.mean(-1) ** 2).mean() / (n**2).mean()
    assert offset_share > 0.5  # most of the raw power is an offset the model never sees
    n0 = scaled_noise("baseline", x, 0.0, torch.Generator().manual_seed(0), fs=FS).numpy()
    assert np.abs(n0.mean(-1)).max() < 1e-5 and np.allclose((n0**2).mean((1, 2)), 1.0, atol=1e-3)


def test_scale_to_snr_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    xs, ns = torch.randn(3, 1, 50, generator=g), torch.randn(3, 1, 50, generator=g)
    out = scale_to_snr(xs, ns, 10.0)
    px = (xs.double() ** 2).mean((1, 2))
    pn = (ns.double() ** 2).mean((1, 2))
    k = torch.sqrt(px / (pn * 10.0))
    assert torch.allclose(out.double(), ns.double() * k.view(3, 1, 1), atol=1e-6)
    assert torch.allclose(snr_db(xs, out), torch.full((3,), 10.0, dtype=torch.float64), atol=1e-4)


def _spectrum(n: torch.Tensor):
    n = n.double().numpy()
    spec = np.abs(np.fft.rfft(n - n.mean(-1, keepdims=True), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(n.shape[-1], 1 / FS)
    return freqs, spec.reshape(-1, len(freqs))


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_powerline_energy_sits_at_mains_frequency_and_harmonics(mains):
    n = noise("powerline", (16, 1, 500), torch.Generator().manual_seed(0), fs=FS, mains_hz=mains)
    f, s = _spectrum(n)
    near = np.zeros_like(f, dtype=bool)
    for k in (1, 2):
        near |= np.abs(f - k * mains) <= 2.0
    share = s[:, near].sum(1) / s.sum(1)
    assert share.min() > 0.9
    fund = np.abs(f - mains) <= 2.0
    assert (s[:, fund].sum(1) / s.sum(1)).min() > 0.5


def test_powerline_draws_both_mains_frequencies_by_default():
    n = noise("powerline", (64, 1, 500), torch.Generator().manual_seed(0), fs=FS)
    f, s = _spectrum(n)
    peak = f[s.argmax(1)]
    assert set(np.round(peak).astype(int)) <= {50, 60} and len(set(np.round(peak))) == 2


def test_baseline_wander_is_below_1hz():
    # a long (60 s) window resolves the 0.05-0.5 Hz components without leakage
    n = noise("baseline", (16, 1, 15000), torch.Generator().manual_seed(0), fs=FS)
    f, s = _spectrum(n)
    assert (s[:, f <= 0.6].sum(1) / s.sum(1)).min() > 0.95


def test_gaussian_noise_is_white():
    n = noise("gaussian", (64, 1, 500), torch.Generator().manual_seed(0), fs=FS)
    f, s = _spectrum(n)
    low, high = s[:, (f > 1) & (f < 60)].mean(), s[:, f >= 65].mean()
    assert 0.8 < low / high < 1.25


def test_electrode_motion_has_steps_spikes_and_low_frequency_power():
    n = noise("electrode", (32, 1, 500), torch.Generator().manual_seed(0), fs=FS)
    d = n.diff(dim=-1).abs()
    # abrupt changes: the largest sample-to-sample jump is far above the typical one
    assert (d.amax(-1) / d.median(-1).values).median() > 20
    f, s = _spectrum(n)
    assert np.median(s[:, f <= 5].sum(1) / s.sum(1)) > 0.5


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_same_seed_reproduces_and_other_seed_differs(x, kind):
    p = make_perturbation(kind, 10.0, fs=FS)
    a = p(x, torch.Generator().manual_seed(7))
    b = p(x, torch.Generator().manual_seed(7))
    c = p(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_successive_draws_from_one_generator_differ(x):
    p, g = make_perturbation("gaussian", 10.0), torch.Generator().manual_seed(0)
    assert not torch.equal(p(x, g), p(x, g))


@pytest.mark.parametrize("kind", ["noise", "", "Gaussian"])
def test_unknown_kind_raises_with_choices(kind):
    with pytest.raises(ValueError, match="choose one of"):
        make_perturbation(kind, 10.0)


@pytest.mark.parametrize("snr", [float("nan"), float("inf"), "ten", None, 500.0])
def test_bad_snr_raises(snr):
    with pytest.raises(ValueError, match="snr_db"):
        make_perturbation("gaussian", snr)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\[B, C, L\]"):
        make_perturbation("gaussian", 10.0)(torch.zeros(500), torch.Generator())


def test_two_dimensional_batches_are_accepted(x):
    y = make_perturbation("baseline", 3.0)(x[:, 0], torch.Generator().manual_seed(0))
    assert y.shape == x[:, 0].shape
    assert torch.allclose(y, make_perturbation("baseline", 3.0)(x, torch.Generator().manual_seed(0))[:, 0])


def test_nstdb_records_are_used_when_present(tmp_path, x):
    wfdb = pytest.importorskip("wfdb")
    rng = np.random.default_rng(0)
    d = tmp_path / "nstdb"
    d.mkdir()
    t = np.arange(3600) / 360.0
    for name, sig in {
        "bw": np.stack([np.sin(2 * math.pi * 0.3 * t), np.cos(2 * math.pi * 0.2 * t)], 1),
        "em": rng.standard_normal((3600, 2)).cumsum(0) * 0.01,
        "ma": rng.standard_normal((3600, 2)),
    }.items():
        wfdb.wrsamp(name, fs=360, units=["mV", "mV"], sig_name=["noise1", "noise2"], p_signal=sig,
                    fmt=["212", "212"], write_dir=str(d))
    rec = load_nstdb(tmp_path, fs=FS)
    assert set(rec) == {"bw", "em", "ma"}
    assert rec["bw"].shape == (2, 2500)  # 10 s at 360 Hz -> 250 Hz
    for kind in ("baseline", "electrode"):
        y = make_perturbation(kind, 5.0, fs=FS, nstdb=rec)(x, torch.Generator().manual_seed(0))
        n0 = scaled_noise(kind, x, 5.0, torch.Generator().manual_seed(0), fs=FS, nstdb=rec)
        assert (snr_db(x - x.mean(-1, keepdim=True), n0) - 5.0).abs().max() < 0.1
        assert torch.allclose(y, restandardize(x, x + n0), atol=1e-5)
    # baseline noise from the bw record keeps its low-frequency character
    n = noise("baseline", (8, 1, 2000), torch.Generator().manual_seed(0), fs=FS, nstdb=rec)
    f, s = _spectrum(n.float())
    assert (s[:, f <= 1.0].sum(1) / s.sum(1)).min() > 0.9


def test_load_nstdb_returns_none_without_records(tmp_path):
    assert load_nstdb(None) is None
    assert load_nstdb(tmp_path) is None


# ----------------------------------------------------------------------------- images
def _x(b=3, c=2, h=8, w=8, seed=0):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_gaussian_noise_has_the_requested_sd_and_is_seeded():
    x = torch.zeros(4, 1, 64, 64)
    p = PI.gaussian(0.3)
    a = p(x, torch.Generator().manual_seed(1))
    b = p(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert float(a.std()) == pytest.approx(0.3, rel=0.03)
    g = torch.Generator().manual_seed(2)
    assert not torch.equal(p(x, g), p(x, g))  # successive draws differ
    assert torch.equal(PI.gaussian(0.0)(x, g), x)


def test_affine_without_motion_is_the_identity():
    x = _x()
    y = PI.affine(0.0, 0.0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)


def _bilinear_border(img, r, c):
    h, w = img.shape
    r = min(max(r, 0.0), h - 1.0)
    c = min(max(c, 0.0), w - 1.0)
    r0, c0 = int(math.floor(r)), int(math.floor(c))
    r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
    fr, fc = r - r0, c - c0
    return ((1 - fr) * (1 - fc) * img[r0, c0] + (1 - fr) * fc * img[r0, c1]
            + fr * (1 - fc) * img[r1, c0] + fr * fc * img[r1, c1])


def test_affine_matches_a_float64_loop_with_the_same_draws():
    x = _x(b=2, c=1, h=7, w=9, seed=3)
    deg, shift = 12.0, 0.1
    y = PI.affine(deg, shift)(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the draws in the documented order
    ang = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(deg)).numpy()
    tx = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 2 * shift).numpy()
    ty = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 2 * shift).numpy()
    h, w = 7, 9
    for b in range(2):
        img = x[b, 0].double().numpy()
        want = np.empty((h, w))
        for i in range(h):
            for j in range(w):
                xn, yn = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
                xs = math.cos(ang[b]) * xn - math.sin(ang[b]) * yn + tx[b]
                ys = math.sin(ang[b]) * xn + math.cos(ang[b]) * yn + ty[b]
                want[i, j] = _bilinear_border(img, ((ys + 1) * h - 1) / 2, ((xs + 1) * w - 1) / 2)
        assert np.allclose(y[b, 0].double().numpy(), want, atol=1e-5)


def test_brightness_contrast_matches_formula_with_the_same_draws():
    x = _x(b=4)
    y = PI.brightness_contrast(0.4, 0.5)(x, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    c = torch.exp((torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * math.log1p(0.5))
    beta = (torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * 0.4
    xd = x.double()
    m = xd.mean(dim=(1, 2, 3), keepdim=True)
    want = (xd - m) * c.view(4, 1, 1, 1) + m + beta.view(4, 1, 1, 1)
    assert torch.allclose(y.double(), want, atol=1e-5)
    assert ((c >= 1 / 1.5) & (c <= 1.5)).all() and (beta.abs() <= 0.4).all()


@pytest.mark.parametrize("kind", PI.IMAGE_PERTURBATIONS)
def test_make_image_perturbation_keeps_shape_and_zero_strength_is_identity(kind):
    x = _x()
    p = PI.make_image_perturbation(kind, 0.0)
    assert torch.allclose(p(x, torch.Generator().manual_seed(0)), x, atol=1e-6)
    assert PI.make_image_perturbation(kind, 0.7)(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown image perturbation 'blur'"):
        PI.make_image_perturbation("blur", 0.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        PI.gaussian(0.1)(torch.zeros(3, 8, 8), torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        PI.gaussian(0.1)(torch.zeros(1, 1, 4, 4), 0)

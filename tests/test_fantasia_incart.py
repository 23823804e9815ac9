"""Tests for the Fantasia + INCART loader on tiny WFDB records written here in the real format."""
import numpy as np
import pytest
import torch

wfdb = pytest.importorskip("wfdb")

from uqxai_lib.data import DataError  # noqa: E402
from uqxai_lib.data.fantasia_incart import cut_windows, load_fantasia_incart, select_incart_cad  # noqa: E402
from uqxai_lib.data.manifest import load_manifest  # noqa: E402

INCART_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
HEALTHY = ["f1o01", "f2y10"]
INCART = ["I01", "I02", "I03"]


def _ecg(n: int, fs: float, rng) -> np.ndarray:
    t = np.arange(n) / fs
    beats = np.arange(0.3, t[-1], 0.8)
    s = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) + 0.3 * np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2) for b in beats)
    return s + 0.01 * rng.standard_normal(n)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("ecgdata")
    (root / "fantasia").mkdir()
    (root / "incart").mkdir()
    for r in HEALTHY:  # Fantasia: RESP, ECG, BP at 250 Hz, 10 s
        n = 2500
        sig = np.stack([np.sin(np.arange(n) / 200), _ecg(n, 250, rng), 80 + np.sin(np.arange(n) / 50)], 1)
        wfdb.wrsamp(r, fs=250, units=["mV", "mV", "mmHg"], sig_name=["RESP", "ECG", "BP"], p_signal=sig,
                    fmt=["16", "16", "16"], write_dir=str(root / "fantasia"))
    comments = {  # INCART: 12 leads at 257 Hz, diagnosis in the header comments
        "I01": ["<age>: 65 <sex>: M <diagnoses> Coronary artery disease, arterial hypertension"],
        "I02": ["<age>: 65 <sex>: M <diagnoses> Coronary artery disease, arterial hypertension"],
        "I03": ["<age>: 40 <sex>: F <diagnoses> Sinus node dysfunction"],
    }
    for r in INCART:
        n = 257 * 9
        sig = np.stack([_ecg(n, 257, rng) * (-1.0 if k == 1 else 1.0 + 0.1 * k) for k in range(12)], 1)  # lead II inverted
        wfdb.wrsamp(r, fs=257, units=["mV"] * 12, sig_name=INCART_LEADS, p_signal=sig, fmt=["16"] * 12,
                    comments=comments[r], write_dir=str(root / "incart"))
    return root


def test_manifest_lists_all_records_with_sources_and_licence():
    m = load_manifest("ecg")
    paths = {f["path"] for f in m["files"]}
    assert len(paths) == 2 * 40 + 2 * 75
    assert {"fantasia/f1o01.dat", "fantasia/f2y10.hea", "incart/I75.dat"} <= paths
    assert all(f["url"].startswith("https://physionet.org/") for f in m["files"])
    assert "ODC-By" in m["license"]


def test_cad_records_are_selected_from_header_diagnoses_and_patients_grouped(root):
    cad, patient = select_incart_cad(root / "incart", INCART)
    assert cad == ["I01", "I02"]
    assert patient["I01"] == patient["I02"] != patient["I03"]


def test_loader_returns_standardised_2s_windows_split_by_subject(root):
    d = load_fantasia_incart(root, healthy_records=HEALTHY, incart_records=INCART)
    # Fantasia 10 s -> 5 windows each; INCART 9 s at 257 Hz -> 9 s at 250 Hz -> 4 windows each
    assert d.x.shape == (2 * 5 + 2 * 4, 1, 500) and d.x.dtype == torch.float32
    assert d.y.tolist() == [0] * 10 + [1] * 8
    assert d.classes == ("healthy", "CAD") and d.mask is None
    assert torch.allclose(d.x.mean(-1), torch.zeros(18, 1), atol=1e-5)
    assert torch.allclose(d.x.std(-1, unbiased=False), torch.ones(18, 1), atol=1e-4)
    # two Fantasia subjects, one INCART patient (I01 and I02 share a header description)
    assert d.group.unique().tolist() == [0, 1, 1000]


def test_incart_is_resampled_to_250hz_keeping_the_beat_rhythm(root):
    d = load_fantasia_incart(root, healthy_records=HEALTHY, cad_records=["I01"])
    x = d.x[d.y == 1][0, 0].numpy()
    peaks = np.nonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > 2.0))[0] + 1
    # beats every 0.8 s -> 200 samples at 250 Hz (257 Hz would give 205.6)
    assert np.allclose(np.diff(peaks), 200, atol=2)


def test_lead_ii_is_the_incart_lead(root):
    import wfdb as w

    rec = w.rdrecord(str(root / "incart" / "I01"))
    lead2 = rec.p_signal[: 257 * 2, 1]
    d = load_fantasia_incart(root, healthy_records=HEALTHY, cad_records=["I01"])
    first = d.x[d.y == 1][0, 0].numpy()
    # lead II is the only inverted lead in the fixture: correlation ~ +1 with it, ~ -1 with the others
    from scipy.signal import resample_poly

    ref = resample_poly(lead2, 250, 257)[:500]
    assert np.corrcoef(first, ref)[0, 1] > 0.99


def test_missing_files_raise_data_error_listing_them_and_their_source(root, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    (broken / "fantasia" / "f1o01.dat").unlink()
    (broken / "incart" / "I02.hea").unlink()
    with pytest.raises(DataError) as e:
        load_fantasia_incart(broken, healthy_records=HEALTHY, incart_records=INCART)
    msg = str(e.value)
    assert "incart/I02.hea" in msg and "physionet.org/files/incartdb" in msg
    (broken / "incart" / "I02.hea").write_text((root / "incart" / "I02.hea").read_text())
    with pytest.raises(DataError, match=r"fantasia/f1o01\.dat.*physionet\.org/files/fantasia"):
        load_fantasia_incart(broken, healthy_records=HEALTHY, incart_records=INCART)


def test_corrupt_file_is_reported_when_a_checksum_is_pinned(root):
    m = load_manifest("ecg")
    for f in m["files"]:
        if f["path"] == "fantasia/f1o01.dat":
            f["sha256"] = "0" * 64
    with pytest.raises(DataError, match=r"corrupt fantasia/f1o01\.dat"):
        load_fantasia_incart(root, healthy_records=HEALTHY, incart_records=INCART, manifest=m)


def test_no_cad_record_found_raises(root):
    with pytest.raises(DataError, match="coronary artery disease"):
        load_fantasia_incart(root, healthy_records=HEALTHY, incart_records=["I03"])


def test_unknown_record_names_raise(root):
    with pytest.raises(DataError, match="I01..I75"):
        load_fantasia_incart(root, healthy_records=HEALTHY, cad_records=["I99"])
    with pytest.raises(DataError, match="f1o01..f2y10"):
        load_fantasia_incart(root, healthy_records=["x1"], incart_records=INCART)


def test_cut_windows_drops_gaps_and_flat_lines_and_caps_count():
    sig = np.random.default_rng(0).standard_normal(5000)
    sig[600] = np.nan
    sig[1000:1500] = 1.0
    w = cut_windows(sig, fs=250, window_s=2.0)
    assert w.shape == (8, 500) and np.isfinite(w).all()
    assert cut_windows(sig, fs=250, window_s=2.0, max_windows=3).shape == (3, 500)

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
        sig = np.stack([_ecg(n, 257, rng) * (-1.0 if k == 1 else 1.0 + 0.1 * k) for k in range(12)],
                       1)  # lead II inverted
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


# ------------------------------------------------------------------ real-shaped release (issue 12)
# 7 CAD patients with 17 records as in INCART, plus non-CAD patients; every header has the three
# comment lines of the real release (demographics + diagnoses, "patient N", per-record findings).
CAD_PATIENTS = {1: ["I01", "I02", "I03"], 2: ["I04", "I05"], 3: ["I06", "I07", "I08"], 4: ["I09", "I10"],
                5: ["I11", "I12"], 6: ["I13", "I14", "I15"], 7: ["I16", "I17"]}
OTHER_PATIENTS = {8: ["I18", "I19"], 9: ["I20"]}
FINDINGS = ["PVCs, noise", "APCs", "PVCs, APCs, Noise", "no particular findings", "Sinus tachycardia"]
REAL_FANTASIA = ["f1o01", "f1o02", "f1y01", "f1y02", "f2o01", "f2o02", "f2y01", "f2y02"]
INCART_S, FANTASIA_S = 9, 10  # seconds per fabricated record -> 4 and 5 windows


def _write_release(root, rng):
    (root / "fantasia").mkdir(parents=True)
    (root / "incart").mkdir()
    for r in REAL_FANTASIA:  # f1*: RESP + ECG in format 16; f2*: RESP + ECG + BP in format 212
        n = 250 * FANTASIA_S
        resp, ecg = np.sin(np.arange(n) / 200), _ecg(n, 250, rng)
        if r.startswith("f1"):
            wfdb.wrsamp(r, fs=250, units=["mV", "mV"], sig_name=["RESP", "ECG"], p_signal=np.stack([resp, ecg], 1),
                        fmt=["16", "16"], write_dir=str(root / "fantasia"))
        else:
            bp = 80 + 10 * np.sin(np.arange(n) / 50)
            wfdb.wrsamp(r, fs=250, units=["mV", "mV", "mmHg"], sig_name=["RESP", "ECG", "BP"],
                        p_signal=np.stack([resp, ecg, bp], 1), fmt=["212", "212", "212"],
                        write_dir=str(root / "fantasia"))
    k = 0
    for patients, dx in ((CAD_PATIENTS, "Coronary artery disease, arterial hypertension"),
                         (OTHER_PATIENTS, "Sinus node dysfunction")):
        for pid, recs in patients.items():
            age, sex = 40 + 3 * pid, "MF"[pid % 2]
            for r in recs:
                comments = [f"<age>: {age} <sex>: {sex} <diagnoses> {dx}", f"patient {pid}",
                            FINDINGS[k % len(FINDINGS)]]
                k += 1
                n = 257 * INCART_S
                sig = np.stack([_ecg(n, 257, rng) * (1.0 + 0.1 * j) for j in range(12)], 1)
                wfdb.wrsamp(r, fs=257, units=["mV"] * 12, sig_name=INCART_LEADS, p_signal=sig, fmt=["16"] * 12,
                            comments=comments, write_dir=str(root / "incart"))
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return _write_release(tmp_path_factory.mktemp("release"), np.random.default_rng(1))


ALL_INCART = [r for recs in (*CAD_PATIENTS.values(), *OTHER_PATIENTS.values()) for r in recs]


def test_headers_have_the_real_three_comment_lines(release):
    hdr = wfdb.rdheader(str(release / "incart" / "I02"))
    assert len(hdr.comments) == 3 and hdr.comments[1] == "patient 1"
    assert wfdb.rdheader(str(release / "fantasia" / "f2o01")).fmt == ["212"] * 3


def test_incart_subjects_are_patients_not_header_texts(release):
    cad, patient = select_incart_cad(release / "incart", ALL_INCART)
    assert cad == [r for recs in CAD_PATIENTS.values() for r in recs]  # 17 CAD records
    for pid, recs in CAD_PATIENTS.items():
        assert {patient[r] for r in recs} == {f"patient {pid}"}
    d = load_fantasia_incart(release, healthy_records=REAL_FANTASIA, incart_records=ALL_INCART)
    assert d.group[d.y == 1].unique().numel() == 7  # 7 patients, not 17 "subjects"
    assert d.group[d.y == 0].unique().numel() == len(REAL_FANTASIA)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_no_incart_patient_spans_two_splits(release, seed):
    from uqxai_lib.data.synthetic_ecg import stratified_group_split

    d = load_fantasia_incart(release, healthy_records=REAL_FANTASIA, incart_records=ALL_INCART)
    cad = [r for recs in CAD_PATIENTS.values() for r in recs]
    owner = {r: pid for pid, recs in CAD_PATIENTS.items() for r in recs}
    per = len(cut_windows(np.zeros(250 * INCART_S) + np.arange(250 * INCART_S), 250))  # windows per record
    true_patient = np.full(len(d), -1)
    true_patient[(d.y == 1).numpy()] = [owner[cad[i // per]] for i in range(per * len(cad))]
    parts = stratified_group_split(d.group, d.y, [0.6, 0.2, 0.2], seed=seed)
    seen = [set(true_patient[p.numpy()].tolist()) - {-1} for p in parts]
    assert all(seen)  # every split holds CAD patients
    for a in range(3):
        for b in range(a + 1, 3):
            assert seen[a].isdisjoint(seen[b]), (seed, seen)


def _suggested(msg: str, option: str) -> list[str]:
    import ast
    import re

    m = re.search(rf"{option}=(\[[^\]]*\])", msg)
    assert m, msg
    return ast.literal_eval(m.group(1))


def test_partial_copy_error_names_the_option_and_its_value_that_work(release, tmp_path):
    import shutil

    part = tmp_path / "part"
    shutil.copytree(release, part)
    for r in ["f1o02", "f2y02"]:  # two Fantasia records absent
        for ext in (".hea", ".dat"):
            (part / "fantasia" / f"{r}{ext}").unlink()
    cad = [r for recs in CAD_PATIENTS.values() for r in recs]
    for p in (part / "incart").iterdir():  # only the CAD records of INCART, as a user might keep them
        if p.stem not in cad:
            p.unlink()
    with pytest.raises(DataError) as e:
        load_fantasia_incart(part)  # defaults: all 40 Fantasia records, all 75 INCART headers
    msg = str(e.value)
    assert "fantasia_records" in msg and "incart_records" in msg and "incart_cad_records" in msg
    assert "missing fantasia/f1o02.hea" in msg and "... and" in msg  # 20 listed, then a count
    assert len(e.value.problems) == (40 - 6) + (75 - 17)  # every missing header is kept
    healthy, search = _suggested(msg, "healthy_records"), _suggested(msg, "incart_records")
    assert healthy == [r for r in REAL_FANTASIA if r not in ("f1o02", "f2y02")] and search == cad
    d = load_fantasia_incart(part, healthy_records=healthy, incart_records=search)
    assert d.group[d.y == 1].unique().numel() == 7
    # a CAD record whose signal file is missing: the error names cad_records with the complete ones
    (part / "incart" / "I05.dat").unlink()
    with pytest.raises(DataError) as e:
        load_fantasia_incart(part, healthy_records=healthy, incart_records=search)
    assert "missing incart/I05.dat" in str(e.value)
    assert _suggested(str(e.value), "cad_records") == [r for r in cad if r != "I05"]


def test_patient_key_falls_back_to_the_demographic_line_then_the_whole_text():
    from uqxai_lib.data.fantasia_incart import patient_key

    assert patient_key(["<age>: 65 <sex>: F <diagnoses> CAD", "Patient 12", "PVCs"]) == "patient 12"
    assert patient_key(["<age>: 65 <sex>: F <diagnoses> CAD",
                        "PVCs"]) == patient_key(["<age>: 65  <sex>: F <diagnoses> CAD", "APCs"])
    assert patient_key(["only text"]) == "only text"


def test_loader_checks_the_digests_of_a_filled_local_manifest(release, tmp_path):
    import shutil

    from uqxai_lib.data.pin import fill

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    fill("ecg", copy, allow_missing=True)
    load_fantasia_incart(copy, healthy_records=REAL_FANTASIA[:3], cad_records=["I01", "I04", "I06"])
    dat = copy / "fantasia" / "f1o02.dat"
    dat.write_bytes(dat.read_bytes()[:-2] + b"\x00\x00")  # one sample changed: the record still parses
    with pytest.raises(DataError, match=r"corrupt fantasia/f1o02\.dat: sha256"):
        load_fantasia_incart(copy, healthy_records=REAL_FANTASIA[:3], cad_records=["I01", "I04", "I06"])


def test_every_corrupt_record_is_named_in_one_error(release, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    (copy / "fantasia" / "f1y01.dat").write_bytes(b"\x00\x01")  # truncated signal files
    (copy / "incart" / "I04.dat").write_bytes(b"\x00")
    with pytest.raises(DataError) as e:
        load_fantasia_incart(copy, healthy_records=REAL_FANTASIA, cad_records=["I01", "I04", "I06"])
    msg = str(e.value)
    assert "2 ECG record(s)" in msg and "f1y01" in msg and "I04" in msg and "cad_records" in msg

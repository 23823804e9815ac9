import hashlib

import pytest
import yaml

from uqxai_lib.data import DataError, pin
from uqxai_lib.data import manifest as mf


def _write_manifest(d, name="toy", **extra):
    body = {"name": name, "source": "https://example.org/toy", "license": "CC-BY-4.0"}
    body.update(extra)
    (d / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return mf.load_manifest(name, directory=d)


def _tree(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_bytes(b"a,b\n1,2\n")
    (root / "sub" / "b.dat").write_bytes(b"\x00\x01\x02")
    sha = {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in ("a.csv", "sub/b.dat")}
    return root, sha


def test_manifest_dir_is_repo_root_data_manifests():
    assert mf.MANIFEST_DIR.name == "data_manifests"
    assert (mf.MANIFEST_DIR.parent / "uqxai_lib").is_dir()


def test_load_manifest_normalises_list_string_and_mapping_forms(tmp_path):
    m = _write_manifest(tmp_path, files=[{"path": "a.csv", "sha256": "A" * 64, "url": "https://x/a"}, "sub/b.dat"])
    assert m["files"] == [
        {"path": "a.csv", "sha256": "a" * 64, "url": "https://x/a"},
        {"path": "sub/b.dat", "sha256": None, "url": "https://example.org/toy"},
    ]
    m2 = _write_manifest(tmp_path, name="toy2", files={"a.csv": "b" * 64, "c.txt": {"url": "https://x/c"}})
    assert [(f["path"], f["sha256"], f["url"]) for f in m2["files"]] == [
        ("a.csv", "b" * 64, "https://example.org/toy"), ("c.txt", None, "https://x/c")]
    assert m2["license"] == "CC-BY-4.0"


def test_load_manifest_unknown_name_lists_available(tmp_path):
    _write_manifest(tmp_path, files=["a.csv"])
    with pytest.raises(DataError, match="no data manifest 'nope'.*available: toy"):
        mf.load_manifest("nope", directory=tmp_path)
    with pytest.raises(DataError, match="plain name"):
        mf.load_manifest("../etc/passwd", directory=tmp_path)


@pytest.mark.parametrize("body,match", [
    ("- just a list", "top level"),
    ("name: toy\nfiles: [a]", "source"),
    ("name: other\nsource: s\nfiles: [a]", "does not match"),
    ("name: toy\nsource: s\nfiles: []", "nothing could be verified"),
    ("name: toy\nsource: s\nfiles: [{path: /abs}]", "relative"),
    ("name: toy\nsource: s\nfiles: [{path: a, sha256: xyz}]", "64-character"),
    ("name: toy\nsource: s\nfiles: [a\n", "not valid YAML"),
])
def test_load_manifest_malformed_is_data_error_naming_the_problem(tmp_path, body, match):
    (tmp_path / "toy.yaml").write_text(body)
    with pytest.raises(DataError, match=match):
        mf.load_manifest("toy", directory=tmp_path)


def test_verify_files_passes_on_complete_tree(tmp_path):
    root, sha = _tree(tmp_path)
    m = _write_manifest(tmp_path, files=[{"path": p, "sha256": h} for p, h in sha.items()])
    mf.verify_files(root, m)


def test_verify_files_lists_every_missing_and_corrupt_file_with_source(tmp_path):
    root, sha = _tree(tmp_path)
    m = _write_manifest(tmp_path, files=[
        {"path": "a.csv", "sha256": sha["a.csv"]},
        {"path": "sub/b.dat", "sha256": sha["sub/b.dat"], "url": "https://example.org/b"},
        {"path": "gone1.txt"},
        {"path": "sub/gone2.txt", "url": "https://example.org/g2"},
    ])
    (root / "sub" / "b.dat").write_bytes(b"tampered")
    with pytest.raises(DataError) as info:
        mf.verify_files(root, m)
    msg = str(info.value)
    assert "3 problem(s)" in msg
    assert "missing gone1.txt (get it from https://example.org/toy)" in msg
    assert "missing sub/gone2.txt (get it from https://example.org/g2)" in msg
    assert "corrupt sub/b.dat" in msg and hashlib.sha256(b"tampered").hexdigest() in msg
    assert "a.csv" not in msg
    with pytest.raises(DataError, match="2 problem"):
        mf.verify_files(root, m, check_sha256=False)


def test_verify_files_only_restricts_checked_files(tmp_path):
    root, sha = _tree(tmp_path)
    m = _write_manifest(tmp_path, files=["a.csv", "sub/b.dat", "missing.txt"])
    mf.verify_files(root, m, only=["a.csv", "sub/*"])
    with pytest.raises(DataError, match="missing.txt"):
        mf.verify_files(root, m, only=["missing.txt"])
    with pytest.raises(DataError, match="no file matching"):
        mf.verify_files(root, m, only=["zzz*"])


def test_verify_files_globs_need_min_count(tmp_path):
    root, _ = _tree(tmp_path)
    m = _write_manifest(tmp_path, globs=[{"pattern": "sub/*.dat", "min_count": 1},
                                         {"pattern": "imgs/*.jpg", "min_count": 2}])
    with pytest.raises(DataError, match=r"only 0 files match imgs/\*.jpg.*>= 2"):
        mf.verify_files(root, m)
    (root / "imgs").mkdir()
    for i in range(2):
        (root / "imgs" / f"{i}.jpg").write_bytes(b"x")
    mf.verify_files(root, m)


def test_verify_files_missing_root_says_where_to_get_data(tmp_path):
    m = _write_manifest(tmp_path, files=["a.csv"])
    with pytest.raises(DataError, match="does not exist.*https://example.org/toy"):
        mf.verify_files(tmp_path / "nowhere", m)


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 3_000_000)
    assert mf.sha256_file(p, chunk=1 << 16) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_repository_manifests_are_valid():
    for name in mf.available_manifests():
        m = mf.load_manifest(name)
        assert m["name"] == name and m["source"]


# ------------------------------------------------------------------ fill / verify (issue 12)
def _ecg_copy(tmp_path, records=("f1o01", "f2y10")):
    root = tmp_path / "my ecg"
    (root / "fantasia").mkdir(parents=True)
    for r in records:
        (root / "fantasia" / f"{r}.hea").write_text(f"{r} 2 250 2500\n")
        (root / "fantasia" / f"{r}.dat").write_bytes(bytes(range(256)) * 4 + r.encode())
    return root


def test_fill_refuses_an_incomplete_copy_unless_allowed_and_never_changes_the_shipped_manifest(tmp_path):
    root = _ecg_copy(tmp_path)
    shipped = (mf.MANIFEST_DIR / "ecg.yaml").read_bytes()
    with pytest.raises(DataError, match=r"(?s)226 problem.*--allow-missing"):
        pin.fill("ecg", root)
    path = pin.fill("ecg", root, allow_missing=True)
    assert path == root / "uqxai-ecg.manifest.yaml" and (mf.MANIFEST_DIR / "ecg.yaml").read_bytes() == shipped
    local = mf.load_manifest_file(path, "ecg")
    got = {f["path"]: f["sha256"] for f in local["files"]}
    assert got == {f"fantasia/{r}{e}": hashlib.sha256((root / "fantasia" / f"{r}{e}").read_bytes()).hexdigest()
                   for r in ("f1o01", "f2y10") for e in (".hea", ".dat")}
    assert local["source"] == mf.load_manifest("ecg")["source"] and local["incart_cad_records"] == []
    assert mf.manifest_for("ecg", root)["files"] == local["files"]


def test_verify_command_lists_every_changed_or_missing_file(tmp_path, capsys):
    root = _ecg_copy(tmp_path)
    assert pin.main(["fill", "ecg", str(root), "--allow-missing"]) == 0
    assert "sha256 of 4 file(s)" in capsys.readouterr().out
    assert pin.main(["verify", "ecg", str(root)]) == 0
    assert "4 file(s), 4 with sha256" in capsys.readouterr().out
    (root / "fantasia" / "f1o01.dat").write_bytes(b"changed")
    (root / "fantasia" / "f2y10.hea").unlink()
    assert pin.main(["verify", "ecg", str(root)]) == 1
    err = capsys.readouterr().err
    assert "corrupt fantasia/f1o01.dat" in err and "missing fantasia/f2y10.hea" in err and "(2 problem(s))" in err


def test_verify_without_local_manifest_checks_the_shipped_one_and_lists_all(tmp_path, capsys):
    root = _ecg_copy(tmp_path)
    assert pin.main(["verify", "ecg", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("  - missing ") == 226  # every missing file, not only the first 20


def test_fill_pins_every_glob_file_case_insensitively_without_hidden_files(tmp_path):
    from PIL import Image

    root = tmp_path / "sartaj"
    for split in ("Training", "Testing"):
        for folder in ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"):
            d = root / split / folder
            d.mkdir(parents=True)
            Image.new("L", (8, 8), 50).save(d / "a.jpg")
            Image.new("RGB", (8, 8), 50).save(d / "B.JPG")
            (d / "._a.jpg").write_bytes(b"\x00\x05\x16\x07")
    path = pin.fill("sartaj", root, allow_missing=True)
    paths = {f["path"] for f in mf.load_manifest_file(path, "sartaj")["files"]}
    assert len(paths) == 16 and "Training/no_tumor/B.JPG" in paths and not any("._" in p for p in paths)
    mf.verify_files(root, mf.manifest_for("sartaj", root), only=[p for p in paths])


def test_module_runs_as_a_command(tmp_path):
    import subprocess
    import sys

    root = _ecg_copy(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "uqxai_lib.data.pin", "fill", "ecg", str(root), "--allow-missing"],
                          capture_output=True, text=True, cwd=mf.MANIFEST_DIR.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (root / "uqxai-ecg.manifest.yaml").is_file()


def test_only_paths_absent_from_a_local_manifest_are_reported_missing(tmp_path):
    root, _ = _tree(tmp_path)
    m = _write_manifest(tmp_path, files=["a.csv"])
    with pytest.raises(DataError, match=r"missing other/c\.dat"):
        mf.verify_files(root, m, only=["a.csv", "other/c.dat"])

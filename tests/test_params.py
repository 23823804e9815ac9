"""params: a chapter's parameters are its parameters cell overlaid with the profile, as the runner passes them."""
import textwrap

import pytest
import yaml

from uqxai_lib import params


def _write(tmp_path, body, profile):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "demo.py").write_text(textwrap.dedent(body))
    pr = tmp_path / "profiles"
    pr.mkdir()
    (pr / "demo.yaml").write_text(yaml.safe_dump(profile))
    return nb, pr


def test_chapter_parameters_overlay_the_profile_on_the_cell_defaults(tmp_path):
    nb, pr = _write(tmp_path, '''
        # %% [markdown]
        # # Demo

        # %% tags=["parameters"]
        seed = 0
        epochs = 10
        grid = [1, 2]
        name = "x"

        # %%
        print(epochs)
        ''', {"tiny": {"epochs": 2}, "smoke": {}})
    got = params.chapter_parameters("demo", "tiny", notebooks_dir=nb, profiles_dir=pr)
    assert got == {"seed": 0, "epochs": 2, "grid": [1, 2], "name": "x"}
    assert params.chapter_parameters("demo", "smoke", notebooks_dir=nb, profiles_dir=pr)["epochs"] == 10


def test_non_literal_parameters_are_named(tmp_path):
    nb, pr = _write(tmp_path, '''
        # %% tags=["parameters"]
        epochs = int("3")
        ''', {"smoke": {}})
    with pytest.raises(ValueError, match="'epochs' is not a literal"):
        params.notebook_defaults("demo", nb)


def test_real_chapters_take_their_tiny_profile():
    from uqxai_lib.run import REPO_ROOT

    for name in ("ecg_sue", "mri_mc_dropout", "derm_vic"):
        tiny = yaml.safe_load((REPO_ROOT / "uqxai_lib" / "profiles" / f"{name}.yaml").read_text())["tiny"]
        got = params.chapter_parameters(name, "tiny")
        assert {k: got[k] for k in tiny} == tiny
        assert "seed" in got and "results_path" in got  # cell defaults the profile does not set are kept

"""The cross-study chapter's modalities are the chapters' own setups (one implementation, one cache
key each): the same test items, the same trained weights; a member is the same data with another
training seed, cached under its own key."""
from __future__ import annotations

import pytest
import torch

from uqxai_lib.params import chapter_parameters
from uqxai_lib.studies import derm as derm_study
from uqxai_lib.studies import ecg as ecg_study
from uqxai_lib.studies import modalities
from uqxai_lib.studies import mri as mri_study


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _test_set(st):
    return st.test_set if hasattr(st, "test_set") else st.test


@pytest.mark.parametrize("notebook, build, chapter", [
    ("ecg_sue", modalities.ecg, ecg_study),
    ("mri_mc_dropout", modalities.mri, mri_study),
    ("derm_vic", modalities.derm, derm_study),
])
def test_modality_is_the_chapters_setup_and_members_differ_only_in_the_training_seed(notebook, build, chapter,
                                                                                     tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    params = chapter_parameters(notebook, "tiny")
    m = build(params, torch.device("cpu"), seed=0)
    assert not m.from_cache  # a fresh cache: the modality trained the chapter's model
    st = chapter.setup(params, seed=0)
    assert st.from_cache if hasattr(st, "from_cache") else st.fit.from_cache  # ... under the chapter's key
    assert torch.equal(m.test.x.cpu(), _test_set(st).x.cpu()) and torch.equal(m.test.y.cpu(), _test_set(st).y.cpu())
    assert _same_weights(m.model, st.model)
    assert m.member(0) is m.model
    other = m.member(1)
    assert not _same_weights(other, m.model)  # another training seed
    again = chapter.setup(params, seed=0, member_seed=1)
    assert _test_set(again) is not None and torch.equal(_test_set(again).x.cpu(), m.test.x.cpu())
    assert (again.from_cache if hasattr(again, "from_cache") else again.fit.from_cache)  # the member's own key
    assert _same_weights(again.model, other)


def test_finetuned_set_of_a_modality_uses_its_recipe_and_the_loss_filter(tmp_path, monkeypatch):
    from uqxai_lib import finetune

    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    params = chapter_parameters("ecg_sue", "tiny")
    m = modalities.ecg(params, torch.device("cpu"), seed=0)
    fset = modalities.finetuned(m, k=2, epochs=1, epsilon=0.05, seed=0, lr_factor=0.1)
    want = finetune.finetuned_set(m.model, m.train, m.val, k=2, epochs=1, epsilon=0.05, seed=0,
                                  cache_config=m.recipe["cache_config"], lr=0.1 * params["lr"],
                                  batch_size=params["batch_size"], name=m.recipe["name"], progress=False)
    assert len(fset.models) == 2 and torch.equal(fset.kept, want.kept)
    assert all(_same_weights(a, b) for a, b in zip(fset.models, want.models))
    assert not any(_same_weights(a, m.model) for a in fset.models)  # every weight could move
    assert torch.equal(fset.kept, fset.relative_loss <= 1.05)
    with pytest.raises(ValueError, match="no training recipe"):
        modalities.finetuned(m._replace(recipe=None), k=2, epochs=1, epsilon=0.05, seed=0)

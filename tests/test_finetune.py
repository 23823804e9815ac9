"""Tests of the fine-tuned Rashomon set (uqxai_lib.finetune)."""
import pytest
import torch
import torch.nn.functional as F

from uqxai_lib import finetune, saliency, train
from uqxai_lib.data import LabeledArrays
from uqxai_lib.models.derm_classifier import build_derm_classifier


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = (x[:, 0, 4:12, 4:12].mean((1, 2)) > 0).long()
    x[y == 1, 1, 4:12, 4:12] += 1.0  # a learnable cue
    return LabeledArrays(x, y, ("benign", "malignant"))


@pytest.fixture(scope="module")
def base_model():
    tr, va = _data(48, 0), _data(24, 1)
    torch.manual_seed(0)
    model = build_derm_classifier("small", small_width=4, small_features=8)
    fit = train.fit(model, tr, va, epochs=3, batch_size=8, lr=0.01, seed=0, device=torch.device("cpu"),
                    progress=False)
    return fit.model.eval(), tr, va


def _float64_loss(model, data, weight):
    with torch.no_grad():
        return float(F.cross_entropy(model(data.x).double(), data.y, weight=weight.double()))


def test_filter_keeps_exactly_the_models_within_one_plus_epsilon_of_a_float64_loss(base_model):
    model, tr, va = base_model
    fset = finetune.finetuned_set(model, tr, va, k=5, epochs=1, epsilon=0.05, seed=0, lr=0.01, batch_size=8,
                                  progress=False)
    w = train.class_weights(tr.y, 2)
    base = _float64_loss(model, va, w)
    losses = torch.tensor([_float64_loss(m, va, w) for m in fset.models], dtype=torch.float64)
    assert fset.base_loss == pytest.approx(base, rel=1e-5)
    assert torch.allclose(fset.losses, losses, rtol=1e-5)
    assert torch.equal(fset.relative_loss, fset.losses / fset.base_loss)
    assert torch.equal(fset.kept, losses / base <= 1.05)  # the float64 oracle's rule
    assert fset.kept.any() and (~fset.kept).any()  # this seed gives both outcomes, so the rule is exercised
    # the filter does not change training: a wider tolerance keeps every one of the same members
    wide = finetune.finetuned_set(model, tr, va, k=5, epochs=1, epsilon=10.0, seed=0, lr=0.01, batch_size=8,
                                  progress=False)
    assert wide.kept.all() and torch.equal(wide.losses, fset.losses)
    assert [m for m, keep in zip(fset.models, fset.kept) if keep] == fset.kept_models


def test_members_differ_from_each_other_and_from_the_start_and_the_start_is_untouched(base_model):
    model, tr, va = base_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fset = finetune.finetuned_set(model, tr, va, k=3, epochs=1, epsilon=10.0, seed=0, lr=0.02, batch_size=8,
                                  progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not model.training
    w = [torch.cat([p.flatten() for p in m.parameters()]) for m in fset.models]
    w0 = torch.cat([p.flatten() for p in model.parameters()])
    for i in range(3):
        assert not torch.allclose(w[i], w0)
        for j in range(i + 1, 3):
            assert not torch.allclose(w[i], w[j])
    stack = finetune.finetuned(fset, va.x[:6], "features", target=torch.zeros(6, dtype=torch.long))
    assert stack.maps.shape[:2] == (3, 6)
    assert not torch.allclose(stack.maps[0], stack.maps[1])
    assert len(set(fset.seeds)) == 3


def test_same_seed_same_set_other_seed_other_set_and_the_cache_returns_the_same_weights(base_model):
    model, tr, va = base_model
    kw = dict(k=2, epochs=1, epsilon=0.1, lr=0.02, batch_size=8, progress=False)
    a = finetune.finetuned_set(model, tr, va, seed=3, **kw)
    b = finetune.finetuned_set(model, tr, va, seed=3, **kw)
    c = finetune.finetuned_set(model, tr, va, seed=4, **kw)
    assert torch.equal(a.losses, b.losses) and a.seeds == b.seeds
    for ma, mb in zip(a.models, b.models):
        for pa, pb in zip(ma.state_dict().values(), mb.state_dict().values()):
            assert torch.equal(pa, pb)
    assert not torch.equal(a.losses, c.losses) and set(a.seeds).isdisjoint(c.seeds)
    cfg = {"test": "finetune_cache"}
    d = finetune.finetuned_set(model, tr, va, seed=3, cache_config=cfg, **kw)
    e = finetune.finetuned_set(model, tr, va, seed=3, cache_config=cfg, **kw)  # loaded from the cache
    assert torch.equal(d.losses, a.losses) and torch.equal(e.losses, a.losses)
    # another starting model does not share the cache entry
    other = build_derm_classifier("small", small_width=4, small_features=8).eval()
    f = finetune.finetuned_set(other, tr, va, seed=3, cache_config=cfg, **kw)
    assert not torch.equal(f.losses, a.losses)


def test_sampler_maps_equal_a_loop_of_grad_cam_pp_and_probs_are_each_members_softmax(base_model):
    model, tr, va = base_model
    fset = finetune.finetuned_set(model, tr, va, k=3, epochs=1, epsilon=10.0, seed=1, lr=0.02, batch_size=8,
                                  progress=False)
    x, tgt = va.x[:5], torch.tensor([0, 1, 0, 1, 1])
    st = finetune.finetuned(fset, x, "features", target=tgt)
    for i, m in enumerate(fset.kept_models):
        assert torch.equal(st.maps[i], saliency.grad_cam_pp(m, x, "features", target=tgt))
        with torch.no_grad():
            assert torch.allclose(st.probs[i], torch.softmax(m(x), -1))
    assert torch.equal(st.target, tgt)


def test_clear_errors_before_any_training(base_model):
    model, tr, va = base_model
    with pytest.raises(ValueError, match="k must be"):
        finetune.finetuned_set(model, tr, va, k=0, epochs=1, epsilon=0.05, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        finetune.finetuned_set(model, tr, va, k=1, epochs=0, epsilon=0.05, seed=0)
    with pytest.raises(ValueError, match="epsilon"):
        finetune.finetuned_set(model, tr, va, k=1, epochs=1, epsilon=-0.1, seed=0)
    model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            finetune.finetuned_set(model, tr, va, k=1, epochs=1, epsilon=0.05, seed=0)
    finally:
        model.eval()
    empty = finetune.FinetunedSet([model], torch.tensor([2.0], dtype=torch.float64), 1.0, torch.tensor([False]),
                                  0.05, [1])
    with pytest.raises(ValueError, match="no fine-tuned model is within"):
        finetune.finetuned(empty, va.x[:2], "features", target=torch.zeros(2, dtype=torch.long))


def test_fine_tuning_keeps_batchnorm_statistics_so_a_vanishing_step_stays_in_the_set(base_model):
    import copy

    model, tr, va = base_model
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns, "the fixture model must have BatchNorm for this test"
    before = [b.running_mean.clone() for b in bns]
    fset = finetune.finetuned_set(model, tr, va, k=2, epochs=1, epsilon=1e-3, seed=0, lr=1e-12, batch_size=8,
                                  progress=False)
    for member in fset.models:  # statistics frozen, weights moved by almost nothing: the optimum's loss
        mb = [m for m in member.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert all(torch.equal(a.running_mean, b) for a, b in zip(mb, before))
    assert fset.kept.all() and torch.allclose(fset.relative_loss, torch.ones(2, dtype=torch.float64), atol=1e-4)
    # without freezing, one epoch of train-mode batches re-estimates them
    free = copy.deepcopy(model)
    train.fit(free, tr, None, epochs=1, batch_size=8, lr=1e-12, seed=0, device=torch.device("cpu"), patience=None,
              progress=False)
    assert not all(torch.equal(b.running_mean, a) for b, a in
                   zip([m for m in free.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)], before))

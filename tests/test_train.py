import pytest
import torch
from torch import nn

from uqxai_lib.data import DataError, LabeledArrays
from uqxai_lib.train import class_weights, fit, predict_proba

CPU = torch.device("cpu")


def _data(n=64, seed=0, imbalance=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, generator=g)
    y = (x[:, 0].mean(1) + imbalance > 0).long()
    return LabeledArrays(x, y, classes=("a", "b"))


class SmallNet(nn.Module):
    """Conv + BatchNorm + Dropout: the layers whose modes matter."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.drop(torch.relu(self.bn(self.conv(x)))).mean(-1)
        return self.fc(h)


def _model(seed=0):
    torch.manual_seed(seed)
    return SmallNet()


def _fit(model, tr, va, **kw):
    args = dict(epochs=3, batch_size=16, lr=0.01, seed=0, device=CPU, progress=False)
    args.update(kw)
    return fit(model, tr, va, **args)


def test_class_weights_balanced_matches_n_over_c_count():
    y = torch.tensor([0] * 6 + [1] * 2 + [2] * 4)
    expected = torch.tensor([12 / (3 * 6), 12 / (3 * 2), 12 / (3 * 4)])
    assert torch.allclose(class_weights(y, 3), expected)


def test_class_weights_absent_class_warns_and_bad_mode_raises():
    with pytest.warns(UserWarning, match="no training examples"):
        w = class_weights(torch.tensor([0, 0]), 2)
    assert torch.isfinite(w).all()
    with pytest.raises(ValueError, match="balanced"):
        class_weights(torch.tensor([0, 1]), 2, "inverse")
    with pytest.raises(DataError, match="labels"):
        class_weights(torch.tensor([0, 3]), 2)


def test_fit_is_bit_identical_for_same_seed_and_differs_for_other_seed():
    tr, va = _data(seed=0), _data(seed=1)
    a = _fit(_model(), tr, va)
    b = _fit(_model(), tr, va)
    c = _fit(_model(), tr, va, seed=1)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.history == b.history
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items()
               if v.dtype.is_floating_point)


def test_fit_learns_a_separable_problem():
    tr, va = _data(256, seed=0), _data(128, seed=1)
    res = _fit(_model(), tr, va, epochs=12, batch_size=32, lr=0.03)
    acc = (predict_proba(res.model, va.x).argmax(1) == va.y).float().mean()
    assert acc > 0.85
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_fit_returns_eval_mode_model_on_device_with_history():
    res = _fit(_model(), _data(), _data(seed=1), epochs=3, patience=None)
    assert all(not m.training for m in res.model.modules())
    assert next(res.model.parameters()).device == CPU
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert set(res.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy"}
    assert res.from_cache is False


def test_fit_trains_in_train_mode(monkeypatch):
    seen = []
    model = _model()
    model.drop.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    _fit(model, _data(), _data(seed=1), epochs=1)
    assert True in seen  # training batches
    assert False in seen  # validation pass


def test_early_stopping_restores_best_validation_weights():
    # validation labels are the opposite of the training labels: val loss rises as training fits
    tr = _data(128, seed=0)
    va = LabeledArrays(tr.x.clone(), 1 - tr.y, classes=tr.classes)
    model = _model()
    res = _fit(model, tr, va, epochs=40, patience=2, lr=0.05, batch_size=32)
    losses = [h["val_loss"] for h in res.history]
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    assert res.best_epoch == best
    assert len(res.history) == best + 2 < 40  # stopped after `patience` epochs without improvement
    from uqxai_lib.train import evaluate_loss
    w = class_weights(tr.y, 2)
    restored, _ = evaluate_loss(res.model, va, w, batch_size=32, device=CPU)
    assert restored == pytest.approx(losses[best - 1], rel=1e-6)


def test_class_weighting_changes_training_on_imbalanced_data():
    tr = _data(128, seed=0, imbalance=0.8)
    assert tr.y.float().mean() > 0.7
    a = _fit(_model(), tr, _data(seed=1), epochs=3, class_weight="balanced")
    b = _fit(_model(), tr, _data(seed=1), epochs=3, class_weight=None)
    assert a.history[0]["train_loss"] != b.history[0]["train_loss"]


def test_augment_is_called_with_a_generator_and_used(monkeypatch):
    calls = []

    def augment(x, g):
        assert isinstance(g, torch.Generator)
        calls.append(len(x))
        return x + 0.1 * torch.randn(x.shape, generator=g)

    a = _fit(_model(), _data(), _data(seed=1), epochs=2, augment=augment)
    b = _fit(_model(), _data(), _data(seed=1), epochs=2, augment=augment)
    c = _fit(_model(), _data(), _data(seed=1), epochs=2)
    assert sum(calls) == 2 * 2 * 64
    assert a.history == b.history != c.history


def test_fit_cache_hit_skips_training_and_gives_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    tr, va = _data(), _data(seed=1)
    a = _fit(_model(), tr, va, cache_config={"study": "toy"}, name="toy")
    assert not a.from_cache
    assert list((tmp_path / "models" / "toy").glob("*.pt"))
    fresh = _model(seed=5)
    b = _fit(fresh, tr, va, cache_config={"study": "toy"}, name="toy")
    assert b.from_cache and b.model is fresh
    assert b.history == a.history and b.best_epoch == a.best_epoch
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert all(not m.training for m in b.model.modules())


@pytest.mark.parametrize("change", [dict(lr=0.02), dict(cache_config={"study": "other"}), dict(name="toy2"),
                                    dict(seed=3), dict(epochs=5)])
def test_fit_cache_miss_when_config_hyperparameters_or_name_change(tmp_path, monkeypatch, change):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    tr, va = _data(), _data(seed=1)
    base = dict(cache_config={"study": "toy"}, name="toy")
    _fit(_model(), tr, va, **base)
    assert not _fit(_model(), tr, va, **{**base, **change}).from_cache


def test_fit_cache_miss_when_training_data_change(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    va = _data(seed=1)
    _fit(_model(), _data(seed=0), va, cache_config={"s": 1})
    assert not _fit(_model(), _data(seed=2), va, cache_config={"s": 1}).from_cache


@pytest.mark.parametrize("kw,match", [(dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
                                      (dict(lr=-1.0), "lr"), (dict(patience=0), "patience")])
def test_fit_rejects_bad_arguments_with_clear_message(kw, match):
    with pytest.raises(ValueError, match=match):
        _fit(_model(), _data(), _data(seed=1), **kw)


def test_fit_empty_training_set_is_data_error():
    empty = _data().subset(torch.tensor([], dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        _fit(_model(), empty, _data())


def test_fit_diverging_loss_raises_clear_error():
    tr = _data()
    bad = LabeledArrays(tr.x * float("nan"), tr.y, tr.classes)
    with pytest.raises(FloatingPointError, match="lower lr"):
        _fit(_model(), bad, _data(seed=1))


def test_trailing_single_example_batch_does_not_break_batchnorm():
    res = _fit(_model(), _data(33), _data(seed=1), epochs=1, batch_size=16)
    assert len(res.history) == 1


def test_predict_proba_restores_each_module_mode_and_matches_softmax():
    model = _model()
    model.train()
    model.drop.eval()  # mixed modes must survive
    before = [m.training for m in model.modules()]
    x = _data().x
    p = predict_proba(model, x, batch_size=7)
    assert [m.training for m in model.modules()] == before
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), 1)
    assert torch.allclose(p, expected, atol=1e-6)
    assert p.shape == (64, 2) and not p.requires_grad


def test_predict_proba_eval_mode_false_uses_callers_dropout():
    model = _model().eval()
    model.drop.train()
    x = _data().x
    torch.manual_seed(0)
    a = predict_proba(model, x, eval_mode=False)
    b = predict_proba(model, x, eval_mode=False)
    assert not torch.equal(a, b)  # dropout active
    assert model.drop.training and not model.bn.training
    assert torch.equal(predict_proba(model, x), predict_proba(model, x))


def test_predict_proba_restores_modes_even_on_error():
    model = _model().train()
    with pytest.raises(RuntimeError):
        predict_proba(model, torch.randn(4, 3, 6))  # wrong channel count
    assert all(m.training for m in model.modules())


def test_predict_proba_accepts_labeled_arrays_and_rejects_empty():
    d = _data()
    assert torch.equal(predict_proba(_model(), d), predict_proba(_model(), d.x))
    with pytest.raises(ValueError, match="empty"):
        predict_proba(_model(), d.x[:0])

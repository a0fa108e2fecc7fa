"""The model zoo: datasets and splits, trained accuracy, deterministic cached training."""

import dataclasses

import numpy as np
import pytest
import torch
from antq.model import datasets, zoo


def test_digits_splits_are_disjoint_stratified_and_fixed():
    xtr, ytr = datasets.load_dataset("digits", "train")
    xt, yt = datasets.load_dataset("digits", "test")
    xc, yc = datasets.load_dataset("digits", "calib")
    assert xtr.shape[1:] == (1, 8, 8) and xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert len(ytr) + len(yt) == 1797 and len(yt) == 359
    assert xtr.min() == 0 and xtr.max() == 1
    assert np.array_equal(xc, xtr[:256]) and np.array_equal(yc, ytr[:256])
    assert np.all(np.abs(np.bincount(yt) / len(yt) - np.bincount(ytr) / len(ytr)) < 0.01)
    # disjoint: the split is a partition of the dataset's indices
    d = datasets._digits_splits
    d.cache_clear()
    again = datasets.load_dataset("digits", "test")
    assert np.array_equal(again[0], xt) and np.array_equal(again[1], yt)
    tr_rows = {r.tobytes() + bytes([c]) for r, c in zip(xtr, ytr, strict=True)}
    test_rows = [r.tobytes() + bytes([c]) for r, c in zip(xt, yt, strict=True)]
    assert sum(r in tr_rows for r in test_rows) < 5  # only exact duplicate images can coincide


def test_unknown_dataset_split_or_model():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        datasets.load_dataset("mnist", "test")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        datasets.load_dataset("digits", "val")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        zoo.get("resnet")


def test_trained_models_are_accurate(cnn, transformer):
    x, y = datasets.load_dataset("digits", "test")
    assert zoo.accuracy(zoo.predict(cnn, x), y) > 96
    assert zoo.accuracy(zoo.predict(transformer, x), y) > 94
    assert not any(isinstance(m, torch.nn.Conv2d) for m in transformer.modules())
    assert cnn.dataset_name == transformer.dataset_name == "digits"


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_shipped_weights_match_the_recipe_and_are_used(name, tmp_path, monkeypatch):
    """Every zoo model ships trained, so every machine starts from the same fp32 weights. A changed
    recipe (model or training code) makes them stale: `make models-ship` writes new ones."""
    state = zoo.shipped_weights(name)
    assert state is not None, f"{name}: shipped weights missing or stale; run `make models-ship`"
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path))
    model = zoo.get(name, progress=False)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob("models/*"))  # nothing was trained or cached


def test_a_changed_recipe_trains_instead_of_using_stale_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path))
    name = "digits-cnn"
    monkeypatch.setitem(zoo.ZOO, name, dataclasses.replace(zoo.ZOO[name], epochs=1))
    assert zoo.shipped_weights(name) is None  # the key covers the recipe
    model = zoo.get(name, progress=False)
    assert list(tmp_path.glob("models/digits-cnn-*.pt"))
    x, y = datasets.load_dataset("digits", "test")
    assert zoo.accuracy(zoo.predict(model, x), y) > 50  # one epoch already learns something


@pytest.mark.slow
@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_training_is_deterministic(name, tmp_path, monkeypatch):
    """Retraining from scratch twice on this machine gives bit-identical weights (across CPUs it
    need not: that is why the weights ship)."""
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path / "a"))
    first = zoo.get(name, progress=False, retrain=True).state_dict()
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path / "b"))
    again = zoo.get(name, progress=False, retrain=True).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)

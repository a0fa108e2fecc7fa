"""The datasets the model zoo trains on, with fixed held-out splits (numpy + scikit-learn, no torch).

Kept apart from :mod:`antq.model.zoo` so that running a saved ``.antq`` model on its held-out data
(``antq run``, ``antq bench``, the board) does not need PyTorch.
"""

from __future__ import annotations

from functools import cache

import numpy as np

DATASETS: tuple[str, ...] = ("digits",)
SPLITS: tuple[str, ...] = ("train", "test", "calib")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
CALIB_SAMPLES = 256
"""The ``calib`` split: the first 256 images of the (shuffled) training split."""


@cache
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = d.target.astype(np.int64)
    # A stratified split by a fixed permutation: the test images are never seen in training.
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: int(round(TEST_FRACTION * len(idx)))]] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    test_idx = np.flatnonzero(test)
    out = {"train": (x[train_idx], y[train_idx]), "test": (x[test_idx], y[test_idx])}
    out["calib"] = (out["train"][0][:CALIB_SAMPLES], out["train"][1][:CALIB_SAMPLES])
    return out


def load_dataset(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` numpy arrays of a dataset split: ``train``, ``test`` (held out) or ``calib``.

    ``digits``: x is float32 (N, 1, 8, 8) in [0, 1], y int64 class labels 0..9.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; antq ships {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    x, y = _digits_splits()[split]
    return x.copy(), y.copy()

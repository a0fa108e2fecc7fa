"""Shared fixtures: the trained zoo models (cached under build/models behind a lock) and digits splits."""

import os

import numpy as np
import pytest
import torch
from antq import models

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: one torch thread each


@pytest.fixture(scope="session")
def cnn():
    return models.get("digits-cnn", progress=False)


@pytest.fixture(scope="session")
def transformer():
    return models.get("digits-transformer", progress=False)


@pytest.fixture(scope="session")
def digits():
    """(calib x, test x, test y) of the digits dataset."""
    xc, _ = models.load_dataset("digits", "calib")
    xt, yt = models.load_dataset("digits", "test")
    return torch.from_numpy(xc), xt, yt


@pytest.fixture
def rng():
    return np.random.default_rng(0)

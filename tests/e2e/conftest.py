"""Fixtures of the end-to-end suite: the zoo models quantized with ANT (ip-f, 4-bit PTQ) and overlays."""

import os

import pytest
import torch
from antq.model import datasets, zoo
from antq.model.calibrate import quantize_model
from helpers import BACKEND_PARAMS, open_ov

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def _quantized(name: str, config: str = "ip-f"):
    net = zoo.get(name, progress=False)
    xc, _ = datasets.load_dataset("digits", "calib")
    qm = quantize_model(net, xc, config=config, bits=4, progress=False)
    return net, qm, qm.export()


@pytest.fixture(scope="session")
def cnn_q():
    """(fp32 CNN, fake-quant torch model, exported IntegerModel)."""
    return _quantized("digits-cnn")


@pytest.fixture(scope="session")
def transformer_q():
    return _quantized("digits-transformer")


@pytest.fixture(scope="session")
def transformer_int():
    """The transformer with int4 only: q, k and v are all int4s (signed data) on any machine."""
    return _quantized("digits-transformer", "int")


@pytest.fixture(scope="session")
def digits_test():
    return datasets.load_dataset("digits", "test")


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def ov(request):
    """An AntOverlay per backend, unpaced in emulation (the tests check results, not wall time)."""
    overlay = open_ov(request.param, pace=0)
    yield overlay
    overlay.close()

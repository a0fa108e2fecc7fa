"""Fixtures of the end-to-end suite: the zoo models quantized with ANT (ip-f, 4-bit PTQ) and overlays."""

import os

import pytest
import torch
from antq import emulation, models
from antq.driver import AntOverlay
from antq.nn import quantize_model

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

BOARD_SKIP = pytest.mark.skipif(
    not emulation.on_board(),
    reason="no FPGA manager at /sys/class/fpga_manager: this is not a PYNQ board, so the end-to-end "
    "hardware run is skipped (the ref/csim/rtl emulation runs cover the same tests)",
)
BACKENDS = ["ref", "csim", "rtl", pytest.param("board", marks=[pytest.mark.board, BOARD_SKIP])]


def _quantized(name: str):
    net = models.get(name, progress=False)
    xc, _ = models.load_dataset("digits", "calib")
    qm = quantize_model(net, xc, config="ip-f", bits=4, progress=False)
    return net, qm, qm.export()


@pytest.fixture(scope="session")
def cnn_q():
    """(fp32 CNN, fake-quant torch model, exported QuantizedModel)."""
    return _quantized("digits-cnn")


@pytest.fixture(scope="session")
def transformer_q():
    return _quantized("digits-transformer")


@pytest.fixture(scope="session")
def digits_test():
    return models.load_dataset("digits", "test")


@pytest.fixture(scope="module", params=BACKENDS)
def ov(request):
    """An AntOverlay per backend, unpaced in emulation (the tests check results, not wall time)."""
    overlay = AntOverlay(backend=request.param, **({} if request.param == "board" else {"pace": 0}))
    yield overlay
    overlay.close()

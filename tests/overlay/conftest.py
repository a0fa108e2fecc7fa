"""Fixtures of the overlay suites: one driver suite, run on every backend.

The emulation levels (ref, csim, rtl) always run. The ``board`` parameter carries the ``board``
marker: ``make test`` deselects it, and ``make test-board`` runs it on a PYNQ board, where
``/sys/class/fpga_manager`` exists; anywhere else it is skipped with the reason.
"""

from __future__ import annotations

import pytest
from antq import emulation
from antq.driver import AntOverlay

BOARD_SKIP = pytest.mark.skipif(
    not emulation.on_board(),
    reason="no FPGA manager at /sys/class/fpga_manager: this is not a PYNQ board, so the driver "
    "suite's hardware run is skipped (the ref/csim/rtl emulation runs cover the same tests)",
)
BACKENDS = ["ref", "csim", "rtl", pytest.param("board", marks=[pytest.mark.board, BOARD_SKIP])]


@pytest.fixture(scope="module", params=BACKENDS)
def ov(request):
    """An AntOverlay on each backend (emulation levels paced like the board)."""
    overlay = AntOverlay(backend=request.param)
    yield overlay
    overlay.close()

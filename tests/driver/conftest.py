"""Fixtures of the driver suite: one suite, run on every backend.

The emulation levels (ref, csim, rtl) always run. The ``board`` parameter carries the ``board``
marker: ``make test`` deselects it, and ``make test-board`` runs it on a PYNQ board.
"""

from __future__ import annotations

import pytest
from helpers import BACKEND_PARAMS, open_ov


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def ov(request):
    """An AntOverlay on each backend (emulation levels paced like the board)."""
    overlay = open_ov(request.param)
    yield overlay
    overlay.close()

"""Helpers shared by the test suites: random operands, the golden file, the backend parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from antq.core import backends, formats, regmap
from antq.core.quantize import QuantizedTensor
from antq.toolchain import paths


def random_tensor(rng: np.random.Generator, fmt: formats.Format, shape: tuple[int, int],
                  scale: float | np.ndarray = 1.0, channel_axis: int | None = None) -> QuantizedTensor:
    """Random codes of ``fmt`` (every code, "-0" included: the IP must treat it as zero)."""
    codes = rng.integers(0, fmt.ncodes, size=shape).astype(np.uint8)
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed, scale=scale,
                           channel_axis=channel_axis)


INT8 = [formats.get("int", 8, False), formats.get("int", 8, True)]
HW4 = regmap.array_formats()

GOLDEN = Path(__file__).resolve().parent / "golden" / "gemm.txt"
"""The golden GEMM vectors every test level reads (``make golden`` writes them)."""

BOARD_SKIP = pytest.mark.skipif(
    not paths.on_board(),
    reason=f"no FPGA manager at {paths.FPGA_MANAGER}: this is not a PYNQ board, so the hardware run is "
    "skipped (the ref/csim/rtl emulation runs cover the same tests)",
)
BACKEND_PARAMS = [*backends.LEVELS, pytest.param(backends.BOARD, marks=[pytest.mark.board, BOARD_SKIP])]
"""Every backend of antq.core.backends (the board behind the ``board`` marker): the test parameters."""


def open_ov(backend: str, **emulator_options):
    """An overlay on ``backend``; emulator options apply to the emulation levels only."""
    from antq.run import open_overlay

    return open_overlay(backend, **({} if backend == backends.BOARD else emulator_options))

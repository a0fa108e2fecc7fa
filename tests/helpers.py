"""Helpers shared by the test suites: random operands, the golden file, the backend parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from antq.core import backends, formats, reference, regmap
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


def corrupt_epilogue_golden(src: Path, dst_dir: Path, tag: str, index: int) -> tuple[Path, str]:
    """A copy of the epilogue golden file ``src`` in ``dst_dir`` with the first value of record ``tag``
    of case ``index`` changed (a number by 1, a packed byte in its high nibble), and the case's name."""
    lines = src.read_text().splitlines()
    names = [line.split()[1] for line in lines if line.startswith("case ")]
    seen = -1
    for i, line in enumerate(lines):
        if line.startswith(f"{tag} "):
            seen += 1
            if seen == index:
                head, first, *rest = line.split(" ")
                packed = f"{int(first[:2], 16) ^ 0x10:02x}{first[2:]}"
                flip = packed if tag == "packed" else str(int(first) ^ 1)
                lines[i] = " ".join([head, flip, *rest])
                break
    else:
        raise AssertionError(f"no {tag} record {index}")
    out = dst_dir / "epilogue.txt"
    out.write_text("\n".join(lines) + "\n")
    return out, names[index]


def passes(codes: np.ndarray, fmt: formats.Format) -> list[tuple[np.ndarray, formats.Format, bool]]:
    """(4-bit codes, 4-bit format, hi) per nibble pass, high nibble first (docs §4, §10): what the
    RTL core tests feed one job at a time."""
    if fmt.bits == 4:
        return [(codes, fmt, False)]
    return [(codes >> 4, formats.get("int", 4, fmt.signed), True),
            (codes & 15, formats.get("int", 4, False), False)]


def tile_product(ca: np.ndarray, fa: formats.Format, ha: bool, cw: np.ndarray, fw: formats.Format,
                 hw: bool) -> np.ndarray:
    """Exact (R, C) contribution of one nibble-pass job, from the reference."""
    qa = QuantizedTensor(ca, kind=fa.kind, bits=4, signed=fa.signed)
    qw = QuantizedTensor(cw, kind=fw.kind, bits=4, signed=fw.signed)
    return reference.gemm(qa, qw) << (4 * (ha + hw))

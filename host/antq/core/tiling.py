"""How the data mover splits one GEMM call (docs/overlay.md): tiles, K jobs and int8 nibble passes.

The HLS C++ (``hls/ant_gemm.cpp``) implements this schedule; the emulator's cycle model, the
GEMM through the Verilated core and the tests use these functions instead of restating it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import arch, formats, regmap
from .formats import Format


def job_ranges(k: int, fa: Format, fw: Format, cfg: arch.ArrayConfig = arch.DEFAULT) -> list[tuple[int, int]]:
    """(k0, steps) of every job of a reduction of length ``k``: at most ``regmap.job_steps`` each."""
    j = regmap.job_steps(fa, fw, cfg)
    return [(k0, min(j, k - k0)) for k0 in range(0, k, j)]


def tiles(m: int, n: int, cfg: arch.ArrayConfig = arch.DEFAULT) -> Iterator[tuple[int, int, int, int]]:
    """(m0, rows, n0, cols) of every R x C output tile, row tiles outermost."""
    for m0 in range(0, m, cfg.rows):
        for n0 in range(0, n, cfg.cols):
            yield m0, min(cfg.rows, m - m0), n0, min(cfg.cols, n - n0)


def nibble_planes(codes: np.ndarray, fmt: Format) -> list[tuple[np.ndarray, Format, bool]]:
    """(4-bit codes, the 4-bit format the PE decodes them as, is-high-nibble) per plane.

    A 4-bit operand is one plane; an int8 operand is its high nibble (an int4, signed as the int8
    is, shifted by 4 in the PE) and its low nibble (an unsigned int4), docs/contracts.md §4.
    """
    if fmt.bits == arch.CODE_BITS:
        return [(np.asarray(codes, np.uint8), fmt, False)]
    if fmt.kind != "int" or fmt.bits != 8:
        raise ValueError(f"the array runs 4-bit formats, and 8-bit layers as int8 nibble passes only, "
                         f"not {fmt.name}")
    c = np.asarray(codes, np.uint8)
    return [(c >> 4, formats.get("int", arch.CODE_BITS, fmt.signed), True),
            (c & 0xF, formats.get("int", arch.CODE_BITS, False), False)]


def plane_values(codes: np.ndarray, fmt: Format, hi: bool) -> np.ndarray:
    """int64 values of one plane of ``codes`` as the array multiplies them (high nibble << 4)."""
    for c, f, h in nibble_planes(codes, fmt):
        if h == hi:
            return np.asarray(f.values, np.int64)[c] << (4 if h else 0)
    raise ValueError(f"{fmt.name} has no {'high' if hi else 'low'} nibble plane")


def pass_list(fa: Format, fw: Format, mask: int | None = None) -> list[tuple[bool, bool]]:
    """(a_hi, w_hi) of every pass a call runs, in the order the data mover runs them.

    ``mask`` is the ``passes`` register (bit ``a_hi * 2 + w_hi``); None or 0 = every pass the two
    formats need (:func:`antq.core.regmap.pass_mask`).
    """
    sel = mask or regmap.pass_mask(fa, fw)
    return [(bool(p >> 1), bool(p & 1)) for p in (3, 2, 1, 0) if sel >> p & 1]

"""Accelerator geometry and datapath widths: the one place these numbers live.

The HLS C++ header ``hls/ant_config.h`` is generated from this module (``make config``) and a
test fails if it is stale; the RTL takes them as parameters and its tests read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import Format

ARRAY_ROWS = 16
"""R: PE rows. Each row owns one activation row (an output row m) of a tile."""
ARRAY_COLS = 16
"""C: PE columns. Each column owns one weight row (an output column n) of a tile."""
BUS_BITS = 64
"""Width of the accelerator's m_axi data bus (Zynq HP ports are 64-bit)."""
ACC_BITS = 32
"""Signed accumulator width in every PE; see :func:`max_k` for the overflow bound."""
CODE_BITS = 4
"""Operand width the PE decodes; 8-bit int runs as four nibble passes."""


@dataclass(frozen=True)
class ArrayConfig:
    """An R x C array behind a bus of ``bus_bits``; the packing layout is derived from it."""

    rows: int = ARRAY_ROWS
    cols: int = ARRAY_COLS
    bus_bits: int = BUS_BITS
    acc_bits: int = ACC_BITS

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"array {name} must be a positive int, got {v!r}")
        if self.bus_bits % 8 or self.bus_bits < 8:
            raise ValueError(f"bus_bits must be a positive multiple of 8, got {self.bus_bits}")

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.rows * self.cols


DEFAULT = ArrayConfig()
"""The PYNQ-Z2 / Pynq-Z1 configuration (xc7z020, a 64-bit HP port): what emulation runs."""


@dataclass(frozen=True)
class Board:
    """A board the overlay is built for: its FPGA part, its array and bus, its AXI burst limit."""

    name: str
    part: str
    array: ArrayConfig
    max_burst: int
    """Longest m_axi burst in beats: 16 on Zynq-7000 (AXI3 HP ports), 256 on Zynq UltraScale+."""
    clock_mhz: float = 100.0
    """PL clock (FCLK0) the overlay is built for: the HLS clock target and the block design's."""


BOARDS: dict[str, Board] = {b.name: b for b in [
    Board("pynq-z2", "xc7z020clg400-1", DEFAULT, 16),
    Board("pynq-z1", "xc7z020clg400-1", DEFAULT, 16),
    Board("zcu104", "xczu7ev-ffvc1156-2-e", ArrayConfig(32, 32, 128), 256),
    Board("kv260", "xck26-sfvc784-2LV-c", ArrayConfig(32, 32, 128), 256),
]}
"""One entry per board: the Makefile, the Vitis/Vivado flows and the docs read it."""


def max_k(a: Format, w: Format, acc_bits: int = ACC_BITS) -> int:
    """Largest K for which no partial sum of one job can overflow a signed ``acc_bits`` register.

    Every product is at most ``a.max_abs * w.max_abs`` in magnitude (for 8-bit int the four nibble
    passes together add at most :func:`nibble_pass_bound`), so a job of K steps stays within
    ``K * bound <= 2^(acc_bits-1) - 1``. Longer reductions are split into jobs of at most
    ``max_k`` steps and summed in int64 by the host/data mover.
    """
    bound = nibble_pass_bound(a, w) if a.bits > CODE_BITS or w.bits > CODE_BITS else (
        a.max_abs * w.max_abs
    )
    return ((1 << (acc_bits - 1)) - 1) // bound


def nibble_pass_bound(a: Format, w: Format) -> int:
    """Sum over nibble passes of the largest |partial product| for an 8-bit int layer.

    An 8-bit operand x is hi*16 + lo, with hi a signed (or unsigned) int4 and lo an unsigned int4;
    a 4-bit operand is its own single "pass". The bound is the sum of |hi|max/|lo|max products,
    each scaled by its pass shift.
    """
    def parts(f: Format) -> list[int]:
        if f.bits <= CODE_BITS:
            return [f.max_abs]
        if f.kind != "int" or f.bits != 8:
            raise ValueError(f"the accelerator runs 8-bit layers as int8 nibbles only, not {f.name}")
        return [(8 if f.signed else 15) << 4, 15]

    return sum(pa * pw for pa in parts(a) for pw in parts(w))

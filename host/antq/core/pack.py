"""Packing of codes into bytes: the layout the accelerator reads and the container stores.

A tensor is viewed as a matrix of ``rows x K`` (``shape[0] x prod(shape[1:])``; a 1-D tensor is
one row). With a :class:`Layout` of ``tile`` T and ``bus_bits`` B:

1. rows are padded with code 0 to a multiple of T, and K to ``K_pad``, the next multiple of
   ``k_align = lcm(4T, B) / 4T`` so that every tile block ends on a bus word;
2. tile blocks follow each other in row order; block t holds rows tT .. tT+T-1 as K_pad steps,
   and step k holds the T codes ``codes[tT + i, k]`` for i = 0 .. T-1 (element i at nibble i);
3. nibbles fill bytes low nibble first: element 2j in bits 3:0 and 2j+1 in bits 7:4; bytes are
   little-endian within bus words.

Codes of 2 to 4 bits take one nibble. Codes of 5 to 8 bits are split into two nibble planes, low
nibble (bits 3:0) first then high nibble (bits 7:4), each a complete copy of the layout above;
the accelerator runs 8-bit int as nibble passes over these planes.

The accelerator uses ``tile = R`` for activations and ``tile = C`` for weights with the bus
width (:func:`accelerator_layout`): one step of a block is then exactly the R (or C) codes the
array consumes in one cycle. The container stores ``Layout()`` (tile 1, byte aligned), which is
plain row-major packing with each row padded to an even length. Code 0 is zero in every format,
so padding adds nothing to a dot product.

The byte shuffling runs in :mod:`antq.core.native` (C++; numpy's strided byte copies are 10x to
50x slower than ``np.copy`` for these layouts); this module checks the arguments and errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import arch, native
from .formats import MAX_BITS, MIN_BITS


@dataclass(frozen=True)
class Layout:
    """Tile height and bus alignment of a packed matrix."""

    tile: int = 1
    bus_bits: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.tile, int) or self.tile < 1:
            raise ValueError(f"tile must be a positive int, got {self.tile!r}")
        if not isinstance(self.bus_bits, int) or self.bus_bits < 8 or self.bus_bits % 8:
            raise ValueError(f"bus_bits must be a positive multiple of 8, got {self.bus_bits!r}")

    @property
    def k_align(self) -> int:
        step = 4 * self.tile
        return math.lcm(step, self.bus_bits) // step

    def padded(self, rows: int, k: int) -> tuple[int, int]:
        """(rows, K) after padding."""
        return -(-rows // self.tile) * self.tile, -(-k // self.k_align) * self.k_align

    def plane_nbytes(self, rows: int, k: int) -> int:
        r, kp = self.padded(rows, k)
        return r * kp // 2

    def nbytes(self, shape: tuple[int, ...], bits: int) -> int:
        rows, k = matrix_shape(shape)
        return planes(bits) * self.plane_nbytes(rows, k)


def accelerator_layout(side: str, cfg: arch.ArrayConfig = arch.DEFAULT) -> Layout:
    """Layout of activations (``side="a"``, tile R) or weights (``side="w"``, tile C)."""
    if side not in ("a", "w"):
        raise ValueError(f"side must be 'a' (activations) or 'w' (weights), got {side!r}")
    return Layout(tile=cfg.rows if side == "a" else cfg.cols, bus_bits=cfg.bus_bits)


def planes(bits: int) -> int:
    """Nibble planes per code: 1 for 2-4 bits, 2 for 5-8 bits."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"unsupported bit width {bits}: packing supports {MIN_BITS}..{MAX_BITS}")
    return 1 if bits <= 4 else 2


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, K) view of a tensor shape."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        raise ValueError("cannot pack a 0-d tensor; give it at least one dimension")
    if any(s < 1 for s in shape):
        raise ValueError(f"cannot pack an empty tensor of shape {shape}")
    if len(shape) == 1:
        return 1, shape[0]
    return shape[0], math.prod(shape[1:])


def pack(codes: np.ndarray, bits: int, layout: Layout = Layout()) -> np.ndarray:
    """Pack integer codes (any shape, values < 2^bits) into a 1-D uint8 buffer."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    nplanes = planes(bits)
    rows, k = matrix_shape(c.shape)
    if c.dtype != np.uint8:  # uint8 codes are range-checked by the kernel, in the same pass
        _check_range(c, bits)
    c2 = np.ascontiguousarray(c.reshape(rows, k), dtype=np.uint8)
    out = np.empty(nplanes * layout.plane_nbytes(rows, k), np.uint8)
    seen = native.pack(c2, layout.tile, layout.padded(rows, k)[1], nplanes, out)
    if seen >> bits:
        _check_range(c2, bits)
    return out


def unpack(buf: np.ndarray, bits: int, shape: tuple[int, ...], layout: Layout = Layout()) -> np.ndarray:
    """Inverse of :func:`pack`; rejects a buffer of the wrong size or with non-zero padding."""
    b = np.asarray(buf)
    if b.dtype != np.uint8 or b.ndim != 1:
        raise TypeError(f"packed buffer must be 1-D uint8, got {b.dtype} with shape {b.shape}")
    nplanes = planes(bits)
    rows, k = matrix_shape(shape)
    need = nplanes * layout.plane_nbytes(rows, k)
    if b.size != need:
        raise ValueError(
            f"packed buffer has {b.size} bytes but shape {tuple(shape)} at {bits} bits with {layout} "
            f"needs {need}"
        )
    out = np.empty((rows, k), np.uint8)
    seen = native.unpack(np.ascontiguousarray(b), layout.tile, layout.padded(rows, k)[1], nplanes, out)
    if seen & native.BAD_PADDING:
        raise ValueError("packed buffer has non-zero padding: it is corrupt or uses another layout")
    if (seen & 0xFF) >> bits:
        raise ValueError(f"packed buffer holds codes wider than {bits} bits")
    return out.reshape(shape)


def _check_range(c: np.ndarray, bits: int) -> None:
    if int(c.min()) < 0 or int(c.max()) >= 1 << bits:
        raise ValueError(f"codes out of range for {bits} bits: {int(c.min())}..{int(c.max())}")

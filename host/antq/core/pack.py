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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import arch
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
    if c.size and (int(c.min()) < 0 or int(c.max()) >= 1 << bits):
        raise ValueError(f"codes out of range for {bits} bits: {int(c.min())}..{int(c.max())}")
    r_pad, k_pad = layout.padded(rows, k)
    c2 = c.reshape(rows, k).astype(np.uint8, copy=False)
    out = []
    for p in range(nplanes):
        plane = (c2 >> 4) if p else (c2 & 0xF if nplanes > 1 else c2)
        if (r_pad, k_pad) != (rows, k):
            m = np.zeros((r_pad, k_pad), np.uint8)
            m[:rows, :k] = plane
        else:
            m = plane
        out.append(_pack_plane(m, layout.tile, k_pad))
    return out[0] if nplanes == 1 else np.concatenate(out)


def _pack_plane(m: np.ndarray, tile: int, k_pad: int) -> np.ndarray:
    """Nibble-pack a padded (rows, K_pad) plane in tile order."""
    if tile == 1:  # row-major: neighbours along K share a byte; read them as one uint16
        v = np.ascontiguousarray(m).reshape(-1).view("<u2")
        return (v | (v >> 4)).astype(np.uint8)
    blocks = m.reshape(-1, tile, k_pad)
    if tile % 2 == 0:  # rows 2j and 2j+1 of one step share a byte
        pairs = blocks[:, 0::2, :] | (blocks[:, 1::2, :] << 4)
        return pairs.transpose(0, 2, 1).reshape(-1)
    nib = blocks.transpose(0, 2, 1).reshape(-1)
    return nib[0::2] | (nib[1::2] << 4)


def _unpack_plane(pb: np.ndarray, tile: int, r_pad: int, k_pad: int) -> np.ndarray:
    """Inverse of :func:`_pack_plane`: a (r_pad, k_pad) plane of nibbles."""
    lo, hi = pb & 0xF, pb >> 4
    m = np.empty((r_pad, k_pad), np.uint8)
    if tile == 1:
        v = lo.astype("<u2") | (hi.astype("<u2") << 8)
        return v.view(np.uint8).reshape(r_pad, k_pad)
    blocks = m.reshape(-1, tile, k_pad)
    if tile % 2 == 0:
        shape = (-1, k_pad, tile // 2)
        blocks[:, 0::2, :] = lo.reshape(shape).transpose(0, 2, 1)
        blocks[:, 1::2, :] = hi.reshape(shape).transpose(0, 2, 1)
        return m
    nib = np.empty(2 * pb.size, np.uint8)
    nib[0::2], nib[1::2] = lo, hi
    blocks[:] = nib.reshape(-1, k_pad, tile).transpose(0, 2, 1)
    return m


def unpack(buf: np.ndarray, bits: int, shape: tuple[int, ...], layout: Layout = Layout()) -> np.ndarray:
    """Inverse of :func:`pack`; rejects a buffer of the wrong size or with non-zero padding."""
    b = np.asarray(buf)
    if b.dtype != np.uint8 or b.ndim != 1:
        raise TypeError(f"packed buffer must be 1-D uint8, got {b.dtype} with shape {b.shape}")
    nplanes = planes(bits)
    rows, k = matrix_shape(shape)
    r_pad, k_pad = layout.padded(rows, k)
    plane_bytes = r_pad * k_pad // 2
    if b.size != nplanes * plane_bytes:
        raise ValueError(
            f"packed buffer has {b.size} bytes but shape {tuple(shape)} at {bits} bits with {layout} "
            f"needs {nplanes * plane_bytes}"
        )
    out = None
    for p in range(nplanes):
        m = _unpack_plane(b[p * plane_bytes:(p + 1) * plane_bytes], layout.tile, r_pad, k_pad)
        if (r_pad, k_pad) != (rows, k) and (m[rows:].any() or m[:, k:].any()):
            raise ValueError("packed buffer has non-zero padding: it is corrupt or uses another layout")
        part = m[:rows, :k]
        out = part.copy() if out is None else out | (part << 4)
    if out.size and int(out.max()) >= 1 << bits:
        raise ValueError(f"packed buffer holds codes wider than {bits} bits")
    return out.reshape(shape)

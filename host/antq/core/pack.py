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
    if c.dtype != np.uint8:  # uint8 codes are range-checked chunk by chunk below, while in cache
        _check_range(c, bits)
    c2 = np.ascontiguousarray(c.reshape(rows, k)).astype(np.uint8, copy=False)
    g = _Geometry(layout, rows, k)
    out = np.empty(nplanes * g.plane_bytes, np.uint8)
    outs = [g.out_view(out[p * g.plane_bytes:(p + 1) * g.plane_bytes]) for p in range(nplanes)]
    kern = _Kernel(g)
    for (r0, r1), (k0, k1) in g.chunks():
        src = c2[r0:min(r1, rows), k0:min(k1, k)]
        if bits < 8 and src.size and int(src.max()) >> bits:
            _check_range(c2, bits)
        nib = src if src.shape == (r1 - r0, k1 - k0) else kern.padded(src, r1 - r0, k1 - k0)
        for p, o in enumerate(outs):
            kern.pack(nib, p if nplanes > 1 else None, g.out_chunk(o, r0, r1, k0, k1))
    return out


def unpack(buf: np.ndarray, bits: int, shape: tuple[int, ...], layout: Layout = Layout()) -> np.ndarray:
    """Inverse of :func:`pack`; rejects a buffer of the wrong size or with non-zero padding."""
    b = np.asarray(buf)
    if b.dtype != np.uint8 or b.ndim != 1:
        raise TypeError(f"packed buffer must be 1-D uint8, got {b.dtype} with shape {b.shape}")
    nplanes = planes(bits)
    rows, k = matrix_shape(shape)
    g = _Geometry(layout, rows, k)
    if b.size != nplanes * g.plane_bytes:
        raise ValueError(
            f"packed buffer has {b.size} bytes but shape {tuple(shape)} at {bits} bits with {layout} "
            f"needs {nplanes * g.plane_bytes}"
        )
    ins = [g.out_view(b[p * g.plane_bytes:(p + 1) * g.plane_bytes]) for p in range(nplanes)]
    out = np.empty((rows, k), np.uint8)
    kern = _Kernel(g)
    bad_padding = too_wide = False
    for (r0, r1), (k0, k1) in g.chunks():
        dst = out[r0:min(r1, rows), k0:min(k1, k)]
        nib = dst if dst.shape == (r1 - r0, k1 - k0) else kern.scratch(r1 - r0, k1 - k0)
        for p, i in enumerate(ins):
            kern.unpack(g.out_chunk(i, r0, r1, k0, k1), p if nplanes > 1 else None, nib)
        if nib is not dst:
            nr, nk = dst.shape
            bad_padding |= bool(nib[nr:].any() or nib[:nr, nk:].any())
            dst[...] = nib[:nr, :nk]
        if bits not in (4, 8) and dst.size:  # a nibble, or a pair of them, cannot be too wide
            too_wide |= int(dst.max()) >> bits > 0
    if bad_padding:
        raise ValueError("packed buffer has non-zero padding: it is corrupt or uses another layout")
    if too_wide:
        raise ValueError(f"packed buffer holds codes wider than {bits} bits")
    return out.reshape(shape)


def _check_range(c: np.ndarray, bits: int) -> None:
    if int(c.min()) < 0 or int(c.max()) >= 1 << bits:
        raise ValueError(f"codes out of range for {bits} bits: {int(c.min())}..{int(c.max())}")


# ------------------------------------------------------------------------------------------------
# The vectorized packer. Every step is a whole-array numpy operation on a chunk of about _CHUNK
# nibbles, so the intermediates stay in the L2 cache and memory is read and written about once.
# Bytes are handled as words of up to 8 bytes (uint64 shifts are SIMD in numpy, uint8 ones are
# not); shifts that carry bits across byte boundaries are masked off.

_CHUNK = 1 << 18
"""Nibbles (input bytes) per chunk: with its intermediates about 1 MB, within L2."""


def _word_bytes(n: int) -> int:
    """Largest word (1, 2, 4 or 8 bytes) that divides a row of ``n`` bytes."""
    return min(8, n & -n)


def _rep(byte: int, w: int) -> np.unsignedinteger:
    """``byte`` repeated over a word of ``w`` bytes, as a numpy scalar of that width."""
    return np.dtype(f"<u{w}").type(int.from_bytes(bytes([byte]) * w, "little"))


def _split(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` reshaped without a copy (an assignment to ``.shape`` raises rather than copy)."""
    v = a.view()
    v.shape = shape
    return v


class _Geometry:
    """Padded sizes, chunking and the output view of one (layout, rows, K)."""

    def __init__(self, layout: Layout, rows: int, k: int) -> None:
        self.tile = t = layout.tile
        self.r_pad, self.k_pad = layout.padded(rows, k)
        self.plane_bytes = self.r_pad * self.k_pad // 2
        self.w = _word_bytes(self.k_pad)  # chunks split K at multiples of a word
        self.kc = self.k_pad if t * self.k_pad <= _CHUNK else max(self.w, _CHUNK // t // self.w * self.w)
        self.rc = t * max(1, _CHUNK // (t * self.kc))  # rows per chunk: whole tile blocks

    def chunks(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """(row range, K range) of every chunk, in buffer order."""
        rs = [(r, min(r + self.rc, self.r_pad)) for r in range(0, self.r_pad, self.rc)]
        ks = [(k, min(k + self.kc, self.k_pad)) for k in range(0, self.k_pad, self.kc)]
        return [(r, kk) for r in rs for kk in ks]

    def out_view(self, plane: np.ndarray) -> np.ndarray:
        """A plane's bytes as (blocks, K_pad, bytes per step); odd tiles: (blocks, 1, bytes per block)."""
        t = self.tile
        if t % 2:
            return _split(plane, (self.r_pad // t, 1, t * self.k_pad // 2))
        return _split(plane, (self.r_pad // t, self.k_pad, t // 2))

    def out_chunk(self, view: np.ndarray, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        t = self.tile
        if t % 2:  # K steps of an odd tile share bytes; a chunk's steps start on an even nibble
            return view[r0 // t:r1 // t, 0, k0 * t // 2:k1 * t // 2]
        return view[r0 // t:r1 // t, k0:k1]


class _Kernel:
    """Pack and unpack of one chunk, with scratch buffers reused across chunks."""

    def __init__(self, g: _Geometry) -> None:
        self.g = g
        n = g.rc * g.kc
        self._nib = np.empty(n, np.uint8)
        self._x = np.empty(n, np.uint8)
        self._t = np.empty(n, np.uint8)
        self._y = np.empty(n, np.uint8)

    def scratch(self, nr: int, nk: int) -> np.ndarray:
        return _split(self._nib[:nr * nk], (nr, nk))

    def padded(self, src: np.ndarray, nr: int, nk: int) -> np.ndarray:
        """``src`` with zero rows and columns appended to (nr, nk), in scratch."""
        m = self.scratch(nr, nk)
        sr, sk = src.shape
        m[:sr, :sk] = src
        m[sr:] = 0
        m[:sr, sk:] = 0
        return m

    def pack(self, nib: np.ndarray, plane: int | None, out: np.ndarray) -> None:
        """Pack a chunk of codes ``nib`` (rows, kc) into ``out`` (its bytes in the buffer).

        ``plane`` None packs 4-bit codes; 0 or 1 packs the low or high nibbles of 8-bit codes.
        """
        t = self.g.tile
        nb, kc = nib.shape[0] // t, nib.shape[1]
        if t == 1:
            _pair_along_rows(nib, plane, out, self._x, self._t)
        elif t % 2:  # steps straddle bytes: transpose to step order, then pair neighbours
            y = _split(self._y[:nib.size], (nb, kc, t))
            np.copyto(y, _split(nib, (nb, t, kc)).transpose(0, 2, 1))
            _pair_along_rows(_split(y, (nb, kc * t)), plane, out, self._x, self._t)
        else:
            _pack_even(_split(nib, (nb, t, kc)), plane, out, self.g.w, self._x, self._t)

    def unpack(self, src: np.ndarray, plane: int | None, nib: np.ndarray) -> None:
        """Inverse of :meth:`pack`: plane None or 0 writes ``nib``, plane 1 ORs its nibbles << 4."""
        t = self.g.tile
        nb, kc = nib.shape[0] // t, nib.shape[1]
        if t == 1:
            _unpair_along_rows(src, plane, nib, self._x, self._t)
        elif t % 2:
            y = _split(self._x[:nib.size], (nb, kc * t))
            _unpair_along_rows(src, None, y, self._t, self._t)
            yt = _split(y, (nb, kc, t)).transpose(0, 2, 1)
            n3 = _split(nib, (nb, t, kc))
            if plane == 1:
                np.left_shift(y, 4, out=y)
                n3 |= yt
            else:
                np.copyto(n3, yt)
        else:
            _unpack_even(src, plane, _split(nib, (nb, t, kc)), self.g.w, self._x, self._t)


def _pair_along_rows(v8: np.ndarray, plane: int | None, out: np.ndarray, xs: np.ndarray,
                     ts: np.ndarray) -> None:
    """out[..., j] = v8[..., 2j] | v8[..., 2j+1] << 4 (nibbles of the plane), for 2-D ``v8``."""
    w = _word_bytes(v8.shape[-1])
    v = v8.view(f"<u{w}")
    x = _split(xs[:v8.size], v8.shape).view(f"<u{w}")
    if plane is not None:  # the plane's nibble in the low half of every byte
        if plane:
            np.right_shift(v, 4, out=x)
            x &= _rep(0x0F, w)
        else:
            np.bitwise_and(v, _rep(0x0F, w), out=x)
        v = x
        x = _split(ts[:v8.size], v8.shape).view(f"<u{w}")
    np.right_shift(v, 4, out=x)  # byte 2j + 1 moves into the high half of byte 2j
    x |= v
    np.copyto(out, x.view("<u2"), casting="unsafe")  # keep the low byte of every byte pair


def _unpair_along_rows(src: np.ndarray, plane: int | None, dst: np.ndarray, xs: np.ndarray,
                       ts: np.ndarray) -> None:
    """Inverse of :func:`_pair_along_rows`; plane 1 ORs the nibbles << 4 into ``dst``."""
    w = _word_bytes(dst.shape[-1])
    x = dst if plane != 1 else _split(xs[:dst.size], dst.shape)
    np.copyto(x.view("<u2"), src)  # byte j in the low half of byte pair j
    xw = x.view(f"<u{w}")
    t = _split(ts[:dst.size], dst.shape).view(f"<u{w}")
    np.left_shift(xw, 4, out=t)  # its high nibble into the next byte's low half
    xw |= t
    xw &= _rep(0x0F, w)
    if plane == 1:
        xw <<= 4
        dw = dst.view(f"<u{w}")
        dw |= xw


def _transpose_views(x: np.ndarray, out: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``x`` (blocks, P, kc) and ``out`` (blocks, kc, P) bytes such that copying one into
    the other finishes the step transpose after :func:`_byte_transpose_stages` (in g-byte units)."""
    nb, p, kc = x.shape
    g = math.gcd(p, w)
    xg = _split(x.view(f"<u{g}"), (nb, p // g, g, kc // w, w // g)).transpose(0, 3, 4, 2, 1)
    og = _split(out.view(f"<u{g}"), (nb, kc // w, w // g, g, p // g))
    return xg, og


def _byte_transpose_stages(x: np.ndarray, w: int, ts: np.ndarray) -> None:
    """Transpose every g x g block of bytes (rows j of a group of g rows, g bytes of a word) in
    place, with g = gcd(P, w): log2(g) rounds of masked exchanges between rows d apart."""
    nb, p, kc = x.shape
    g = math.gcd(p, w)
    xw = x.view(f"<u{w}")
    d = g // 2
    while d:
        xv = _split(xw, (nb, p // (2 * d), 2, d, kc // w))
        a, b = xv[:, :, 0], xv[:, :, 1]
        t = _split(ts[:x.size // 2].view(f"<u{w}"), a.shape)
        mask = np.dtype(f"<u{w}").type(sum(0xFF << (8 * i) for i in range(w) if i % (2 * d) < d))
        shift = 8 * d
        np.right_shift(a, shift, out=t)
        t ^= b
        t &= mask
        b ^= t
        t <<= shift
        a ^= t
        d //= 2


def _pack_even(nib: np.ndarray, plane: int | None, out: np.ndarray, w: int, xs: np.ndarray,
               ts: np.ndarray) -> None:
    """Even tile: rows 2j and 2j+1 of a step share byte j. Pair the rows (x[b, j, k]), then
    transpose every (P, kc) block of bytes to (kc, P) (P = tile / 2 bytes per step)."""
    nb, t2, kc = nib.shape
    p = t2 // 2
    ut = f"<u{w}"
    lo, hi = nib[:, 0::2].view(ut), nib[:, 1::2].view(ut)
    x8 = _split(xs[:nb * p * kc], (nb, p, kc))
    x, t = x8.view(ut), _split(ts[:nb * p * kc], (nb, p, kc)).view(ut)
    if plane is None:
        np.left_shift(hi, 4, out=x)
        x |= lo
    elif plane == 0:
        np.left_shift(hi, 4, out=x)
        x &= _rep(0xF0, w)
        np.bitwise_and(lo, _rep(0x0F, w), out=t)
        x |= t
    else:
        np.bitwise_and(hi, _rep(0xF0, w), out=x)
        np.right_shift(lo, 4, out=t)
        t &= _rep(0x0F, w)
        x |= t
    _byte_transpose_stages(x8, w, ts)
    xg, og = _transpose_views(x8, out, w)
    np.copyto(og, xg)


def _unpack_even(src: np.ndarray, plane: int | None, nib: np.ndarray, w: int, xs: np.ndarray,
                 ts: np.ndarray) -> None:
    """Inverse of :func:`_pack_even`; plane 1 ORs the nibbles << 4 into ``nib``."""
    nb, t2, kc = nib.shape
    p = t2 // 2
    ut = f"<u{w}"
    x8 = _split(xs[:nb * p * kc], (nb, p, kc))
    xg, og = _transpose_views(x8, src, w)
    np.copyto(xg, og)
    _byte_transpose_stages(x8, w, ts)
    x = x8.view(ut)
    lo, hi = nib[:, 0::2].view(ut), nib[:, 1::2].view(ut)
    if plane == 1:
        t = _split(ts[:nb * p * kc], (nb, p, kc)).view(ut)
        np.left_shift(x, 4, out=t)
        t &= _rep(0xF0, w)
        lo |= t
        np.bitwise_and(x, _rep(0xF0, w), out=t)
        hi |= t
    else:
        np.bitwise_and(x, _rep(0x0F, w), out=lo)
        np.right_shift(x, 4, out=hi)
        hi &= _rep(0x0F, w)

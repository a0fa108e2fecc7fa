"""Packing layout: exact inverse, documented nibble/tile order, padding and alignment."""

import math

import numpy as np
import pytest
from antq.core import arch, pack
from antq.core.pack import Layout
from hypothesis import given, settings
from hypothesis import strategies as st


def test_nibble_order_row_major():
    codes = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    buf = pack.pack(codes, 4)  # tile 1, byte aligned: each row padded to an even length
    assert buf.tolist() == [0x21, 0x03, 0x54, 0x06]


def test_tile_order_and_bus_alignment():
    # tile 2, 16-bit bus: a step holds rows (2t, 2t+1) of one k; K pads to a multiple of 2
    codes = np.arange(1, 16, dtype=np.uint8).reshape(3, 5)  # rows 3 -> 4, K 5 -> 6
    lay = Layout(tile=2, bus_bits=16)
    assert lay.k_align == 2 and lay.padded(3, 5) == (4, 6)
    buf = pack.pack(codes, 4, lay)
    assert buf.size == 4 * 6 // 2 == lay.nbytes(codes.shape, 4)
    # block 0, step 0: rows 0,1 at k=0 -> codes 1 and 6
    assert buf[0] == (6 << 4) | 1
    # block 0, step 4: k=4 -> codes 5, 10; steps 5 (padding) -> 0
    assert buf[4] == (10 << 4) | 5 and buf[5] == 0
    # block 1 (rows 2 and padding row 3) starts on a bus word (byte 6)
    assert buf[6] == 11 and buf[7] == 12


def test_accelerator_layout_one_step_per_array_row_set():
    cfg = arch.ArrayConfig(rows=8, cols=4, bus_bits=64)
    la, lw = pack.accelerator_layout("a", cfg), pack.accelerator_layout("w", cfg)
    assert (la.tile, la.k_align) == (8, 2) and (lw.tile, lw.k_align) == (4, 4)
    a = np.random.default_rng(0).integers(0, 16, (8, 2), dtype=np.uint8)
    word = int.from_bytes(pack.pack(a, 4, la).tobytes(), "little")  # one 64-bit bus word
    for k in range(2):
        for r in range(8):
            assert (word >> (32 * k + 4 * r)) & 0xF == a[r, k]
    with pytest.raises(ValueError, match="side must be"):
        pack.accelerator_layout("x")


def test_eight_bit_codes_use_two_nibble_planes():
    codes = np.array([[0x12, 0xAB, 0xFF]], np.uint8)
    buf = pack.pack(codes, 8)
    assert buf.tolist() == [0xB2, 0x0F, 0xA1, 0x0F]  # low plane, then high plane
    assert np.array_equal(pack.unpack(buf, 8, codes.shape), codes)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 8), st.lists(st.integers(1, 19), min_size=1, max_size=4),
       st.integers(1, 16), st.sampled_from([8, 16, 32, 64, 128]), st.integers(0, 2**32 - 1))
def test_round_trip(bits, shape, tile, bus, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, shape).astype(np.uint8)
    lay = Layout(tile=tile, bus_bits=bus)
    buf = pack.pack(codes, bits, lay)
    assert buf.dtype == np.uint8 and buf.size == lay.nbytes(codes.shape, bits)
    rows, k = pack.matrix_shape(codes.shape)
    assert buf.size % (bus // 8) == 0 or rows % tile  # whole tile blocks end on a bus word
    assert np.array_equal(pack.unpack(buf, bits, codes.shape, lay), codes)


def test_bad_input():
    with pytest.raises(ValueError, match="out of range for 4 bits"):
        pack.pack(np.array([16]), 4)
    with pytest.raises(TypeError, match="integer array"):
        pack.pack(np.array([1.0]), 4)
    with pytest.raises(ValueError, match="unsupported bit width 9"):
        pack.pack(np.array([1]), 9)
    with pytest.raises(ValueError, match="empty tensor"):
        pack.pack(np.zeros((0, 3), np.uint8), 4)
    buf = pack.pack(np.ones((3, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="needs 6"):
        pack.unpack(buf[:-1], 4, (3, 3))
    bad = buf.copy()
    bad[1] |= 0xF0  # a padding nibble
    with pytest.raises(ValueError, match="non-zero padding"):
        pack.unpack(bad, 4, (3, 3))
    with pytest.raises(ValueError, match="tile must be"):
        Layout(tile=0)
    with pytest.raises(ValueError, match="multiple of 8"):
        Layout(bus_bits=12)


# ------------------------------------------------------------------------------------------------
# The packer against a reference written straight from docs/contracts.md section 5: every code's
# nibble index from the formula, with its own padding arithmetic. Slow and obvious, on purpose.

def _ref_geometry(shape: tuple[int, ...], tile: int, bus: int) -> tuple[int, int, int, int]:
    rows, k = (1, shape[0]) if len(shape) == 1 else (shape[0], int(np.prod(shape[1:])))
    k_align = math.lcm(4 * tile, bus) // (4 * tile)  # every tile block ends on a bus word
    return rows, k, -(-rows // tile) * tile, -(-k // k_align) * k_align


def _ref_nibble_index(tile: int, r_pad: int, k_pad: int) -> np.ndarray:
    """(r_pad, k_pad): nibble n of the plane that holds code (r, k): block r // T, step k, row r % T."""
    r, k = np.meshgrid(np.arange(r_pad), np.arange(k_pad), indexing="ij")
    return (r // tile) * tile * k_pad + k * tile + r % tile


def ref_pack(codes: np.ndarray, bits: int, tile: int, bus: int) -> np.ndarray:
    rows, k, r_pad, k_pad = _ref_geometry(codes.shape, tile, bus)
    m = np.zeros((r_pad, k_pad), np.int64)
    m[:rows, :k] = codes.reshape(rows, k)
    planes = [m] if bits <= 4 else [m & 0xF, m >> 4]
    out = []
    for plane in planes:
        nib = np.zeros(r_pad * k_pad, np.int64)
        nib[_ref_nibble_index(tile, r_pad, k_pad)] = plane
        out.append((nib[0::2] | (nib[1::2] << 4)).astype(np.uint8))  # even nibble in bits 3:0
    return np.concatenate(out)


def ref_unpack(buf: np.ndarray, bits: int, shape: tuple[int, ...], tile: int, bus: int) -> np.ndarray:
    rows, k, r_pad, k_pad = _ref_geometry(shape, tile, bus)
    nplanes = 1 if bits <= 4 else 2
    plane_bytes = r_pad * k_pad // 2
    if buf.size != nplanes * plane_bytes:
        raise ValueError("needs")
    codes = np.zeros((rows, k), np.int64)
    for p in range(nplanes):
        b = buf[p * plane_bytes:(p + 1) * plane_bytes].astype(np.int64)
        nib = np.empty(2 * b.size, np.int64)
        nib[0::2], nib[1::2] = b & 0xF, b >> 4
        m = nib[_ref_nibble_index(tile, r_pad, k_pad)]
        if m[rows:].any() or m[:, k:].any():
            raise ValueError("non-zero padding")
        codes |= m[:rows, :k] << (4 * p)
    if codes.max() >= 1 << bits:
        raise ValueError("wider than")
    return codes.astype(np.uint8).reshape(shape)


shapes = st.one_of(st.lists(st.integers(1, 24), min_size=1, max_size=3),
                   st.tuples(st.integers(1, 70), st.integers(1, 700)).map(list))
"""Small tensors of 1-3 dims, and matrices long enough for several rounds of the kernel's steps."""
tiles = st.one_of(st.integers(1, 9), st.sampled_from([12, 16, 32, 48]))


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 8), shapes, tiles, st.sampled_from([8, 32, 64, 128]), st.integers(0, 2**32 - 1))
def test_pack_equals_reference_and_round_trips(bits, shape, tile, bus, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, shape).astype(np.uint8)
    lay = Layout(tile=tile, bus_bits=bus)
    buf = pack.pack(codes, bits, lay)
    want = ref_pack(codes, bits, tile, bus)
    assert buf.dtype == np.uint8 and buf.shape == want.shape and np.array_equal(buf, want)
    back = pack.unpack(buf, bits, tuple(shape), lay)
    assert back.dtype == np.uint8 and np.array_equal(back, codes)
    assert np.array_equal(ref_unpack(want, bits, tuple(shape), tile, bus), codes)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except ValueError as e:
        return next(word for word in ("needs", "non-zero padding", "wider than") if word in str(e))


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 8), shapes, tiles, st.sampled_from([8, 32, 64, 128]), st.integers(0, 2**32 - 1),
       st.sampled_from(["random", "one bad nibble"]))
def test_unpack_equals_reference_on_any_buffer(bits, shape, tile, bus, seed, kind):
    """Random bytes, or a valid buffer with one nibble changed: the same codes or the same error."""
    rng = np.random.default_rng(seed)
    lay = Layout(tile=tile, bus_bits=bus)
    codes = rng.integers(0, 1 << bits, shape).astype(np.uint8)
    buf = pack.pack(codes, bits, lay)
    if kind == "random":
        buf = rng.integers(0, 256, buf.size).astype(np.uint8)
    else:
        buf[rng.integers(buf.size)] ^= np.uint8(rng.integers(1, 16) << (4 * rng.integers(2)))
    got = _outcome(pack.unpack, buf, bits, tuple(shape), lay)
    want = _outcome(ref_unpack, buf, bits, tuple(shape), tile, bus)
    assert type(got) is type(want)
    assert got == want if isinstance(want, str) else np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.sampled_from([1, 3, 16]), st.integers(0, 2**32 - 1),
       st.sampled_from(["int64", "int16", "fortran", "strided", "read-only"]))
def test_any_integer_array_and_read_only_buffers(bits, tile, seed, kind):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << bits, (33, 40)).astype(np.uint8)
    src = {"int64": codes.astype(np.int64), "int16": codes.astype(np.int16),
           "fortran": np.asfortranarray(codes), "strided": np.repeat(codes, 2, axis=1)[:, ::2],
           "read-only": codes.copy()}[kind]
    src.flags.writeable = kind != "read-only"
    lay = Layout(tile=tile, bus_bits=64)
    buf = pack.pack(src, bits, lay)
    assert np.array_equal(buf, ref_pack(codes, bits, tile, 64))
    ro = np.frombuffer(buf.tobytes(), np.uint8)  # read-only, as from a file
    assert np.array_equal(pack.unpack(ro, bits, codes.shape, lay), codes)
    assert np.array_equal(pack.unpack(np.repeat(buf, 2)[::2], bits, codes.shape, lay), codes)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 7])
def test_out_of_range_codes_are_rejected_with_their_range(bits):
    codes = np.zeros((16, 300), np.uint8)
    codes[15, 299] = 1 << bits  # the very last code of a word-path block
    with pytest.raises(ValueError, match=f"out of range for {bits} bits: 0..{1 << bits}"):
        pack.pack(codes, bits, pack.accelerator_layout("a"))
    with pytest.raises(ValueError, match=f"out of range for {bits} bits: -1..0"):
        pack.pack(-np.eye(3, dtype=np.int8), bits)

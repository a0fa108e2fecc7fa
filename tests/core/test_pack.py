"""Packing layout: exact inverse, documented nibble/tile order, padding and alignment."""

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

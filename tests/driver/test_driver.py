"""The driver suite: the same AntOverlay code on ref, csim, rtl (and a board), bit-exact GEMMs.

Every test takes the ``ov`` fixture, so it runs once per backend; results are compared with
``antq.reference.gemm`` (exact int64) or the golden vectors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from antq.core import arch, formats, golden, reference, regmap
from antq.driver import AntAccelerator, DeviceTensor, GemmTiming
from helpers import GOLDEN, HW4, INT8, random_tensor


def test_binds_the_pinned_ip_and_reads_geometry(ov):
    names = [n for n, d in ov.ip_dict.items() if d["type"] == regmap.VLNV]
    assert len(names) == 1 and getattr(ov, names[0]) is ov.accel
    assert isinstance(ov.accel, AntAccelerator)
    assert ov.array == arch.DEFAULT  # read from the IP's geometry register
    assert ov.array.peak_macs_per_cycle == arch.ARRAY_ROWS * arch.ARRAY_COLS
    assert ov.peak_macs_per_s == pytest.approx(ov.array.peak_macs_per_cycle * ov.clock_mhz * 1e6)
    assert ov.clock_mhz == pytest.approx(100.0)


def test_unchanged_argument_registers_are_not_rewritten(ov, monkeypatch):
    """A repeated call writes only the registers whose value changed (addresses, here), and the
    IP still computes with the values it holds from the call before."""
    rng = np.random.default_rng(7)
    w = random_tensor(rng, HW4[1], (11, 20))
    writes = []
    write = type(ov.accel).write
    monkeypatch.setattr(ov.accel, "write", lambda off, v: (writes.append(off), write(ov.accel, off, v)))
    handle = ov.load_weights(w)
    b = random_tensor(rng, HW4[0], (9, 20))
    np.testing.assert_array_equal(ov.gemm(b, handle), reference.gemm(b, w))
    first = len(writes)
    writes.clear()
    c = random_tensor(rng, HW4[0], (9, 20))
    np.testing.assert_array_equal(ov.gemm(c, handle), reference.gemm(c, w))
    assert writes.count(ov.accel._ctrl) == 1 and len(writes) < first <= len(AntAccelerator.ARGS) + 1
    offsets = {ov.accel._offset[n] for n in ("m", "n", "k", "a_type", "w_type", "w_1", "w_2")}
    assert not offsets & set(writes)  # same shape, types and resident W: nothing to write
    with pytest.raises(ValueError, match="does not fit its 32-bit register"):
        ov.accel.start(a=0, w=0, y=0, m=1 << 32, n=1, k=1, a_type=0, w_type=0)


def test_every_4bit_type_pair(ov):
    rng = np.random.default_rng(1)
    shapes = [(1, 1, 1), (5, 3, 7), (9, 10, 13), (17, 9, 33), (3, 17, 64), (8, 8, 2)]
    for i, (fa, fw) in enumerate(itertools.product(HW4, HW4)):
        m, n, k = shapes[i % len(shapes)]
        a, w = random_tensor(rng, fa, (m, k)), random_tensor(rng, fw, (n, k))
        np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w), err_msg=f"{fa} x {fw} {m}x{n}x{k}")


@pytest.mark.parametrize("fa,fw", [(INT8[1], INT8[1]), (INT8[0], INT8[1]), (INT8[1], INT8[0]),
                                   (INT8[0], INT8[0]), (formats.get("flint", 4, False), INT8[1]),
                                   (INT8[1], formats.get("pot", 4, True))], ids=str)
def test_int8_nibble_passes(ov, fa, fw):
    rng = np.random.default_rng(2)
    a, w = random_tensor(rng, fa, (13, 71)), random_tensor(rng, fw, (11, 71))
    np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w))


def test_single_int8_passes_sum_to_the_product(ov):
    rng = np.random.default_rng(3)
    a, w = random_tensor(rng, INT8[1], (7, 19)), random_tensor(rng, INT8[1], (6, 19))
    parts = [ov.gemm(a, w, passes=1 << p) for p in range(4)]
    lo_a, lo_w = (a.codes & 15).astype(np.int64), (w.codes & 15).astype(np.int64)
    np.testing.assert_array_equal(parts[0], lo_a @ lo_w.T)  # (a_lo, w_lo): no shift
    np.testing.assert_array_equal(sum(parts), reference.gemm(a, w))


def _random_gemms(ov, seed: int, count: int, bounds: list[int]) -> None:
    """``count`` GEMMs of random type pairs and shapes (M, N, K below ``bounds``) against the reference."""
    rng = np.random.default_rng(seed)
    fmts = HW4 + INT8
    for _ in range(count):
        m, n, k = (int(x) for x in rng.integers(1, bounds))
        fa, fw = fmts[rng.integers(len(fmts))], fmts[rng.integers(len(fmts))]
        a, w = random_tensor(rng, fa, (m, k)), random_tensor(rng, fw, (n, k))
        np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w), err_msg=f"{fa} x {fw} {m}x{n}x{k}")


def test_random_shapes_odd_and_multi_tile(ov):
    _random_gemms(ov, seed=4, count=12, bounds=[40, 40, 300])


def test_k_beyond_max_k_is_split_and_exact(ov):
    fa, fw = formats.get("pot", 4, False), formats.get("pot", 4, True)
    k = 2 * arch.max_k(fa, fw) + 3  # three jobs per tile at the worst-case 2^20 products
    a = random_tensor(np.random.default_rng(5), fa, (3, k))
    a.codes[0] = 15  # 2^14 everywhere
    w = random_tensor(np.random.default_rng(6), fw, (2, k))
    w.codes[0] = 7  # +2^6
    y = ov.gemm(a, w)
    np.testing.assert_array_equal(y, reference.gemm(a, w))
    assert y[0, 0] == k << 20 and y[0, 0] > 2**31  # beyond one 32-bit accumulator


def test_golden_vectors(ov):
    _, cases = golden.read(GOLDEN)  # results do not depend on the array; the packing is the driver's
    for c in cases:
        np.testing.assert_array_equal(ov.gemm(c.a, c.w), c.y, err_msg=c.name)


def test_resident_weights_and_buffer_accounting(ov):
    rng = np.random.default_rng(7)
    fw = formats.get("flint", 4, True)
    w = random_tensor(rng, fw, (24, 96), scale=rng.uniform(0.1, 1, 24).astype(np.float32), channel_axis=0)
    before = ov.live_buffers
    hw = ov.load_weights(w)
    assert isinstance(hw, DeviceTensor) and ov.live_buffers == before + 1
    for _ in range(5):
        a = random_tensor(rng, formats.get("int", 4, False), (9, 96), scale=0.5)
        np.testing.assert_array_equal(ov.gemm(a, hw), reference.gemm(a, w))
        np.testing.assert_array_equal(ov.gemm_float(a, hw), reference.gemm_float(a, w))
    steady = ov.live_buffers
    ov.gemm(a, hw)
    assert ov.live_buffers == steady
    hw.free()
    assert ov.live_buffers == steady - 1
    with pytest.raises(RuntimeError, match="freed"):
        ov.gemm(a, hw)


def test_cycles_and_timing_breakdown(ov):
    rng = np.random.default_rng(8)
    a = random_tensor(rng, formats.get("int", 4, True), (16, 128))
    w = random_tensor(rng, formats.get("int", 4, True), (16, 128))
    y, cycles = ov.gemm(a, w, return_cycles=True)
    t = ov.last_timing
    assert isinstance(t, GemmTiming) and cycles == ov.last_cycles == t.cycles
    # 4 output tiles of 128 steps each at one step per cycle: the counter must at least cover that
    assert cycles >= 4 * 128
    parts = t.pack_s + t.flush_s + t.start_s + t.compute_s + t.invalidate_s + t.unpack_s
    assert all(v >= 0 for v in (t.pack_s, t.flush_s, t.start_s, t.compute_s, t.invalidate_s, t.unpack_s))
    assert t.total_s == pytest.approx(parts, rel=1e-6, abs=1e-9)
    assert t.device_s == pytest.approx(cycles / (t.clock_mhz * 1e6))
    fields = {"pack_s", "flush_s", "compute_s", "invalidate_s", "unpack_s", "cycles", "device_s"}
    assert set(t.as_dict()) >= fields


@pytest.mark.slow
def test_large_random_sweep(ov):
    """Many random type pairs and shapes up to 12 x 12 tiles and K of several jobs (make test-slow)."""
    _random_gemms(ov, seed=9, count=40, bounds=[100, 100, 6000])

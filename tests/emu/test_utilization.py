"""Issue 12's throughput targets, on the rtl level at the default 16x16 array: the IP's own cycle
count (the Verilated core's cycles inside the dataflow model) against the array's peak."""

from __future__ import annotations

import numpy as np
import pytest
from antq.core import arch, formats, reference
from antq.run import open_overlay
from helpers import random_tensor

I4S, I8S = formats.get("int", 4, True), formats.get("int", 8, True)


def _utilization(fa, fw, m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a, w = random_tensor(rng, fa, (m, k)), random_tensor(rng, fw, (n, k))
    with open_overlay("rtl", pace=0) as ov:
        y = ov.gemm(a, ov.load_weights(w))
        assert np.array_equal(y, reference.gemm(a, w))
        t = ov.last_timing
        assert (ov.array.rows, ov.array.cols) == (arch.ARRAY_ROWS, arch.ARRAY_COLS) == (16, 16)
        return m * n * k / (t.cycles * ov.array.peak_macs_per_cycle), t


@pytest.mark.parametrize(("fmt", "shape", "floor"), [
    (I4S, (256, 256, 1024), 0.90),
    (I4S, (256, 256, 256), 0.85),
    (I8S, (256, 256, 256), 0.225),  # four nibble passes: 90 % of the 0.25 ceiling
], ids=["int4-256x256x1024", "int4-256^3", "int8-256^3"])
def test_utilization_floor(fmt, shape, floor):
    util, t = _utilization(fmt, fmt, *shape)
    assert util >= floor, f"{util:.3f} of peak at {shape}"
    assert t.core_busy <= t.cycles and t.stall_in + t.stall_out <= t.cycles


def test_pot4u_pairs_are_bounded_by_the_readout():
    """pot4u x pot4u: max_k = 7, and each job's R*C sums leave one per cycle (docs/overlay.md §2),
    so utilization <= max_k / (R*C); the mover reaches 95 % of that bound."""
    p4u = formats.get("pot", 4, False)
    bound = arch.max_k(p4u, p4u) / (arch.ARRAY_ROWS * arch.ARRAY_COLS)
    assert arch.max_k(p4u, p4u) == 7
    util, _ = _utilization(p4u, p4u, 64, 64, 256)
    assert 0.95 * bound <= util <= bound, (util, bound)

"""ant_array: random GEMM tiles and the golden vectors, bit-exact against antq.reference.

Several R x C (square and not), both decoder placements, every 4-bit type pair (so both
activation signedness settings), K from 1 to a few hundred with random bubbles (zero steps),
int8 as nibble passes accumulated in place, and the exact fill/drain latency R + C - 1.
"""

import itertools

import cocotb
import numpy as np
import pytest
import simrun
from antq.core import arch, formats, golden, pack, reference, regmap
from antq.core.quantize import QuantizedTensor
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer
from helpers import GOLDEN

HW = regmap.array_formats()


def qt(codes, fmt):
    return QuantizedTensor(np.asarray(codes, np.uint8), kind=fmt.kind, bits=fmt.bits, signed=fmt.signed)


def nibble_passes(codes, fmt):
    """(4-bit codes, 4-bit format, hi) per pass: one for 4-bit formats, two for int8 (docs §4)."""
    if fmt.bits == 4:
        return [(codes, fmt, 0)]
    return [(codes >> 4, formats.get("int", 4, fmt.signed), 1), (codes & 15, formats.get("int", 4, False), 0)]


class TB:
    def __init__(self, dut):
        self.dut = dut
        env = simrun.tb_env()
        self.rows, self.cols = env["rows"], env["cols"]
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())

    async def reset(self):
        d = self.dut
        d.rst.value, d.clr.value, d.a_codes.value, d.w_codes.value, d.rd_sel.value = 1, 0, 0, 0, 0
        self.config(HW[0], 0, HW[0], 0)
        for _ in range(2):
            await FallingEdge(d.clk)
        d.rst.value = 0

    def config(self, fa, ha, fw, hw):
        d = self.dut
        d.a_kind.value, d.a_signed.value, d.a_hi.value = formats.KIND_IDS[fa.kind], int(fa.signed), ha
        d.w_kind.value, d.w_signed.value, d.w_hi.value = formats.KIND_IDS[fw.kind], int(fw.signed), hw

    @staticmethod
    def word(codes):
        return sum(int(c) << (4 * i) for i, c in enumerate(codes))

    async def clear(self):
        self.dut.clr.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.clr.value = 0

    async def stream(self, a_words, w_words, bubbles=0.0):
        """One step per cycle (a zero step with probability ``bubbles``), then drain."""
        d = self.dut
        for aw, ww in zip(a_words, w_words, strict=True):
            while bubbles and self.rng.random() < bubbles:
                d.a_codes.value, d.w_codes.value = 0, 0
                await FallingEdge(d.clk)
            d.a_codes.value, d.w_codes.value = aw, ww
            await FallingEdge(d.clk)
        d.a_codes.value, d.w_codes.value = 0, 0
        for _ in range(self.rows + self.cols - 2):  # LATENCY R + C - 1 counts the step's own cycle
            await FallingEdge(d.clk)

    async def read(self):
        """All R x C accumulators through the narrow readout mux."""
        out = np.zeros((self.rows, self.cols), np.int64)
        for i in range(self.rows * self.cols):
            self.dut.rd_sel.value = i
            await Timer(1, "ns")
            out[divmod(i, self.cols)] = self.dut.rd_data.value.signed_integer
        await FallingEdge(self.dut.clk)  # back in step with the clock for the next drive
        return out

    async def gemm(self, a, w, bubbles=0.0):
        """Y = a @ w.T for QuantizedTensors of any M, N (tiled on the array; K <= max_k)."""
        (m, k), n = a.shape, w.shape[0]
        y = np.zeros((m, n), np.int64)
        for m0, n0 in itertools.product(range(0, m, self.rows), range(0, n, self.cols)):
            at = np.zeros((self.rows, k), np.uint8)
            wt = np.zeros((self.cols, k), np.uint8)
            at[:min(self.rows, m - m0)] = a.codes[m0:m0 + self.rows]
            wt[:min(self.cols, n - n0)] = w.codes[n0:n0 + self.cols]
            await self.clear()
            for (ca, fa, ha), (cw, fw, hw) in itertools.product(nibble_passes(at, a.fmt),
                                                                nibble_passes(wt, w.fmt)):
                self.config(fa, ha, fw, hw)
                await self.stream([self.word(ca[:, j]) for j in range(k)],
                                  [self.word(cw[:, j]) for j in range(k)], bubbles)
            tile = await self.read()
            y[m0:m0 + self.rows, n0:n0 + self.cols] = tile[:m - m0, :n - n0]
        return y

    def random(self, fmt, rows, k):
        codes = self.rng.integers(0, fmt.ncodes, (rows, k))
        return qt(codes, fmt)


@cocotb.test()
async def every_type_pair(dut):
    """One random tile per 4-bit type pair, K from 1 to 300 (at most max_k), with bubbles."""
    tb = TB(dut)
    await tb.reset()
    ks = [1, 2, 300] + [int(v) for v in tb.rng.integers(3, 300, len(HW) ** 2 - 3)]
    for (fa, fw), k in zip(itertools.product(HW, HW), ks, strict=True):
        k = min(k, arch.max_k(fa, fw))  # pot4u x pot4u: 7; beyond it int32 may wrap (contracts §6)
        a, w = tb.random(fa, tb.rows, k), tb.random(fw, tb.cols, k)
        y = await tb.gemm(a, w, bubbles=0.1)
        assert np.array_equal(y, reference.gemm(a, w)), f"{fa} x {fw}, K={k}:\n{y}\n{reference.gemm(a, w)}"


@cocotb.test()
async def int8_nibble_passes(dut):
    """int8 x int8 (all signedness pairs) and int8 x flint4 as nibble passes accumulated in place."""
    tb = TB(dut)
    await tb.reset()
    i8 = [formats.get("int", 8, s) for s in (False, True)]
    for fa, fw in [*itertools.product(i8, i8), (i8[1], formats.get("flint", 4, True))]:
        k = int(tb.rng.integers(1, 120))  # far below max_k (105,016 for int8s x int8s)
        a, w = tb.random(fa, tb.rows, k), tb.random(fw, tb.cols, k)
        assert np.array_equal(await tb.gemm(a, w), reference.gemm(a, w)), f"{fa} x {fw}, K={k}"


@cocotb.test()
async def exact_latency(dut):
    """A single step reaches PE (R-1, C-1) exactly R + C - 1 cycles after it was presented."""
    tb = TB(dut)
    await tb.reset()
    f = formats.get("int", 4, False)
    tb.config(f, 0, f, 0)
    await tb.clear()
    d = dut
    d.a_codes.value, d.w_codes.value = tb.word([15] * tb.rows), tb.word([15] * tb.cols)
    await FallingEdge(d.clk)
    d.a_codes.value, d.w_codes.value = 0, 0
    last = tb.rows * tb.cols - 1
    for waited in range(tb.rows + tb.cols - 2):
        d.rd_sel.value = last
        await Timer(1, "ns")
        assert d.rd_data.value.signed_integer == 0, f"corner PE filled after {waited + 1} cycles"
        await FallingEdge(d.clk)
    assert np.array_equal(await tb.read(), np.full((tb.rows, tb.cols), 225))
    sel_w = len(d.rd_sel)
    if (1 << sel_w) > tb.rows * tb.cols:  # rd_sel past the last PE reads 0
        d.rd_sel.value = (1 << sel_w) - 1
        await Timer(1, "ns")
        assert d.rd_data.value.signed_integer == 0
        await FallingEdge(d.clk)


@cocotb.test()
async def golden_vectors(dut):
    """tests/golden/gemm.txt; on the header's array size the steps come from the packed bytes."""
    tb = TB(dut)
    await tb.reset()
    cfg, cases = golden.read(GOLDEN)
    use_packed = (cfg.rows, cfg.cols) == (tb.rows, tb.cols)
    for c in cases:
        if use_packed:
            y = await packed_gemm(tb, c, cfg)
        else:
            y = await tb.gemm(c.a, c.w)
        assert np.array_equal(y, c.y), f"golden case {c.name}"
    assert len(cases) > 70


def packed_steps(buf, rows, k, bits, tile, bus_bits):
    """Step words straight from accelerator-packed bytes: plane p, tile block t, step j."""
    layout = pack.Layout(tile=tile, bus_bits=bus_bits)
    r_pad, k_pad = layout.padded(rows, k)
    nplanes = pack.planes(bits)
    plane_bytes = layout.plane_nbytes(rows, k)
    assert len(buf) == nplanes * plane_bytes
    out = []
    for p in range(nplanes):
        big = int.from_bytes(bytes(buf[p * plane_bytes:(p + 1) * plane_bytes]), "little")
        step_bits = 4 * tile
        blocks = [[(big >> (step_bits * (t * k_pad + j))) & ((1 << step_bits) - 1) for j in range(k)]
                  for t in range(r_pad // tile)]
        out.append(blocks)
    return out  # [plane][tile block][step] (plane 0 = low nibble, 1 = high nibble for 8-bit)


async def packed_gemm(tb, case, cfg):
    a, w = case.a, case.w
    (m, k), n = a.shape, w.shape[0]
    sa = packed_steps(case.packed_a, m, k, a.bits, cfg.rows, cfg.bus_bits)
    sw = packed_steps(case.packed_w, n, k, w.bits, cfg.cols, cfg.bus_bits)

    def planes(steps, fmt):  # (plane steps, 4-bit format, hi) in the order high, low
        if fmt.bits == 4:
            return [(steps[0], fmt, 0)]
        return [(steps[1], formats.get("int", 4, fmt.signed), 1), (steps[0], formats.get("int", 4, False), 0)]

    y = np.zeros((m, n), np.int64)
    for ta, tw in itertools.product(range(len(sa[0])), range(len(sw[0]))):
        await tb.clear()
        for (pa, fa, ha), (pw, fw, hw) in itertools.product(planes(sa, a.fmt), planes(sw, w.fmt)):
            tb.config(fa, ha, fw, hw)
            await tb.stream(pa[ta], pw[tw])
        tile = await tb.read()
        m0, n0 = ta * tb.rows, tw * tb.cols
        y[m0:m0 + tb.rows, n0:n0 + tb.cols] = tile[:m - m0, :n - n0]
    return y


@cocotb.test()
async def clear_and_reset(dut):
    """clr zeroes every accumulator; rst mid-stream empties the array (nothing left in flight)."""
    tb = TB(dut)
    await tb.reset()
    f = formats.get("flint", 4, False)
    a, w = tb.random(f, tb.rows, 20), tb.random(f, tb.cols, 20)
    assert np.array_equal(await tb.gemm(a, w), reference.gemm(a, w))
    await tb.clear()
    assert not (await tb.read()).any()
    tb.config(f, 0, f, 0)
    d = dut
    for j in range(5):  # steps in flight, then reset
        d.a_codes.value, d.w_codes.value = tb.word(a.codes[:, j]), tb.word(w.codes[:, j])
        await FallingEdge(d.clk)
    d.rst.value, d.a_codes.value, d.w_codes.value = 1, 0, 0
    await FallingEdge(d.clk)
    d.rst.value = 0
    for _ in range(tb.rows + tb.cols):
        await FallingEdge(d.clk)
    assert not (await tb.read()).any(), "steps survived the reset"


SIZES = {  # (rows, cols, decode_in_pe) per simulator; Icarus gets the small ones
    "verilator": [(2, 2, 0), (4, 4, 0), (arch.ARRAY_ROWS, arch.ARRAY_COLS, 0), (3, 5, 0),
                  (arch.ARRAY_ROWS, arch.ARRAY_COLS, 1), (3, 5, 1)],
    "icarus": [(2, 2, 0), (3, 5, 0), (2, 2, 1), (4, 4, 0)],
}


@pytest.mark.parametrize("sim,rows,cols,decode", [(s, *v) for s, vs in SIZES.items() for v in vs],
                         ids=lambda v: str(v))
def test_ant_array(sim, rows, cols, decode):
    simrun.run("ant_array", sim, "test_ant_array",
               {"ROWS": rows, "COLS": cols, "DECODE_IN_PE": decode, "ACC_W": arch.ACC_BITS},
               tb_env={"rows": rows, "cols": cols})

"""ant_array: jobs back to back with their markers and types, read from the shadows while the
next job runs; bit-exact against antq.reference.

Several R x C (square and not), both decoder placements, every 4-bit type pair (so both
activation signedness settings), K from 1 to a few hundred with random bubbles (zero steps),
int8 as nibble passes accumulated in place with no gap between the passes' types, the golden
vectors, the exact capture and readout latency, and a reset with steps in flight.

Timing (docs/rtl.md): a step presented in cycle p is in PE (r, c)'s accumulator (and, with
`last`, its shadow) from cycle p + 3 + r + c on, a clear (on a bubble) likewise; a read issued in
cycle t (rd_row/rd_col) sees the shadow as of the end of t, and rd_data shows it in cycle t + 1.
"""

import itertools

import cocotb
import numpy as np
import pytest
import simrun
from antq.core import arch, formats, golden, pack, reference, regmap
from antq.core.quantize import QuantizedTensor
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge
from helpers import GOLDEN

HW = regmap.array_formats()


def qt(codes, fmt):
    return QuantizedTensor(np.asarray(codes, np.uint8), kind=fmt.kind, bits=fmt.bits, signed=fmt.signed)


def nibble_passes(codes, fmt):
    """(4-bit codes, 4-bit format, hi) per pass: one for 4-bit formats, two for int8 (docs §4)."""
    if fmt.bits == 4:
        return [(codes, fmt, 0)]
    return [(codes >> 4, formats.get("int", 4, fmt.signed), 1), (codes & 15, formats.get("int", 4, False), 0)]


def word(codes):
    return sum(int(c) << (4 * i) for i, c in enumerate(codes))


class TB:
    """Runs a cycle plan: per cycle one step (or a bubble) and one shadow read (checked on rd_data
    in the next cycle)."""

    def __init__(self, dut):
        self.dut = dut
        env = simrun.tb_env()
        self.rows, self.cols = env["rows"], env["cols"]
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        self.plan = []   # per cycle: (step or None, (r, c, expected) or None)

    async def reset(self):
        d = self.dut
        d.rst.value, d.a_codes.value, d.w_codes.value, d.clr.value, d.last.value = 1, 0, 0, 0, 0
        d.rd_row.value, d.rd_col.value = 0, 0
        self.config(HW[0], 0, HW[0], 0)
        for _ in range(2):
            await FallingEdge(d.clk)
        d.rst.value = 0

    def config(self, fa, ha, fw, hw):
        d = self.dut
        d.a_kind.value, d.a_signed.value, d.a_hi.value = formats.KIND_IDS[fa.kind], int(fa.signed), ha
        d.w_kind.value, d.w_signed.value, d.w_hi.value = formats.KIND_IDS[fw.kind], int(fw.signed), hw

    def at(self, cycle):
        while len(self.plan) <= cycle:
            self.plan.append([None, None])
        return self.plan[cycle]

    def jobs(self, chain, start, bubbles=0.0):
        """Plan the jobs of one tile back to back from cycle ``start``: ``chain`` is a list of
        (a codes (R, K), fa, ha, w codes (C, K), fw, hw); a clear in cycle ``start`` comes first,
        the last step captures. Returns the cycle of the last step."""
        self.at(start)[0] = (0, 0, chain[0][1:3] + chain[0][4:6], 1, 0)
        t = start + 1
        for j, (ca, fa, ha, cw, fw, hw) in enumerate(chain):
            k = ca.shape[1]
            for s in range(k):
                while bubbles and self.rng.random() < bubbles:
                    t += 1
                step = (word(ca[:, s]), word(cw[:, s]), (fa, ha, fw, hw), 0,
                        int(j == len(chain) - 1 and s == k - 1))
                self.at(t)[0] = step
                t += 1
        return t - 1

    def reads(self, last_step, y):
        """Plan the row-major readout of the tile captured by a last step in cycle ``last_step``,
        from the earliest cycle on (PE (0, 0) is captured for a read in last_step + 3)."""
        for i in range(self.rows * self.cols):
            r, c = divmod(i, self.cols)
            self.at(last_step + 3 + i)[1] = (r, c, int(y[r, c]))

    async def run(self):
        d = self.dut
        for step, read in self.plan:
            if step is None:
                d.a_codes.value, d.w_codes.value, d.clr.value, d.last.value = 0, 0, 0, 0
            else:
                d.a_codes.value, d.w_codes.value = step[0], step[1]
                self.config(*step[2])
                d.clr.value, d.last.value = step[3], step[4]
            if read is not None:
                d.rd_row.value, d.rd_col.value = read[0], read[1]
            await FallingEdge(d.clk)  # the read was registered at the rising edge in between
            if read is not None:
                got = d.rd_data.value.signed_integer
                assert got == read[2], f"PE {read[:2]}: {got} != {read[2]}"
        self.plan = []

    def tiles(self, a, w):
        """The (chain, expected tile) of every R x C output tile of a @ w.T."""
        (m, _), n = a.shape, w.shape[0]
        ref = reference.gemm(a, w)
        out = []
        for m0, n0 in itertools.product(range(0, m, self.rows), range(0, n, self.cols)):
            at = np.zeros((self.rows, a.shape[1]), np.uint8)
            wt = np.zeros((self.cols, a.shape[1]), np.uint8)
            at[:min(self.rows, m - m0)] = a.codes[m0:m0 + self.rows]
            wt[:min(self.cols, n - n0)] = w.codes[n0:n0 + self.cols]
            chain = [(ca, fa, ha, cw, fw, hw) for (ca, fa, ha), (cw, fw, hw)
                     in itertools.product(nibble_passes(at, a.fmt), nibble_passes(wt, w.fmt))]
            y = np.zeros((self.rows, self.cols), np.int64)
            y[:min(self.rows, m - m0), :min(self.cols, n - n0)] = ref[m0:m0 + self.rows, n0:n0 + self.cols]
            out.append((chain, y))
        return out

    async def gemms(self, pairs, bubbles=0.0):
        """Every tile of every (a, w) back to back; a tile's last step waits until the previous
        tile's readout is far enough (one read per cycle), as ant_core does."""
        t, prev = 0, None
        for a, w in pairs:
            for chain, y in self.tiles(a, w):
                steps = sum(c[0].shape[1] for c in chain)
                if prev is not None:  # the previous readout must stay ahead of the new captures
                    t = max(t, prev + self.rows * self.cols - steps + 1)
                last = self.jobs(chain, t, bubbles)
                self.reads(last, (y + 2**31) % 2**32 - 2**31)
                t, prev = last + 1, last
        await self.run()

    def random(self, fmt, rows, k):
        return qt(self.rng.integers(0, fmt.ncodes, (rows, k)), fmt)


@cocotb.test()
async def every_type_pair(dut):
    """One random tile per 4-bit type pair back to back, K from 1 to 300 (at most max_k), bubbles."""
    tb = TB(dut)
    await tb.reset()
    ks = [1, 2, 300] + [int(v) for v in tb.rng.integers(3, 300, len(HW) ** 2 - 3)]
    pairs = []
    for (fa, fw), k in zip(itertools.product(HW, HW), ks, strict=True):
        k = min(k, arch.max_k(fa, fw))  # pot4u x pot4u: 7; beyond it int32 may wrap (contracts §6)
        pairs.append((tb.random(fa, tb.rows, k), tb.random(fw, tb.cols, k)))
    await tb.gemms(pairs, bubbles=0.1)


@cocotb.test()
async def int8_nibble_passes(dut):
    """int8 x int8 (all signedness pairs) and int8 x flint4 as nibble passes accumulated in place,
    the passes' types changing from one step to the next."""
    tb = TB(dut)
    await tb.reset()
    i8 = [formats.get("int", 8, s) for s in (False, True)]
    pairs = []
    for fa, fw in [*itertools.product(i8, i8), (i8[1], formats.get("flint", 4, True))]:
        k = int(tb.rng.integers(1, 120))  # far below max_k (105,016 for int8s x int8s)
        pairs.append((tb.random(fa, tb.rows, k), tb.random(fw, tb.cols, k)))
    await tb.gemms(pairs)


@cocotb.test()
async def exact_latency(dut):
    """A step presented in cycle p is in PE (r, c)'s shadow for a read in p + 3 + r + c, not before."""
    tb = TB(dut)
    await tb.reset()
    f = formats.get("int", 4, False)
    r1, c1 = tb.rows - 1, tb.cols - 1
    for r, c in {(0, 0), (r1, c1), (0, c1), (r1, 0)}:
        ones = np.full((tb.rows, 1), 1, np.uint8), np.full((tb.cols, 1), 1, np.uint8)
        tb.jobs([(ones[0], f, 0, ones[1], f, 0)], 0)  # shadow = 1 everywhere
        fifteen = np.full((tb.rows, 1), 15, np.uint8), np.full((tb.cols, 1), 15, np.uint8)
        p = tb.jobs([(fifteen[0], f, 0, fifteen[1], f, 0)], 4 + tb.rows + tb.cols)
        tb.at(p + 2 + r + c)[1] = (r, c, 1)
        tb.at(p + 3 + r + c)[1] = (r, c, 225)
        await tb.run()


@cocotb.test()
async def golden_vectors(dut):
    """tests/golden/gemm.txt; on the header's array size the steps come from the packed bytes."""
    tb = TB(dut)
    await tb.reset()
    cfg, cases = golden.read(GOLDEN)
    assert len(cases) > 70
    if (cfg.rows, cfg.cols) != (tb.rows, tb.cols):
        await tb.gemms([(c.a, c.w) for c in cases])
        return
    t, prev = 0, None
    for case in cases:
        for chain, y in packed_tiles(tb, case, cfg):
            if prev is not None:
                t = max(t, prev + tb.rows * tb.cols - sum(len(c[0]) for c in chain) + 1)
            tb.at(t)[0] = (0, 0, (chain[0][1], chain[0][2], chain[0][4], chain[0][5]), 1, 0)  # the clear
            last = t
            for j, (pa, fa, ha, pw, fw, hw) in enumerate(chain):
                for s, (xa, xw) in enumerate(zip(pa, pw, strict=True)):
                    last += 1
                    tb.at(last)[0] = (xa, xw, (fa, ha, fw, hw), 0,
                                      int(j == len(chain) - 1 and s == len(pa) - 1))
            tb.reads(last, y)
            t, prev = last + 1, last
    await tb.run()


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


def packed_tiles(tb, case, cfg):
    """(chain of (a step words, fa, ha, w step words, fw, hw), expected tile) per output tile."""
    a, w = case.a, case.w
    (m, k), n = a.shape, w.shape[0]
    sa = packed_steps(case.packed_a, m, k, a.bits, cfg.rows, cfg.bus_bits)
    sw = packed_steps(case.packed_w, n, k, w.bits, cfg.cols, cfg.bus_bits)

    def planes(steps, fmt):  # (plane steps, 4-bit format, hi) in the order high, low
        if fmt.bits == 4:
            return [(steps[0], fmt, 0)]
        return [(steps[1], formats.get("int", 4, fmt.signed), 1), (steps[0], formats.get("int", 4, False), 0)]

    for ta, tw in itertools.product(range(len(sa[0])), range(len(sw[0]))):
        chain = [(pa[ta], fa, ha, pw[tw], fw, hw)
                 for (pa, fa, ha), (pw, fw, hw) in itertools.product(planes(sa, a.fmt), planes(sw, w.fmt))]
        y = np.zeros((tb.rows, tb.cols), np.int64)
        m0, n0 = ta * tb.rows, tw * tb.cols
        y[:min(tb.rows, m - m0), :min(tb.cols, n - n0)] = case.y[m0:m0 + tb.rows, n0:n0 + tb.cols]
        yield chain, y


@cocotb.test()
async def reset_with_steps_in_flight(dut):
    """rst empties the array and clears the accumulators: a job without a clear after a reset
    gives exactly its own sum, and no marker in flight survives to capture."""
    tb = TB(dut)
    await tb.reset()
    f = formats.get("flint", 4, False)
    a, w = tb.random(f, tb.rows, 20), tb.random(f, tb.cols, 20)
    [(chain, y)] = tb.tiles(a, w)
    last = tb.jobs(chain, 0)
    tb.reads(last, y)
    await tb.run()
    d = dut
    for j in range(5):  # steps in flight (the last one with `last`), then reset
        d.a_codes.value, d.w_codes.value = word(a.codes[:, j]), word(w.codes[:, j])
        d.clr.value, d.last.value = 0, int(j == 4)
        await FallingEdge(d.clk)
    d.rst.value, d.a_codes.value, d.w_codes.value, d.clr.value, d.last.value = 1, 0, 0, 0, 0
    await FallingEdge(d.clk)
    d.rst.value = 0
    for i in range(tb.rows * tb.cols):  # the shadows still hold the first tile: nothing captured
        tb.at(i)[1] = (*divmod(i, tb.cols), int(y[divmod(i, tb.cols)]))
    await tb.run()
    b, v = tb.random(f, tb.rows, 3), tb.random(f, tb.cols, 3)
    ((cb, fa, ha, cv, fw, hw), ), yb = tb.tiles(b, v)[0]
    steps = [(word(cb[:, s]), word(cv[:, s]), (fa, ha, fw, hw), 0, int(s == 2)) for s in range(3)]
    for s, step in enumerate(steps):
        tb.at(s)[0] = step
    tb.reads(2, yb)  # no clear: the reset left zeros to add to
    await tb.run()


SIZES = {  # (rows, cols, decode_in_pe) per simulator; Icarus gets the small ones
    "verilator": [(2, 2, 0), (4, 4, 0), (8, 8, 0), (3, 5, 0), (8, 8, 1), (3, 5, 1)],
    "icarus": [(2, 2, 0), (3, 5, 0), (2, 2, 1), (4, 4, 0)],
}


@pytest.mark.parametrize("sim,rows,cols,decode", [(s, *v) for s, vs in SIZES.items() for v in vs],
                         ids=lambda v: str(v))
def test_ant_array(sim, rows, cols, decode):
    simrun.run("ant_array", sim, "test_ant_array",
               {"ROWS": rows, "COLS": cols, "DECODE_IN_PE": decode, "ACC_W": arch.ACC_BITS},
               tb_env={"rows": rows, "cols": cols})

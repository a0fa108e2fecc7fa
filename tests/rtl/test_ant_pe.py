"""ant_pe, edge-decoded (DECODE=0) and PE-decoded (DECODE=1): random and corner operands.

The PE has two stages: a step at a_in/w_in in cycle t is in the accumulator from cycle t + 2
on. The expected accumulator is rebuilt from antq.formats' decoded form, the same sum that
antq.reference.gemm computes; it is checked every cycle, with the operand and marker
pass-through, the clr marker (on a bubble: the accumulator is cleared), the last marker (the sum
is captured into the shadow, which then holds while the accumulator goes on) and reset.
"""

import itertools

import cocotb
import numpy as np
import pytest
import simrun
from antq.core import arch, formats, regmap
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

HW = regmap.array_formats()


def term(fa, ca, ha, fw, cw, hw):
    """One product as the reference defines it (int8 high nibbles carry +4 on the shift)."""
    return int(fa.values[ca]) * int(fw.values[cw]) << (4 * (ha + hw))


def to_signed(v, bits=arch.ACC_BITS):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.decode = simrun.tb_env()["decode"]
        self.acc = 0          # the model accumulator, as of the current cycle
        self.shadow = None    # the model shadow (None: not captured since the TB started)
        self.pipe = []        # products (value, clr, last) in flight: stage A, then stage B
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())

    def operand(self, fmt, code, hi):
        """What the PE port carries: {kind, signed, hi, code} (DECODE=1) or the decoded bundle."""
        if self.decode:
            return (formats.KIND_IDS[fmt.kind] << 2 | int(fmt.signed) << 1 | hi) << 4 | code
        s, m, e = (int(x) for x in fmt.decode(np.array([code])))
        return (s < 0) << 8 | m << 4 | (e + 4 * hi)

    async def step(self, fa=None, ca=0, ha=0, fw=None, cw=0, hw=0, clr=0, last=0):
        """Drive one step (or a bubble, or a clear) for one cycle, then check the PE against the model."""
        d = self.dut
        fa, fw = fa or HW[0], fw or HW[0]
        a_bus, w_bus = self.operand(fa, ca, ha), self.operand(fw, cw, hw)
        d.a_in.value, d.w_in.value, d.clr_in.value, d.last_in.value = a_bus, w_bus, clr, last
        await FallingEdge(d.clk)
        # this step entered stage A at this edge, and the one before it the accumulator
        self.pipe.append((term(fa, ca, ha, fw, cw, hw), clr, last))
        if len(self.pipe) > 1:
            value, c, lst = self.pipe.pop(0)
            self.acc = 0 if c else to_signed(self.acc + value)
            if lst:
                self.shadow = self.acc
        assert (d.a_out.value.integer, d.w_out.value.integer) == (a_bus, w_bus)
        assert (d.clr_out.value.integer, d.last_out.value.integer) == (clr, last)
        assert d.acc.value.signed_integer == self.acc, f"acc {d.acc.value.signed_integer} != {self.acc}"
        if self.shadow is not None:
            assert d.shadow.value.signed_integer == self.shadow

    async def reset(self):
        d = self.dut
        d.rst.value, d.a_in.value, d.w_in.value, d.clr_in.value, d.last_in.value = 1, 0, 0, 0, 0
        for _ in range(2):
            await FallingEdge(d.clk)
        d.rst.value = 0
        self.acc, self.pipe, self.shadow = 0, [], None  # a capture in flight may land during reset
        assert d.acc.value.integer == 0 and d.last_out.value.integer == 0


@cocotb.test()
async def random_operands(dut):
    """Every 4-bit type pair with random codes, int8 high-nibble flags, captures and clears."""
    tb = TB(dut)
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    await tb.reset()
    for fa, fw in itertools.product(HW, HW):
        if rng.random() < 0.7:
            await tb.step(clr=1)  # a job with acc = 0; otherwise it adds to the last one
        for _ in range(12):
            ca, cw = int(rng.integers(16)), int(rng.integers(16))
            ha = int(fa.kind == "int" and rng.integers(2))
            hw = int(fw.kind == "int" and rng.integers(2))
            await tb.step(fa, ca, ha, fw, cw, hw, last=int(rng.random() < 0.2))
        for _ in range(int(rng.integers(3))):
            await tb.step()  # bubbles between the jobs


@cocotb.test()
async def clear_and_capture_markers(dut):
    """Back-to-back jobs, each behind its clear: last captures the sum including its product,
    the shadow holds while the next job accumulates, K = 1 jobs capture their only product."""
    tb = TB(dut)
    await tb.reset()
    fl = formats.get("flint", 4, True)
    for k in (3, 1, 1, 5, 2):
        await tb.step(clr=1)
        for j in range(k):
            await tb.step(fl, 7, 0, fl, 7, 0, last=int(j == k - 1))  # 6 * 6
    for _ in range(3):
        await tb.step(fl, 1, 0, fl, 1, 0)  # the shadow keeps 72 while acc goes on
    assert tb.shadow == 72 and dut.shadow.value.signed_integer == 72


@cocotb.test()
async def accumulator_extremes(dut):
    """pot4u x pot4s at max_k = 2047 reaches -+2,146,435,072 (2^20 short of the int32 limit)."""
    tb = TB(dut)
    await tb.reset()
    pu, ps = formats.get("pot", 4, False), formats.get("pot", 4, True)
    k = arch.max_k(pu, ps)
    assert k == 2047
    amax = int(pu.encode(np.array([pu.max_value]))[0])
    for wval, want in ((-ps.max_abs, -2_146_435_072), (ps.max_abs, 2_146_435_072)):
        wcode = int(ps.encode(np.array([wval]))[0])
        await tb.step(clr=1)
        for j in range(k):
            await tb.step(pu, amax, 0, ps, wcode, 0, last=int(j == k - 1))
        await tb.step()
        await tb.step()
        assert tb.shadow == want == k * pu.max_abs * wval
    # the largest single product: pot4u x pot4u = 2^28 (max_k 7); an int8s high-nibble square
    await tb.step(clr=1)
    for j in range(arch.max_k(pu, pu)):
        await tb.step(pu, 15, 0, pu, 15, 0, last=int(j == 6))
    i4s = formats.get("int", 4, True)
    await tb.step(clr=1)
    assert tb.shadow == 7 << 28
    await tb.step(i4s, 8, 1, i4s, 8, 1)  # (-8 << 4) * (-8 << 4)
    await tb.step(i4s, 8, 1, i4s, 8, 1, last=1)
    await tb.step()
    await tb.step()
    assert tb.shadow == 2 * 128 * 128


@cocotb.test()
async def zero_codes_and_reset(dut):
    """-0 and code 0 add nothing; rst clears the accumulator, both stages and the pass-through."""
    tb = TB(dut)
    await tb.reset()
    fl = formats.get("flint", 4, True)
    await tb.step(clr=1)
    for _ in range(3):
        await tb.step(fl, 7, 0, fl, 7, 0)
    for ca, cw in ((8, 7), (7, 8), (0, 15), (8, 8)):  # "-0" and 0 on either side
        await tb.step(fl, ca, 0, fl, cw, 0)
    await tb.step()
    assert tb.acc == 108
    await tb.step(fl, 7, 0, fl, 7, 0, last=1)  # in flight when the reset comes
    await tb.reset()
    for _ in range(3):
        await tb.step()
    assert dut.acc.value.integer == 0 and dut.a_out.value.integer == 0 and dut.w_out.value.integer == 0


@pytest.mark.parametrize("decode", [0, 1], ids=["edge_decoded", "pe_decoded"])
@pytest.mark.parametrize("sim", simrun.SIMS)
def test_ant_pe(sim, decode):
    simrun.run("ant_pe", sim, "test_ant_pe", {"DECODE": decode, "ACC_W": arch.ACC_BITS},
               tb_env={"decode": decode})

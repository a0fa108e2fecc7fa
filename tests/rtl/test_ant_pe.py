"""ant_pe, edge-decoded (DECODE=0) and PE-decoded (DECODE=1): random and corner operands.

The expected accumulator is rebuilt from antq.formats' decoded form, the same sum that
antq.reference.gemm computes; it is checked every cycle, with the operand pass-through.
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
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())

    def operand(self, fmt, code, hi):
        """What the PE port carries: the raw code (DECODE=1) or the edge-decoded bundle."""
        if self.decode:
            return code, formats.KIND_IDS[fmt.kind] << 2 | int(fmt.signed) << 1 | hi
        s, m, e = (int(x) for x in fmt.decode(np.array([code])))
        return (s < 0) << 8 | m << 4 | (e + 4 * hi), 0

    def drive(self, fa, ca, ha, fw, cw, hw, clr=0):
        d = self.dut
        (a_bus, a_cfg), (w_bus, w_cfg) = self.operand(fa, ca, ha), self.operand(fw, cw, hw)
        d.a_in.value, d.a_cfg.value, d.w_in.value, d.w_cfg.value = a_bus, a_cfg, w_bus, w_cfg
        d.clr.value = clr
        return a_bus, w_bus

    async def reset(self):
        d = self.dut
        d.rst.value, d.clr.value, d.a_in.value, d.w_in.value = 1, 0, 0, 0
        d.a_cfg.value, d.w_cfg.value = 0, 0
        for _ in range(2):
            await FallingEdge(d.clk)
        d.rst.value = 0

    def acc(self):
        return self.dut.acc.value.signed_integer


@cocotb.test()
async def random_operands(dut):
    """Every 4-bit type pair with random codes (and int8 high-nibble flags on int operands)."""
    tb = TB(dut)
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    await tb.reset()
    for fa, fw in itertools.product(HW, HW):
        acc, first = 0, True
        for _ in range(12):
            ca, cw = int(rng.integers(16)), int(rng.integers(16))
            ha = int(fa.kind == "int" and rng.integers(2))
            hw = int(fw.kind == "int" and rng.integers(2))
            a_bus, w_bus = tb.drive(fa, ca, ha, fw, cw, hw, clr=int(first))
            await FallingEdge(dut.clk)
            acc = 0 if first else to_signed(acc + term(fa, ca, ha, fw, cw, hw))
            first = False
            assert tb.acc() == acc, f"{fa} x {fw}: acc {tb.acc()} != {acc}"
            assert (dut.a_out.value.integer, dut.w_out.value.integer) == (a_bus, w_bus)


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
        tb.drive(pu, 0, 0, ps, 0, 0, clr=1)
        await FallingEdge(dut.clk)
        for _ in range(k):
            tb.drive(pu, amax, 0, ps, wcode, 0)
            await FallingEdge(dut.clk)
        assert tb.acc() == want == k * pu.max_abs * wval
    # the largest single product of each sign: pot4u x pot4u = 2^28 (max_k 7), int8 nibbles
    tb.drive(pu, 0, 0, pu, 0, 0, clr=1)
    await FallingEdge(dut.clk)
    for _ in range(arch.max_k(pu, pu)):
        tb.drive(pu, 15, 0, pu, 15, 0)
        await FallingEdge(dut.clk)
    assert tb.acc() == 7 << 28
    i4s = formats.get("int", 4, True)
    tb.drive(i4s, 8, 1, i4s, 8, 1, clr=1)  # (-8 << 4) * (-8 << 4) after the clear
    await FallingEdge(dut.clk)
    tb.drive(i4s, 8, 1, i4s, 8, 1)
    await FallingEdge(dut.clk)
    assert tb.acc() == 128 * 128


@cocotb.test()
async def zero_codes_clear_and_reset(dut):
    """-0 and code 0 add nothing; clr zeroes the accumulator; rst also clears the pass-through."""
    tb = TB(dut)
    await tb.reset()
    fl = formats.get("flint", 4, True)
    tb.drive(fl, 7, 0, fl, 7, 0, clr=1)
    await FallingEdge(dut.clk)
    for _ in range(3):
        tb.drive(fl, 7, 0, fl, 7, 0)  # 6 * 6
        await FallingEdge(dut.clk)
    assert tb.acc() == 108
    for ca, cw in ((8, 7), (7, 8), (0, 15), (8, 8)):  # "-0" and 0 on either side
        tb.drive(fl, ca, 0, fl, cw, 0)
        await FallingEdge(dut.clk)
        assert tb.acc() == 108
    tb.drive(fl, 7, 0, fl, 7, 0, clr=1)
    await FallingEdge(dut.clk)
    assert tb.acc() == 0
    tb.drive(fl, 7, 0, fl, 7, 0)
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    assert tb.acc() == 0 and dut.a_out.value.integer == 0 and dut.w_out.value.integer == 0
    dut.rst.value = 0


@pytest.mark.parametrize("decode", [0, 1], ids=["edge_decoded", "pe_decoded"])
@pytest.mark.parametrize("sim", simrun.SIMS)
def test_ant_pe(sim, decode):
    simrun.run("ant_pe", sim, "test_ant_pe", {"DECODE": decode, "ACC_W": arch.ACC_BITS},
               tb_env={"decode": decode})

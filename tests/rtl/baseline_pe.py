"""The shared testbench of the baseline PEs of the cost report (int4_pe, int8_pe).

The array edge feeds a baseline PE codes sign- or zero-extended to bits+1 bits; the expected
accumulator is antq.reference.gemm of the same codes, checked every cycle along with the
pass-through. Random operands of every signedness pair, the largest products of each sign
repeated 300 times, and a reset.
"""

import cocotb
import numpy as np
from antq.core import formats, reference
from antq.core.quantize import QuantizedTensor
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


class TB:
    def __init__(self, dut, bits: int):
        self.dut, self.bits = dut, bits
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())

    async def reset(self):
        d = self.dut
        d.rst.value, d.clr.value, d.a_in.value, d.w_in.value = 1, 0, 0, 0
        for _ in range(2):
            await FallingEdge(d.clk)
        d.rst.value = 0

    async def run(self, fa, a_codes, fw, w_codes):
        """Stream one dot product (clear on the first step); check acc and pass-through each cycle."""
        d, bits = self.dut, self.bits
        mask = (1 << (bits + 1)) - 1
        va, vw = fa.values[a_codes], fw.values[w_codes]
        for k in range(len(a_codes)):
            d.a_in.value, d.w_in.value = int(va[k]) & mask, int(vw[k]) & mask
            d.clr.value = int(k == 0)
            await FallingEdge(d.clk)
            assert d.a_out.value.signed_integer == va[k] and d.w_out.value.signed_integer == vw[k]
            if k == 0:
                assert d.acc.value.signed_integer == 0
        d.clr.value = 0
        a = QuantizedTensor(a_codes[None, 1:], kind="int", bits=bits, signed=fa.signed)
        w = QuantizedTensor(w_codes[None, 1:], kind="int", bits=bits, signed=fw.signed)
        want = int(reference.gemm(a, w)[0, 0])
        assert d.acc.value.signed_integer == want, f"{fa} x {fw}: {d.acc.value.signed_integer} != {want}"


def make_tests(bits: int):
    """The cocotb tests of an int<bits> baseline PE (``int4_pe``, ``int8_pe``)."""
    fmts = [formats.get("int", bits, False), formats.get("int", bits, True)]

    async def random_operands(dut):
        tb = TB(dut, bits)
        rng = np.random.default_rng(cocotb.RANDOM_SEED)
        await tb.reset()
        for fa in fmts:
            for fw in fmts:
                k = int(rng.integers(2, 200))
                await tb.run(fa, rng.integers(0, fa.ncodes, k), fw, rng.integers(0, fw.ncodes, k))

    async def corner_operands(dut):
        """The largest products of each sign, repeated, and a reset in the middle."""
        tb = TB(dut, bits)
        await tb.reset()
        for fa in fmts:
            for fw in fmts:
                for va in (min(fa.values), max(fa.values)):
                    for vw in (min(fw.values), max(fw.values)):
                        ca, cw = fa.encode(np.array([va])), fw.encode(np.array([vw]))
                        await tb.run(fa, np.repeat(ca, 300), fw, np.repeat(cw, 300))
        dut.rst.value = 1
        await FallingEdge(dut.clk)
        assert dut.acc.value.signed_integer == 0 and dut.a_out.value.integer == 0
        dut.rst.value = 0

    return cocotb.test()(random_operands), cocotb.test()(corner_operands)

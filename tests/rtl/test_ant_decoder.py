"""ant_decoder, exhaustively: every code x type x signedness x high-nibble flag vs. antq.formats.

The high-nibble flag adds 4 to the shift of int codes (an int8 high nibble, docs §4); the other
kinds have no 8-bit nibble form and ignore it.
"""

import cocotb
import numpy as np
import pytest
import simrun
from antq.core import formats
from cocotb.triggers import Timer


@cocotb.test()
async def decode_every_code(dut):
    """All 4 kinds x 2 signedness x 2 hi x 16 codes: (sign, M, S) exactly as antq.formats decodes."""
    checked = 0
    for kind, kind_id in formats.KIND_IDS.items():
        for signed in (False, True):
            fmt = formats.get(kind, 4, signed)
            sign, mant, shift = fmt.decode(np.arange(16))
            for hi in (0, 1):
                for code in range(16):
                    dut.code.value, dut.kind.value = code, kind_id
                    dut.is_signed.value, dut.hi.value = int(signed), hi
                    await Timer(1, "ns")
                    got = (int(dut.sign.value), int(dut.m.value), int(dut.s.value))
                    hi_shift = 4 * hi if kind == "int" else 0
                    want = (int(sign[code] < 0), int(mant[code]), int(shift[code]) + hi_shift)
                    assert got == want, f"{fmt.name} code {code:04b} hi={hi}: got {got}, want {want}"
                    value = (-1) ** got[0] * (got[1] << got[2])
                    assert value == int(fmt.values[code]) << hi_shift
                    checked += 1
    assert checked == 4 * 2 * 2 * 16


@pytest.mark.parametrize("sim", simrun.SIMS)
def test_ant_decoder(sim):
    simrun.run("ant_decoder", sim, "test_ant_decoder")


def test_waves_option(monkeypatch, tmp_path):
    """ANTQ_RTL_WAVES=1 (what `make rtl-waves` sets) leaves a non-empty FST trace."""
    monkeypatch.setenv("ANTQ_RTL_WAVES", "1")
    monkeypatch.setattr(simrun, "WAVES_DIR", tmp_path)
    simrun.run("ant_decoder", "icarus", "test_ant_decoder")
    traces = list(tmp_path.glob("*.fst"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
    assert traces[0].read_bytes()[:1] == b"\x00"  # an FST header block, not VCD text

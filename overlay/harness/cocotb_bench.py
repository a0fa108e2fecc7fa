"""The cocotb-driven baseline of `make bench-rtl`: the same jobs as the C harness, streamed
into the same Verilated ant_core by a lean cocotb driver (no cocotbext-axi overhead), so the
printed ratio is the harness's speedup over the best a cocotb testbench does.

Run by antq.run.microbench.bench_cocotb(); reads ANTQ_BENCH (JSON: beats file, rows, cols, output file).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


@cocotb.test()
async def stream_jobs(dut):
    cfg = json.loads(os.environ["ANTQ_BENCH"])
    jobs = np.load(cfg["beats"])  # (jobs, K + 1, DATA_W / 64) uint64
    words = jobs.shape[2]
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    dut.rst.value, dut.s_axis_tvalid.value, dut.m_axis_tready.value = 1, 0, 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    cycles, outputs = 0, 0
    t0 = time.perf_counter()
    for job in jobs:
        data = [sum(int(b[i]) << (64 * i) for i in range(words)) for b in job]
        sent, emit = 0, bool(int(job[0, 0]) >> 33 & 1)
        got = 0
        while True:
            more = sent < len(data)
            dut.s_axis_tvalid.value = int(more)
            if more:
                dut.s_axis_tdata.value = data[sent]
                dut.s_axis_tlast.value = int(sent == len(data) - 1)
            if more and int(dut.s_axis_tready.value):
                sent += 1
            if int(dut.m_axis_tvalid.value):
                got += 1
                outputs += 1
                last = int(dut.m_axis_tlast.value)
            else:
                last = 0
            await FallingEdge(dut.clk)
            cycles += 1
            if not more and (last or (not emit and int(dut.idle.value))):
                break
        while not int(dut.idle.value):
            await FallingEdge(dut.clk)
            cycles += 1
        assert got == (cfg["rows"] * cfg["cols"] if emit else 0), f"{got} output beats"
    wall = time.perf_counter() - t0
    with open(cfg["out"], "w") as f:
        json.dump({"cycles": cycles, "seconds": wall, "outputs": outputs}, f)

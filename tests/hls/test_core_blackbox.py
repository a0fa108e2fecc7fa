"""The Vitis RTL-blackbox wrapper hls/ant_core_bb.v around the Verilog ant_core, under Icarus.

Vitis HLS drives the blackbox with ap_ctrl_chain and FIFO-protocol streams whose elements are
{tlast, tdata}. This checks, cycle by cycle with random stalls on both FIFOs, that a sequence of
jobs (a non-emitting job, then an accumulating job that emits, then a fresh one) returns the
right accumulators with tlast on the last, and that ap_done/ap_ready pulse once per job.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from antq.core import formats, stream
from antq.toolchain import verilator
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "sim" / "ant_core_bb_icarus"
R = C = 4


def _jobs(rng: np.random.Generator) -> list[dict]:
    fa, fw = formats.get("flint", 4, True), formats.get("int", 4, False)
    out, acc = [], np.zeros((R, C), np.int64)
    for k, accumulate, emit in ((5, False, False), (7, True, True), (3, False, True)):
        a, w = rng.integers(0, 16, (R, k)), rng.integers(0, 16, (C, k))
        va, vw = np.asarray(fa.values)[a], np.asarray(fw.values)[w]
        acc = (acc if accumulate else 0) + va @ vw.T
        beats = stream.job_beats(a, w, stream.config_word(k, fa, fw, acc=accumulate, emit=emit), R, C)
        out.append({"beats": [int(b) for b in beats[:, 0]], "emit": emit, "y": acc.ravel().tolist()})
    return out


@cocotb.test()
async def blackbox_jobs(dut):
    jobs = json.loads(os.environ["ANTQ_BB_JOBS"])
    rnd = random.Random(1)
    data_w = len(dut.s_axis_dout) - 1
    cocotb.start_soon(Clock(dut.ap_clk, 10, "ns").start())
    dut.ap_rst.value, dut.ap_start.value, dut.ap_continue.value, dut.ap_ce.value = 1, 0, 0, 1
    dut.s_axis_empty_n.value, dut.s_axis_dout.value, dut.m_axis_full_n.value = 0, 0, 0
    for _ in range(3):
        await FallingEdge(dut.ap_clk)
    dut.ap_rst.value = 0
    for job in jobs:
        await FallingEdge(dut.ap_clk)
        assert dut.ap_idle.value == 1
        dut.ap_start.value = 1
        sent, got, dones = 0, [], 0
        for _ in range(2000):
            await FallingEdge(dut.ap_clk)
            if dut.ap_idle.value == 0:
                dut.ap_start.value = 0
            dut.ap_continue.value = 0
            have = sent < len(job["beats"]) and rnd.random() < 0.7
            last = sent == len(job["beats"]) - 1
            dut.s_axis_empty_n.value = int(have)
            dut.s_axis_dout.value = (int(last) << data_w | job["beats"][sent]) if have else 0
            dut.m_axis_full_n.value = int(rnd.random() < 0.7)
            await ReadOnly()
            read, write = int(dut.s_axis_read.value), int(dut.m_axis_write.value)
            assert not read or have
            if write:
                v = int(dut.m_axis_din.value)
                got.append((v & 0xFFFFFFFF, v >> 32))
            done = int(dut.ap_done.value)
            assert done == int(dut.ap_ready.value)
            await RisingEdge(dut.ap_clk)
            sent += read
            if done:
                dones += 1
                await FallingEdge(dut.ap_clk)
                dut.ap_continue.value = 1
                break
        assert dones == 1 and sent == len(job["beats"]), (dones, sent)
        want = [(y & 0xFFFFFFFF, int(i == len(job["y"]) - 1)) for i, y in enumerate(job["y"])]
        assert got == (want if job["emit"] else []), (got, want)
    await FallingEdge(dut.ap_clk)
    dut.ap_continue.value = 0
    await FallingEdge(dut.ap_clk)
    assert dut.ap_idle.value == 1


def test_blackbox_wrapper_runs_jobs_under_icarus():
    from cocotb.runner import get_runner

    os.environ["ANTQ_BB_JOBS"] = json.dumps(_jobs(np.random.default_rng(3)))
    runner = get_runner("icarus")
    BUILD.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD.parent / ".ant_core_bb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runner.build(verilog_sources=[ROOT / "hls" / "ant_core_bb.v", *verilator.sources()],
                     hdl_toplevel="ant_core_bb", build_dir=BUILD, parameters={"ROWS": R, "COLS": C},
                     timescale=("1ns", "1ps"))
        results = runner.test(hdl_toplevel="ant_core_bb", test_module="test_core_blackbox", build_dir=BUILD,
                              test_dir=BUILD)
    from cocotb.runner import get_results

    total, failed = get_results(results)
    assert total == 1 and failed == 0

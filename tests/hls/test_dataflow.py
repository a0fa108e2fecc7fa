"""The g++ DATAFLOW shim: bounded streams, concurrent processes, deadlocks reported, not hung."""

from __future__ import annotations

import subprocess

import pytest
from antq.toolchain import hls
from helpers import GOLDEN


def test_shallow_fifo_deadlock_is_reported_and_deep_one_finishes():
    exe = hls.build("tb_deadlock")
    deep = subprocess.run([str(exe), "deep"], capture_output=True, text=True, timeout=60)
    assert deep.returncode == 0 and "sum 308 (want 308)" in deep.stdout, deep.stdout
    shallow = subprocess.run([str(exe), "shallow"], capture_output=True, text=True, timeout=60)
    assert shallow.returncode == 0, shallow.stdout + shallow.stderr
    # which process waits on which stream, and how full it is
    assert "DATAFLOW deadlock: every process is blocked" in shallow.stdout
    assert "split_merge/produce writing 'short_path' (depth 2, holds 2)" in shallow.stdout
    assert "split_merge/consume reading 'long_path' (depth 8, holds 0)" in shallow.stdout


def test_run_deadlock_check_is_what_make_csim_prints():
    ok, report = hls.run_deadlock_check()
    assert ok and report.startswith("DATAFLOW deadlock")


def test_data_mover_needs_no_deep_fifo():
    """Every stream of the mover at depth 1: slower on hardware, but no deadlock and still exact.
    (The region has no reconvergent paths that a shallow FIFO could block.)"""
    ones = dict.fromkeys(hls.stream_depths(), 1)
    r = hls.run_csim(golden=GOLDEN, random=40, seed=7, depths=ones)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all bit-exact" in r.stdout


def test_bad_depth_overrides_are_refused():
    with pytest.raises(ValueError, match="unknown stream depth"):
        hls.config_header(depths={"ANT_NOPE_DEPTH": 4})
    with pytest.raises(ValueError, match="positive ints"):
        hls.config_header(depths={"ANT_Y_DEPTH": 0})

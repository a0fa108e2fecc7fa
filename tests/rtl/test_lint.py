"""Verilator -Wall lint of every RTL module (no waivers beyond the `unused_*` sink wires that
docs/rtl.md explains), and a plain Verilog-2005 compile with Icarus."""

import subprocess

import pytest
import simrun

TOPS = [
    ("ant_decoder", {}),
    ("ant_pe", {"DECODE": 0}),
    ("ant_pe", {"DECODE": 1}),
    ("int4_pe", {}),
    ("int8_pe", {}),
    ("ant_array", {"ROWS": 1, "COLS": 1}),
    ("ant_array", {"ROWS": 3, "COLS": 5, "DECODE_IN_PE": 1}),
    ("ant_array", {"ROWS": 16, "COLS": 16}),
    ("ant_core", {"ROWS": 1, "COLS": 1}),
    ("ant_core", {"ROWS": 2, "COLS": 2, "DECODE_IN_PE": 1}),
    ("ant_core", {"ROWS": 8, "COLS": 8}),
    ("ant_core", {"ROWS": 3, "COLS": 5}),
    ("ant_core", {"ROWS": 16, "COLS": 16}),
    ("ant_core", {"ROWS": 32, "COLS": 32}),  # ZCU104's array
]


def test_every_module_is_linted():
    names = {p.stem for p in simrun.sources()}
    assert names == {top for top, _ in TOPS}, "add new modules to TOPS"
    for p in simrun.sources():
        text = p.read_text()
        assert f"module {p.stem}" in text and "`default_nettype none" in text, p.name


@pytest.mark.parametrize("top,params", TOPS, ids=[f"{t}-{p}" for t, p in TOPS])
def test_verilator_lint_wall(top, params):
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top,
           *(f"-G{k}={v}" for k, v in params.items()), *map(str, simrun.sources())]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), f"{' '.join(cmd)}\n{r.stderr}"


def test_lint_catches_a_problem(tmp_path):
    """The lint run above would fail on a real warning (here: an unused input)."""
    bad = tmp_path / "bad.v"
    bad.write_text("`default_nettype none\nmodule bad(input wire a, input wire b, output wire y);\n"
                   "assign y = a;\nendmodule\n")
    r = subprocess.run(["verilator", "--lint-only", "-Wall", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "UNUSED" in r.stderr


def test_icarus_verilog_2005(tmp_path):
    for top in ("ant_core", "int4_pe", "int8_pe"):
        r = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", top, "-o", str(tmp_path / "x.vvp"),
                            *map(str, simrun.sources())], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr

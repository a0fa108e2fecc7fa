"""`make timing` (antq.toolchain.timing): the routing allowance goes exactly into the arcs that
docs/rtl.md names, a real Yosys synthesis + sta of a small ant_core is parsed into a path whose
logic and routing add up, and the command line prints it and writes the JSON."""

import json
import re
import subprocess
import sys

import pytest
from antq.toolchain import timing


def arcs(text, module):
    body = re.search(rf"^module {module}\b.*?^endmodule", text, re.S | re.M).group(0)
    return {m.group(1).replace(" ", ""): int(m.group(2))
            for m in re.finditer(r"\(\s*([\w\[\] ]+?)\s*=>\s*[\w\[\]]+\s*\)\s*=\s*(\d+);", body)}


def setups(text, module):
    body = re.search(rf"^module {module}\b.*?^endmodule", text, re.S | re.M).group(0)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"\$setup\((\w+)\s*,[^;]*?(-?\d+)\)", body)}


def test_routing_allowance_goes_into_the_routed_arcs_only():
    orig, routed = timing.cells_sim().read_text(), timing.routed_library(400)
    for lut in ("LUT1", "LUT3", "LUT6"):
        assert {k: v + 400 for k, v in arcs(orig, lut).items()} == arcs(routed, lut)
    o, r = arcs(orig, "CARRY4"), arcs(routed, "CARRY4")
    carry_inputs = {"CI", "CYINIT", *(f"{p}[{i}]" for p in ("S", "DI") for i in range(4))}
    assert o.keys() == r.keys() == carry_inputs
    for pin in o:
        assert r[pin] - o[pin] == (400 if pin.startswith("CYINIT") else 0), pin  # S, DI, CI: in the slice
    o, r = arcs(orig, "MUXF7"), arcs(routed, "MUXF7")
    assert r == {"I0": o["I0"], "I1": o["I1"], "S": o["S"] + 400}
    o, r = setups(orig, "FDRE"), setups(routed, "FDRE")
    assert r["D"] == o["D"] == 0 and r["CE"] == o["CE"] + 400 and r["R"] == o["R"] + 400
    assert timing.routed_arc("LUT4", "I2") and not timing.routed_arc("CARRY4", "CI")
    assert not timing.routed_arc("FDRE", "D") and timing.routed_arc("FDSE", "S")


@pytest.fixture(scope="module")
def small():
    return timing.run(2, 2)


def test_small_core_path(small):
    assert small["rows"] == small["cols"] == 2 and small["cells"]["FDRE"] > 0
    path = small["path"]
    assert path[0]["cell"] == "BUFG" and path[1]["cell"].startswith("FD")  # clock, start flip-flop
    assert [h["at_ps"] for h in path] == sorted(h["at_ps"] for h in path)
    assert small["routed_nets"] >= sum(h["routed"] for h in path) >= 1
    assert small["logic_ps"] + small["routed_nets"] * small["route_ps"] == small["arrival_ps"]
    assert small["fmax_mhz"] == pytest.approx(1e6 / small["arrival_ps"])
    assert f"ant_core 2x2: worst path {small['arrival_ps'] / 1000:.2f} ns" in timing.describe(small)


def test_parse_rejects_a_report_without_a_path():
    with pytest.raises(timing.TimingError, match="Latest arrival"):
        timing.parse("No timing paths found.")


def test_cli(tmp_path):
    out = tmp_path / "t.json"
    r = subprocess.run([sys.executable, "-m", "antq.toolchain.timing", "--size", "1x1", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ant_core 1x1: worst path" in r.stdout and "MHz" in r.stdout
    assert json.loads(out.read_text())["1x1"]["route_ps"] == timing.ROUTE_PS
    r = subprocess.run([sys.executable, "-m", "antq.toolchain.timing", "--size", "big"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "16x16" in r.stderr

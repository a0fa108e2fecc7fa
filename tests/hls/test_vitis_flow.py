"""The Vitis/Vivado flow without Vitis: what ``antq vitis`` writes for each board, that the C and
RTL it names compile from any folder, the tool and version choice, and dry runs of
``hls/run_hls.tcl`` and ``overlay/bd/build.tcl`` under tclsh with the Xilinx commands recorded
(the scripts' own Tcl runs for real; only the Vitis/Vivado commands are stand-ins)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from antq.core import arch, golden, regmap, stream
from antq.toolchain import hls, verilator, vitis

ROOT = Path(__file__).resolve().parents[2]
RES = {"FF": "1", "LUT": "2", "BRAM": "0", "URAM": "0", "DSP": "0"}  # the Yosys count is tested below


@pytest.fixture(scope="module", params=sorted(arch.BOARDS))
def prepared(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"vitis-{request.param}")
    return request.param, vitis.prepare(request.param, out, resources=RES)


def test_prepare_writes_the_boards_inputs_with_absolute_paths(prepared):
    name, out = prepared
    b = arch.BOARDS[name]
    bb = json.loads((out / "ant_core_bb.json").read_text())
    assert bb["c_function_name"] == bb["rtl_top_module_name"] == "ant_core_bb"
    for f in [c["c_file"] for c in bb["c_files"]] + bb["rtl_files"]:
        assert Path(f).is_absolute() and Path(f).is_file(), f
    assert {Path(f) for f in bb["rtl_files"]} >= set(verilator.sources())
    incs = [Path(x[2:]) for c in bb["c_files"] for x in c["cflag"].split() if x.startswith("-I")]
    assert incs[0] == out and all(p.is_absolute() for p in incs)
    latency = str(stream.core_latency(b.array.rows, b.array.cols))
    assert bb["rtl_performance"] == {"latency": latency, "II": "1"}
    assert bb["rtl_resource_usage"] == RES
    header = (out / "ant_config.h").read_text()
    assert header == hls.config_header(b.array, b.max_burst)
    assert f"#define ANT_ROWS {b.array.rows}\n" in header
    assert f"#define ANT_MAX_BURST {b.max_burst}\n" in header
    wrapper = (out / "ant_core_bb.v").read_text()
    assert re.search(rf"parameter\s+ROWS\s*=\s*{b.array.rows}\b", wrapper)
    assert re.search(rf"parameter\s+COLS\s*=\s*{b.array.cols}\b", wrapper)
    cfg, cases = golden.read(out / "gemm_golden.txt")
    assert cfg == b.array and cases
    cfg, cases = golden.read_epilogue(out / "epilogue_golden.txt")  # the testbench's epilogue mode
    assert cfg == b.array and len(cases) > 10


def test_the_blackbox_c_model_compiles_from_another_folder(prepared, tmp_path):
    """The first `make hls` used to stop at `ant_config.h: No such file or directory`."""
    _, out = prepared
    bb = json.loads((out / "ant_core_bb.json").read_text())
    for c in bb["c_files"]:  # Vitis's own ap_int.h/hls_stream.h stand behind the shim here
        cmd = [hls._compiler(), "-std=c++14", "-fsyntax-only", *c["cflag"].split(),
               f"-I{hls.hls_dir() / 'shim'}", c["c_file"]]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_the_boards_wrapper_elaborates_with_the_core(prepared):
    _, out = prepared
    bb = json.loads((out / "ant_core_bb.json").read_text())
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-DECLFILENAME", "--top-module",
                        "ant_core_bb", *bb["rtl_files"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_core_resources_come_from_yosys(monkeypatch, tmp_path):
    calls = []

    def synth(d, mapping):
        calls.append((d.top, dict(d.parameters), mapping))
        return {"LUT6": 7, "LUT3": 3, "FDRE": 11, "DSP48E1": 2}

    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path))
    monkeypatch.setattr(vitis.yosys, "synth", synth)
    cfg = arch.ArrayConfig(4, 4)
    assert vitis.core_resources(cfg) == {"FF": "11", "LUT": "10", "BRAM": "0", "URAM": "0", "DSP": "2"}
    assert vitis.core_resources(cfg)["LUT"] == "10"  # cached: Yosys ran once
    assert calls == [("ant_core", {"ROWS": 4, "COLS": 4, "ACC_W": arch.ACC_BITS}, "default")]


@pytest.mark.parametrize(("banner", "version"), [
    ("****** Vitis HLS - High-Level Synthesis from C, C++ and OpenCL v2022.1 (64-bit)", "2022.1"),
    ("vitis-run v2024.2 (64-bit)\n  **** SW Build 5239630", "2024.2"),
    ("no version here", None),
])
def test_parse_version(banner, version):
    assert vitis.parse_version(banner) == version


def test_command_per_tool_and_version(monkeypatch):
    monkeypatch.delenv(vitis.ALLOW_ENV, raising=False)
    script = Path("/x/run_hls.tcl")
    assert vitis.command("vitis_hls", "2022.1", script) == ["vitis_hls", "-f", str(script)]
    want = ["vitis-run", "--mode", "hls", "--tcl", str(script)]
    assert vitis.command("vitis-run", "2024.2", script) == want
    for bad in ("2021.2", "2025.1", None):
        with pytest.raises(vitis.VitisError, match="supports Vitis HLS 2022.1 to 2024.2"):
            vitis.command("vitis_hls", bad, script)
    monkeypatch.setenv(vitis.ALLOW_ENV, "1")
    assert vitis.command("vitis_hls", "2025.1", script)[0] == "vitis_hls"


def test_no_vitis_on_path_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(vitis.VitisError, match="neither vitis_hls nor vitis-run is on PATH.*Nothing was"):
        vitis.find_tool()


def test_unknown_board_and_step_are_refused(tmp_path):
    with pytest.raises(vitis.VitisError, match="unknown board 'ultra96'"):
        vitis.prepare("ultra96", tmp_path, resources=RES)
    with pytest.raises(vitis.VitisError, match="unknown step 'impl'"):
        vitis.prepare("pynq-z2", tmp_path, resources=RES, step="impl")


# ---- dry runs under tclsh ------------------------------------------------------------------------

RECORDER = """
set ::calls {}
proc record {args} { lappend ::calls $args; return "" }
foreach c {COMMANDS} { proc $c {args} "record $c {*}\\$args" }
proc exit {args} { puts [join $::calls "\\n"]; ::exit_real 0 }
foreach c {get_bd_cells get_bd_intf_pins get_files current_project} { proc $c {args} {lindex $args end} }
"""


def _tclsh(script: str, cwd: Path, commands: list[str]) -> list[str]:
    pre = "rename exit exit_real\n" + RECORDER.replace("COMMANDS", " ".join(commands))
    r = subprocess.run(["tclsh"], input=pre + script, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


VITIS_COMMANDS = ["open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock",
                  "config_interface", "csim_design", "csynth_design", "cosim_design", "export_design"]


@pytest.mark.parametrize("step", vitis.STEPS)
def test_run_hls_tcl_dry_run(tmp_path, step):
    out = vitis.prepare("pynq-z2", tmp_path, resources=RES, step=step)
    calls = _tclsh(f"source {hls.hls_dir() / 'run_hls.tcl'}\n", out, VITIS_COMMANDS)
    names = [c.split()[0] for c in calls]
    want = {"csim": "csim_design", "synth": "csynth_design", "cosim": "cosim_design",
            "export": "export_design"}
    assert names[-1] == want[step]
    b = arch.BOARDS["pynq-z2"]
    assert f"set_part {b.part}" in calls
    assert f"create_clock -period {1000 / b.clock_mhz:.3f} -name default" in calls
    assert f"add_files -blackbox {out / 'ant_core_bb.json'}" in calls
    src = next(c for c in calls if c.startswith("add_files") and "ant_gemm.cpp" in c)
    assert f"-I{out} -I{hls.hls_dir()}" in src  # the board's header before the default one
    assert next(c for c in calls if c.startswith("csim_design")) == \
        f"csim_design -argv {{{out / 'gemm_golden.txt'} --random 200}}"
    if step in ("cosim", "export"):
        assert f"cosim_design -rtl verilog -argv {{{vitis.COSIM_ARGS}}}" in calls
    if step == "export":
        assert calls[-1].startswith(
            f"export_design -format ip_catalog -vendor {regmap.VENDOR} -library {regmap.LIBRARY} "
            f"-version {regmap.IP_REVISION} -ipname ant_gemm")


VIVADO_COMMANDS = ["version", "create_project", "get_board_parts", "set_property", "update_ip_catalog",
                   "get_ipdefs", "create_bd_design", "create_bd_cell", "apply_bd_automation",
                   "assign_bd_address", "validate_bd_design", "save_bd_design", "generate_target"]


@pytest.mark.parametrize("board", sorted(arch.BOARDS))
def test_block_design_puts_each_bundle_on_its_own_hp_port(tmp_path, board):
    out = vitis.prepare(board, tmp_path / "vitis", resources=RES)
    b = arch.BOARDS[board]
    # stand-ins that return what build.tcl tests: the IP exists, a .hwh was generated
    script = f"""
proc version {{args}} {{ record version {{*}}$args; return "2022.1" }}
proc get_ipdefs {{args}} {{ record get_ipdefs {{*}}$args; return "antq:hls:ant_gemm:1.0" }}
proc glob {{args}} {{ return "{tmp_path}/fake.hwh" }}
set fh [open {tmp_path}/fake.hwh w]; close $fh
set argv [list {board} hwh {out} {tmp_path}/bit]
source {ROOT / 'overlay' / 'bd' / 'build.tcl'}
"""
    calls = _tclsh(script, tmp_path, VIVADO_COMMANDS)
    auto = [c for c in calls if c.startswith("apply_bd_automation -rule xilinx.com:bd_rule:axi4")]
    slaves = {}
    for c in auto:
        pin = re.search(r"ant_gemm_0/(\w+)", c)[1]
        target = re.search(r"(Master|Slave) /ps/(\w+)", c)[2]
        slaves[pin] = target
    assert set(slaves) == {"s_axi_control", "m_axi_gmem_a", "m_axi_gmem_w", "m_axi_gmem_y"}
    data = [slaves[f"m_axi_gmem_{x}"] for x in "awy"]
    assert len(set(data)) == 3 and all("HP" in s for s in data)
    ps = next(c for c in calls if c.startswith("set_property -dict") and "FREQMHZ" in c)
    assert re.search(rf"FREQMHZ {b.clock_mhz:g}\b", ps)
    widths = re.findall(r"DATA_WIDTH (\d+)", ps)
    assert len(widths) == 3 and set(widths) == {str(b.array.bus_bits)}
    assert any(c.startswith("create_project -force ant") and c.endswith(f"-part {b.part}") for c in calls)
    assert (tmp_path / "bit" / "ant.hwh").is_file()

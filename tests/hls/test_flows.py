"""Build flows and artefacts: make targets without Vivado, no fake bitstreams, the Vitis blackbox
description, docs against the register map, and the overlay's command-line tools."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from antq import cli
from antq.core import arch, regmap
from antq.toolchain import hls

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ("pynq-z1", "pynq-z2", "zcu104", "kv260")


def _make(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.parametrize("target", ["hls", "hwh", "bitstream"])
def test_xilinx_targets_stop_at_once_without_the_tools(tmp_path, target):
    bindir = tmp_path / "bin"  # a PATH with make and a shell but no Xilinx tools
    bindir.mkdir()
    for tool in ("sh", "bash", "make", "env"):
        (bindir / tool).symlink_to(shutil.which(tool))
    before = sorted(p.name for p in (ROOT / "bitstreams").rglob("*"))
    r = _make(target, "BOARD=zcu104", path=str(bindir))
    assert r.returncode != 0
    assert "not on PATH" in r.stderr and "2022.1" in r.stderr and "Nothing was built" in r.stderr
    assert sorted(p.name for p in (ROOT / "bitstreams").rglob("*")) == before


def test_unknown_board_is_refused():
    r = _make("bitstream", "BOARD=ultra96")
    assert r.returncode != 0 and "not one of: pynq-z1 pynq-z2 zcu104 kv260" in r.stderr


def test_make_csim_passes():
    r = _make("csim")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all bit-exact" in r.stdout


def test_nothing_pretends_to_be_a_built_bitstream():
    readme = (ROOT / "bitstreams" / "README.md").read_text()
    for board in BOARDS:
        assert f"`{board}/`" in readme
        d = ROOT / "bitstreams" / board
        bit = d / "ant.bit"
        if bit.exists():  # a real build must say how it was built, with matching checksums
            info = (d / "BUILD_INFO").read_text()
            for f in ("ant.bit", "ant.hwh"):
                assert f"{hashlib.sha256((d / f).read_bytes()).hexdigest()}  {f}" in info
    assert not list((ROOT / "overlay" / "emulation").glob("*.bit"))
    assert "not** from Vivado" in (ROOT / "overlay" / "emulation" / "README.md").read_text()


def test_board_tcl_states_vivado_version_and_the_boards_are_one_list():
    listed = re.search(r"^OVERLAY_BOARDS := (.*)$", (ROOT / "mk" / "overlay.mk").read_text(), re.M)[1].split()
    assert sorted(listed) == sorted(arch.BOARDS)
    for board in arch.BOARDS:
        path = ROOT / "overlay" / "bd" / f"{board}.tcl"
        assert "set part" not in path.read_text()  # the part is arch.BOARDS[board].part, via settings.tcl
        # what build.tcl reads from the board file, as tclsh sees it (pynq-z1.tcl sources pynq-z2.tcl)
        script = (f"source {{{path}}}; puts $vivado_version; puts $board_part; puts [info procs ps_config]; "
                  "puts [llength $data_slaves]")
        r = subprocess.run(["tclsh"], input=script, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        version, part, proc, slaves = r.stdout.split("\n")[:4]
        assert version == "2022.1" and proc == "ps_config" and int(slaves) == 6
        assert board in part  # each board's own board files (pynq-z1 overrides pynq-z2's)
    assert regmap.VLNV in (ROOT / "overlay" / "bd" / "build.tcl").read_text()
    run_hls = (ROOT / "hls" / "run_hls.tcl").read_text()
    assert f"-vendor {regmap.VENDOR} -library {regmap.LIBRARY} -version {regmap.IP_REVISION}" in run_hls


def test_blackbox_description_matches_the_code(tmp_path):
    from antq.toolchain import vitis

    out = vitis.prepare("pynq-z2", tmp_path, resources={"FF": "0", "LUT": "0", "BRAM": "0", "URAM": "0",
                                                        "DSP": "0"})
    bb = json.loads((out / "ant_core_bb.json").read_text())
    decl = re.search(r"void ant_core_bb\((.*?)\);", (ROOT / "hls" / "ant_core.h").read_text(), re.S)[1]
    assert [p["c_name"] for p in bb["c_parameters"]] == [p.split("&")[-1].strip() for p in decl.split(",")]
    wrapper = (ROOT / "hls" / "ant_core_bb.v").read_text()
    ports = [v for p in bb["c_parameters"] for v in p["rtl_ports"].values()]
    ports += list(bb["rtl_common_signal"].values())
    for port in ports:
        assert re.search(rf"\b{port}\b", wrapper), port
    assert f"module {bb['rtl_top_module_name']}" in wrapper
    src = (ROOT / "hls" / "ant_gemm.cpp").read_text()
    assert re.search(rf"ANT_PROCESS\(\"ant_core\", {bb['c_function_name']}\(", src)


def test_docs_register_table_is_the_register_map():
    doc = (ROOT / "docs" / "overlay.md").read_text()
    rows = re.findall(r"^\| (0x[0-9a-f]+) \| (\w+) \| ([\w-]+) \|", doc, re.M)
    want = [(r.offset, r.name, r.access) for r in regmap.registers()]
    assert [(int(o, 16), n, a) for o, n, a in rows] == want
    assert regmap.VLNV in doc


def test_generated_files_name_their_generator():
    assert "make config" in hls.config_path().read_text()
    assert "make emu-hwh" in (ROOT / "overlay" / "emulation" / "ant.hwh").read_text()


def test_cli_bench_gemm_prints_ratio_against_numpy(capsys):
    assert cli.main(["bench-gemm", "--shape", "24", "16", "40", "--backends", "ref,csim,rtl",
                     "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "x numpy" in out and "NO" not in out
    for be in ("numpy int32", "csim", "rtl"):
        assert re.search(rf"^{be}\s+\d", out, re.M), be


def test_cli_bench_gemm_json_contract(tmp_path, capsys):
    out = tmp_path / "bench" / "gemm.json"
    assert cli.main(["bench-gemm", "--shape", "40", "24", "72", "--backends", "ref,rtl", "--a-fmt", "int4s",
                     "--w-fmt", "int4s", "--array", "8", "4", "--repeats", "1", "--json", str(out)]) == 0
    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"numpy int32", "ref", "rtl"}
    for be in ("ref", "rtl"):
        r = rows[be]
        assert r["array"] == [8, 4] and r["peak_macs_per_cycle"] == 32 and r["macs"] == 40 * 24 * 72
        assert r["utilization"] == r["macs"] / (r["cycles"] * 32) and 0 < r["utilization"] <= 1
        assert set(r["stages"]) == {"load", "compute", "store"} and r["stages_source"] == "model"
        assert r["clock_mhz"] == 100 and r["exact"]
        assert r["counters"]["core_busy"] <= r["cycles"]
    assert rows["ref"]["cycles"] == rows["rtl"]["cycles"]
    assert "8x4 PEs" in capsys.readouterr().out


def test_cli_bench_gemm_refuses_a_bad_array(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench-gemm", "--array", "0", "8"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--array: must be between 1 and 256, got 0" in err


def test_cli_overlay_info(capsys):
    assert cli.main(["overlay-info", "--backend", "ref"]) == 0
    out = capsys.readouterr().out
    assert regmap.VLNV in out and f"{arch.ARRAY_ROWS}x{arch.ARRAY_COLS} PEs" in out
    hi = regmap.by_name()["cycles_hi"].offset
    assert f"0x{hi:02x}  read-only   cycles_hi" in out and "read-only   core_busy" in out


def test_cli_reports_bad_backend(capsys):
    with pytest.raises(SystemExit) as e:  # argparse: the choices are antq.core.backends.BACKENDS
        cli.main(["overlay-info", "--backend", "gpu"])
    assert e.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err

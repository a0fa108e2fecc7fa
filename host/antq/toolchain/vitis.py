"""The Vitis HLS flow of the ``ant_gemm`` IP for one board (``make hls BOARD=...``).

Vitis compiles from its own project folder, so everything it reads is written for the board into
``<build>/vitis/<board>`` with absolute paths (:func:`prepare`):

* ``ant_config.h``: the board's array, bus and burst limit (:func:`antq.toolchain.hls.config_header`);
* ``ant_core_bb.v``: the blackbox wrapper with the board's ROWS/COLS as parameter defaults (the
  blackbox JSON has no way to pass parameters);
* ``ant_core_bb.json``: the RTL-blackbox description, ``c_function_name`` = ``rtl_top_module_name``
  = ``ant_core_bb``, absolute C and RTL paths, ``-I`` to the board's header, and the core's Yosys
  LUT/FF/DSP count at the board's size (cached) instead of placeholders;
* ``settings.tcl``: part, clock, bus width, paths and testbench arguments for ``hls/run_hls.tcl``
  and ``overlay/bd/build.tcl``;
* ``gemm_golden.txt``, ``epilogue_golden.txt``: golden GEMM and epilogue vectors for the board's
  array (:mod:`antq.core.golden`); the testbench checks both modes of the IP on them.

:func:`command` picks the tool: ``vitis_hls -f`` for 2022.1 to 2024.1, ``vitis-run --mode hls
--tcl`` for 2024.2 (which deprecates the former); any other version is refused unless
``ANTQ_ALLOW_VITIS_VERSION=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..core import arch, golden, stream
from . import hls, verilator, yosys
from .paths import build_dir, file_lock

SUPPORTED = ("2022.1", "2022.2", "2023.1", "2023.2", "2024.1", "2024.2")
"""Vitis HLS releases the flow is written for (UG1399 of each)."""
ALLOW_ENV = "ANTQ_ALLOW_VITIS_VERSION"
STEPS = ("csim", "synth", "cosim", "export")
"""What ``run_hls.tcl`` does, in order; a run stops after the step it is given."""
COSIM_ARGS = "none --random 12 --seed 2"
"""C/RTL co-simulation runs the testbench on a few random GEMMs (each is a full RTL simulation)."""


class VitisError(RuntimeError):
    """The Vitis flow cannot run (no tool, an unsupported version) or failed."""


def board(name: str) -> arch.Board:
    if name not in arch.BOARDS:
        raise VitisError(f"unknown board {name!r}; expected one of {', '.join(arch.BOARDS)}")
    return arch.BOARDS[name]


def parse_version(text: str) -> str | None:
    """``2023.2`` from a tool's version banner (``... v2023.2 (64-bit)``), or None."""
    hit = re.search(r"\bv?(20\d\d\.\d)\b", text)
    return hit[1] if hit else None


def command(tool: str, version: str | None, script: Path) -> list[str]:
    """The command line that runs ``script`` with ``tool`` (``vitis_hls`` or ``vitis-run``)."""
    if version not in SUPPORTED and not os.environ.get(ALLOW_ENV):
        raise VitisError(f"{tool} is version {version or 'unknown'}; the flow supports Vitis HLS "
                         f"{SUPPORTED[0]} to {SUPPORTED[-1]} (set {ALLOW_ENV}=1 to try anyway)")
    if tool == "vitis-run":
        return [tool, "--mode", "hls", "--tcl", str(script)]
    if tool == "vitis_hls":
        return [tool, "-f", str(script)]
    raise VitisError(f"unknown Vitis tool {tool!r}")


def find_tool() -> tuple[str, str | None]:
    """(tool, version) of the Vitis HLS on PATH: ``vitis-run`` from 2024.2 on, else ``vitis_hls``."""
    found = {}
    for tool, flag in (("vitis-run", "--version"), ("vitis_hls", "-version")):
        if shutil.which(tool):
            r = subprocess.run([tool, flag], capture_output=True, text=True, timeout=120)
            found[tool] = parse_version(r.stdout + r.stderr)
    run_v = found.get("vitis-run")
    if run_v and run_v >= "2024.2":
        return "vitis-run", run_v
    if "vitis_hls" in found:
        return "vitis_hls", found["vitis_hls"]
    if "vitis-run" in found:
        return "vitis-run", run_v
    raise VitisError("neither vitis_hls nor vitis-run is on PATH. The HLS flow needs Vitis HLS "
                     f"{SUPPORTED[0]} to {SUPPORTED[-1]}: source <Xilinx>/Vitis/<version>/settings64.sh. "
                     "Nothing was built.")


def wrapper_source(cfg: arch.ArrayConfig) -> str:
    """``hls/ant_core_bb.v`` with the array's ROWS and COLS as its parameter defaults."""
    text = (hls.hls_dir() / "ant_core_bb.v").read_text()
    for name, value in (("ROWS", cfg.rows), ("COLS", cfg.cols)):
        text, n = re.subn(rf"(parameter\s+{name}\s*=\s*)\d+", rf"\g<1>{value}", text, count=1)
        if n != 1:
            raise VitisError(f"hls/ant_core_bb.v has no `parameter {name} = <n>` to set")
    return text


def core_resources(cfg: arch.ArrayConfig) -> dict[str, str]:
    """The core's LUT/FF/DSP at this size from Yosys (``synth_xilinx``), cached by RTL content."""
    d = yosys.Design(f"ant_core_{cfg.rows}x{cfg.cols}", "ant_core",
                     {"ROWS": cfg.rows, "COLS": cfg.cols, "ACC_W": cfg.acc_bits})
    key = hls._digest(verilator.sources(), [yosys.script(d, "default"), yosys.yosys_version()])
    cache = build_dir() / "vitis" / f"core-area-{d.name}-{key}.json"
    if not cache.is_file():
        print(f"antq: Yosys area of {d.name} for the blackbox JSON (once per RTL change; minutes)",
              file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(yosys.summary(yosys.synth(d, "default"))))
    s = json.loads(cache.read_text())
    return {"FF": str(s["FF"]), "LUT": str(s["LUT"]), "BRAM": "0", "URAM": "0", "DSP": str(s["DSP"])}


def blackbox_json(cfg: arch.ArrayConfig, out: Path, resources: dict[str, str]) -> dict:
    """The RTL-blackbox description (UG1399 "Adding RTL Blackbox Functions") for ``out``."""
    h = hls.hls_dir()
    return {
        "c_function_name": "ant_core_bb",
        "rtl_top_module_name": "ant_core_bb",
        "c_files": [{"c_file": str(h / "ant_core_model.cpp"), "cflag": f"-I{out} -I{h}"}],
        "rtl_files": [str(out / "ant_core_bb.v"), *map(str, verilator.sources())],
        "c_parameters": [
            {"c_name": "s_axis", "c_port_direction": "in",
             "rtl_ports": {"FIFO_empty_flag": "s_axis_empty_n", "FIFO_read_enable": "s_axis_read",
                           "FIFO_data_read_in": "s_axis_dout"}},
            {"c_name": "m_axis", "c_port_direction": "out",
             "rtl_ports": {"FIFO_full_flag": "m_axis_full_n", "FIFO_write_enable": "m_axis_write",
                           "FIFO_data_write_out": "m_axis_din"}},
        ],
        "rtl_common_signal": {
            "module_clock": "ap_clk", "module_reset": "ap_rst", "module_clock_enable": "ap_ce",
            "ap_ctrl_chain_protocol_idle": "ap_idle", "ap_ctrl_chain_protocol_start": "ap_start",
            "ap_ctrl_chain_protocol_ready": "ap_ready", "ap_ctrl_chain_protocol_done": "ap_done",
            "ap_ctrl_chain_protocol_continue": "ap_continue",
        },
        # first beat in to first result out; the blackbox then takes one beat per cycle
        "rtl_performance": {"latency": str(stream.core_latency(cfg.rows, cfg.cols)), "II": "1"},
        "rtl_resource_usage": resources,
    }


def _tcl_str(v: object) -> str:
    return "{" + str(v) + "}"


def settings_tcl(b: arch.Board, out: Path, step: str = "export") -> str:
    values = {
        "board": b.name, "part": b.part, "clock_mhz": f"{b.clock_mhz:g}",
        "clock_ns": f"{1000 / b.clock_mhz:.3f}", "bus_bits": b.array.bus_bits, "hls": hls.hls_dir(),
        "conf": out, "blackbox": out / "ant_core_bb.json", "step": step,
        "tb_args": f"{out / 'gemm_golden.txt'} --random 200", "cosim_args": COSIM_ARGS,
    }
    lines = [f"# settings.tcl: GENERATED by `antq vitis --board {b.name}` for hls/run_hls.tcl. Do not edit."]
    lines += [f"set antq_{k} {_tcl_str(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def prepare(name: str, out: Path | None = None, resources: dict[str, str] | None = None,
            step: str = "export") -> Path:
    """Write the board's Vitis inputs into ``out`` (default ``<build>/vitis/<board>``); return it.
    ``resources`` overrides the Yosys count in the JSON (tests)."""
    b = board(name)
    if step not in STEPS:
        raise VitisError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    out = Path(out or build_dir() / "vitis" / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    res = resources if resources is not None else core_resources(b.array)
    with file_lock(out / ".lock"):
        (out / "ant_config.h").write_text(hls.config_header(b.array, b.max_burst))
        (out / "ant_core_bb.v").write_text(wrapper_source(b.array))
        (out / "ant_core_bb.json").write_text(json.dumps(blackbox_json(b.array, out, res), indent=2) + "\n")
        golden.write(out / "gemm_golden.txt", b.array)
        golden.write_epilogue(out / "epilogue_golden.txt", b.array)
        (out / "settings.tcl").write_text(settings_tcl(b, out, step))
    return out


def run(name: str, step: str = "export", out: Path | None = None) -> int:
    """Prepare and run ``hls/run_hls.tcl`` up to ``step``; the tool's output goes to the terminal
    and ``<out>/vitis_hls.log``. Returns the tool's exit status."""
    tool, version = find_tool()
    cmd = command(tool, version, hls.hls_dir() / "run_hls.tcl")
    out = prepare(name, out, step=step)
    print(f"antq: {tool} {version} in {out}: {' '.join(cmd)}", file=sys.stderr)
    with open(out / "vitis_hls.log", "w") as log:
        p = subprocess.Popen(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None
        for line in p.stdout:
            sys.stdout.write(line)
            log.write(line)
        return p.wait()

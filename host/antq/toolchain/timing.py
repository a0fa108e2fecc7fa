"""Static timing estimate of ``ant_core`` on the xc7z020-1 without Vivado (``make timing``).

Each array size is synthesized with Yosys 0.23 (``synth_xilinx -family xc7 -noiopad -flatten
-nodsp -abc9``), and Yosys's ``sta`` finds the latest arrival over the flattened netlist with the
cell delays of Yosys's own Xilinx models (``+/xilinx/cells_sim.v``, from Project X-Ray), which
have no routing. The routing allowance is added inside those models before ``sta`` runs, so the
reported path is the worst one *with* routing: every net that leaves a slice costs
:data:`ROUTE_PS`, nets inside a slice cost nothing. That is, a LUT input, a carry chain's CYINIT,
a MUXF7/F8 select and a flip-flop's CE, R or S pin take the allowance; a LUT driving its
slice's carry chain (S, DI) or MUXF7/F8, the carry chain itself (CI) and a LUT or carry output
into its own flip-flop (D) do not. The estimated Fmax is 1 / (latest arrival), the arrival
counting the clock buffer and clock-to-Q of the start flip-flop and any setup of the end one.
Vivado's placed and routed result will differ; the allowance is a stated assumption.

The RTL comes from this package's ``overlay/rtl`` unless ``rtl_dir`` (``--rtl-dir``) names another
folder of ``*.v`` files, e.g. an older checkout's, which then gets the very same flow and allowance.
The result also counts the netlist's LUTs (LUT1-6) and flip-flops (``FD*``), :func:`lut_ff`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .paths import build_dir, source_dir

ROUTE_PS = 400
"""Routing allowance per net between slices, ps."""
TARGET_MHZ = 150.0
SIZES = ((16, 16), (8, 8))
"""The default array (antq.core.arch) and the 8x8 one."""
TIMEOUT_S = 1800

# routed inputs per cell type (everything else is inside the slice)
_ROUTED_ARCS = {**{f"LUT{i}": None for i in range(1, 7)}, "INV": None, "MUXF7": ("S",), "MUXF8": ("S",),
                "CARRY4": ("CYINIT",)}
_ROUTED_SETUP = ("CE", "R", "S")
CLOCK_CELLS = ("BUFG", "FDRE", "FDSE", "FDCE", "FDPE")
"""Cells whose input net on the path is the clock (left out of the path's named nets)."""
_ARC = re.compile(r"\((\s*)(\w+)(\[\d+\])?(\s*=>\s*[\w\[\]]+\s*\)\s*=\s*)(\d+)(\s*;)")
_SETUP = re.compile(r"(\$setup\(\s*)(\w+)(\s*,[^;]*,\s*(?:/\*[^*]*\*/\s*)?)(-?\d+)(\s*\))")
_PATH = re.compile(r"^\s*(\d+)\s+(\S+)\s+\((\w+)\.([\w\[\]]+)->([\w\[\]]+)\)\s*$")
_INPUT = re.compile(r"^\d+\s+(\S.*?)\s+\(<primary input>\)$")


class TimingError(RuntimeError):
    """Yosys failed or its timing report could not be read."""


def _yosys() -> str:
    path = shutil.which("yosys")
    if path is None:
        raise TimingError("yosys not found on PATH; `make setup` installs it (apt: yosys)")
    return path


def cells_sim() -> Path:
    """Yosys's Xilinx cell models (``+/xilinx/cells_sim.v``) next to the yosys binary."""
    path = Path(_yosys()).resolve().parent.parent / "share" / "yosys" / "xilinx" / "cells_sim.v"
    if not path.exists():
        raise TimingError(f"Yosys's Xilinx cell models are not at {path}")
    return path


def routed_arc(cell: str, pin: str) -> bool:
    """Whether the net into ``pin`` of ``cell`` takes the routing allowance (see the module doc)."""
    pin = pin.split("[")[0]
    if cell in _ROUTED_ARCS:
        pins = _ROUTED_ARCS[cell]
        return pins is None or pin in pins
    return cell.startswith("FD") and pin in _ROUTED_SETUP


def routed_library(route_ps: int = ROUTE_PS) -> str:
    """cells_sim.v with ``route_ps`` added to every routed arc and flip-flop setup."""
    def arc(cell: str, a: re.Match) -> str:
        if not routed_arc(cell, a.group(2)):
            return a.group(0)
        pin = f"{a.group(1)}{a.group(2)}{a.group(3) or ''}{a.group(4)}"
        return f"({pin}{int(a.group(5)) + route_ps}{a.group(6)}"

    def setup(s: re.Match) -> str:
        if s.group(2) not in _ROUTED_SETUP:
            return s.group(0)
        return f"{s.group(1)}{s.group(2)}{s.group(3)}{max(0, int(s.group(4))) + route_ps}{s.group(5)}"

    text = cells_sim().read_text()
    out, pos = [], 0
    for m in re.finditer(r"^module\s+(\\?\S+?)\s*[(#].*?^endmodule", text, re.S | re.M):
        name, block = m.group(1), m.group(0)
        if name in _ROUTED_ARCS:
            block = _ARC.sub(lambda a, cell=name: arc(cell, a), block)
        elif name.startswith("FD"):
            block = _SETUP.sub(setup, block)
        out.append(text[pos:m.start()] + block)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def script(rows: int, cols: int, library: Path, sta: Path, stat: Path, rtl_dir: Path | None = None) -> str:
    """The Yosys script for ``ant_core`` rows x cols from the ``*.v`` of ``rtl_dir`` (yosys runs there)."""
    rtl_dir = source_dir("overlay/rtl") if rtl_dir is None else Path(rtl_dir)
    srcs = " ".join(p.name for p in sorted(rtl_dir.glob("*.v")))
    if not srcs:
        raise TimingError(f"no *.v files in {rtl_dir}")
    return "; ".join([
        f"read_verilog -defer {srcs}",
        f"chparam -set ROWS {rows} -set COLS {cols} ant_core",
        "hierarchy -top ant_core",
        "synth_xilinx -family xc7 -noiopad -flatten -nodsp -abc9",
        f"tee -q -o {stat} stat -json",
        f"read_verilog -lib -specify {library}",
        f"tee -q -o {sta} sta",
    ])


def parse(report: str, route_ps: int = ROUTE_PS) -> dict:
    """The latest arrival and its path from ``sta``'s report, split into logic and routing."""
    m = re.search(r"Latest arrival time in '\S+' is (\d+)", report)
    if m is None:
        raise TimingError("no 'Latest arrival time' in Yosys's sta report")
    arrival = int(m.group(1))
    path, lines = [], report[m.end():].splitlines()
    for i, line in enumerate(lines):
        p = _PATH.match(line)
        if p is None:
            if path and not line.strip():
                break
            continue
        net = lines[i + 1].strip() if i + 1 < len(lines) else ""
        path.append({"at_ps": int(p.group(1)), "cell": p.group(3), "from": p.group(4), "to": p.group(5),
                     "net": net, "routed": routed_arc(p.group(3), p.group(4))})
    if not path:
        raise TimingError("Yosys's sta report has no path")
    path.reverse()  # start point first
    routed = sum(h["routed"] for h in path)
    setup = arrival - path[-1]["at_ps"]  # the end flip-flop's setup, routed if CE/R/S
    routed += setup >= route_ps
    return {"arrival_ps": arrival, "routed_nets": routed, "route_ps": route_ps,
            "logic_ps": arrival - routed * route_ps, "fmax_mhz": 1e6 / arrival, "path": path}


def lut_ff(cells: dict[str, int]) -> dict[str, int]:
    """LUTs (LUT1..LUT6) and flip-flops (every ``FD*`` cell) of a ``stat -json`` cell count."""
    return {"lut": sum(int(n) for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c)),
            "ff": sum(int(n) for c, n in cells.items() if c.startswith("FD"))}


def run(rows: int, cols: int, route_ps: int = ROUTE_PS, rtl_dir: Path | None = None) -> dict:
    """Synthesize ``ant_core`` (rows x cols), run ``sta`` with the allowance; the parsed result.

    ``rtl_dir`` is the folder of Verilog sources (default this package's ``overlay/rtl``). The
    result has the path (:func:`parse`), ``rows``, ``cols``, Yosys's ``cells`` by type and their
    ``lut`` and ``ff`` totals (:func:`lut_ff`).
    """
    rtl_dir = source_dir("overlay/rtl") if rtl_dir is None else Path(rtl_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="antq-timing-") as tmp:
        tmp = Path(tmp)
        lib, sta, stat = tmp / "cells_routed.v", tmp / "sta.txt", tmp / "stat.json"
        lib.write_text(routed_library(route_ps))
        cmd = [_yosys(), "-q", "-l", str(tmp / "yosys.log"), "-p",
               script(rows, cols, lib, sta, stat, rtl_dir)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=rtl_dir)
        except subprocess.TimeoutExpired:
            raise TimingError(f"yosys took more than {TIMEOUT_S} s on ant_core {rows}x{cols}") from None
        if r.returncode != 0 or not sta.exists():
            log = (tmp / "yosys.log").read_text() if (tmp / "yosys.log").exists() else ""
            tail = "\n".join((r.stderr + log).splitlines()[-20:])
            raise TimingError(f"yosys failed on ant_core {rows}x{cols}, exit {r.returncode}:\n{tail}")
        out = parse(sta.read_text(), route_ps)
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    cells = {k: int(v) for k, v in sorted(cells.items())}
    out.update(rows=rows, cols=cols, cells=cells, **lut_ff(cells))
    return out


def start_port(res: dict) -> str | None:
    """The input port the worst path starts at, if it starts at one rather than at a flip-flop.

    ``sta`` puts an input port's arrival at 0, so such a path leaves out whatever drives the port
    (the sender's clock-to-Q and its net)."""
    first = res["path"][0]
    m = _INPUT.match(first["net"])
    return m.group(1) if m and first["cell"] not in CLOCK_CELLS else None


def describe(res: dict) -> str:
    """A few lines: the estimate, where the path starts and ends, and its cells."""
    ns = res["arrival_ps"] / 1000
    verdict = "met" if res["fmax_mhz"] >= TARGET_MHZ else "NOT met"
    named = [h["net"] for h in res["path"] if h["net"].startswith("\\") and h["cell"] not in CLOCK_CELLS]
    port = start_port(res)
    if port is not None:
        named.insert(0, f"input port {port} (arrival 0)")
    hops = " > ".join(f"{h['cell']}.{h['from']}{'*' if h['routed'] else ''}" for h in res["path"])
    head = (f"ant_core {res['rows']}x{res['cols']}: worst path {ns:.2f} ns = {res['logic_ps'] / 1000:.2f} ns "
            f"logic + {res['routed_nets']} routed nets x {res['route_ps'] / 1000:.2f} ns -> "
            f"{res['fmax_mhz']:.0f} MHz (target {TARGET_MHZ:.0f} MHz: {verdict})"
            + (f"; {res['lut']} LUT, {res['ff']} FF" if "lut" in res else ""))
    return "\n".join([
        head,
        f"  from {named[0] if named else '?'} through {', '.join(named[1:]) or '-'}",
        f"  cells (* = routed net into the pin): {hops}",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m antq.toolchain.timing", description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="append", metavar="RxC",
                    help="array size (repeatable; default 16x16 and 8x8)")
    ap.add_argument("--route-ps", type=int, default=ROUTE_PS, help="routing allowance per net, ps")
    ap.add_argument("--rtl-dir", type=Path, default=None,
                    help="folder of the Verilog sources (default this package's overlay/rtl)")
    ap.add_argument("-o", "--output", type=Path, default=None,
                    help="JSON result (default <build>/timing.json)")
    args = ap.parse_args(argv)
    try:
        sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.size] if args.size else list(SIZES)
    except ValueError:
        ap.error("--size must look like 16x16")
    print(f"Yosys 0.23 synth_xilinx -nodsp -abc9 + sta on {len(sizes)} array size(s), "
          f"{args.route_ps / 1000:.2f} ns per routed net (minutes) ...", flush=True)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda rc: run(*rc, route_ps=args.route_ps, rtl_dir=args.rtl_dir),
                                    sizes))
    except TimingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for res in results:
        print(describe(res))
    out = args.output or build_dir() / "timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({f"{r['rows']}x{r['cols']}": r for r in results}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Yosys cost report of the ANT PE array (``make area``).

Every design is synthesized with Yosys (``synth_xilinx -family xc7 -noiopad -flatten``) twice:
with the default mapping, where multipliers and adders may go to DSP48E1 slices, and with
``-nodsp`` (LUTs and flip-flops only). ``-flatten`` (Vivado's default too) optimizes an array as
one netlist: kept hierarchical, Yosys 0.23 maps the very same PE module to 191 or 272 cells
depending on the surrounding design (ABC sees its cells in another order), which made an 8x8
array cost more per PE than a 16x16 one; and its ``stat -json`` is not valid JSON for a
hierarchical design. ``stat -json`` gives the cell counts by type, which go unchanged
into ``build/area.json``; the printed table sums them into LUT / FF / CARRY4 / DSP and adds
LUTs per MAC/cycle and the share of an xc7z020 (PYNQ-Z1/Z2) that a 16x16 array takes. `antq area`
synthesizes :func:`quick_designs` (a few minutes) unless given `--full` (every design, what
`make docs` measures).

The baselines are fair by construction: ``int4_pe`` and ``int8_pe`` have the same accumulator
width, the same registered operand pass-through and the same readout port as ``ant_pe``; only
the multiply differs (see overlay/rtl/*.v and docs/rtl.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..core import arch
from .paths import source_dir

MAPPINGS = ("default", "nodsp")
XC7Z020 = {"LUT": 53_200, "FF": 106_400, "DSP": 220}
"""The xc7z020 of the PYNQ-Z1 and PYNQ-Z2 (the smallest supported boards)."""
TIMEOUT_S = 1800


@dataclass(frozen=True)
class Design:
    """One synthesis run: a top module and its parameters; ``macs`` = MACs per cycle."""

    name: str
    top: str
    parameters: dict = field(default_factory=dict)
    macs: int = 1


def designs() -> list[Design]:
    """The report's designs: the PEs, the decoder, and both array variants at 4x4, 8x8, 16x16."""
    acc = {"ACC_W": arch.ACC_BITS}
    out = [
        Design("int4_pe", "int4_pe", acc),
        Design("int8_pe", "int8_pe", acc),
        Design("ant_pe", "ant_pe", {**acc, "DECODE": 0}),
        Design("ant_pe_decode", "ant_pe", {**acc, "DECODE": 1}),
        Design("ant_decoder", "ant_decoder", {}, macs=0),
    ]
    for n in (4, 8, 16):
        for variant, decode in (("edge", 0), ("pe", 1)):
            out.append(Design(f"ant_array_{variant}_{n}x{n}", "ant_array",
                              {**acc, "ROWS": n, "COLS": n, "DECODE_IN_PE": decode}, macs=n * n))
    return out


QUICK_MAX_ARRAY = 8
"""``antq area`` without ``--full`` stops at 8x8 arrays (the overlay's size): a few minutes on 2
cores, where the two 16x16 arrays alone take most of the 10-30 minutes of the full set."""


def quick_designs() -> list[Design]:
    """The default set of ``antq area``: every PE and the decoder, and the arrays up to
    :data:`QUICK_MAX_ARRAY`, so that every ratio of :func:`checks` but the xc7z020 share prints."""
    return [d for d in designs() if d.parameters.get("ROWS", 0) <= QUICK_MAX_ARRAY]


def yosys_version() -> str:
    return subprocess.run([_yosys(), "-V"], capture_output=True, text=True, check=True).stdout.strip()


def _yosys() -> str:
    path = shutil.which("yosys")
    if path is None:
        raise RuntimeError("yosys not found on PATH; `make setup` installs it (apt: yosys)")
    return path


def script(d: Design, mapping: str) -> str:
    """The Yosys script for one design and mapping."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    srcs = " ".join(p.name for p in sorted(source_dir("overlay/rtl").glob("*.v")))  # yosys runs there
    chparam = " ".join(f"-set {k} {v}" for k, v in d.parameters.items())
    return "; ".join(filter(None, [
        f"read_verilog -defer {srcs}",
        f"chparam {chparam} {d.top}" if chparam else "",
        f"synth_xilinx -family xc7 -noiopad -flatten -top {d.top}{' -nodsp' if mapping == 'nodsp' else ''}",
        "tee -q -o {out} stat -json",
    ]))


def synth(d: Design, mapping: str) -> dict[str, int]:
    """Cell counts by type of one design under one mapping, as Yosys reports them."""
    with tempfile.TemporaryDirectory(prefix="antq-area-") as tmp:
        out = Path(tmp) / "stat.json"
        cmd = [_yosys(), "-q", "-l", str(Path(tmp) / "yosys.log"), "-p", script(d, mapping).format(out=out)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                               cwd=source_dir("overlay/rtl"))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"yosys took more than {TIMEOUT_S} s on {d.name} ({mapping})") from None
        if r.returncode != 0 or not out.exists():
            log = (Path(tmp) / "yosys.log").read_text() if (Path(tmp) / "yosys.log").exists() else ""
            tail = "\n".join((r.stderr + log).splitlines()[-20:])
            raise RuntimeError(f"yosys failed on {d.name} ({mapping}), exit {r.returncode}:\n{tail}")
        stat = json.loads(out.read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {k: int(v) for k, v in sorted(cells.items())}


def summary(cells: dict[str, int]) -> dict[str, int]:
    """LUT, FF, CARRY4, DSP48E1 and MUXF7/8 totals.

    LUT counts LUT1-6, SRL shift registers and Yosys's INV cells (an inverter costs at most a
    LUT1; Vivado usually folds it into a neighbour), so it errs on the high side.
    """
    def total(pattern: str) -> int:
        return sum(n for c, n in cells.items() if re.fullmatch(pattern, c))

    return {"LUT": total(r"LUT\d(_2)?|SRL16E|SRLC32E|INV"), "FF": total(r"FD[CPRS]E?"),
            "CARRY4": total(r"CARRY4"), "DSP": total(r"DSP48E1"), "MUXF": total(r"MUXF[78]")}


def expected_seconds(d: Design) -> float:
    """A rough synthesis time of one run of ``d`` (Yosys 0.23 on one core: a PE about 7 s, an 8x8
    array 45 s edge-decoded and 75 s PE-decoded), to order the runs and to weight the progress bar,
    so that its ETA holds from the first run on instead of counting a PE like a 16x16 array."""
    pes = d.parameters.get("ROWS", 0) * d.parameters.get("COLS", 0)
    return 7.0 + pes * (1.05 if d.parameters.get("DECODE_IN_PE") else 0.6)


def run(selected: list[Design] | None = None, jobs: int = 2, progress: bool = True) -> dict:
    """Synthesize every (design, mapping), ``jobs`` at a time; return the area.json content."""
    from tqdm import tqdm

    selected = designs() if selected is None else selected
    version = yosys_version()
    tasks = [(d, m) for d in selected for m in MAPPINGS]
    tasks.sort(key=lambda t: -expected_seconds(t[0]))  # longest first, so that the workers finish together
    results = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(synth, d, m): (d, m) for d, m in tasks}
        total = sum(expected_seconds(d) for d, _ in tasks)
        with tqdm(total=total, desc="yosys synth_xilinx", disable=not progress,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]") as bar:
            for i, f in enumerate(as_completed(futures), 1):  # as they finish, whichever worker ran them
                d, m = futures[f]
                results[d.name, m] = f.result()
                bar.set_postfix_str(f"{i}/{len(tasks)} runs, {d.name} {m}", refresh=False)
                bar.update(expected_seconds(d))
    report = {}
    for d in selected:
        report[d.name] = {"top": d.top, "parameters": dict(d.parameters), "macs_per_cycle": d.macs,
                          "yosys": version}
        for m in MAPPINGS:
            cells = results[d.name, m]
            report[d.name][m] = {"mapping": m, "script": script(d, m).format(out="stat.json"),
                                 "cells": cells, "summary": summary(cells)}
    return report


def rows(report: dict) -> list[list[str]]:
    """Table rows: design, mapping, LUT, FF, CARRY4, DSP, MUXF7/8, LUT per MAC/cycle."""
    out = []
    for name, d in report.items():
        for m in MAPPINGS:
            s = d[m]["summary"]
            per_mac = f"{s['LUT'] / d['macs_per_cycle']:.1f}" if d["macs_per_cycle"] else "-"
            out.append([name, m, str(s["LUT"]), str(s["FF"]), str(s["CARRY4"]), str(s["DSP"]),
                        str(s["MUXF"]), per_mac])
    return out


HEAD = ["design", "mapping", "LUT", "FF", "CARRY4", "DSP", "MUXF7/8", "LUT/MAC"]


def table(report: dict) -> str:
    r = rows(report)
    widths = [max(len(x) for x in col) for col in zip(HEAD, *r, strict=True)]
    line = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([line.format(*HEAD), *(line.format(*x) for x in r)])


def markdown(report: dict) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 6) + "|"]
    out += ["| " + " | ".join(x) + " |" for x in rows(report)]
    return "\n".join(out)


def checks(report: dict) -> list[str]:
    """The issue's targets, with the figures (whether or not they are met), and the comparisons
    the docs draw from them (ANT PE vs. the int8 PE, edge vs. PE decoding, LUTs per MAC)."""
    out = []
    for m in MAPPINGS:
        if "ant_pe" in report and "int4_pe" in report:
            a, b = report["ant_pe"][m]["summary"]["LUT"], report["int4_pe"][m]["summary"]["LUT"]
            ratio = a / b if b else float("inf")
            out.append(f"[{m}] ANT PE / int4 PE LUTs = {a} / {b} = {ratio:.2f}x (target <= 1.2x): "
                       f"{'met' if ratio <= 1.2 else 'NOT met'}")
        if "ant_pe" in report and "int8_pe" in report:
            a, b = report["ant_pe"][m]["summary"]["LUT"], report["int8_pe"][m]["summary"]["LUT"]
            if b:
                out.append(f"[{m}] ANT PE / int8 PE LUTs = {a} / {b} = {a / b:.2f}x (the PE that ANT4-8's "
                           "nibble passes replace)")
        for n in (4, 8, 16):
            edge, pe = (report.get(f"ant_array_{v}_{n}x{n}") for v in ("edge", "pe"))
            if edge and pe:
                e, p = edge[m]["summary"], pe[m]["summary"]
                out.append(f"[{m}] {n}x{n}: PE-decoded / edge-decoded LUTs = {p['LUT']} / {e['LUT']} = "
                           f"{p['LUT'] / e['LUT']:.2f}x; edge-decoded {e['LUT'] / (n * n):.0f} LUTs per "
                           f"MAC/cycle, {e['FF'] - p['FF']:+d} FFs against PE-decoded")
        for variant in ("edge", "pe"):
            name = f"ant_array_{variant}_16x16"
            if name in report:
                s = report[name][m]["summary"]
                frac = {k: s[k] / XC7Z020[k] for k in XC7Z020}
                out.append(f"[{m}] {name}: {frac['LUT']:.1%} of the xc7z020's LUTs, {frac['FF']:.1%} of "
                           f"its FFs, {frac['DSP']:.1%} of its DSPs (target <= 60% LUTs): "
                           f"{'met' if frac['LUT'] <= 0.6 and frac['DSP'] <= 1 else 'NOT met'}")
    return out

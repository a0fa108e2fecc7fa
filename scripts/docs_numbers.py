"""`make docs`: every number in the README and docs, measured at HEAD and written by this command.

Each measurement is a *dataset*: ``docs/data/<name>.json``, holding what a run produced plus a
stamp (a hash of the source files that determine it, the date, the machine, the command). Each
*block* of generated markdown (between ``<!-- generated: NAME ... -->`` and
``<!-- end generated: NAME -->`` in README.md and docs/) is rendered from the datasets by the
functions below, never written by hand.

    python scripts/docs_numbers.py            # re-measure the stale datasets, render every block
    python scripts/docs_numbers.py --check    # exit 1 if a dataset is stale or a block differs
    python scripts/docs_numbers.py --only report demo --force

``tests/unit/test_docs_numbers.py`` runs the check in ``make test``, so a change to the code that
produces a number fails the suite until ``make docs`` has measured it again.

The ``test-session`` dataset is the timing of the last ``make test`` (written by tests/conftest.py
to ``build/test-session.json``); run ``make test`` before ``make docs`` so that its stamp matches.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
BUILD = Path(os.environ.get("ANTQ_BUILD") or ROOT / "build")

PACKAGE = ("host/antq/**/*.py", "host/antq/**/*.npz", "host/antq/**/*.ipynb", "requirements.lock",
           "setup.py", "pyproject.toml")
HARDWARE = ("hls/*", "overlay/rtl/*.v", "overlay/harness/*", "overlay/emulation/*")
EVERYTHING = (*PACKAGE, *HARDWARE, "tests/**/*.py", "tests/golden/*", "Makefile", "mk/*.mk",
              "scripts/*", ".ci/run")


# ------------------------------------------------------------------------------------------------
# Stamps

def source_files(globs: tuple[str, ...]) -> list[Path]:
    files = {p for g in globs for p in ROOT.glob(g) if p.is_file()}
    return sorted(p for p in files if "__pycache__" not in p.parts and p.suffix != ".pyc")


def source_hash(globs: tuple[str, ...]) -> str:
    """sha256 over the relative paths and contents of the files the globs match (sorted)."""
    h = hashlib.sha256()
    for p in source_files(globs):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.machine()}"}


def stamp(globs: tuple[str, ...], command: str) -> dict:
    return {"sources": source_hash(globs), "globs": list(globs), "command": command,
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine()}


def describe(st: dict) -> str:
    m = st["machine"]
    return f"{st['date']} on {m['cpu']} ({m['cores']} cores)"


# ------------------------------------------------------------------------------------------------
# Datasets: what each measures

def _captured(fn: Callable[[], object]) -> tuple[object, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = fn()
    return out, buf.getvalue()


def _antq(*args: str, timeout: float = 3600) -> str:
    """Run ``python -m antq ARGS`` from the repository root; its stdout (progress bars go to stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "ANTQ_BACKEND"}
    r = subprocess.run([sys.executable, "-m", "antq", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"antq {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                           f"{r.stderr[-3000:]}")
    return r.stdout


def measure_report() -> dict:
    """The full accuracy report; its plots go to docs/report now, its markdown is a block."""
    from antq.model import report

    results = report.measure(sentences={}, progress=True)
    report.write(results, ROOT / "docs" / "report")
    for r in results["models"].values():
        r.pop("samples")  # the raw tensors behind the distribution plots: too big for docs/data
    return results


DEMO_DIR = BUILD / "docs" / "demo"
DEMO_MODEL = DEMO_DIR / "digits-cnn-ip-f-4bit.antq"


def measure_demo() -> dict:
    out = _antq("demo", "--backend", "csim", "--out", str(DEMO_DIR.relative_to(ROOT)
                                                          if DEMO_DIR.is_relative_to(ROOT) else DEMO_DIR))
    return {"stdout": out, "results": json.loads((DEMO_DIR / "demo.json").read_text())}


def measure_latency() -> dict:
    if not DEMO_MODEL.is_file():
        measure_demo()
    js = BUILD / "docs" / "latency-rtl.json"
    model = DEMO_MODEL.relative_to(ROOT) if DEMO_MODEL.is_relative_to(ROOT) else DEMO_MODEL
    out = _antq("bench", str(model), "--backend", "rtl", "--clock-mhz", "100", "--plot",
                "docs/img/latency-rtl.png", "--json", str(js))
    return {"stdout": out, "command": f"antq bench {model} --backend rtl --clock-mhz 100 --plot "
            "docs/img/latency-rtl.png", "results": json.loads(js.read_text())}


BENCH_QUANT = {"weight_shape": (1024, 1024), "act_elems": 1 << 21}


def measure_bench_quant() -> dict:
    from antq.run import microbench

    rows, out = _captured(lambda: microbench.bench_quant(BENCH_QUANT["weight_shape"],
                                                         BENCH_QUANT["act_elems"]))
    return {"rows": rows, "stdout": out, "args": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in BENCH_QUANT.items()}}


def measure_bench_calib() -> dict:
    from antq.run import microbench

    row, out = _captured(lambda: microbench.bench_calib(32))
    return {"row": row, "stdout": out}


def measure_bench_rtl() -> dict:
    from antq.run import microbench

    r = microbench.bench_rtl(16, 16, 4096, 100)
    c = microbench.bench_cocotb(16, 16)
    return {"harness": r, "cocotb": c}


def measure_area() -> dict:
    from antq.toolchain import yosys

    return yosys.run(yosys.quick_designs(), jobs=2, progress=True)  # the 16x16 core: before-after


BEFORE = "5a8311c"
"""The sequential 8x8 overlay before the dataflow mover and the stall-free core (issue 12)."""
BA_SIZES = {"before": (8, 8), "after": (16, 16)}
BA_GEMMS = (("int", 4, True, 256, 256, 1024), ("int", 4, True, 256, 256, 256),
            ("int", 8, True, 256, 256, 256))
"""(kind, bits, signed, M, N, K) of both sides' GEMMs; HEAD also runs :data:`BA_AFTER_ONLY`."""
BA_AFTER_ONLY = (("pot", 4, False, 256, 256, 256),)
"""pot4u x pot4u: the readout bound of short jobs (docs/overlay.md section 2)."""
XC7Z020 = {"lut": 53200, "ff": 106400}

_GEMM_SCRIPT = """
import json, sys, time
import numpy as np
from antq.core import reference
from antq.core.quantize import QuantizedTensor
from antq.run import open_overlay

rng = np.random.default_rng(12)
ov = open_overlay("rtl")
out = {"antq": __import__("antq").__file__, "rows": ov.array.rows, "cols": ov.array.cols, "gemms": []}
for kind, bits, signed, m, n, k in json.loads(sys.argv[1]):
    a, w = (QuantizedTensor(rng.integers(0, 1 << bits, (r, k)), kind=kind, bits=bits, signed=signed)
            for r in (m, n))
    t0 = time.perf_counter()
    y = ov.gemm(a, w)
    s = time.perf_counter() - t0
    exact = bool(np.array_equal(y, reference.gemm(a, w)))
    if not exact:
        sys.exit(f"{a.fmt.name} x {w.fmt.name} {m}x{n}x{k}: the overlay differs from the reference")
    out["gemms"].append({"a": a.fmt.name, "w": w.fmt.name, "m": m, "n": n, "k": k, "macs": m * n * k,
                         "cycles": int(ov.last_cycles), "exact": exact, "seconds": round(s, 2)})
ov.close()
print(json.dumps(out))
"""


def _rtl_gemms(host: Path, build: Path, gemms: tuple[tuple, ...]) -> dict:
    """``gemms`` on the rtl emulation level of the antq under ``host``, in a fresh process: their
    cycles, each checked equal to the numpy reference there, and the array's utilization."""
    build.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(host), "ANTQ_BUILD": str(build), "ANTQ_BACKEND": "rtl"}
    r = subprocess.run([sys.executable, "-c", _GEMM_SCRIPT, json.dumps(gemms)], cwd=build, env=env,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"rtl GEMMs of {host} failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                           f"{r.stderr[-3000:]}")
    out = json.loads(r.stdout.splitlines()[-1])
    if not Path(out.pop("antq")).is_relative_to(host):
        raise RuntimeError(f"the subprocess imported another antq than {host}")
    for g in out["gemms"]:
        g["utilization"] = g["macs"] / (g["cycles"] * out["rows"] * out["cols"])
    return out


def _version(tool: str) -> str:
    return subprocess.run([tool, "-V" if tool == "yosys" else "--version"], capture_output=True,
                          text=True, check=True).stdout.strip()


@contextlib.contextmanager
def _worktree(commit: str, where: Path):
    """A detached checkout of ``commit`` at ``where`` (removed afterwards) and its full hash."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
                   check=True, capture_output=True, text=True)
    try:
        yield subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                       capture_output=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)


def _head() -> dict:
    """HEAD's hash and the tracked files that differ from it (a measurement names both)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    return {"commit": head, "uncommitted": dirty}


def measure_before_after() -> dict:
    """Commit :data:`BEFORE` (8x8, in a temporary worktree) against HEAD (16x16), in one run with the
    same tools: ``make timing``'s Yosys flow (LUT, FF, Fmax estimate) and GEMMs on the rtl level."""
    from antq.toolchain import timing

    sides = {}
    with tempfile.TemporaryDirectory(prefix="antq-before-after-") as tmp:
        tmp = Path(tmp)
        with _worktree(BEFORE, tmp / "before") as commit:
            old = tmp / "before"
            sides["before"] = {"commit": commit, "timing": timing.run(*BA_SIZES["before"],
                                                                      rtl_dir=old / "overlay" / "rtl"),
                               **_rtl_gemms(old / "host", tmp / "build-before", BA_GEMMS)}
        sides["after"] = {**_head(), "timing": timing.run(*BA_SIZES["after"]),
                          **_rtl_gemms(ROOT / "host", tmp / "build-after", BA_GEMMS + BA_AFTER_ONLY)}
    for name, side in sides.items():
        if (side["rows"], side["cols"]) != BA_SIZES[name]:
            raise RuntimeError(f"{name}: the overlay is {side['rows']}x{side['cols']}, not "
                               f"{BA_SIZES[name][0]}x{BA_SIZES[name][1]}")
    return {**sides, "yosys": _version("yosys"), "verilator": _version("verilator")}


def _demo_csim(src: Path, build: Path, out: Path) -> dict:
    """``antq demo --backend csim`` of the checkout ``src`` (its own package, its own C++ build):
    the end-to-end images/s and batch of its latency.json."""
    env = {**{k: v for k, v in os.environ.items() if k != "ANTQ_BACKEND"},
           "PYTHONPATH": str(src / "host"), "ANTQ_BUILD": str(build)}
    r = subprocess.run([sys.executable, "-m", "antq", "demo", "--backend", "csim", "--out", str(out)],
                       cwd=src, capture_output=True, text=True, timeout=1800, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"antq demo in {src} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    lat = json.loads((out / "latency.json").read_text())
    return {"images_per_s": lat["images_per_s"], "batch": lat["batch"], "backend": lat["backend"]}


SPEEDUP_ROUNDS = 5


def measure_speedup() -> dict:
    """End-to-end images/s of the demo CNN on csim at :data:`BEFORE` (issue 13's baseline: every
    layer round-tripped through the host) and at HEAD: each side's own ``antq demo``, alternately,
    :data:`SPEEDUP_ROUNDS` times each in one run on one host, the best of each side (the ratio, not
    either number, is what carries over to another host)."""
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="antq-speedup-") as tmp:
        tmp = Path(tmp)
        with _worktree(BEFORE, tmp / "before") as commit:
            for i in range(SPEEDUP_ROUNDS):  # alternating, so a slow spell of the host hits both
                runs["before"].append(_demo_csim(tmp / "before", tmp / "build-before", tmp / f"before-{i}"))
                runs["after"].append(_demo_csim(ROOT, BUILD, tmp / f"after-{i}"))
    sides = {"before": {"commit": commit}, "after": _head()}
    for name, rs in runs.items():
        if {(r["batch"], r["backend"]) for r in rs} != {(runs["after"][0]["batch"], "csim")}:
            raise RuntimeError(f"the demos ran different batches or backends: {runs}")
        sides[name].update(max(rs, key=lambda r: r["images_per_s"]),
                           rounds=[r["images_per_s"] for r in rs])
    return {**sides, "ratio": sides["after"]["images_per_s"] / sides["before"]["images_per_s"]}


def measure_test_session() -> dict:
    path = BUILD / "test-session.json"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `make test` first (tests/conftest.py writes it)")
    data = json.loads(path.read_text())
    if data["stamp"]["sources"] != source_hash(EVERYTHING):
        raise RuntimeError(f"{path} was written for other sources than these: run `make test` again")
    return data


@dataclass(frozen=True)
class Dataset:
    name: str
    globs: tuple[str, ...]
    measure: Callable[[], dict]
    command: str
    slow: str = ""
    """If set, why it is only re-measured when stale (and how long it takes)."""


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("report", PACKAGE, measure_report, "antq report (full: 5 QAT epochs, the MiniLM section)",
            slow="the sentence section calibrates all-MiniLM-L6-v2 about 20 times and Brevitas once"),
    Dataset("demo", (*PACKAGE, *HARDWARE), measure_demo, "antq demo --backend csim"),
    Dataset("latency", (*PACKAGE, *HARDWARE), measure_latency, "antq bench ... --backend rtl"),
    Dataset("speedup", (*PACKAGE, *HARDWARE), measure_speedup,
            f"antq demo --backend csim at {BEFORE} (a temporary worktree) and at HEAD"),
    Dataset("bench-quant", PACKAGE, measure_bench_quant,
            "antq bench-quant (1024x1024 weight, 2M activations)"),
    Dataset("bench-calib", PACKAGE, measure_bench_calib, "antq bench-calib (all-MiniLM-L6-v2, 32 sentences)",
            slow="two calibrations of all-MiniLM-L6-v2 (a few minutes)"),
    Dataset("bench-rtl", ("overlay/rtl/*.v", "overlay/harness/*", "host/antq/emu/antcore.py",
                          "host/antq/toolchain/verilator.py", "host/antq/core/stream.py",
                          "host/antq/run/microbench.py"), measure_bench_rtl,
            "antq bench-rtl"),
    Dataset("area", ("overlay/rtl/*.v",), measure_area, "antq area",
            slow="Yosys synthesizes the PEs and arrays up to 8x8 twice (a few minutes on 2 cores)"),
    Dataset("before-after", ("overlay/rtl/*.v", "overlay/harness/*", "hls/*", "host/antq/**/*.py"),
            measure_before_after, f"make timing's Yosys flow and rtl-level GEMMs, {BEFORE} vs HEAD",
            slow=f"Yosys on the 8x8 core of {BEFORE} and the 16x16 one of HEAD, one at a time, and two "
            "Verilator builds (15-25 minutes on 2 cores)"),
    Dataset("test-session", EVERYTHING, measure_test_session, "make test"),
]}


def load(name: str) -> dict | None:
    path = DATA / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def is_fresh(name: str, data: dict | None = None) -> bool:
    data = load(name) if data is None else data
    if data is None or data["stamp"]["sources"] != source_hash(DATASETS[name].globs):
        return False
    return not (name == "area" and _area_scripts_changed(data))


def remeasure(name: str) -> dict:
    d = DATASETS[name]
    st = stamp(d.globs, d.command)
    t0 = time.perf_counter()
    payload = d.measure()
    if name == "test-session":  # measured by make test itself: keep its own stamp
        data = payload
    else:
        st["seconds"] = round(time.perf_counter() - t0, 1)
        data = {"stamp": st, "data": payload}
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / f"{name}.json").write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    return data


def _json_default(o: object) -> object:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# ------------------------------------------------------------------------------------------------
# Blocks: markdown rendered from the datasets

def _code(text: str) -> str:
    return "```\n" + text.rstrip("\n") + "\n```"


def _source(ds: dict, name: str) -> str:
    st = ds[name]["stamp"]
    return f"`{st['command']}`, {describe(st)}"


def render_demo(ds: dict) -> str:
    return "\n".join([f"Output of `make demo` ({_source(ds, 'demo')}):", "",
                      _code(ds["demo"]["data"]["stdout"])])


def render_latency(ds: dict) -> str:
    lat, sp = ds["latency"]["data"], ds["speedup"]["data"]
    res = lat["results"]
    layers = [r for r in res["layers"] if r.get("macs")]
    best = max(layers, key=lambda r: r["macs_per_cycle"])
    worst = min(layers, key=lambda r: r["macs_per_cycle"])
    peak = res["array"]["rows"] * res["array"]["cols"]
    u, t = res["unchained"], res["totals"]
    lines = [
        f"`{lat['command']}` ({describe(ds['latency']['stamp'])}; the cycles are the Verilated core's plus "
        "the data mover's modelled memory beats, projected to a 100 MHz board; the other parts are wall "
        "times on that host):", "", _code(lat["stdout"]), "",
        "![per-layer latency breakdown](docs/img/latency-rtl.png)", "",
        f"The array reaches {best['macs_per_cycle']:.1f} of its {peak} MACs/cycle on its best layer "
        f"({best['name']}, K = {best['k']}) and {worst['macs_per_cycle']:.2f} on its worst ({worst['name']}, "
        f"K = {worst['k']}): on small-K layers each job's fill and drain dominate.", "",
        f"Chained (docs/contracts.md §13), one inference of {res['batch']} moves {res['bytes_to_device']:,} "
        f"bytes to the device and {res['bytes_from_device']:,} back in {res['round_trips']} round trips, "
        f"against {u['bytes_to_device']:,}, {u['bytes_from_device']:,} and {u['round_trips']} unchained "
        f"(every int64 result read back, the same batch in the same run): {res['images_per_s']:,.0f} against "
        f"{u['images_per_s']:,.0f} images/s, {res['speedup']:.2f}x. The rest is host work: quantize + pack "
        f"{1e3 * t['quantize_pack_s']:.2f} ms, fetch + unpack {1e3 * t['unpack_rescale_s']:.2f} ms, host ops "
        f"{1e3 * t['host_s']:.2f} ms, against {1e3 * t['compute_s']:.2f} ms of projected compute.", "",
        f"Against commit {sp['before']['commit'][:7]} (before chaining: every layer's int64 result back "
        f"to the host), each side's own `antq demo --backend csim`, best of {len(sp['after']['rounds'])} "
        f"alternating runs each ({describe(ds['speedup']['stamp'])}, batch {sp['after']['batch']}): "
        f"{sp['after']['images_per_s']:,.0f} images/s at HEAD against {sp['before']['images_per_s']:,.0f}, "
        f"**{sp['ratio']:.1f}x** end to end.",
    ]
    return "\n".join(lines)


def render_traffic(ds: dict) -> str:
    """Where each demo model's host <-> device traffic goes, layer by layer (chained run)."""
    models = ds["demo"]["data"]["results"]["models"]
    lines = [f"Measured by `antq demo` ({_source(ds, 'demo')}), chained, per inference of the batch; "
             "\"result\" is what the layer's calls leave (int64 accumulators, or the epilogue's codes), "
             "\"read by\" what takes it past the ops that only move elements:", ""]
    for name, m in models.items():
        lines += [f"**{name}**: {m['bytes_to_device']:,} B to the device, {m['bytes_from_device']:,} B from "
                  f"it, {m['round_trips']} round trips (unchained: {m['unchained']['bytes_to_device']:,}, "
                  f"{m['unchained']['bytes_from_device']:,}, {m['unchained']['round_trips']}).", "",
                  "| layer | calls | result | B to device | B from device | round trips | read by |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['calls']} | {r['out_fmt']} | {r['bytes_to_device']:,} | "
                  f"{r['bytes_from_device']:,} | {r['round_trips']} | {r['read_by']} |" for r in m["layers"]]
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _golden_cases() -> int:
    return sum(1 for line in (ROOT / "tests" / "golden" / "gemm.txt").read_text().splitlines()
               if line.startswith("case "))


def render_highlights(ds: dict) -> str:
    rep = ds["report"]["data"]["models"]
    cnn, tr = rep["digits-cnn"], rep["digits-transformer"]

    def acc(r: dict, cfg: str, col: str) -> str:
        return f"{r['configs'][cfg][col]:.2f}"

    def ints(r: dict) -> str:
        tensors = [row[role]["type"] for row in r["configs"]["ip-f"]["layers"]
                   for role in ("weight", "input")]
        n_int = sum(t.startswith("int") for t in tensors)
        return f"{n_int} of {len(tensors)}"

    bq = {r["tensor"]: r for r in ds["bench-quant"]["data"]["rows"]}
    w, a = bq["weight"], bq["activation"]
    area = _area(ds)
    ant, i4, i8 = (area[n]["nodsp"]["summary"]["LUT"] for n in ("ant_pe", "int4_pe", "int8_pe"))
    edge = area["ant_array_edge_8x8"]["nodsp"]["summary"]["LUT"]
    core = ds["before-after"]["data"]["after"]["timing"]
    rtl = ds["bench-rtl"]["data"]
    ts = ds["test-session"]["data"]
    rows = [
        ("bit-exactness", f"Python reference, HLS C++ (g++), C++ core model and Verilog core agree on "
         f"{_golden_cases()} golden GEMMs and random tiles of every 4-bit type pair and int8; the eval-mode "
         "fake-quant torch model, the exported integer model and the overlay on ref/csim/rtl give identical "
         "logits on every model tested", "`tests/golden/gemm.txt`, `tests/e2e/test_bit_exact.py`"),
        ("accuracy (digits, 4-bit)", f"CNN: fp32 {cnn['fp32']:.2f}, ANT ip-f PTQ {acc(cnn, 'ip-f', 'ptq')}, "
         f"ANT4-8 QAT {acc(cnn, 'ant4-8', 'qat')}; transformer: fp32 {tr['fp32']:.2f}, ip-f PTQ "
         f"{acc(tr, 'ip-f', 'ptq')}. ip-f chose int for {ints(cnn)} tensors of the CNN and {ints(tr)} of "
         "the transformer", "[docs/report/report.md](docs/report/report.md)"),
        ("type search", f"{w['speedup']:.0f}x (weights {w['shape'][0]}x{w['shape'][1]}) and "
         f"{a['speedup']:.0f}x ({a['elements'] / 2**20:.0f}M activations) faster than the per-(type, ratio) "
         f"loop, same choices", "`make bench-quant`"),
        ("area (Yosys, xc7, no DSP)", f"ANT PE {ant} LUT vs {i4} for an int4 PE ({ant / i4:.2f}x) and {i8} "
         f"for an int8 PE; 8x8 edge-decoded array {edge / 1000:.1f} k LUT; the whole 16x16 ant_core "
         f"{core['lut'] / 1000:.1f} k LUT = {core['lut'] / 53200:.1%} of a PYNQ-Z2, estimated "
         f"{core['fmax_mhz']:.0f} MHz", "[docs/rtl.md](docs/rtl.md)"),
        ("RTL simulation", f"16x16 core at {rtl['harness']['cycles_per_s'] / 1e6:.2f} M cycles/s under the "
         f"-O3 harness, {rtl['harness']['cycles_per_s'] / rtl['cocotb']['cycles_per_s']:.0f}x a cocotb "
         "driver",
         "`make bench-rtl`"),
        ("test suite", f"`make test`: {ts['passed']} tests in {ts['seconds'] / 60:.1f} min on "
         f"{ts['workers']} workers", "`make test`"),
    ]
    when = {n: describe(ds[n]["stamp"]) for n in ("report", "bench-quant", "area", "bench-rtl")}
    out = ["| what | result | where |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", "Measured by `make docs`: report " + when["report"] + "; type search " + when["bench-quant"]
            + "; area " + when["area"] + "; RTL simulation " + when["bench-rtl"] + "."]
    return "\n".join(out)


def render_bench_calib(ds: dict) -> str:
    return "\n".join([f"Measured by `make docs` ({_source(ds, 'bench-calib')}):", "",
                      _code(ds["bench-calib"]["data"]["stdout"])])


def render_test_time(ds: dict) -> str:
    ts = ds["test-session"]["data"]
    st = ds["test-session"]["stamp"]
    setup = ts.get("setup_seconds")
    setup_txt = (f"; on a fresh machine `make setup` first took {setup / 60:.1f} min (apt packages and the "
                 "pinned venv)") if setup else ""
    return (f"`make test` ran {ts['passed']} tests in {ts['seconds'] / 60:.1f} min on {ts['workers']} "
            f"pytest-xdist workers ({describe(st)}){setup_txt}.")


def _area(ds: dict) -> dict:
    """The area dataset with every summary recomputed from Yosys's raw cell counts."""
    from antq.toolchain import yosys

    return {n: {**r, **{m: {**r[m], "summary": yosys.summary(r[m]["cells"])} for m in yosys.MAPPINGS}}
            for n, r in ds["area"]["data"].items()}


def render_area(ds: dict) -> str:
    from antq.toolchain import yosys

    rep = _area(ds)
    version = next(iter(rep.values()))["yosys"]
    return "\n".join([f"Generated by `make docs` (`antq area`) with {version}, "
                      f"{describe(ds['area']['stamp'])}.", "", yosys.markdown(rep), "",
                      *(f"- {c}" for c in yosys.checks(rep))])


def render_bench_rtl(ds: dict) -> str:
    r, c = ds["bench-rtl"]["data"]["harness"], ds["bench-rtl"]["data"]["cocotb"]
    return "\n".join([
        f"Measured by `make docs` (`antq bench-rtl`), {describe(ds['bench-rtl']['stamp'])}:", "",
        _code(f"ant_core {r['rows']}x{r['cols']}, Verilator -O3, C harness: {r['cycles']:,} cycles in "
              f"{r['seconds']:.2f} s = {r['cycles_per_s'] / 1e6:.3f} M array cycles/s "
              f"({r['macs_per_s'] / 1e6:.1f} M MAC/s)\n"
              f"ant_core {c['rows']}x{c['cols']}, Verilator -O3, cocotb driver: {c['cycles']:,} cycles in "
              f"{c['seconds']:.2f} s = {c['cycles_per_s'] / 1e3:.1f} k array cycles/s\n"
              f"C harness / cocotb: {r['cycles_per_s'] / c['cycles_per_s']:.0f}x")])


def _ba_gemm(g: dict) -> str:
    dims = f"{g['m']}³" if g["m"] == g["n"] == g["k"] else f"{g['m']}×{g['n']}×{g['k']}"
    return f"{g['a']} × {g['w']} {dims}"


def render_before_after(ds: dict) -> str:
    from antq.toolchain import timing

    d = ds["before-after"]["data"]
    b, a = d["before"], d["after"]
    bt, at = b["timing"], a["timing"]
    route = at["route_ps"] / 1000

    def size(side: dict) -> str:
        return f"{side['rows']}×{side['cols']}"

    def share(side: dict, key: str) -> str:
        return f"{side['timing'][key]:,} ({side['timing'][key] / XC7Z020[key]:.1%})"

    def util(g: dict | None, peak: int) -> str:
        if g is None:
            return "—"
        return (f"{g['utilization']:.1%} ({g['macs'] / g['cycles']:.1f} of {peak} MACs/cycle, "
                f"{g['cycles']:,} cycles)")

    rows = [("LUT (LUT1–6; share of the xc7z020)", share(b, "lut"), share(a, "lut")),
            ("FF (share of the xc7z020)", share(b, "ff"), share(a, "ff")),
            (f"Fmax estimate (MHz, {route:.2f} ns per routed net)", f"{bt['fmax_mhz']:.0f}",
             f"{at['fmax_mhz']:.0f}")]
    before = {_ba_gemm(g): g for g in b["gemms"]}
    for g in a["gemms"]:
        name = _ba_gemm(g)
        rows.append((f"utilization {name}", util(before.get(name), b["rows"] * b["cols"]),
                     util(g, a["rows"] * a["cols"])))
    verdict = "meets" if at["fmax_mhz"] >= timing.TARGET_MHZ else "does not meet"
    out = [f"Measured by `make docs` ({_source(ds, 'before-after')}), both sides in the same run with "
           f"{d['yosys'].split(' (')[0]} and {d['verilator'].split(' 20')[0]}:", "",
           f"| | before: {b['commit'][:7]}, {size(b)} | after: HEAD ({a['commit'][:7]}), {size(a)} |",
           "|---|---:|---:|"]
    out += [f"| {n} | {x} | {y} |" for n, x, y in rows]
    port = timing.start_port(at)
    caveat = (f" HEAD's starts at the input port `{port}`, whose arrival `sta` puts at 0, so whatever "
              "drives that port in the overlay (its clock-to-Q and net) comes on top of it." if port else "")
    out += ["", f"By this estimate the {size(a)} core {verdict} the {timing.TARGET_MHZ:.0f} MHz target "
            f"({at['fmax_mhz']:.0f} MHz; {size(b)} before: {bt['fmax_mhz']:.0f} MHz). The worst paths "
            f"(`make timing`), HEAD's first:{caveat}", "",
            _code(timing.describe(at) + "\n" + timing.describe(bt))]
    return "\n".join(out)


def render_report(ds: dict) -> str:
    from antq.model import report

    results = json.loads(json.dumps(ds["report"]["data"]))
    for r in results["models"].values():  # JSON object keys are strings; the report keys bit widths by int
        r["sweep"] = {int(b): v for b, v in r["sweep"].items()}
    return report.render({**results, "stamp": ds["report"]["stamp"]})


@dataclass(frozen=True)
class Block:
    name: str
    file: str
    needs: tuple[str, ...]
    render: Callable[[dict], str]
    whole_file: bool = False


BLOCKS: list[Block] = [
    Block("demo", "README.md", ("demo",), render_demo),
    Block("latency", "README.md", ("latency", "speedup"), render_latency),
    Block("highlights", "README.md", ("report", "bench-quant", "area", "bench-rtl", "test-session",
                                      "before-after"),
          render_highlights),
    Block("test-time", "README.md", ("test-session",), render_test_time),
    Block("area", "docs/rtl.md", ("area",), render_area),
    Block("before-after", "docs/rtl.md", ("before-after",), render_before_after),
    Block("bench-rtl", "docs/rtl.md", ("bench-rtl",), render_bench_rtl),
    Block("bench-calib", "docs/models.md", ("bench-calib",), render_bench_calib),
    Block("traffic", "docs/runtime.md", ("demo",), render_traffic),
    Block("report", "docs/report/report.md", ("report",), render_report, whole_file=True),
]

BEGIN = "<!-- generated: {name} (make docs renders this from docs/data; do not edit by hand) -->"
END = "<!-- end generated: {name} -->"


def _span(text: str, name: str, path: str) -> tuple[int, int]:
    b, e = BEGIN.format(name=name), END.format(name=name)
    if text.count(b) != 1 or text.count(e) != 1:
        raise ValueError(f"{path}: needs exactly one {b} ... {e} pair")
    start = text.index(b) + len(b)
    return start, text.index(e)


def current(block: Block) -> str:
    text = (ROOT / block.file).read_text()
    if block.whole_file:
        return text
    s, e = _span(text, block.name, block.file)
    return text[s:e].strip("\n")


def write_block(block: Block, body: str) -> None:
    path = ROOT / block.file
    if block.whole_file:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        return
    text = path.read_text()
    s, e = _span(text, block.name, block.file)
    path.write_text(text[:s] + "\n" + body + "\n" + text[e:])


def _area_scripts_changed(data: dict) -> bool:
    """The area numbers depend on the RTL (hashed) and on the Yosys scripts, recorded per design."""
    from antq.toolchain import yosys

    want = {d.name: {m: yosys.script(d, m).format(out="stat.json") for m in yosys.MAPPINGS}
            for d in yosys.quick_designs()}
    have = {n: {m: r[m]["script"] for m in yosys.MAPPINGS} for n, r in data["data"].items()}
    return want != have


def problems() -> list[str]:
    """Everything stale: datasets whose sources changed, blocks that differ from their rendering."""
    out = []
    ds = {n: load(n) for n in DATASETS}
    for n, data in ds.items():
        if data is None:
            out.append(f"docs/data/{n}.json is missing")
        elif not is_fresh(n, data):
            out.append(f"docs/data/{n}.json is stale: the sources it was measured from "
                       f"({', '.join(DATASETS[n].globs)}) or, for area, its Yosys scripts changed since "
                       f"{data['stamp']['date']}")
    for b in BLOCKS:
        if any(ds[n] is None for n in b.needs):
            continue
        try:
            if current(b) != b.render(ds).strip("\n") + ("\n" if b.whole_file else ""):
                out.append(f"{b.file}: block {b.name!r} differs from what `make docs` renders from "
                           f"{', '.join(f'docs/data/{n}.json' for n in b.needs)}")
        except (ValueError, KeyError, FileNotFoundError) as e:
            out.append(f"{b.file}: block {b.name!r}: {e}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="datasets: " + ", ".join(DATASETS))
    ap.add_argument("--check", action="store_true", help="only report what is stale (exit 1 if anything)")
    ap.add_argument("--only", nargs="+", choices=list(DATASETS), metavar="DATASET",
                    help="re-measure only these datasets (if stale, or with --force)")
    ap.add_argument("--force", action="store_true", help="re-measure even if the stamp is fresh")
    ap.add_argument("--render-only", action="store_true", help="measure nothing; re-render the blocks")
    a = ap.parse_args(argv)
    if a.check:
        found = problems()
        print("\n".join(found) if found else "every generated number is fresh")
        return 1 if found else 0
    if not a.render_only:
        for name in a.only or list(DATASETS):
            d = DATASETS[name]
            if is_fresh(name) and not a.force:
                print(f"{name}: fresh")
                continue
            print(f"{name}: measuring ({d.command}{'; ' + d.slow if d.slow else ''}) ...", flush=True)
            t0 = time.perf_counter()
            remeasure(name)
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    ds = {n: load(n) for n in DATASETS}
    for b in BLOCKS:
        missing = [n for n in b.needs if ds[n] is None]
        if missing:
            print(f"{b.file} {b.name}: skipped, no data for {', '.join(missing)}")
            continue
        write_block(b, b.render(ds).strip("\n") + ("\n" if b.whole_file else ""))
    left = problems()
    print("\n".join(left) if left else "every generated number is fresh")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())

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

    return yosys.run(jobs=2, progress=True)


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
    Dataset("bench-quant", PACKAGE, measure_bench_quant,
            "antq bench-quant (1024x1024 weight, 2M activations)"),
    Dataset("bench-calib", PACKAGE, measure_bench_calib, "antq bench-calib (all-MiniLM-L6-v2, 32 sentences)",
            slow="two calibrations of all-MiniLM-L6-v2 (a few minutes)"),
    Dataset("bench-rtl", ("overlay/rtl/*.v", "overlay/harness/*", "host/antq/emu/antcore.py",
                          "host/antq/toolchain/verilator.py", "host/antq/core/stream.py",
                          "host/antq/run/microbench.py"), measure_bench_rtl,
            "antq bench-rtl"),
    Dataset("area", ("overlay/rtl/*.v",), measure_area, "antq area",
            slow="Yosys synthesizes 22 designs twice (10-30 minutes on 2 cores)"),
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
    lat = ds["latency"]["data"]
    res = lat["results"]
    layers = [r for r in res["layers"] if r.get("macs")]
    best = max(layers, key=lambda r: r["macs_per_cycle"])
    worst = min(layers, key=lambda r: r["macs_per_cycle"])
    peak = res["array"]["rows"] * res["array"]["cols"]
    lines = [
        f"`{lat['command']}` ({describe(ds['latency']['stamp'])}; the cycles are the Verilated core's plus "
        "the data mover's modelled memory beats, projected to a 100 MHz board; the other parts are wall "
        "times on that host):", "", _code(lat["stdout"]), "",
        "![per-layer latency breakdown](docs/img/latency-rtl.png)", "",
        f"The array reaches {best['macs_per_cycle']:.1f} of its {peak} MACs/cycle on its best layer "
        f"({best['name']}, K = {best['k']}) and {worst['macs_per_cycle']:.2f} on its worst ({worst['name']}, "
        f"K = {worst['k']}): on these small layers the sequential data mover's memory beats dominate.",
    ]
    return "\n".join(lines)


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
    edge = area["ant_array_edge_16x16"]["nodsp"]["summary"]["LUT"]
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
         f"for an int8 PE; 16x16 edge-decoded array {edge / 1000:.1f} k LUT = {edge / 53200:.1%} of a "
         "PYNQ-Z2", "[docs/rtl.md](docs/rtl.md)"),
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
    Block("latency", "README.md", ("latency",), render_latency),
    Block("highlights", "README.md", ("report", "bench-quant", "area", "bench-rtl", "test-session"),
          render_highlights),
    Block("test-time", "README.md", ("test-session",), render_test_time),
    Block("area", "docs/rtl.md", ("area",), render_area),
    Block("bench-rtl", "docs/rtl.md", ("bench-rtl",), render_bench_rtl),
    Block("bench-calib", "docs/models.md", ("bench-calib",), render_bench_calib),
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
            for d in yosys.designs()}
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

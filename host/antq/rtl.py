"""The Verilated ``ant_core`` as a Python object: build, stream format, GEMM, speed benchmark.

The RTL in ``overlay/rtl`` is Verilated with ``-O3`` (no tracing) together with the C harness
``overlay/harness/antcore.cpp`` into ``build/rtl/libantcore_<R>x<C>.so``, whose C ABI is fixed
in docs/contracts.md §10. :func:`build` does that once per array size and caches the result:
a file lock makes concurrent builds (pytest-xdist workers, the emulator) wait for one another,
and a stamp of every input (sources, harness, Verilator version, flags) triggers a rebuild
when anything changed. :class:`AntCore` loads the library with ctypes.

The stream format (config word, step beats) lives here too, so tests and the benchmark speak
exactly the §10 format; :func:`gemm` runs a whole GEMM through the core in tiles, with int8
as nibble passes and K split at :func:`antq.arch.max_k`, the way the HLS data mover does.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import arch, formats
from .cache import file_lock, makeflags
from .formats import KIND_IDS, Format
from .quantize import QuantizedTensor

ROOT = Path(__file__).resolve().parents[2]
RTL_DIR = ROOT / "overlay" / "rtl"
HARNESS_DIR = ROOT / "overlay" / "harness"
BUILD_DIR = ROOT / "build" / "rtl"

VERILATOR_FLAGS = ("--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")
MAKE_FLAGS = "OPT_FAST=-O3 OPT_SLOW=-O1 OPT_GLOBAL=-O2"
CXX_FLAGS = ("-O3", "-fPIC", "-std=c++17", "-shared")
RUNTIME_OBJS = ("verilated.o", "verilated_threads.o")
BUILD_TIMEOUT_S = 900

K_MAX = (1 << 24) - 1
"""Largest K of one job (the config word's 24-bit field)."""
ETIMEOUT, EBADJOB = -1, -2


class RTLError(RuntimeError):
    """The Verilated core could not be built, or a job failed (timeout, malformed stream)."""


# ---------------------------------------------------------------------------------------------
# build

def sources() -> list[Path]:
    """The Verilog sources of the core, one module per file."""
    return sorted(RTL_DIR.glob("*.v"))


def data_bits(rows: int, cols: int) -> int:
    """DATA_W of the input stream: max(64, 32 * ceil(4 (R + C) / 32))."""
    return max(64, 32 * -(-4 * (rows + cols) // 32))


def lib_path(rows: int = arch.ARRAY_ROWS, cols: int = arch.ARRAY_COLS) -> Path:
    return BUILD_DIR / f"libantcore_{rows}x{cols}.so"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RTLError(f"{name} not found on PATH; `make setup` installs it (apt: verilator, g++)")
    return path


def _stamp(rows: int, cols: int) -> str:
    h = hashlib.sha256()
    for p in [*sources(), HARNESS_DIR / "antcore.h", HARNESS_DIR / "antcore.cpp"]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    version = subprocess.run([_tool("verilator"), "--version"], capture_output=True, text=True).stdout
    h.update(repr((rows, cols, version, VERILATOR_FLAGS, MAKE_FLAGS, CXX_FLAGS)).encode())
    return h.hexdigest()


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RTLError(f"{cmd[0]} took more than {BUILD_TIMEOUT_S} s; see {log}") from None
    if r.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise RTLError(f"{Path(cmd[0]).name} failed (exit {r.returncode}); log {log}:\n{tail}")


def build(rows: int = arch.ARRAY_ROWS, cols: int = arch.ARRAY_COLS, *, force: bool = False,
          jobs: int = 2) -> Path:
    """Build (or reuse) ``build/rtl/libantcore_<rows>x<cols>.so`` and return its path.

    Safe to call from many processes at once: one builds, the others wait and reuse it.
    """
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
            raise ValueError(f"array {name} must be an int in 1..64, got {v!r}")
    lib = lib_path(rows, cols)
    stamp_file = lib.with_suffix(".stamp")
    stamp = _stamp(rows, cols)
    with file_lock(lib.with_suffix(".lock")):
        if not force and lib.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
            return lib
        obj = BUILD_DIR / f"obj_{rows}x{cols}"
        shutil.rmtree(obj, ignore_errors=True)
        obj.mkdir(parents=True)
        log = obj / "build.log"
        _run([_tool("verilator"), *VERILATOR_FLAGS, "--top-module", "ant_core",
              f"-GROWS={rows}", f"-GCOLS={cols}", "--Mdir", str(obj), "--build", "-j", str(jobs),
              "-CFLAGS", "-fPIC", "-MAKEFLAGS", MAKE_FLAGS, *map(str, sources())], log)
        # the Verilator runtime (verilated.o, verilated_threads.o), also position independent
        _run(["make", "-C", str(obj), "-f", "Vant_core.mk", "-j", str(jobs), *MAKE_FLAGS.split(),
              *RUNTIME_OBJS], log)
        root = subprocess.run([_tool("verilator"), "--getenv", "VERILATOR_ROOT"],
                              capture_output=True, text=True, check=True).stdout.strip()
        tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
        _run([_tool("g++"), *CXX_FLAGS, f"-DANTCORE_ROWS={rows}", f"-DANTCORE_COLS={cols}",
              f"-I{obj}", f"-I{HARNESS_DIR}", f"-I{root}/include", f"-I{root}/include/vltstd",
              str(HARNESS_DIR / "antcore.cpp"), str(obj / "Vant_core__ALL.a"),
              *(str(obj / o) for o in RUNTIME_OBJS), "-pthread", "-o", str(tmp)], log)
        os.replace(tmp, lib)
        stamp_file.write_text(stamp)
    return lib


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    u64p = ctypes.POINTER(ctypes.c_uint64)
    lib.antcore_open.restype = ctypes.c_void_p
    lib.antcore_open.argtypes = []
    lib.antcore_close.argtypes = [ctypes.c_void_p]
    lib.antcore_close.restype = None
    for fn in (lib.antcore_rows, lib.antcore_cols, lib.antcore_data_bits):
        fn.restype, fn.argtypes = ctypes.c_uint, []
    lib.antcore_reset.argtypes = [ctypes.c_void_p]
    lib.antcore_reset.restype = None
    lib.antcore_job.restype = ctypes.c_int
    lib.antcore_job.argtypes = [ctypes.c_void_p, u64p, ctypes.c_uint, ctypes.POINTER(ctypes.c_int32),
                                ctypes.c_uint64, u64p]
    lib.antcore_cycle_count.restype = ctypes.c_uint64
    lib.antcore_cycle_count.argtypes = [ctypes.c_void_p]
    return lib


# ---------------------------------------------------------------------------------------------
# stream format (docs/contracts.md §10)

def config_word(k: int, a: Format, w: Format, *, a_hi: bool = False, w_hi: bool = False,
                acc: bool = False, emit: bool = True) -> int:
    """Beat 0 of a job: K, both type ids and signedness, the int8 high-nibble flags, acc, emit.

    ``a``/``w`` are the 4-bit formats the array decodes (an int8 nibble is int4: the high
    nibble signed as the int8 is, the low nibble unsigned).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= K_MAX:
        raise ValueError(f"k must be an int in 1..{K_MAX}, got {k!r}")
    for name, f in (("a", a), ("w", w)):
        if not isinstance(f, Format) or f.bits != arch.CODE_BITS:
            raise ValueError(f"{name} must be a 4-bit antq.formats.Format, got {f!r}")
    for name, hi, f in (("a_hi", a_hi, a), ("w_hi", w_hi, w)):
        if hi and f.kind != "int":
            raise ValueError(f"{name} marks an int8 high nibble, but the format is {f.name}")
    return (int(k) | KIND_IDS[a.kind] << 24 | int(a.signed) << 26 | int(a_hi) << 27
            | KIND_IDS[w.kind] << 28 | int(w.signed) << 30 | int(w_hi) << 31
            | int(acc) << 32 | int(emit) << 33)


def job_beats(a_codes: np.ndarray, w_codes: np.ndarray, config: int, rows: int, cols: int) -> np.ndarray:
    """The K + 1 beats of one job as a (K + 1, DATA_W / 64) uint64 array (little-endian words).

    ``a_codes`` is (rows, K) and ``w_codes`` (cols, K), 4-bit codes; step k carries a_codes[i, k]
    at bits 4i+3:4i and w_codes[j, k] at bits 4R+4j+3:4R+4j.
    """
    a, w = np.asarray(a_codes), np.asarray(w_codes)
    if a.ndim != 2 or w.ndim != 2 or a.shape[0] != rows or w.shape[0] != cols or a.shape[1] != w.shape[1]:
        raise ValueError(f"need a (rows={rows}, K) and w (cols={cols}, K) code arrays with the same K; "
                         f"got a {a.shape} and w {w.shape}")
    for name, c in (("a", a), ("w", w)):
        if c.dtype.kind not in "iu" or (c.size and (int(c.min()) < 0 or int(c.max()) > 15)):
            raise ValueError(f"{name} codes must be integers in 0..15")
    k = a.shape[1]
    if k != config & 0xFFFFFF:
        raise ValueError(f"the config word says K={config & 0xFFFFFF} but the codes have K={k}")
    words = data_bits(rows, cols) // 64
    # nibble i of a step = row i (i < R), then column j at nibble R + j
    nib = np.concatenate([a, w]).T.astype(np.uint8)  # (K, R + C)
    nib = np.pad(nib, ((0, 0), (0, words * 16 - rows - cols)))
    packed = (nib[:, 0::2] | nib[:, 1::2] << 4).copy()  # (K, words * 8) bytes, little-endian
    beats = np.zeros((k + 1, words), np.uint64)
    beats[0, 0] = config
    beats[1:] = packed.view("<u8").reshape(k, words)
    return beats


# ---------------------------------------------------------------------------------------------
# the core

class AntCore:
    """One Verilated ``ant_core`` (built and cached by :func:`build`), driven through its C ABI.

    >>> with AntCore(8, 8) as core:
    ...     y = core.job(job_beats(a, w, config_word(k, fa, fw), 8, 8))   # (8, 8) int32
    """

    def __init__(self, rows: int = arch.ARRAY_ROWS, cols: int = arch.ARRAY_COLS, *,
                 lib: Path | None = None) -> None:
        self._h = None
        self._lib = _load(lib if lib is not None else build(rows, cols))
        if (self._lib.antcore_rows(), self._lib.antcore_cols()) != (rows, cols):
            raise RTLError(f"{lib} is a {self._lib.antcore_rows()}x{self._lib.antcore_cols()} core, "
                           f"not {rows}x{cols}")
        self.rows, self.cols = rows, cols
        self.data_bits = int(self._lib.antcore_data_bits())
        self._h = self._lib.antcore_open()
        if not self._h:
            raise RTLError("antcore_open failed (out of memory)")
        self._out = np.zeros(rows * cols, np.int32)
        self.last_cycles = 0
        """Clock cycles of the last job (including the array drain and the output)."""

    def close(self) -> None:
        if self._h:
            self._lib.antcore_close(self._h)
            self._h = None

    def __enter__(self) -> AntCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _handle(self) -> int:
        if not self._h:
            raise RTLError("the core is closed")
        return self._h

    @property
    def cycles(self) -> int:
        """Clock cycles since the core was opened (resets included)."""
        return int(self._lib.antcore_cycle_count(self._handle()))

    def reset(self) -> None:
        self._lib.antcore_reset(self._handle())

    def job(self, beats: np.ndarray, max_cycles: int | None = None) -> np.ndarray | None:
        """Stream one job; return the (R, C) int32 accumulators, or None if it does not emit.

        ``max_cycles`` defaults to a generous bound from K; passing it raises :class:`RTLError`
        (and resets the core) instead of hanging.
        """
        b = np.ascontiguousarray(beats, dtype=np.uint64)
        words = self.data_bits // 64
        if b.ndim != 2 or b.shape[1] != words or b.shape[0] < 1:
            raise ValueError(f"beats must be (K + 1, {words}) uint64 words, got shape {b.shape}")
        if max_cycles is None:
            max_cycles = 4 * (b.shape[0] + self.rows * self.cols + self.rows + self.cols) + 64
        used = ctypes.c_uint64(0)
        rc = self._lib.antcore_job(
            self._handle(), b.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)), b.shape[0],
            self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), max_cycles, ctypes.byref(used))
        if rc == EBADJOB:
            raise ValueError(f"not one well-formed job: {b.shape[0]} beats for config word "
                             f"{int(b[0, 0]):#x} (need K + 1 beats, reserved bits 63:34 zero)")
        if rc == ETIMEOUT:
            self.reset()
            raise RTLError(f"the core did not finish the job within {max_cycles} cycles (reset it)")
        self.last_cycles = int(used.value)
        return self._out.reshape(self.rows, self.cols).copy() if rc else None


# ---------------------------------------------------------------------------------------------
# GEMM through the core

def _passes(t: QuantizedTensor) -> list[tuple[np.ndarray, Format, bool]]:
    """(4-bit codes, format, hi) per nibble pass: one for 4-bit tensors, two for int8."""
    if t.bits <= arch.CODE_BITS:
        if t.bits != arch.CODE_BITS:
            raise ValueError(f"the core decodes 4-bit formats (and int8 as nibbles), not {t.fmt.name}")
        return [(t.codes.astype(np.uint8), t.fmt, False)]
    if t.kind != "int" or t.bits != 8:
        raise ValueError(f"the core runs 8-bit layers as int8 nibble passes only, not {t.fmt.name}")
    c = t.codes.astype(np.uint8)
    return [(c >> 4, formats.get("int", 4, t.signed), True),
            (c & 0xF, formats.get("int", 4, False), False)]


def gemm(a: QuantizedTensor, w: QuantizedTensor, core: AntCore) -> np.ndarray:
    """int64 (M, N) = ``antq.reference.gemm(a, w)``, computed by the Verilated core.

    Tiles M by R and N by C (padding with code 0), splits K into jobs of at most ``max_k``
    steps (added in int64 here), and runs int8 operands as nibble passes accumulated in the core.
    """
    for name, t in (("a", a), ("w", w)):
        if not isinstance(t, QuantizedTensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a 2-D QuantizedTensor, got {type(t).__name__} "
                             f"{getattr(t, 'shape', '')}")
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"K mismatch: a is {a.shape} (M, K) and w is {w.shape} (N, K)")
    (m, k), n = a.shape, w.shape[0]
    r, c = core.rows, core.cols
    kmax = min(arch.max_k(a.fmt, w.fmt), K_MAX)
    pa, pw = _passes(a), _passes(w)
    pairs = [(x, y) for x in pa for y in pw]
    out = np.zeros((m, n), np.int64)
    for m0 in range(0, m, r):
        for n0 in range(0, n, c):
            for k0 in range(0, k, kmax):
                kk = min(kmax, k - k0)
                for i, ((ca, fa, ha), (cw, fw, hw)) in enumerate(pairs):
                    ta = np.zeros((r, kk), np.uint8)
                    tw = np.zeros((c, kk), np.uint8)
                    blk_a = ca[m0:m0 + r, k0:k0 + kk]
                    blk_w = cw[n0:n0 + c, k0:k0 + kk]
                    ta[:blk_a.shape[0]] = blk_a
                    tw[:blk_w.shape[0]] = blk_w
                    cfg = config_word(kk, fa, fw, a_hi=ha, w_hi=hw, acc=i > 0, emit=i == len(pairs) - 1)
                    y = core.job(job_beats(ta, tw, cfg, r, c))
                    if y is not None:
                        out[m0:m0 + r, n0:n0 + c] += y[:blk_a.shape[0], :blk_w.shape[0]]
    return out


# ---------------------------------------------------------------------------------------------
# speed benchmark

def _bench_jobs(rows: int, cols: int, k: int, jobs: int, seed: int) -> np.ndarray:
    """(jobs, K + 1, words) beats of random flint4u x flint4s jobs, each emitting."""
    rng = np.random.default_rng(seed)
    f = formats.get("flint", 4, False), formats.get("flint", 4, True)
    return np.stack([job_beats(rng.integers(0, 16, (rows, k)), rng.integers(0, 16, (cols, k)),
                               config_word(k, *f), rows, cols) for _ in range(jobs)])


def bench(rows: int = 16, cols: int = 16, k: int = 4096, jobs: int = 100, seed: int = 0) -> dict:
    """Array cycles per second of the -O3 Verilated core under the C harness (random 4-bit jobs)."""
    t0 = time.perf_counter()
    path = build(rows, cols)
    build_s = time.perf_counter() - t0
    work = _bench_jobs(rows, cols, k, jobs, seed)
    with AntCore(rows, cols, lib=path) as core:
        start_cycles = core.cycles
        t0 = time.perf_counter()
        for b in work:
            core.job(b)
        wall = time.perf_counter() - t0
        cycles = core.cycles - start_cycles
    return {"rows": rows, "cols": cols, "k": k, "jobs": jobs, "cycles": cycles, "seconds": wall,
            "cycles_per_s": cycles / wall, "macs_per_s": rows * cols * k * jobs / wall,
            "build_s": build_s}


def bench_cocotb(rows: int = 16, cols: int = 16, k: int = 4096, jobs: int = 2, seed: int = 0) -> dict:
    """The same kind of jobs through cocotb (lean driver, overlay/harness/cocotb_bench.py) on the
    same Verilated model (-O3, no tracing): the baseline the C harness is compared with."""
    import warnings

    with warnings.catch_warnings():  # "Python runners ... are an experimental feature"
        warnings.simplefilter("ignore", UserWarning)
        from cocotb.runner import get_runner  # only the benchmark needs cocotb

    out_dir = BUILD_DIR / f"cocotb_{rows}x{cols}"
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner("verilator")
    t0 = time.perf_counter()
    quiet = contextlib.redirect_stdout(io.StringIO())  # the runner prints every command it runs
    with file_lock(out_dir.with_suffix(".lock")), quiet:
        try:
            with makeflags(MAKE_FLAGS):
                runner.build(verilog_sources=sources(), hdl_toplevel="ant_core", build_dir=out_dir,
                             parameters={"ROWS": rows, "COLS": cols}, build_args=["-O3"],
                             timescale=("1ns", "1ps"), log_file=out_dir / "build.log")
        except SystemExit as e:
            raise RTLError(f"cocotb Verilator build failed ({e}); see {out_dir / 'build.log'}") from None
    build_s = time.perf_counter() - t0
    beats, result = out_dir / "beats.npy", out_dir / "result.json"
    np.save(beats, _bench_jobs(rows, cols, k, jobs, seed))
    result.unlink(missing_ok=True)
    if str(HARNESS_DIR) not in sys.path:
        sys.path.insert(0, str(HARNESS_DIR))  # the runner hands sys.path to the simulator
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runner.test(hdl_toplevel="ant_core", test_module="cocotb_bench", build_dir=out_dir,
                        test_dir=out_dir, log_file=out_dir / "test.log",
                        extra_env={"ANTQ_BENCH": json.dumps({"beats": str(beats), "out": str(result),
                                                             "rows": rows, "cols": cols})})
    except SystemExit as e:
        raise RTLError(f"cocotb run failed ({e}); see {out_dir / 'test.log'}") from None
    if not result.exists():
        raise RTLError(f"the cocotb run wrote no result; see {out_dir / 'test.log'}")
    r = json.loads(result.read_text())
    r.update(rows=rows, cols=cols, k=k, jobs=jobs, cycles_per_s=r["cycles"] / r["seconds"], build_s=build_s)
    return r


def _cmd_build(a: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    path = build(a.rows, a.cols, force=a.force)
    print(f"{path} ({time.perf_counter() - t0:.1f} s)")


def _cmd_bench(a: argparse.Namespace) -> None:
    r = bench(a.rows, a.cols, a.k, a.jobs)
    print(f"ant_core {r['rows']}x{r['cols']}, Verilator -O3, C harness (build/reuse {r['build_s']:.1f} s): "
          f"{r['cycles']:,} cycles in {r['seconds']:.2f} s = {r['cycles_per_s'] / 1e6:.3f} M array cycles/s "
          f"({r['macs_per_s'] / 1e6:.1f} M MAC/s)")
    if a.cocotb:
        c = bench_cocotb(a.rows, a.cols)
        print(f"ant_core {c['rows']}x{c['cols']}, Verilator -O3, cocotb driver "
              f"(build/reuse {c['build_s']:.1f} s): {c['cycles']:,} cycles in {c['seconds']:.2f} s = "
              f"{c['cycles_per_s'] / 1e3:.1f} k array cycles/s")
        print(f"C harness / cocotb: {r['cycles_per_s'] / c['cycles_per_s']:.0f}x")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rtl-build", help="build the -O3 Verilated ant_core library (cached)",
                       description="Verilate overlay/rtl with -O3 and link the C harness into "
                       "build/rtl/libantcore_<R>x<C>.so (reused when nothing changed).")
    p.add_argument("--rows", type=int, default=arch.ARRAY_ROWS, help="array rows R (default from antq.arch)")
    p.add_argument("--cols", type=int, default=arch.ARRAY_COLS, help="array columns C")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached library is current")
    p.set_defaults(func=_cmd_build)
    p = sub.add_parser("bench-rtl", help="array cycles/s of the Verilated core: C harness vs. cocotb",
                       description="Stream random flint jobs through the -O3 Verilated ant_core, "
                       "once under the C harness (the emulator's rtl level) and once driven by cocotb, "
                       "and print array cycles per second of each and their ratio.")
    p.add_argument("--rows", type=int, default=16, help="array rows (default 16)")
    p.add_argument("--cols", type=int, default=16, help="array columns (default 16)")
    p.add_argument("--k", type=int, default=4096, help="steps per job (default 4096)")
    p.add_argument("--jobs", type=int, default=100, help="jobs to stream (default 100)")
    p.add_argument("--no-cocotb", dest="cocotb", action="store_false",
                   help="skip the cocotb-driven baseline (it builds its own model, ~30 s the first time)")
    p.set_defaults(func=_cmd_bench)

"""Verilator builds of the RTL ``ant_core``: the -O3 shared library the emulator's ``rtl`` level loads.

The RTL (``overlay/rtl``) is Verilated with ``-O3`` (no tracing) together with the C harness
``overlay/harness/antcore.cpp`` into ``<build_dir>/rtl/libantcore_<R>x<C>.so``, whose C ABI is
fixed in docs/contracts.md §10 (:class:`antq.emu.antcore.AntCore` loads it). :func:`build` does
that once per array size and caches the result: a file lock makes concurrent builds
(pytest-xdist workers, the emulator) wait for one another, and a stamp of every input (sources,
harness, Verilator version, flags) triggers a rebuild when anything changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..core import arch
from .paths import build_dir, file_lock, source_dir

VERILATOR_FLAGS = ("--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")
MAKE_FLAGS = "OPT_FAST=-O3 OPT_SLOW=-O1 OPT_GLOBAL=-O2"
CXX_FLAGS = ("-O3", "-fPIC", "-std=c++17", "-shared")
RUNTIME_OBJS = ("verilated.o", "verilated_threads.o")
BUILD_TIMEOUT_S = 900


class RTLError(RuntimeError):
    """The Verilated core could not be built, or a job failed (timeout, malformed stream)."""


def rtl_dir() -> Path:
    return source_dir("overlay/rtl")


def harness_dir() -> Path:
    return source_dir("overlay/harness")


def _build_dir() -> Path:
    return build_dir() / "rtl"


def sources() -> list[Path]:
    """The Verilog sources of the core, one module per file."""
    return sorted(rtl_dir().glob("*.v"))


def lib_path(rows: int = arch.ARRAY_ROWS, cols: int = arch.ARRAY_COLS) -> Path:
    return _build_dir() / f"libantcore_{rows}x{cols}.so"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RTLError(f"{name} not found on PATH; `make setup` installs it (apt: verilator, g++)")
    return path


def _stamp(rows: int, cols: int) -> str:
    h = hashlib.sha256()
    for p in [*sources(), harness_dir() / "antcore.h", harness_dir() / "antcore.cpp"]:
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
    """Build (or reuse) ``<build_dir>/rtl/libantcore_<rows>x<cols>.so`` and return its path.

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
        obj = _build_dir() / f"obj_{rows}x{cols}"
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
              f"-I{obj}", f"-I{harness_dir()}", f"-I{root}/include", f"-I{root}/include/vltstd",
              str(harness_dir() / "antcore.cpp"), str(obj / "Vant_core__ALL.a"),
              *(str(obj / o) for o in RUNTIME_OBJS), "-pthread", "-o", str(tmp)], log)
        os.replace(tmp, lib)
        stamp_file.write_text(stamp)
    return lib

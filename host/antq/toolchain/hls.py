"""The HLS C++ side on a machine without Vitis: its generated header and its g++ builds.

* :func:`config_header` renders ``hls/ant_config.h`` from :mod:`antq.core.arch`,
  :mod:`antq.core.formats` and :mod:`antq.core.regmap` (``make config``); a test fails if the
  committed copy is stale.
* :func:`build` compiles the HLS top function, unchanged, with g++ against the small shims in
  ``hls/shim`` (``ap_int.h``, ``hls_stream.h``):

  - ``csim``: a shared library of the top function with the C++ core model (the emulator's
    default compute level);
  - ``rtl``: the same data mover linked with the -O3 Verilated ``ant_core``
    (:mod:`antq.toolchain.verilator`);
  - ``tb``: the C-simulation testbench ``hls/tb`` (``make csim``);
  - ``tb_deadlock``: a two-process region that must deadlock with a shallow FIFO, which shows
    that the shim's DATAFLOW regions (bounded streams, concurrent processes) can.

  Builds are cached under ``<build_dir>/hls`` by a hash of their sources and flags, behind a file
  lock, so parallel test workers build once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..core import arch, epilogue, formats, regmap, stream
from . import verilator
from .paths import build_dir, file_lock, source_dir

CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unknown-pragmas", "-Wno-unused-label",
            "-fno-strict-aliasing", "-pthread"]
SOURCES = {
    "csim": ["ant_gemm.cpp", "ant_core_model.cpp", "sim_api.cpp"],
    "rtl": ["ant_gemm.cpp", "ant_core_rtl.cpp", "sim_api.cpp"],
    "tb": ["ant_gemm.cpp", "ant_core_model.cpp", "tb/tb_ant_gemm.cpp"],
    "tb_rtl": ["ant_gemm.cpp", "ant_core_rtl.cpp", "tb/tb_ant_gemm.cpp"],
    # the same testbench around the Verilated Verilog core: the golden GEMM and epilogue vectors
    # through the RTL
    "tb_deadlock": ["tb/tb_deadlock.cpp"],
    "tb_epilogue": ["tb/tb_epilogue.cpp"],
}
COSIM_DEPTH = 16384
"""Elements of each m_axi buffer C/RTL co-simulation models (the pragmas' ``depth=``); the
testbench refuses a GEMM whose buffers are larger, so csim proves cosim will fit."""


class BuildError(RuntimeError):
    """A g++ build of the HLS code failed (the message carries the compiler output)."""


def stream_depths(cfg: arch.ArrayConfig = arch.DEFAULT) -> dict[str, int]:
    """Depths of the dataflow's streams (docs/overlay.md §2): a word FIFO holds one tile block of
    K = 1024 at R = 16, so the fetches run a tile ahead; the core's output FIFO one readout."""
    return {"ANT_WORDS_DEPTH": 1024, "ANT_STEPS_DEPTH": 4, "ANT_Y_DEPTH": 2 * cfg.rows * cfg.cols,
            "ANT_CORE_IN_DEPTH": 16, "ANT_CORE_OUT_DEPTH": cfg.rows * cfg.cols, "ANT_EPI_DEPTH": 4}


def config_header(cfg: arch.ArrayConfig = arch.DEFAULT,
                  max_burst: int = arch.BOARDS["pynq-z2"].max_burst,
                  depths: Mapping[str, int] | None = None) -> str:
    """The text of ``hls/ant_config.h`` for an array configuration and a board's burst limit;
    ``depths`` overrides stream depths (how the tests show the dataflow needs no deep FIFO)."""
    data_w = stream.data_bits(cfg.rows, cfg.cols)
    hw = {(f.kind, f.signed): f for f in regmap.array_formats()}
    kinds = sorted(formats.KIND_IDS, key=formats.KIND_IDS.get)
    max_abs = ", ".join("{" + ", ".join(str(hw[(k, s)].max_abs) for s in (False, True)) + "}" for k in kinds)
    values = ",\n    ".join(
        "{" + ", ".join("{" + ", ".join(str(int(v)) for v in hw[(k, s)].values) + "}" for s in (False, True))
        + "}" for k in kinds)
    defines = {
        "ANT_ROWS": cfg.rows, "ANT_COLS": cfg.cols, "ANT_BUS_BITS": cfg.bus_bits,
        "ANT_ACC_BITS": cfg.acc_bits, "ANT_CODE_BITS": arch.CODE_BITS, "ANT_DATA_W": data_w,
        "ANT_KBUF_STEPS": regmap.KBUF_STEPS, "ANT_WRES_WORDS": regmap.WRES_BYTES * 8 // cfg.bus_bits,
        "ANT_SRC_WORDS": regmap.SRC_BYTES * 8 // cfg.bus_bits,
        "ANT_WSRC_WORDS": regmap.HEADS_W_BYTES * 8 // cfg.bus_bits,
        "ANT_MAX_BURST": max_burst, "ANT_COSIM_DEPTH": COSIM_DEPTH, "ANT_MEM_LATENCY": regmap.MEM_LATENCY,
        "ANT_CALL_OVERHEAD": regmap.CALL_OVERHEAD, "ANT_EPI_MAX_COLS": regmap.EPI_MAX_COLS,
        "ANT_CORE_LATENCY": stream.core_latency(cfg.rows, cfg.cols), "ANT_CORE_CAPTURE": stream.CAPTURE,
        "ANT_CORE_OUT_DELAY": stream.OUT_DELAY, "ANT_CORE_READ_AHEAD": stream.READ_AHEAD,
        "ANT_STATS_BEATS": stream.STATS_BEATS,
        "ANT_MAX_DIM": f"{regmap.MAX_DIM}u", "ANT_ID_WORD": f"0x{regmap.ID_WORD:08X}u",
        "ANT_GEOMETRY": f"0x{regmap.encode_geometry(cfg):08X}u",
        "ANT_CFG_A_SIDE": regmap.CFG_A_SIDE, "ANT_CFG_W_SIDE": regmap.CFG_W_SIDE,
        "ANT_CFG_ACC": regmap.CFG_ACC, "ANT_CFG_EMIT": regmap.CFG_EMIT, "ANT_CFG_STATS": regmap.CFG_STATS,
    }
    own = stream_depths(cfg)
    unknown = set(depths or {}) - set(own)
    if unknown:
        raise ValueError(f"unknown stream depth(s) {sorted(unknown)}; the streams are {sorted(own)}")
    if any(not isinstance(v, int) or v < 1 for v in (depths or {}).values()):
        raise ValueError(f"stream depths must be positive ints, got {dict(depths or {})}")
    defines |= own | dict(depths or {})
    defines |= {f"ANT_KIND_{k.upper()}": formats.KIND_IDS[k] for k in kinds}
    status = ("OK", "BAD_A", "BAD_W", "BAD_PASSES", "BAD_SIZE", "BAD_PAIR", "BAD_MODE", "BAD_CONV",
              "BAD_HEADS")
    defines |= {f"ANT_ST_{n}": v for n, v in zip(status, range(len(regmap.STATUS)), strict=True)}
    fmts = regmap.indexed_formats()

    def max_k(fa: formats.Format, fw: formats.Format) -> int:
        return arch.max_k(fa, fw, cfg.acc_bits)

    def steps(fa: formats.Format, fw: formats.Format) -> int:
        return regmap.job_steps(fa, fw, cfg)

    def table(fn) -> str:
        return ",\n    ".join("{" + ", ".join(f"{fn(fa, fw)}u" for fw in fmts) + "}" for fa in fmts)

    lines = [
        "// ant_config.h: GENERATED by `make config` (antq hls config) from antq.core.arch,",
        "// antq.core.formats and antq.core.regmap. Do not edit; tests/hls fails if it is stale.",
        "#ifndef ANT_CONFIG_H", "#define ANT_CONFIG_H", "", "#include <stdint.h>", "",
    ]
    lines += [f"#define {k} {v}" for k, v in defines.items()]

    def grid_codes(k: str, s: bool) -> list[int]:
        f = hw[(k, s)]
        return [int(c) for c in f.grid_codes] + [0] * (16 - len(f.grid_codes))

    codes4 = ",\n    ".join(
        "{" + ", ".join("{" + ", ".join(map(str, grid_codes(k, s))) + "}" for s in (False, True)) + "}"
        for k in kinds)
    q4 = ", ".join("{" + ", ".join(str(len(epilogue.grid(hw[(k, s)]))) for s in (False, True)) + "}"
                   for k in kinds)
    shifts = ", ".join(f"{epilogue.max_shift(f)}u" for f in fmts)
    lines += [
        "",
        "// Largest |value| of each 4-bit format, [kind id][signed].",
        f"static const uint32_t ANT_MAX_ABS4[4][2] = {{{max_abs}}};",
        "// Value of every 4-bit code, [kind id][signed][code] (integer units).",
        f"static const int32_t ANT_VALUES4[4][2][16] = {{\n    {values}}};",
        "// Type index (antq.core.regmap.type_index): " + ", ".join(f.name for f in fmts) + ".",
        "// Largest K of one job without overflow (antq.core.arch.max_k), [a index][w index].",
        f"static const uint32_t ANT_MAX_K[{len(fmts)}][{len(fmts)}] = {{{table(max_k)}}};",
        "// Steps per job: min(max_k, ANT_KBUF_STEPS), 0 for a pair that cannot run.",
        f"static const uint32_t ANT_JOB_STEPS[{len(fmts)}][{len(fmts)}] = {{{table(steps)}}};",
        "// Epilogue (docs/contracts.md section 12): the code of grid index i of each 4-bit format,",
        "// [kind id][signed][i] (antq.core.formats grid_codes, 0 past the grid), its grid size q,",
        "// and the largest shift S per type index (antq.core.epilogue.max_shift).",
        f"static const uint8_t ANT_GRID_CODES4[4][2][16] = {{\n    {codes4}}};",
        f"static const uint32_t ANT_GRID_Q4[4][2] = {{{q4}}};",
        f"static const uint32_t ANT_EPI_MAX_SHIFT[{len(fmts)}] = {{{shifts}}};",
        "", "#endif", "",
    ]
    return "\n".join(lines)


def hls_dir() -> Path:
    return source_dir("hls")


def config_path() -> Path:
    return hls_dir() / "ant_config.h"


def _build_dir() -> Path:
    return build_dir() / "hls"


def write_config(path: Path | None = None) -> Path:
    path = Path(path or config_path())
    path.write_text(config_header())
    return path


def check_config(path: Path | None = None) -> None:
    """Raise if the committed ``hls/ant_config.h`` no longer matches antq.core's arch/formats/regmap."""
    path = Path(path or config_path())
    if not path.is_file() or path.read_text() != config_header():
        raise BuildError(f"{path} is stale or missing: antq.core (arch, formats or regmap) changed; "
                         "run `make config` and commit the result")


def _compiler() -> str:
    return os.environ.get("CXX", "g++")


def _digest(files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    try:
        h.update(subprocess.run([_compiler(), "--version"], capture_output=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"no working C++ compiler ({_compiler()}): {e}; run `make setup`") from e
    for f in files:
        h.update(str(f).encode())
        h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    return h.hexdigest()[:16]


def _headers() -> list[Path]:
    return sorted(hls_dir().glob("*.h")) + sorted((hls_dir() / "shim").glob("*.h")) \
        + sorted((hls_dir() / "tb").glob("*.h"))  # the testbenches' golden_io.h


def _config_dir(cfg: arch.ArrayConfig, depths: Mapping[str, int] | None = None) -> Path:
    """Include directory holding ant_config.h for ``cfg``: hls/ itself for the default array,
    else a generated header under build/hls (how tests build other geometries and depths)."""
    if cfg == arch.DEFAULT and not depths:
        check_config()
        return hls_dir()
    text = config_header(cfg, depths=depths)
    d = _build_dir() / f"config-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if not (d / "ant_config.h").is_file():
        with file_lock(_build_dir() / ".lock"):
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f"ant_config.h.tmp{os.getpid()}"
            tmp.write_text(text)
            os.replace(tmp, d / "ant_config.h")
    return d


def build(target: str = "csim", cfg: arch.ArrayConfig = arch.DEFAULT,
          depths: Mapping[str, int] | None = None) -> Path:
    """Compile ``csim`` / ``rtl`` (shared libraries) or ``tb*`` (executables); return the cached path."""
    if target not in SOURCES:
        raise ValueError(f"unknown HLS build target {target!r}; expected one of {sorted(SOURCES)}")
    conf = _config_dir(cfg, depths)
    hls = hls_dir()
    sources = [hls / s for s in SOURCES[target]]
    flags = CXXFLAGS + [f"-I{conf}", f"-I{hls}", f"-I{hls / 'shim'}"]
    deps = sources + _headers() + [conf / "ant_config.h"]
    link: list[str] = []
    if target in ("rtl", "tb_rtl"):
        lib = Path(verilator.build(cfg.rows, cfg.cols))  # the Verilated ant_core, built and cached
        harness = verilator.harness_dir()
        flags.append(f"-I{harness}")
        if target == "tb_rtl":
            flags.append("-DANT_TB_RTL")
        deps += [lib, harness / "antcore.h"]
        link = [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
    executable = target.startswith("tb")
    if not executable:
        flags = flags + ["-fPIC", "-shared"]
    out = _build_dir() / (f"{target}-{_digest(deps, flags)}" if executable
                          else f"libantgemm_{target}-{_digest(deps, flags)}.so")
    if out.exists():
        return out
    with file_lock(_build_dir() / ".lock"):
        if out.exists():
            return out
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        cmd = [_compiler(), *flags, *map(str, sources), "-o", str(tmp), *link]
        print(f"antq: building the HLS {target} target with g++ (cached in {_build_dir()})", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            tmp.unlink(missing_ok=True)
            raise BuildError(f"g++ failed building the HLS {target} target:\n{' '.join(cmd)}\n{r.stderr}")
        os.replace(tmp, out)
    return out


_LIBS: dict[Path, ctypes.CDLL] = {}


def load(target: str = "csim", cfg: arch.ArrayConfig = arch.DEFAULT) -> ctypes.CDLL:
    """The ``csim`` or ``rtl`` shared library with its C ABI (``hls/sim_api.cpp``) typed."""
    if target not in ("csim", "rtl"):
        raise ValueError(f"only the csim and rtl builds are libraries, not {target!r}")
    path = build(target, cfg)
    if path not in _LIBS:
        lib = ctypes.CDLL(str(path))
        u32, vp = ctypes.c_uint32, ctypes.c_void_p
        scalars = sum(a.kind == "in" for a in regmap.ARGS)  # m .. heads_w_col, in regmap.ARGS order
        lib.antgemm_call.argtypes = [vp, vp, vp, vp, *[u32] * scalars,
                                     ctypes.POINTER(u32), ctypes.POINTER(ctypes.c_uint64)]
        lib.antgemm_call.restype = ctypes.c_int
        lib.antgemm_error.restype = ctypes.c_char_p
        lib.antgemm_max_k.argtypes = [u32, u32]
        lib.antgemm_max_k.restype = u32
        lib.antgemm_id_word.restype = u32
        lib.antgemm_geometry.restype = u32
        _LIBS[path] = lib
    return _LIBS[path]


def run_csim(golden: Path | None = None, random: int = 200, seed: int = 1,
             cfg: arch.ArrayConfig = arch.DEFAULT,
             depths: Mapping[str, int] | None = None) -> subprocess.CompletedProcess:
    """Build and run the C-simulation testbench; returns the finished process (output captured).

    ``golden`` is a golden-vector file (:mod:`antq.core.golden`, written for the default array);
    None checks random GEMMs only."""
    exe = build("tb", cfg, depths)
    return subprocess.run([str(exe), str(golden or "none"), "--random", str(random), "--seed", str(seed)],
                          capture_output=True, text=True)


def run_epilogue_tb(golden: Path, cfg: arch.ArrayConfig = arch.DEFAULT) -> subprocess.CompletedProcess:
    """Build and run ``hls/tb/tb_epilogue.cpp`` on an epilogue golden file (its codes and packed bytes)."""
    exe = build("tb_epilogue", cfg)
    return subprocess.run([str(exe), str(golden)], capture_output=True, text=True, timeout=120)


def run_deadlock_check() -> tuple[bool, str]:
    """Run ``tb_deadlock`` deep and shallow: (both ended as they must, the shallow run's report)."""
    exe = build("tb_deadlock")
    deep = subprocess.run([str(exe), "deep"], capture_output=True, text=True, timeout=60)
    shallow = subprocess.run([str(exe), "shallow"], capture_output=True, text=True, timeout=60)
    ok = deep.returncode == 0 and shallow.returncode == 0 and "DATAFLOW deadlock" in shallow.stdout
    return ok, shallow.stdout.strip()

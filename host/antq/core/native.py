"""antq's one native library: the byte shuffles numpy cannot do at copy speed (``kernels.cpp``).

Packing codes into the accelerator's tile layout is an 8x8 byte transpose per step word, and
im2col gathers runs of 3 bytes; numpy does both one strided element at a time, 10x to 50x slower
than ``np.copy`` (``antq bench-pack`` measures them). ``kernels.cpp`` ships inside the package;
:func:`library` compiles it with g++ on first use into :func:`antq.core.paths.build_dir` (one
build per source, compiler and flags, under a file lock, as the HLS builds are) and loads it with
ctypes. There is no numpy fallback: without a working compiler these functions raise
:class:`NativeBuildError`, which names the compiler and its output.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .paths import PACKAGE, build_dir, file_lock

CXXFLAGS = ["-O3", "-std=c++17", "-fPIC", "-shared", "-Wall", "-Wextra"]
"""Portable flags (no -march=native: a cached build may be shared by other CPUs of one arch)."""
BAD_PADDING = 0x100
"""Flag in :func:`unpack`'s result: a padding nibble is not zero."""


class NativeBuildError(RuntimeError):
    """g++ is missing or failed on ``kernels.cpp`` (the message carries the compiler output)."""


def _source() -> Path:
    return Path(str(PACKAGE.joinpath("core", "kernels.cpp")))


def _compiler() -> str:
    return os.environ.get("CXX", "g++")


def _lib_path() -> Path:
    """The cached library for this source, compiler and flags."""
    h = hashlib.sha256()
    try:
        h.update(subprocess.run([_compiler(), "--version"], capture_output=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        raise NativeBuildError(f"antq needs a C++ compiler ({_compiler()}, or $CXX) for its packing "
                               f"kernel: {e}; install g++ (make setup does)") from e
    h.update(_source().read_bytes())
    h.update(" ".join(CXXFLAGS).encode())
    return build_dir() / "native" / f"libantq_kernels-{h.hexdigest()[:16]}.so"


def _build(out: Path) -> None:
    with file_lock(out.parent / ".lock"):
        if out.exists():
            return
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        cmd = [_compiler(), *CXXFLAGS, str(_source()), "-o", str(tmp)]
        print(f"antq: building the packing kernel with g++ (cached in {out.parent})", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            tmp.unlink(missing_ok=True)
            raise NativeBuildError(f"g++ failed building antq's packing kernel:\n{' '.join(cmd)}\n{r.stderr}")
        os.replace(tmp, out)


_LIB: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The compiled ``kernels.cpp``, typed (built on first use, then loaded once per process)."""
    global _LIB
    if _LIB is None:
        path = _lib_path()
        if not path.exists():
            _build(path)
        lib = ctypes.CDLL(str(path))
        i64, u32, vp = ctypes.c_int64, ctypes.c_uint32, ctypes.c_void_p
        for name in ("antq_pack", "antq_unpack"):
            fn = getattr(lib, name)
            fn.argtypes = [vp, i64, i64, i64, i64, ctypes.c_int32, vp]
            fn.restype = u32
        lib.antq_im2col.argtypes = [vp] + [i64] * 14 + [vp]
        lib.antq_im2col.restype = None
        _LIB = lib
    return _LIB


def _ptr(a: np.ndarray) -> int:
    if a.dtype != np.uint8 or not a.flags.c_contiguous:
        raise TypeError(f"native kernels take C-contiguous uint8 arrays, got {a.dtype} {a.flags}")
    return a.ctypes.data


def pack(codes: np.ndarray, tile: int, k_pad: int, nplanes: int, out: np.ndarray) -> int:
    """Pack ``codes`` (rows, K) into ``out`` (``nplanes`` planes); returns the OR of all codes."""
    rows, k = codes.shape
    if not out.flags.writeable or out.size != nplanes * (-(-rows // tile) * tile) * k_pad // 2:
        raise ValueError("output buffer of the wrong size or read-only")
    return library().antq_pack(_ptr(codes), rows, k, tile, k_pad, nplanes, _ptr(out))


def unpack(buf: np.ndarray, tile: int, k_pad: int, nplanes: int, out: np.ndarray) -> int:
    """Unpack ``buf`` into ``out`` (rows, K); returns the OR of the codes, | BAD_PADDING if any
    padding nibble is not zero."""
    rows, k = out.shape
    if not out.flags.writeable or buf.size != nplanes * (-(-rows // tile) * tile) * k_pad // 2:
        raise ValueError("packed buffer of the wrong size or read-only output")
    return library().antq_unpack(_ptr(buf), rows, k, tile, k_pad, nplanes, _ptr(out))


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """(B, C, H, W) uint8 codes -> (B*OH*OW, C*kh*kw), code 0 where the window leaves the image."""
    b, c, h, w = x.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    out = np.empty((b * oh * ow, c * kh * kw), np.uint8)
    library().antq_im2col(_ptr(x), b, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow, _ptr(out))
    return out

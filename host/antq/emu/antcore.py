"""The Verilated ``ant_core`` as a Python object, and a whole GEMM streamed through it.

:class:`AntCore` loads the -O3 library that :mod:`antq.toolchain.verilator` builds and drives it
through the harness's C ABI with beats in the stream format of :mod:`antq.core.stream`: one job
at a time (:meth:`AntCore.job`) or any sequence of jobs and stats requests back to back
(:meth:`AntCore.stream`). :func:`gemm` streams a whole GEMM through the core with the data
mover's schedule (:mod:`antq.core.tiling`): R x C tiles, K split into jobs, int8 as nibble passes
accumulated in the core. The rtl-level tests and ``antq bench-rtl`` use it; the emulator's ``rtl``
level runs the HLS data mover itself against the same library.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ..core import arch, regmap, stream, tiling
from ..core.quantize import QuantizedTensor
from ..core.stream import config_word, job_beats
from ..toolchain import verilator
from ..toolchain.verilator import RTLError

ETIMEOUT, EBADJOB, EOUT = -1, -2, -3
"""Harness return codes: not finished in time; not one job (``antcore_job``) or not whole jobs and
stats requests (``antcore_stream``); more output than the buffers hold."""
STREAM_CHUNK = 1 << 20
""":func:`gemm` streams at most about this many beats per harness call (whole tiles each)."""


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
    lib.antcore_stream.restype = ctypes.c_int64
    lib.antcore_stream.argtypes = [ctypes.c_void_p, u64p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint32),
                                   u64p, ctypes.c_uint64, u64p, ctypes.c_uint64, u64p]
    lib.antcore_cycle_count.restype = ctypes.c_uint64
    lib.antcore_cycle_count.argtypes = [ctypes.c_void_p]
    return lib


class AntCore:
    """One Verilated ``ant_core`` (built and cached by :func:`antq.toolchain.verilator.build`),
    driven through its C ABI (docs/contracts.md §10).

    >>> with AntCore(8, 8) as core:
    ...     y = core.job(job_beats(a, w, config_word(k, fa, fw), 8, 8))   # (8, 8) int32
    """

    def __init__(self, rows: int = arch.ARRAY_ROWS, cols: int = arch.ARRAY_COLS, *,
                 lib: Path | None = None) -> None:
        self._h = None
        self._lib = _load(lib if lib is not None else verilator.build(rows, cols))
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
        """Clock cycles of the last job or stream (including the array drain and the output)."""
        self.last_in_cycles = np.zeros(0, np.uint64)
        """The cycle each input beat of the last :meth:`stream` was taken."""

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

    def stream(self, beats: np.ndarray, max_cycles: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """Stream jobs and stats requests back to back (a new beat whenever the core is ready, the
        sink always ready) until the core is idle.

        Returns (the output words as uint32, the cycle each was transferred, the cycles used);
        cycle 0 is the first cycle of this call, and :attr:`last_in_cycles` holds the cycle each
        input beat was taken. Result words are the accumulators' int32 bits
        (``outputs.view(np.int32)``), a stats answer is four uint32 counters.
        """
        b = np.ascontiguousarray(beats, dtype=np.uint64)
        words = self.data_bits // 64
        if b.ndim != 2 or b.shape[1] != words:
            raise ValueError(f"beats must be (n, {words}) uint64 words, got shape {b.shape}")
        cfgs = stream.configs(b)
        n_out = sum(stream.STATS_BEATS if c == stream.STATS_WORD else
                    self.rows * self.cols * (c >> regmap.CFG_EMIT & 1) for c in cfgs)
        if max_cycles is None:
            max_cycles = 4 * (b.shape[0] + n_out) + 64 * (self.rows + self.cols) + 64
        out = np.zeros(max(n_out, 1), np.uint32)
        out_cycles = np.zeros(max(n_out, 1), np.uint64)
        in_cycles = np.zeros(max(b.shape[0], 1), np.uint64)
        used = ctypes.c_uint64(0)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        rc = self._lib.antcore_stream(
            self._handle(), b.ctypes.data_as(u64p), b.shape[0],
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), out_cycles.ctypes.data_as(u64p), out.size,
            in_cycles.ctypes.data_as(u64p), max_cycles, ctypes.byref(used))
        if rc == EBADJOB:
            raise ValueError("not a stream of whole jobs and stats requests (config words "
                             f"{', '.join(f'{c:#x}' for c in cfgs[:4])}{', ...' if len(cfgs) > 4 else ''}): "
                             "k >= 1 and bits 63:34 zero for a job, exactly 1 << 34 for a stats request")
        if rc == ETIMEOUT:
            self.reset()
            raise RTLError(f"the core did not finish the stream within {max_cycles} cycles (reset it)")
        if rc == EOUT:
            self.reset()
            raise RTLError(f"the core sent more than the {n_out} output beats the stream asks for (reset it)")
        self.last_cycles = int(used.value)
        self.last_in_cycles = in_cycles[:b.shape[0]]
        return out[:n_out], out_cycles[:n_out], self.last_cycles


def gemm(a: QuantizedTensor, w: QuantizedTensor, core: AntCore) -> np.ndarray:
    """int64 (M, N) = ``antq.core.reference.gemm(a, w)``, computed by the Verilated core.

    Tiles M by R and N by C (padding with code 0), splits K into the data mover's jobs (added in
    int64 here), runs int8 operands as nibble passes accumulated in the core, and streams every
    job back to back (:meth:`AntCore.stream`, whole tiles of up to about :data:`STREAM_CHUNK`
    beats per call), so the core runs at its full rate.
    """
    for name, t in (("a", a), ("w", w)):
        if not isinstance(t, QuantizedTensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a 2-D QuantizedTensor, got {type(t).__name__} "
                             f"{getattr(t, 'shape', '')}")
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"K mismatch: a is {a.shape} (M, K) and w is {w.shape} (N, K)")
    (m, k), n = a.shape, w.shape[0]
    cfg = arch.ArrayConfig(core.rows, core.cols)
    pa, pw = tiling.nibble_planes(a.codes, a.fmt), tiling.nibble_planes(w.codes, w.fmt)
    pairs = [(x, y) for x in pa for y in pw]
    out = np.zeros((m, n), np.int64)
    beats: list[np.ndarray] = []
    emitted: list[tuple[int, int, int, int]] = []  # the tile of each emitting job, in order

    def flush() -> None:
        if not beats:
            return
        words = core.stream(np.concatenate(beats))[0].view(np.int32).reshape(-1, cfg.rows, cfg.cols)
        for (m0, rows, n0, cols), y in zip(emitted, words, strict=True):
            out[m0:m0 + rows, n0:n0 + cols] += y[:rows, :cols]
        beats.clear()
        emitted.clear()

    size = 0
    for m0, rows, n0, cols in tiling.tiles(m, n, cfg):
        for k0, kk in tiling.job_ranges(k, a.fmt, w.fmt, cfg):
            for i, ((ca, fa, ha), (cw, fw, hw)) in enumerate(pairs):
                ta = np.zeros((cfg.rows, kk), np.uint8)
                tw = np.zeros((cfg.cols, kk), np.uint8)
                ta[:rows] = ca[m0:m0 + rows, k0:k0 + kk]
                tw[:cols] = cw[n0:n0 + cols, k0:k0 + kk]
                last = i == len(pairs) - 1
                word = config_word(kk, fa, fw, a_hi=ha, w_hi=hw, acc=i > 0, emit=last)
                beats.append(job_beats(ta, tw, word, cfg.rows, cfg.cols))
                size += kk + 1
                if last:
                    emitted.append((m0, rows, n0, cols))
        if size >= STREAM_CHUNK:
            flush()
            size = 0
    flush()
    return out

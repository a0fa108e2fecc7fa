"""The ``ant_core`` AXI-Stream job format (docs/contracts.md §10): config word and step beats.

The HLS data mover writes these beats, the RTL core and its Verilated harness read them, and the
tests and benchmarks build them with these two functions, so every side speaks one format. The
config word's field positions are :mod:`antq.core.regmap`'s ``CFG_*`` constants (the generated
``hls/ant_config.h`` carries the same ones).
"""

from __future__ import annotations

import numpy as np

from . import arch, regmap
from .formats import KIND_IDS, Format

K_MAX = (1 << 24) - 1
"""Largest K of one job (the config word's 24-bit field)."""


def data_bits(rows: int, cols: int) -> int:
    """DATA_W of the input stream: max(64, 32 * ceil(4 (R + C) / 32))."""
    return max(64, 32 * -(-4 * (rows + cols) // 32))


def _side(f: Format, hi: bool) -> int:
    """One operand's 4-bit config field: kind id bits 1:0, signed bit 2, int8 high nibble bit 3."""
    return KIND_IDS[f.kind] | int(f.signed) << 2 | int(hi) << 3


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
            raise ValueError(f"{name} must be a 4-bit antq Format, got {f!r}")
    for name, hi, f in (("a_hi", a_hi, a), ("w_hi", w_hi, w)):
        if hi and f.kind != "int":
            raise ValueError(f"{name} marks an int8 high nibble, but the format is {f.name}")
    return (int(k) | _side(a, a_hi) << regmap.CFG_A_SIDE | _side(w, w_hi) << regmap.CFG_W_SIDE
            | int(acc) << regmap.CFG_ACC | int(emit) << regmap.CFG_EMIT)


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
    if k != config & K_MAX:
        raise ValueError(f"the config word says K={config & K_MAX} but the codes have K={k}")
    words = data_bits(rows, cols) // 64
    # nibble i of a step = row i (i < R), then column j at nibble R + j
    nib = np.concatenate([a, w]).T.astype(np.uint8)  # (K, R + C)
    nib = np.pad(nib, ((0, 0), (0, words * 16 - rows - cols)))
    packed = (nib[:, 0::2] | nib[:, 1::2] << 4).copy()  # (K, words * 8) bytes, little-endian
    beats = np.zeros((k + 1, words), np.uint64)
    beats[0, 0] = config
    beats[1:] = packed.view("<u8").reshape(k, words)
    return beats


# ---- timing (docs/contracts.md §10): when the core takes each beat and emits each result ----------

def core_latency(rows: int, cols: int) -> int:
    """Cycles from a job's last accepted step to its first result beat."""
    return rows + cols + 2


class CoreTiming:
    """The core's timing rules per job, in closed form (hls/ant_core_timing.h is the same in C++).

    Input is taken one beat per cycle, back to back across jobs, except that the last step of an
    emitting job waits until its results can follow the previous job's without overlap (its
    readout starts ``core_latency`` cycles after that step and takes R*C cycles). A stats
    request answers after the results still pending and clears the counters.
    """

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols, self.latency = rows, cols, core_latency(rows, cols)
        self.t = self.out_end = self.busy = self.stall_in = self.stall_out = 0

    def job(self, k: int, emit: bool) -> None:
        cfg = self.t
        last = cfg + k
        if emit:
            last = max(last, self.out_end - self.latency)
            self.out_end = last + self.latency + self.rows * self.cols
        self.busy += last + 1 - cfg
        self.t = last + 1

    def stats(self) -> tuple[int, int, int, int]:
        """(total, busy, stall_in, stall_out) since the last stats request; clears them."""
        at = max(self.t, self.out_end)
        out = (at, self.busy + max(0, self.out_end - self.t), self.stall_in, self.stall_out)
        self.t, self.out_end, self.busy, self.stall_in, self.stall_out = 1, 0, 0, 0, 0
        return out

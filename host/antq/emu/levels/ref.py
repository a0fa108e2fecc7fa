"""The ``ref`` level: numpy on the unpacked buffers, cycles from the dataflow model.

:func:`model_cycles` is hls/ant_model.h in Python: the same plan (tiles, jobs, passes, operand
reuse) and the same per-stage costs, so the ref and csim levels report identical cycles (a test
checks it), and the core's counters come from :class:`antq.core.stream.CoreTiming`, the rules
the RTL follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core import arch, epilogue, native, pack, reference, regmap, tiling
from ...core.formats import Format
from ...core.quantize import QuantizedTensor
from ...core.stream import CoreTiming
from ..errors import SimulationError
from . import Call, Outcome


@dataclass(frozen=True)
class Plan:
    """How the data mover runs one call (hls/ant_gemm.cpp, make_plan)."""

    m: int
    n: int
    k: int
    fa: Format
    fw: Format
    sel: int
    jobs: list[tuple[int, int]]
    use_a: tuple[bool, bool]
    use_w: tuple[bool, bool]
    a_reuse: bool
    w_resident: bool

    @classmethod
    def of(cls, m: int, n: int, k: int, fa: Format, fw: Format, sel: int, cfg: arch.ArrayConfig) -> Plan:
        jobs = tiling.job_ranges(k, fa, fw, cfg)
        use_a, use_w = (bool(sel & 0x3), bool(sel & 0xC)), (bool(sel & 0x5), bool(sel & 0xA))
        one_job = len(jobs) == 1
        w_words = pack.accelerator_layout("w", cfg).nbytes((n, k), 4) * 8 // cfg.bus_bits
        w_resident = one_job and (use_w[0] + use_w[1]) * w_words <= regmap.WRES_BYTES * 8 // cfg.bus_bits
        return cls(m, n, k, fa, fw, sel, jobs, use_a, use_w, one_job, w_resident)


def _span_cost(step_bits: int, k0: int, kl: int, bus: int) -> int:
    first, last = k0 * step_bits, (k0 + kl) * step_bits
    return regmap.MEM_LATENCY + -(-last // bus) - first // bus


def conv_span_cost(conv: regmap.Conv, k0: int, kl: int, cfg: arch.ArrayConfig) -> int:
    """Conv mode: fetch_a's cycles to generate the span of steps [k0, k0 + kl) (gen_span: the
    step-back from k0 to the span's first step, then each step it touches in 1 cycle on the fast
    path or R cycles, one code per cycle, otherwise)."""
    step, bus = 4 * cfg.rows, cfg.bus_bits
    w0, w1 = k0 * step // bus, -(-(k0 + kl) * step // bus)
    s_first, s_end = w0 * bus // step, -(-w1 * bus // step)
    return (k0 - s_first) + (s_end - s_first) * (1 if conv.fast else cfg.rows)


def source_words(conv: regmap.Conv, fa: Format, cfg: arch.ArrayConfig) -> int:
    """Bus words of the conv source tensor, every nibble plane (fetch_a reads it before the tiles)."""
    return conv.source_nbytes(fa, cfg) * 8 // cfg.bus_bits


def conv_operand(mem_a: np.ndarray, fa: Format, conv: regmap.Conv, cfg: arch.ArrayConfig) -> np.ndarray:
    """The codes of A (M, K) in conv mode: the im2col of the packed source (B*H*W pixel rows x C,
    NHWC), rows (b, oy, ox), K in (c, i, j) order, code 0 outside the image."""
    src = pack.unpack(np.ascontiguousarray(mem_a), fa.bits, (conv.src_rows, conv.channels),
                      pack.accelerator_layout("a", cfg))
    nchw = np.ascontiguousarray(src.reshape(conv.batch, conv.h, conv.w, conv.channels).transpose(0, 3, 1, 2))
    return native.im2col(nchw, conv.kernel, conv.stride, conv.padding, conv.dilation, conv.out_hw)


def heads_fast(rule: str, cfg: arch.ArrayConfig) -> bool:
    """Does a heads-mode side generate one step per cycle (docs/contracts.md section 15)? ``rows``
    always (a step is R consecutive source rows of one column: two source steps, shifted and
    masked), ``kt`` when C <= R (its run of at most C consecutive rows lies in two source steps),
    ``v`` when a run of C codes of one source row fits a bus word (4*C <= bus: two words of the
    row-major copy); otherwise one code per cycle."""
    return {"rows": True, "kt": cfg.cols <= cfg.rows, "v": 4 * cfg.cols <= cfg.bus_bits}[rule]


def heads_span_cost(k0: int, kl: int, step_bits: int, tile: int, bus: int, fast: bool) -> int:
    """Heads mode: a generated side's cycles for the span of steps [k0, k0 + kl): every step its
    words touch, one per cycle on the fast path (:func:`heads_fast`), else ``tile`` (one code per
    cycle)."""
    w0, w1 = k0 * step_bits // bus, -(-(k0 + kl) * step_bits // bus)
    return (-(-w1 * bus // step_bits) - w0 * bus // step_bits) * (1 if fast else tile)


def heads_operand(mem: np.ndarray, heads: regmap.Heads, which: str, rows: int, k: int,
                  cfg: arch.ArrayConfig) -> np.ndarray:
    """The codes (rows, K) a heads-mode side generates from its packed source (the element rules
    of docs/contracts.md section 15), code 0 off the blocks and past the source's rows."""
    side = getattr(heads, which)
    g, t, d = heads.heads, heads.tokens, heads.width
    full = -(-side.src_rows // cfg.rows) * cfg.rows  # whole row tiles: rows past Rs are read as 0
    src = pack.unpack(np.ascontiguousarray(mem), arch.CODE_BITS, (full, side.src_k),
                      pack.accelerator_layout("a", cfg))
    i, st = np.arange(rows)[:, None], np.arange(k)[None, :]
    if side.rule == "v":
        s1, h1, kk = st // (g * t), st // t % g, st % t
        h, n = i // d, i % d
        ok, row, col = h1 == h, side.r0 + s1 * t + kk, side.col0 + h * side.stride + n
    else:
        s1, h1, kk = st // (g * d), st // d % g, st % d
        if side.rule == "rows":
            sm, m = i // t, i % t
            ok, row, col = s1 == sm, side.r0 + sm * t + m, side.col0 + h1 * side.stride + kk
        else:  # kt
            h, n = i // t, i % t
            ok, row, col = h1 == h, side.r0 + s1 * t + n, side.col0 + h * side.stride + kk
    ok = ok & (row < side.src_rows)
    out = np.zeros((rows, k), np.uint8)
    r_b, c_b, ok_b = np.broadcast_arrays(row, col, ok)
    out[ok_b] = src[r_b[ok_b], c_b[ok_b]]
    return out


def heads_source_words(heads: regmap.Heads | None, cfg: arch.ArrayConfig) -> int:
    """Bus words of the larger heads-mode source (both are read before the tiles, on their ports)."""
    if heads is None:
        return 0
    return max(0 if x is None else x.source_nbytes(cfg) * 8 // cfg.bus_bits for x in (heads.a, heads.w))


def store_words(m0: int, n0: int, rows: int, cols: int, n: int, out: Format | None,
                cfg: arch.ArrayConfig) -> int:
    """Words store_y writes for one output tile: rows * cols int64 results, or with the epilogue
    the tile's packed codes in 64-bit words, every nibble plane (epilogue.tile_slices)."""
    if out is None:
        return rows * cols
    return sum(s.stop - s.start for s in epilogue.tile_slices(cfg, (m0 + rows, n), out.bits, m0, n0)) // 8


def model_cycles(m: int, n: int, k: int, fa: Format, fw: Format, sel: int,
                 cfg: arch.ArrayConfig = arch.DEFAULT, out: Format | None = None,
                 conv: regmap.Conv | None = None, heads: regmap.Heads | None = None
                 ) -> tuple[int, tuple[int, int, int], CoreTiming]:
    """(cycles, (load, compute, store) totals, the core's timing after the call) of one call.

    A call costs the fill (CALL_OVERHEAD and one DDR latency; with the epilogue output format
    ``out`` also MEM_LATENCY + the parameter buffer's words), per output tile the slowest of its
    stages (fetch of A and W on their own ports, the core's cycles for the tile's beats, the store
    of its int64 results or packed codes), and the drain of the last tile (docs/overlay.md §2).
    In conv mode (``conv``) the source tensor's words and one MEM_LATENCY come before the tiles,
    and fetch_a's A term is :func:`conv_span_cost` per span plus R per row tile (no DDR). In heads
    mode (``heads``) the larger source's words and one MEM_LATENCY come first, and a generated
    side costs R (A, per row tile) or C (W, per column tile it fetches) plus
    :func:`heads_span_cost` per span, one step per cycle where :func:`heads_fast` (docs/contracts.md
    section 15).
    """
    p = Plan.of(m, n, k, fa, fw, sel, cfg)
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bits
    core = CoreTiming(R, C)
    core.stats()  # the opening stats request
    passes = tiling.pass_list(fa, fw, sel)
    cycles = regmap.CALL_OVERHEAD + regmap.MEM_LATENCY
    if out is not None:
        cycles += regmap.MEM_LATENCY + epilogue.param_words(out, n)
    if conv is not None:
        cycles += regmap.MEM_LATENCY + source_words(conv, fa, cfg)
    gen_a = heads is not None and heads.a is not None
    gen_w = heads is not None and heads.w is not None
    if gen_a or gen_w:
        cycles += regmap.MEM_LATENCY + heads_source_words(heads, cfg)
    fast_a = gen_a and heads_fast(heads.a.rule, cfg)
    fast_w = gen_w and heads_fast(heads.w.rule, cfg)
    load = compute = store = 0
    last_store = 0
    for m0, rows, n0, cols in tiling.tiles(m, n, cfg):
        fetch_a = R if (conv is not None or gen_a) and n0 == 0 else 0  # the row tile's rows
        fetch_w = C if gen_w and (not p.w_resident or m0 == 0) else 0  # the column tile's rows
        before = core.t
        for k0, kl in p.jobs:
            for plane in (1, 0):
                if p.use_a[plane] and (not p.a_reuse or n0 == 0):
                    fetch_a += (conv_span_cost(conv, k0, kl, cfg) if conv is not None
                                else heads_span_cost(k0, kl, 4 * R, R, B, fast_a) if gen_a
                                else _span_cost(4 * R, k0, kl, B))
                if p.use_w[plane] and (not p.w_resident or m0 == 0):
                    fetch_w += heads_span_cost(k0, kl, 4 * C, C, B, fast_w) if gen_w \
                        else _span_cost(4 * C, k0, kl, B)
            for i in range(len(passes)):
                core.job(kl, emit=i == len(passes) - 1)
        fetch, comp = max(fetch_a, fetch_w), core.t - before
        st = store_words(m0, n0, rows, cols, n, out, cfg)
        cycles += max(fetch, comp, st)
        load, compute, store, last_store = load + fetch, compute + comp, store + st, st
    tail = max(0, core.out_end - core.t) + last_store + regmap.MEM_LATENCY
    return cycles + tail, (load, compute, store), core


class RefLevel:
    name = "ref"

    def __init__(self, cfg: arch.ArrayConfig) -> None:
        self.cfg = cfg

    def run(self, call: Call) -> Outcome:
        c, cfg = call, self.cfg
        la, lw = pack.accelerator_layout("a", cfg), pack.accelerator_layout("w", cfg)
        hd = c.heads
        if c.conv is not None:
            a = conv_operand(c.mem_a, c.fa, c.conv, cfg)
        elif hd is not None and hd.a is not None:
            a = heads_operand(c.mem_a, hd, "a", c.m, c.k, cfg)
        else:
            a = pack.unpack(np.ascontiguousarray(c.mem_a), c.fa.bits, (c.m, c.k), la)
        if hd is not None and hd.w is not None:
            w = heads_operand(c.mem_w, hd, "w", c.n, c.k, cfg)
        else:
            w = pack.unpack(np.ascontiguousarray(c.mem_w), c.fw.bits, (c.n, c.k), lw)
        if c.sel == regmap.pass_mask(c.fa, c.fw):
            y = reference.gemm(QuantizedTensor(a, kind=c.fa.kind, bits=c.fa.bits, signed=c.fa.signed),
                               QuantizedTensor(w, kind=c.fw.kind, bits=c.fw.bits, signed=c.fw.signed))
        else:
            y = np.zeros((c.m, c.n), np.int64)
            for a_hi, w_hi in tiling.pass_list(c.fa, c.fw, c.sel):
                y += tiling.plane_values(a, c.fa, a_hi) @ tiling.plane_values(w, c.fw, w_hi).T
        if c.out is None:
            c.y[:] = y.ravel()
        else:
            fmt, shift = c.out
            try:
                p = epilogue.read_param_buffer(np.ascontiguousarray(c.mem_p), fmt, shift, c.n)
                packed = epilogue.apply_packed(y, p, cfg)
            except ValueError as e:
                raise SimulationError(f"the epilogue cannot run at the ref level: {e}") from None
            c.y.view(np.uint8)[:] = packed
        cycles, stages, core = model_cycles(c.m, c.n, c.k, c.fa, c.fw, c.sel, cfg,
                                            None if c.out is None else c.out[0], c.conv, c.heads)
        _, busy, stall_in, stall_out = core.stats()
        return Outcome(cycles, busy, stall_in, stall_out, stages)

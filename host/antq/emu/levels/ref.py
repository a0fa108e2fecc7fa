"""The ``ref`` level: numpy on the unpacked buffers, cycles from the data mover's model."""

from __future__ import annotations

import numpy as np

from ...core import arch, pack, reference, regmap, tiling
from ...core.formats import Format
from ...core.quantize import QuantizedTensor
from . import Call


def model_cycles(m: int, n: int, k: int, fa: Format, fw: Format, sel: int,
                 cfg: arch.ArrayConfig = arch.DEFAULT) -> int:
    """Cycles the IP counts for one call with the C++ core model (the schedule of hls/ant_gemm.cpp)."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bits
    use_a = [bool(sel & 0x3), bool(sel & 0xC)]
    use_w = [bool(sel & 0x5), bool(sel & 0xA)]
    npasses = bin(sel).count("1")
    jobs = tiling.job_ranges(k, fa, fw, cfg)
    ntm, ntn = -(-m // R), -(-n // C)

    def words(k0: int, kl: int, tile: int) -> int:
        return -(-(k0 + kl) * 4 * tile // B) - (k0 * 4 * tile) // B

    per_tile_jobs = 0  # loads and core cycles of one (tm, tn) tile, A counted separately
    a_cost = 0
    for k0, kl in jobs:
        a_cost += sum(regmap.MEM_LATENCY + words(k0, kl, R) for p in range(2) if use_a[p])
        per_tile_jobs += sum(regmap.MEM_LATENCY + words(k0, kl, C) for p in range(2) if use_w[p])
        per_tile_jobs += npasses * (kl + 1 + regmap.CORE_LATENCY) + R * C + 1  # one emitting pass per job
    a_loads = ntm * (ntn if len(jobs) > 1 else 1)
    cycles = regmap.CALL_OVERHEAD + ntm * ntn * per_tile_jobs + a_loads * a_cost
    for _, rows, _, cols in tiling.tiles(m, n, cfg):
        cycles += rows * (regmap.MEM_LATENCY + cols)
    return cycles


class RefLevel:
    name = "ref"

    def __init__(self, cfg: arch.ArrayConfig) -> None:
        self.cfg = cfg

    def run(self, call: Call) -> int:
        c, cfg = call, self.cfg
        la, lw = pack.accelerator_layout("a", cfg), pack.accelerator_layout("w", cfg)
        a = pack.unpack(np.ascontiguousarray(c.mem_a), c.fa.bits, (c.m, c.k), la)
        w = pack.unpack(np.ascontiguousarray(c.mem_w), c.fw.bits, (c.n, c.k), lw)
        if c.sel == regmap.pass_mask(c.fa, c.fw):
            y = reference.gemm(QuantizedTensor(a, kind=c.fa.kind, bits=c.fa.bits, signed=c.fa.signed),
                               QuantizedTensor(w, kind=c.fw.kind, bits=c.fw.bits, signed=c.fw.signed))
        else:
            y = np.zeros((c.m, c.n), np.int64)
            for a_hi, w_hi in tiling.pass_list(c.fa, c.fw, c.sel):
                y += tiling.plane_values(a, c.fa, a_hi) @ tiling.plane_values(w, c.fw, w_hi).T
        c.y[:] = y.ravel()
        return model_cycles(c.m, c.n, c.k, c.fa, c.fw, c.sel, cfg)

"""The ``csim`` level: the HLS top function compiled with g++ against its C++ core model."""

from __future__ import annotations

import ctypes

from ...core import arch, regmap
from ...toolchain import hls
from ..errors import SimulationError
from . import Call, Outcome


class CsimLevel:
    name = "csim"
    target = "csim"
    """The g++ build of :mod:`antq.toolchain.hls` this level loads."""

    def __init__(self, cfg: arch.ArrayConfig) -> None:
        self.cfg = cfg
        self.lib = hls.load(self.target, cfg)
        if self.lib.antgemm_id_word() != regmap.ID_WORD or self.lib.antgemm_geometry() != \
                regmap.encode_geometry(cfg):
            raise SimulationError(f"the {self.name} library was built for another register map or array")

    def run(self, call: Call) -> Outcome:
        c = call
        res, stages = (ctypes.c_uint32 * 8)(), (ctypes.c_uint64 * 3)()
        p = None if c.mem_p is None else c.mem_p.ctypes.data
        rc = self.lib.antgemm_call(c.mem_a.ctypes.data, c.mem_w.ctypes.data, c.y.ctypes.data, p,
                                   c.m, c.n, c.k, c.a_type, c.w_type, c.passes, c.out_mode, c.conv_hw,
                                   c.conv_win, *c.heads_regs, res, stages)
        if rc:
            raise SimulationError(self.lib.antgemm_error().decode())
        want = (regmap.ID_WORD, regmap.encode_geometry(self.cfg), regmap.ST_OK)
        if (res[0], res[1], res[2]) != want:
            raise SimulationError(f"the {self.name} library disagrees with the model on id/geometry/status: "
                                  f"{tuple(res)[:3]}")
        return Outcome(res[3] | res[4] << 32, res[5], res[6], res[7], tuple(stages))

"""Register-level model of the ``ant_gemm`` IP: ap_ctrl_hs, its arguments, its status decisions.

:class:`AntGemmModel` sits behind the ``s_axi_control`` address range of every ``ant_gemm`` in
the ``.hwh``. The handshake is modelled exactly (AP_START self-clears when the call completes,
AP_DONE and AP_READY clear on read, AP_IDLE is low while busy, argument registers are
write-only); :func:`check_args` makes the same status decisions as the HLS top function; the
arithmetic and the cycle count come from the device's compute level (:mod:`antq.emu.levels`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core import arch, epilogue, regmap
from .errors import SimulationError
from .levels import HEADS_ARGS, Call

if TYPE_CHECKING:
    from .device import SimDevice


def check_args(m: int, n: int, k: int, a_type: int, w_type: int, passes: int,
               cfg: arch.ArrayConfig = arch.DEFAULT, out_mode: int = 0, conv_hw: int = 0,
               conv_win: int = 0, heads: dict[str, int] | None = None) -> tuple[int, int]:
    """(status, selected pass mask) exactly as the HLS top function decides them."""
    if m == n == k == 0:
        return regmap.ST_OK, 0
    try:
        fa = regmap.decode_type(a_type)
    except (ValueError, KeyError):
        return regmap.ST_BAD_A, 0
    try:
        fw = regmap.decode_type(w_type)
    except (ValueError, KeyError):
        return regmap.ST_BAD_W, 0
    need = regmap.pass_mask(fa, fw)
    sel = passes or need
    if sel & ~need:
        return regmap.ST_BAD_PASSES, sel
    if arch.max_k(fa, fw, cfg.acc_bits) == 0:
        return regmap.ST_BAD_PAIR, sel
    if not all(1 <= d <= regmap.MAX_DIM for d in (m, n, k)):
        return regmap.ST_BAD_SIZE, sel
    if out_mode:
        try:
            out = regmap.decode_out_mode(out_mode)
        except (ValueError, KeyError):
            return regmap.ST_BAD_MODE, sel
        fmt, shift = out
        if not (1 <= shift <= epilogue.max_shift(fmt) and regmap.epilogue_tiles_ok(cfg)
                and n <= regmap.EPI_MAX_COLS):
            return regmap.ST_BAD_MODE, sel
    try:
        regmap.decode_conv(conv_hw, conv_win, m, k, fa, cfg)
    except ValueError:
        return regmap.ST_BAD_CONV, sel
    try:
        regmap.decode_heads(heads or dict.fromkeys(HEADS_ARGS, 0), m, n, k, fa, fw, conv_hw != 0, cfg)
    except ValueError:
        return regmap.ST_BAD_HEADS, sel
    return regmap.ST_OK, sel


class AntGemmModel:
    """Register-level model of one ``ant_gemm`` IP: ap_ctrl_hs, arguments, and a compute level."""

    def __init__(self, device: SimDevice, name: str, description: dict) -> None:
        self.device, self.name = device, name
        regs = description["registers"]
        need = {r.name for r in regmap.registers() if not r.name.endswith("_ap_vld")}  # what the driver uses
        missing = sorted(need - set(regs))
        if missing:
            raise SimulationError(f"{name}: the .hwh lacks registers {missing}; it is not a "
                                  f"{regmap.VLNV} (IP version {regmap.IP_VERSION}) register map")
        self._by_offset = {int(v["address_offset"]): k for k, v in regs.items()}
        self._access = {k: v["access"] for k, v in regs.items()}
        self.values: dict[str, int] = dict.fromkeys(regs, 0)
        self.start = self.done = self.ready = 0
        self.idle = 1
        self.gier = self.ier = self.isr = 0
        self.done_at: int | None = None
        self.started_at = 0
        self._pending: dict[str, int] = {}
        self.calls = 0
        self.last_stages: tuple[int, int, int] = (0, 0, 0)
        """The cycle model's load, compute and store totals of the last call (emulation only)."""

    def _update(self) -> None:
        if self.done_at is None or self.device.faults.hang or self.device.now() < self.done_at:
            return
        self.done_at = None
        self.start, self.done, self.ready, self.idle = 0, 1, 1, 1
        for name, v in self._pending.items():
            self.values[name] = v
            if f"{name}_ap_vld" in self.values:
                self.values[f"{name}_ap_vld"] = 1
        self.isr |= self.ier & 0x3

    def read(self, offset: int) -> int:
        self._update()
        name = self._by_offset.get(offset)
        if name is None:
            return 0
        if name == "CTRL":
            v = self.start | self.done << 1 | self.idle << 2 | self.ready << 3
            self.done = self.ready = 0  # clear on read
            return v
        if name == "GIER":
            return self.gier
        if name == "IP_IER":
            return self.ier
        if name == "IP_ISR":
            return self.isr
        if self._access[name] == "write-only":
            return 0
        v = self.values[name]
        if name.endswith("_ap_vld"):
            self.values[name] = 0  # clear on read
        return v

    def write(self, offset: int, value: int) -> None:
        self._update()
        name = self._by_offset.get(offset)
        if name is None:
            return
        if name == "CTRL":
            if value & regmap.AUTO_RESTART:
                raise SimulationError(f"{self.name}: AUTO_RESTART is not modelled (the driver never uses it)")
            if value & regmap.AP_START and self.idle:
                self._start()
        elif name == "GIER":
            self.gier = value & 1
        elif name == "IP_IER":
            self.ier = value & 3
        elif name == "IP_ISR":
            self.isr ^= value & 3  # toggle on write
        elif self._access[name] != "read-only":
            self.values[name] = value & 0xFFFFFFFF

    def _arg(self, name: str) -> int:
        return self.values[name]

    def _ptr(self, name: str) -> int:
        return self.values[f"{name}_1"] | self.values[f"{name}_2"] << 32

    def _start(self) -> None:
        self.start, self.idle, self.done, self.ready = 1, 0, 0, 0
        self.calls += 1
        if self.device.faults.hang:
            return  # busy for ever: done_at stays None until the next download()
        started = self.started_at = self.device.now()
        try:
            self._pending, cycles = self._compute()
        except Exception:
            self.start, self.idle = 0, 1  # the emulator refused the call; leave the IP usable
            raise
        self.done_at = started + cycles if self.device.pace else started

    def _compute(self) -> tuple[dict[str, int], int]:
        dev = self.device
        m, n, k = self._arg("m"), self._arg("n"), self._arg("k")
        at, wt, passes = self._arg("a_type"), self._arg("w_type"), self._arg("passes")
        out_mode, conv_hw, conv_win = self._arg("out_mode"), self._arg("conv_hw"), self._arg("conv_win")
        heads_regs = {a: self._arg(a) for a in HEADS_ARGS}
        status, sel = check_args(m, n, k, at, wt, passes, dev.cfg, out_mode, conv_hw, conv_win, heads_regs)
        out = {"id_version": regmap.ID_WORD, "geometry": regmap.encode_geometry(dev.cfg), "status": status}
        cycles = regmap.CALL_OVERHEAD
        out |= {"core_busy": 0, "stall_in": 0, "stall_out": 0}
        self.last_stages = (0, 0, 0)
        if status == regmap.ST_OK and m:
            fa, fw = regmap.decode_type(at), regmap.decode_type(wt)
            mode = regmap.decode_out_mode(out_mode)
            conv = regmap.decode_conv(conv_hw, conv_win, m, k, fa, dev.cfg)
            heads = regmap.decode_heads(heads_regs, m, n, k, fa, fw, conv is not None, dev.cfg)
            na, nw, ny = regmap.footprint(m, n, k, fa, fw, dev.cfg, None if mode is None else mode[0], conv,
                                          heads)
            src_a, src_w = (heads is not None and getattr(heads, s) is not None for s in ("a", "w"))
            mem_a = dev.memory(self._ptr("a"), na, f"{self.name} reading a" + (
                " (the conv source)" if conv is not None else " (the heads source)" if src_a else ""))
            mem_w = dev.memory(self._ptr("w"), nw, f"{self.name} reading w" + (" (the heads source)" if src_w
                                                                               else ""))
            mem_p = None if mode is None else dev.memory(
                self._ptr("p"), 8 * epilogue.param_words(mode[0], n), f"{self.name} reading p")
            mem_y = dev.memory(self._ptr("y"), ny, f"{self.name} writing y")
            call = Call(m, n, k, at, wt, passes, fa, fw, sel, mem_a, mem_w, mem_y.view(np.int64),
                        out_mode, mode, mem_p, conv_hw, conv_win, conv,
                        tuple(heads_regs[a] for a in HEADS_ARGS), heads)
            try:
                outcome = dev.compute.run(call)
            except SimulationError as e:
                raise SimulationError(f"{self.name} ({dev.level}): {e}") from None
            cycles, self.last_stages = outcome.cycles, outcome.stages
            out |= {"core_busy": outcome.busy, "stall_in": outcome.stall_in, "stall_out": outcome.stall_out}
        if dev.faults.id_word is not None:
            out["id_version"] = dev.faults.id_word
        if dev.faults.geometry is not None:
            out["geometry"] = dev.faults.geometry
        out["cycles_lo"], out["cycles_hi"] = cycles & 0xFFFFFFFF, cycles >> 32
        return out, cycles

"""The ``ant_gemm`` IP as PYNQ sees it: a ``DefaultIP`` bound by VLNV, its registers by name.

PYNQ binds :class:`AntAccelerator` to every IP of type :data:`antq.core.regmap.VLNV` in the
``.hwh``. It finds every argument's offset by its ``register_map`` name once, then writes the
arguments with one MMIO write each (both words of every 64-bit address), skipping a register
whose value this driver already wrote (s_axilite registers hold their value between calls; a
layer's M, N, K and types repeat from batch to batch), starts the IP with ``ap_ctrl_hs`` and
polls one control-register read with a timeout, so a hung IP raises ``TimeoutError`` instead of
spinning for ever.
"""

from __future__ import annotations

import time

import pynq

from ..core import regmap

_M32 = 0xFFFFFFFF


class AntAccelerator(pynq.DefaultIP):
    """``ant_gemm`` IP: argument registers by ``register_map`` name, ap_ctrl_hs start and poll."""

    bindto = [regmap.VLNV]

    ARGS = ("a_1", "a_2", "w_1", "w_2", "y_1", "y_2", "p_1", "p_2", "m", "n", "k", "a_type", "w_type",
            "passes", "out_mode", "conv_hw", "conv_win", "heads", "heads_dims", "heads_a_src", "heads_a_col",
            "heads_w_src", "heads_w_col")
    """The argument registers :meth:`start` writes, in order."""
    OUTPUTS = ("status", "cycles_lo", "cycles_hi", "core_busy", "stall_in", "stall_out", "id_version",
               "geometry")
    """The output registers :meth:`output` reads at their offsets."""

    def __init__(self, description: dict) -> None:
        super().__init__(description)
        rm = self.register_map
        self._ctrl = rm.CTRL.address
        self._offset = {name: getattr(rm, name).address for name in (*self.ARGS, *self.OUTPUTS)}
        self._written: dict[int, int] = {}
        """offset -> the value this driver last wrote there (what the register holds)."""

    def start(self, *, a: int, w: int, y: int, m: int, n: int, k: int, a_type: int, w_type: int,
              passes: int = 0, p: int = 0, out_mode: int = 0, conv_hw: int = 0, conv_win: int = 0,
              heads: dict[str, int] | None = None) -> None:
        """Write every argument (both halves of each address) and set AP_START; ``conv_hw`` =
        ``conv_win`` = 0 (A read as given) unless the call is a conv-mode im2col, and the heads
        registers (``regmap.encode_heads``) 0 unless it is a heads-mode call."""
        hd = heads or {}
        ctrl = self.read(self._ctrl)
        if not ctrl & regmap.AP_IDLE:
            raise RuntimeError(f"{regmap.TOP} is busy (CTRL=0x{ctrl:x}): an earlier call has not finished")
        values = (a & _M32, a >> 32, w & _M32, w >> 32, y & _M32, y >> 32, p & _M32, p >> 32, m, n, k,
                  a_type, w_type, passes, out_mode, conv_hw, conv_win,
                  *(hd.get(name, 0) for name in self.ARGS[17:]))
        for i, name in enumerate(self.ARGS):
            off, value = self._offset[name], int(values[i])
            if not 0 <= value <= _M32:
                raise ValueError(f"argument {name} = {value} does not fit its 32-bit register")
            if self._written.get(off) != value:
                self.write(off, value)
                self._written[off] = value
        self.write(self._ctrl, regmap.AP_START)

    def wait(self, timeout: float) -> None:
        """Poll one read of CTRL for AP_DONE or AP_IDLE; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            ctrl = self.read(self._ctrl)
            if ctrl & (regmap.AP_DONE | regmap.AP_IDLE):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{regmap.TOP} did not finish within {timeout:g} s (CTRL=0x{ctrl:x}, "
                                   f"{polls} polls); the IP may be hung")
            polls += 1
            if polls > 64:  # back off from a busy loop once the call is clearly not short
                time.sleep(min(1e-3, 1e-6 * (polls - 64)))

    def output(self, name: str) -> int:
        off = self._offset.get(name)
        return int(getattr(self.register_map, name)[:]) if off is None else int(self.read(off))

    @property
    def cycles(self) -> int:
        """The IP's cycle counter for its last call."""
        return self.output("cycles_lo") | self.output("cycles_hi") << 32

    def call(self, timeout: float, **args: int) -> tuple[int, int]:
        """Start, wait and return (status, cycles)."""
        self.start(**args)
        self.wait(timeout)
        return self.output("status"), self.cycles

    def identify(self, timeout: float) -> tuple[int, int]:
        """(identification word, geometry word), written by an empty call (M = N = K = 0)."""
        self.call(timeout, a=0, w=0, y=0, m=0, n=0, k=0, a_type=0, w_type=0)
        return self.output("id_version"), self.output("geometry")

"""The ``ant_gemm`` IP as PYNQ sees it: a ``DefaultIP`` bound by VLNV, its registers by name.

PYNQ binds :class:`AntAccelerator` to every IP of type :data:`antq.core.regmap.VLNV` in the
``.hwh``. It writes the arguments through ``register_map`` names (both words of every 64-bit
address), starts the IP with ``ap_ctrl_hs`` and polls one control-register read with a timeout,
so a hung IP raises ``TimeoutError`` instead of spinning for ever.
"""

from __future__ import annotations

import time

import pynq

from ..core import regmap

_M32 = 0xFFFFFFFF


class AntAccelerator(pynq.DefaultIP):
    """``ant_gemm`` IP: argument registers by ``register_map`` name, ap_ctrl_hs start and poll."""

    bindto = [regmap.VLNV]

    def __init__(self, description: dict) -> None:
        super().__init__(description)
        self._ctrl = self.register_map.CTRL.address

    def start(self, *, a: int, w: int, y: int, m: int, n: int, k: int, a_type: int, w_type: int,
              passes: int = 0, p: int = 0, out_mode: int = 0, conv_hw: int = 0, conv_win: int = 0) -> None:
        """Write every argument (both halves of each address) and set AP_START; ``conv_hw`` =
        ``conv_win`` = 0 (A read as given) unless the call is a conv-mode im2col."""
        ctrl = self.read(self._ctrl)
        if not ctrl & regmap.AP_IDLE:
            raise RuntimeError(f"{regmap.TOP} is busy (CTRL=0x{ctrl:x}): an earlier call has not finished")
        rm = self.register_map
        for name, addr in (("a", a), ("w", w), ("y", y), ("p", p)):
            setattr(rm, f"{name}_1", addr & _M32)
            setattr(rm, f"{name}_2", addr >> 32)
        for name, value in (("m", m), ("n", n), ("k", k), ("a_type", a_type), ("w_type", w_type),
                            ("passes", passes), ("out_mode", out_mode), ("conv_hw", conv_hw),
                            ("conv_win", conv_win)):
            setattr(rm, name, int(value))
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
        return int(getattr(self.register_map, name)[:])

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

"""The ``rtl`` level: the same HLS data mover, its core the -O3 Verilated ``overlay/rtl/ant_core``."""

from __future__ import annotations

from .csim import CsimLevel


class RtlLevel(CsimLevel):
    name = "rtl"
    target = "rtl"

"""The emulator's compute levels, one file each, looked up by name from :data:`REGISTRY`.

A level is what computes an ``ant_gemm`` call behind the emulated registers: it reads the packed
operands from device memory, writes the int64 result and returns the cycles the IP counts.

========  ============================================================  ======================
level     what computes                                                 cycle count
========  ============================================================  ======================
``ref``   :func:`antq.core.reference.gemm` (numpy) on the unpacked       the dataflow model
          buffers                                                        (:func:`ref.model_cycles`)
``csim``  the HLS C++ (``hls/``) built with g++ with its C++ core model   the same model in C++
``rtl``   the same HLS data mover linked with the Verilated ``ant_core``  the model; the core's
                                                                         counters are the RTL's
========  ============================================================  ======================

The names are :data:`antq.core.backends.LEVELS` (a test checks that the two agree).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...core import arch
from ...core.formats import Format
from ...core.regmap import Conv, Heads

HEADS_ARGS = ("heads", "heads_dims", "heads_a_src", "heads_a_col", "heads_w_src", "heads_w_col")
"""The heads-mode arguments, in :data:`antq.core.regmap.ARGS` order."""

REGISTRY: dict[str, str] = {"ref": "ref:RefLevel", "csim": "csim:CsimLevel", "rtl": "rtl:RtlLevel"}
"""Level name -> ``module:class`` in this package (imported on first use: csim and rtl build C++)."""


@dataclass
class Call:
    """One accepted ``ant_gemm`` call: its arguments, decoded formats, pass mask and memory views."""

    m: int
    n: int
    k: int
    a_type: int
    w_type: int
    passes: int
    fa: Format
    fw: Format
    sel: int
    """The passes the call runs (the ``passes`` argument, or every pass the types need)."""
    mem_a: np.ndarray
    mem_w: np.ndarray
    y: np.ndarray
    """The result buffer as int64: M * N long, or with the epilogue the packed output codes."""
    out_mode: int = 0
    """The ``out_mode`` argument: 0 for int64 Y, else the epilogue's format and shift."""
    out: tuple[Format, int] | None = None
    """The decoded output mode: (output format, S), or None for int64 Y."""
    mem_p: np.ndarray | None = None
    """The epilogue's parameter buffer (uint8), or None for int64 Y."""
    conv_hw: int = 0
    conv_win: int = 0
    """The conv-mode arguments (0, 0: A is read as given)."""
    conv: Conv | None = None
    """The decoded conv geometry: ``mem_a`` is then the source tensor, A its im2col."""
    heads_regs: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    """The six heads-mode arguments in :data:`HEADS_ARGS` order (all 0: heads mode off)."""
    heads: Heads | None = None
    """The decoded heads geometry: a side with a rule has its source at ``mem_a``/``mem_w``."""


@dataclass
class Outcome:
    """What a call reports besides its result: the IP's cycles, the core's counters and the
    cycle model's per-stage totals (load, compute, store; emulation only)."""

    cycles: int
    busy: int
    stall_in: int
    stall_out: int
    stages: tuple[int, int, int]


class Level(Protocol):
    name: str

    def __init__(self, cfg: arch.ArrayConfig) -> None: ...

    def run(self, call: Call) -> Outcome:
        """Compute ``call`` into ``call.y``; return its cycles and counters."""
        ...


def get(name: str) -> type[Level]:
    """The level class called ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown emulation level {name!r}; expected one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)

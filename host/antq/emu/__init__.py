"""Emulation: a simulated ``pynq.Device`` under the real ``pynq``, so the driver runs unchanged.

Importing this package registers :class:`SimDevice` with PYNQ's device search (``_probe_`` reads
``$ANTQ_BACKEND``). The device models the ``ant_gemm`` IP's registers (:mod:`antq.emu.ip`) and
computes each call at one of the levels of :mod:`antq.emu.levels`.
"""

from .device import Faults, SimBuffer, SimClocks, SimDevice
from .errors import BusError, SimulationError

__all__ = ["BusError", "Faults", "SimBuffer", "SimClocks", "SimDevice", "SimulationError"]

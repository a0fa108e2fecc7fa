"""Open the overlay on a backend by name: the board, or an emulation level (``antq.core.backends``).

:func:`open_overlay` is where a backend name becomes a ``pynq.Device``: an emulation level is a
fresh :class:`antq.emu.SimDevice` (emulator options go to it); ``board`` is PYNQ's own device;
``auto`` and None leave the choice to PYNQ's device search, in which the emulator's
``SimDevice._probe_`` takes part (``$ANTQ_BACKEND``, default ``auto``: the board if there is one,
else csim). The driver underneath (:class:`antq.driver.AntOverlay`) is the same in every case.
"""

from __future__ import annotations

import os
from typing import Any

import pynq

from ..core import regmap
from ..core.backends import AUTO, BACKENDS, BOARD, LEVELS
from ..driver import AntOverlay
from ..toolchain.paths import BACKEND_ENV, FPGA_MANAGER, on_board


def open_overlay(backend: str | None = None, **options: Any) -> AntOverlay:
    """An :class:`~antq.driver.AntOverlay` on ``backend`` (see the module docstring).

    ``options`` are emulator options (``pace``, ``strict``, ``faults``, ``cfg``, ...) for an
    emulation level, or AntOverlay options (``timeout``, ``bitfile``) for any backend.
    """
    overlay_opts = {k: options.pop(k) for k in ("timeout", "bitfile", "download") if k in options}
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    from .. import emu  # registers SimDevice with PYNQ's device search

    if backend in LEVELS:
        device = emu.SimDevice(backend, **options)
        pynq.Device.active_device = device  # plain pynq code (pynq.allocate()) lands on it too
    else:
        if options:
            raise TypeError(f"emulator options {sorted(options)} need an emulation level "
                            f"({', '.join(LEVELS)}), not backend {backend or AUTO!r}")
        if backend == BOARD:
            _check_board()
        device = _searched_device(backend)
    return AntOverlay(device=device, **overlay_opts)


def board_problem() -> str | None:
    """Why the ``board`` backend cannot open here, in one line; None on a ready PYNQ board.
    ``make test-board`` stops with it instead of skipping every board test."""
    if not on_board():
        return (f"no FPGA manager at {FPGA_MANAGER}: this is not a PYNQ board; use an emulation level "
                f"({', '.join(LEVELS)})")
    if "XILINX_XRT" not in os.environ:
        return ("XILINX_XRT is not set, so PYNQ registers no board device; source "
                "/etc/profile.d/pynq_venv.sh (and run as root)")
    return None


def _check_board() -> None:
    why = board_problem()
    if why:
        raise RuntimeError(why)


def _searched_device(backend: str | None) -> pynq.Device:
    """PYNQ's device search: its first device for ``auto``/None, its first real one for ``board``."""
    from .. import emu

    devices = [d for d in pynq.Device.devices if backend != BOARD or not isinstance(d, emu.SimDevice)]
    if not devices:
        raise RuntimeError("PYNQ found no device: on a board source /etc/profile.d/pynq_venv.sh; "
                           f"elsewhere set {BACKEND_ENV} to an emulation level ({', '.join(LEVELS)})")
    return pynq.Device.active_device if backend != BOARD else devices[0]


def describe(ov: AntOverlay) -> list[str]:
    """What the IP reports about itself and its register map (``antq overlay-info``)."""
    name = next(n for n, d in ov.ip_dict.items() if d.get("type") == regmap.VLNV)
    out = [f"bitstream  {ov.bitfile_name}",
           f"device     {type(ov.device).__name__} {getattr(ov.device, 'level', '')}".rstrip(),
           f"IP         {name}: {regmap.VLNV}, IP version {regmap.IP_VERSION}, {ov.array.rows}x"
           f"{ov.array.cols} PEs, {ov.array.bus_bits}-bit bus, {ov.array.acc_bits}-bit accumulators",
           f"clock      {ov.clock_mhz:g} MHz: peak {ov.peak_macs_per_s / 1e9:.2f} G MAC/s",
           "registers  (offset, access, name)"]
    for r in sorted(ov.ip_dict[name]["registers"].items(), key=lambda kv: kv[1]["address_offset"]):
        out.append(f"  0x{r[1]['address_offset']:02x}  {r[1]['access']:<10}  {r[0]}")
    return out

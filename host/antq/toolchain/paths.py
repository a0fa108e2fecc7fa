"""Every path, environment variable and build folder antq uses, in one place.

Sources the package builds or reads at run time (the HLS C++, the RTL, the Verilator harness, the
emulation ``.hwh``, the bitstreams) are package data: in an installed wheel they live under
``antq/_data/`` (``setup.py`` copies them there), in a source checkout they are the repository's
own top-level folders. :func:`source_dir` finds either with ``importlib.resources``; nothing else
in antq computes a path from ``__file__``.

Build outputs and caches (g++ and Verilator builds, trained zoo models) go to :func:`build_dir`:
``$ANTQ_BUILD``, else ``build/`` of a source checkout, else the user cache folder
(``$XDG_CACHE_HOME/antq``, by default ``~/.cache/antq``), never into site-packages. It and
:func:`file_lock` are defined in :mod:`antq.core.paths` (core's g++ kernel caches there too) and
re-exported here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..core.paths import BUILD_ENV, PACKAGE, build_dir, checkout, file_lock

__all__ = ["BACKEND_ENV", "BITFILE_ENV", "BOARD_ENV", "BUILD_ENV", "FPGA_MANAGER", "SOURCES", "build_dir",
           "file_lock", "makeflags", "on_board", "package_file", "shipped_model", "source_dir"]

BACKEND_ENV = "ANTQ_BACKEND"
"""Which device :class:`antq.emu.SimDevice` offers PYNQ: ``ref``, ``csim``, ``rtl``, ``board`` or ``auto``."""
BITFILE_ENV = "ANTQ_BITFILE"
"""A bitstream (``.bit``, with its ``.hwh`` beside it) to load instead of the packaged one."""
BOARD_ENV = "BOARD"
"""Set by every PYNQ image (``Pynq-Z1``, ``Pynq-Z2``, ``ZCU104``, ...): picks the packaged bitstream."""
FPGA_MANAGER = Path("/sys/class/fpga_manager")
"""Present, and not empty, on a Zynq board whose kernel can program the PL."""

SOURCES = ("hls", "overlay/rtl", "overlay/harness", "overlay/emulation", "bitstreams")
"""The repository folders that ship as package data (``antq/_data/<name>`` in a wheel)."""


def source_dir(name: str) -> Path:
    """Where the packaged folder ``name`` (one of :data:`SOURCES`) is, installed or in a checkout."""
    if name not in SOURCES:
        raise ValueError(f"unknown package data folder {name!r}; expected one of {', '.join(SOURCES)}")
    packaged = Path(str(PACKAGE / "_data" / name))
    if packaged.is_dir():
        return packaged
    root = checkout()
    if root is None:
        raise FileNotFoundError(f"antq's {name}/ folder is missing: this installation has no "
                                f"{packaged} (reinstall antq)")
    return root / name


def package_file(*parts: str) -> Path:
    """A file inside the antq package itself (notebooks, shipped zoo weights)."""
    return Path(str(PACKAGE.joinpath(*parts)))


def shipped_model(name: str = "digits-cnn-ip-f-4bit") -> Path:
    """A ready quantized model that ships with antq beside the zoo's weights: what
    ``antq quantize digits-cnn -o digits-cnn-ip-f-4bit.antq`` writes from the shipped fp32 weights
    (``make models-ship`` rewrites it). Running it needs numpy and pynq only, not PyTorch."""
    return package_file("model", "data", "zoo", f"{name}.antq")


def on_board() -> bool:
    """True on a Zynq board with an FPGA manager (where PYNQ's EmbeddedDevice works)."""
    return FPGA_MANAGER.is_dir() and any(FPGA_MANAGER.iterdir())


@contextlib.contextmanager
def makeflags(value: str) -> Iterator[None]:
    """Set ``MAKEFLAGS`` for the builds inside (cocotb's runner passes it on to make), then restore it."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved

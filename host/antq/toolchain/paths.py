"""Every path, environment variable and build folder antq uses, in one place.

Sources the package builds or reads at run time (the HLS C++, the RTL, the Verilator harness, the
emulation ``.hwh``, the bitstreams) are package data: in an installed wheel they live under
``antq/_data/`` (``setup.py`` copies them there), in a source checkout they are the repository's
own top-level folders. :func:`source_dir` finds either with ``importlib.resources``; nothing else
in antq computes a path from ``__file__``.

Build outputs and caches (g++ and Verilator builds, trained zoo models) go to :func:`build_dir`:
``$ANTQ_BUILD``, else ``build/`` of a source checkout, else the user cache folder
(``$XDG_CACHE_HOME/antq``, by default ``~/.cache/antq``), never into site-packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path

BUILD_ENV = "ANTQ_BUILD"
"""Overrides where builds and caches go."""
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

_PACKAGE = importlib.resources.files("antq")


def _checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), if it is one."""
    root = Path(str(_PACKAGE)).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "hls").is_dir() else None


def source_dir(name: str) -> Path:
    """Where the packaged folder ``name`` (one of :data:`SOURCES`) is, installed or in a checkout."""
    if name not in SOURCES:
        raise ValueError(f"unknown package data folder {name!r}; expected one of {', '.join(SOURCES)}")
    packaged = Path(str(_PACKAGE / "_data" / name))
    if packaged.is_dir():
        return packaged
    root = _checkout()
    if root is None:
        raise FileNotFoundError(f"antq's {name}/ folder is missing: this installation has no "
                                f"{packaged} (reinstall antq)")
    return root / name


def package_file(*parts: str) -> Path:
    """A file inside the antq package itself (notebooks, shipped zoo weights)."""
    return Path(str(_PACKAGE.joinpath(*parts)))


def shipped_model(name: str = "digits-cnn-ip-f-4bit") -> Path:
    """A ready quantized model that ships with antq beside the zoo's weights: what
    ``antq quantize digits-cnn -o digits-cnn-ip-f-4bit.antq`` writes from the shipped fp32 weights
    (``make models-ship`` rewrites it). Running it needs numpy and pynq only, not PyTorch."""
    return package_file("model", "data", "zoo", f"{name}.antq")


def build_dir() -> Path:
    """``$ANTQ_BUILD``, else the checkout's ``build/`` (gitignored), else the user cache folder."""
    env = os.environ.get(BUILD_ENV)
    if env:
        return Path(env)
    root = _checkout()
    if root is not None:
        return root / "build"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "antq"


def on_board() -> bool:
    """True on a Zynq board with an FPGA manager (where PYNQ's EmbeddedDevice works)."""
    return FPGA_MANAGER.is_dir() and any(FPGA_MANAGER.iterdir())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder): pytest-xdist workers and
    concurrent commands then build a cached artefact once instead of racing on it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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

"""The places the same host code runs: one list, read by the CLI, the emulator and the tests."""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("ref", "csim", "rtl")
"""Emulation levels of the overlay (docs/overlay.md): numpy reference, HLS C++ with g++, HLS data
mover with the Verilated RTL core."""
BOARD = "board"
"""A PYNQ board's own device."""
AUTO = "auto"
"""The board if there is one, else the ``csim`` emulator."""
BACKENDS: tuple[str, ...] = (AUTO, BOARD, *LEVELS)

"""The PYNQ driver: :class:`AntOverlay` on a board or on any ``pynq.Device``; never the emulator itself."""

from .ip import AntAccelerator
from .overlay import (
    AntOverlay,
    ConvOperand,
    DeviceTensor,
    GemmTiming,
    HeadsOperand,
    VersionError,
    default_bitfile,
)

__all__ = ["AntAccelerator", "AntOverlay", "ConvOperand", "DeviceTensor", "GemmTiming", "HeadsOperand",
           "VersionError", "default_bitfile"]

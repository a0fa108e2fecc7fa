"""antq: ANT adaptive 4-bit number formats (int, PoT, float, flint) on a PYNQ FPGA overlay."""

from . import arch, formats, pack, quantize, reference
from .container import load, save
from .quantize import QuantizedTensor, quantize_tensor

__version__ = "0.1.0"

__all__ = [
    "QuantizedTensor",
    "arch",
    "formats",
    "load",
    "pack",
    "quantize",
    "quantize_tensor",
    "reference",
    "save",
]

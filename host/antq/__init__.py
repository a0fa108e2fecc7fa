"""antq: ANT adaptive 4-bit number formats (int, PoT, float, flint) on a PYNQ FPGA overlay."""

from . import arch, formats, pack, qmodel, quantize, reference
from .container import load, save
from .qmodel import QuantizedModel  # importing qmodel registers it with the container (numpy only)
from .quantize import QuantizedTensor, quantize_tensor

_LAZY = {"quantize_model": "nn", "fine_tune": "nn", "QuantModel": "nn"}
"""Names whose module imports torch: loaded on first use, so `import antq` stays light."""


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in ("nn", "models", "baselines", "report"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'antq' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "QuantModel",
    "QuantizedModel",
    "QuantizedTensor",
    "arch",
    "fine_tune",
    "formats",
    "load",
    "pack",
    "qmodel",
    "quantize",
    "quantize_model",
    "quantize_tensor",
    "reference",
    "save",
]

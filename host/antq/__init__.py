"""antq: ANT adaptive 4-bit number formats (int, PoT, float, flint) on a PYNQ FPGA overlay.

The package is layered, each layer importing only those before it (a test checks it):

==============  ====================================================================
``core``        numpy (and one g++-built kernel for packing and im2col): formats, arch,
                register map, stream format, tiling, quantize, pack, reference GEMM,
                container, golden vectors
``toolchain``   paths and caches; g++ HLS builds, Verilator, Yosys, the emulation .hwh
``model``       the integer model (numpy) and the torch side: fake quantization,
                calibration, export, baselines, zoo, datasets, report
``driver``      the PYNQ driver (``AntOverlay``); never imports the emulator
``emu``         the simulated ``pynq.Device``, its IP model and compute levels
``run``         Runtime, compare, evaluate, latency and micro-benchmarks, demo
``cli``         the ``antq`` command
==============  ====================================================================

``import antq`` loads ``core`` and the integer model only; the names below that need torch or
pynq load on first use.
"""

from .core import arch, formats, pack, quantize, reference
from .core.container import load, save
from .core.quantize import QuantizedTensor, quantize_tensor
from .model.graph import IntegerModel  # registers the integer model with the container (numpy only)

_LAZY = {
    "quantize_model": "model.calibrate", "fine_tune": "model.calibrate", "FakeQuantModel": "model.calibrate",
    "open_overlay": "run.backends", "Runtime": "run.runtime", "AntOverlay": "driver",
}
"""Names whose module imports torch or pynq: loaded on first use, so ``import antq`` stays light."""


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'antq' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = ["AntOverlay", "FakeQuantModel", "IntegerModel", "QuantizedTensor", "Runtime", "arch", "fine_tune",
           "formats", "load", "open_overlay", "pack", "quantize", "quantize_model", "quantize_tensor",
           "reference", "save"]

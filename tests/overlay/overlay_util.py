"""Helpers shared by the overlay test modules."""

from __future__ import annotations

import numpy as np
from antq import formats
from antq.quantize import QuantizedTensor


def random_tensor(rng: np.random.Generator, fmt: formats.Format, shape: tuple[int, int],
                  scale: float | np.ndarray = 1.0, channel_axis: int | None = None) -> QuantizedTensor:
    """Random codes of ``fmt`` (every code, "-0" included: the IP must treat it as zero)."""
    codes = rng.integers(0, fmt.ncodes, size=shape).astype(np.uint8)
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed, scale=scale,
                           channel_axis=channel_axis)


INT8 = [formats.get("int", 8, False), formats.get("int", 8, True)]
HW4 = formats.hardware_formats()

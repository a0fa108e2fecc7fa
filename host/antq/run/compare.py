"""Where two runs of the same model first differ: layer, array tile and element."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import arch
from ..model.graph import Gemm, IntegerModel


@dataclass
class Mismatch:
    """Where two runs of the same model first differ."""

    layer: str
    op: str
    index: tuple[int, ...]
    value_a: Any
    value_b: Any
    tile: tuple[int, int] | None = None
    """(row tile, column tile) of the R x C array for a GEMM layer: (m // R, n // C)."""
    label_a: str = "a"
    label_b: str = "b"
    differing: int = 1
    """How many elements of that layer differ."""

    def __str__(self) -> str:
        where = f"layer {self.layer} ({self.op})"
        if self.tile is not None:
            m, n = self.index
            where += f", array tile {self.tile}, accumulator (m={m}, n={n})"
        else:
            where += f", element {self.index}"
        return (f"first difference at {where}: {self.label_a}={self.value_a!r} "
                f"{self.label_b}={self.value_b!r} ({self.differing} element(s) of that layer differ)")


def compare(model: IntegerModel, x: Any, gemm_a: Gemm, gemm_b: Gemm, *,
            labels: tuple[str, str] = ("a", "b"), cfg: arch.ArrayConfig = arch.DEFAULT) -> Mismatch | None:
    """Run ``model`` on ``x`` with two GEMM implementations and report the first difference (or None).

    GEMM layers are compared on their exact integer accumulators, so the report names the array
    tile and the (m, n) element; other nodes are compared on their outputs.
    """
    _, ra = model.run(x, gemm=gemm_a, trace=True)
    _, rb = model.run(x, gemm=gemm_b, trace=True)
    for a, b in zip(ra, rb, strict=True):
        if a.acc is not None:
            va, vb = a.acc, b.acc
        else:
            va, vb = np.asarray(a.output), np.asarray(b.output)
        if va.shape != vb.shape:
            return Mismatch(a.name, a.op, (), va.shape, vb.shape, None, *labels)
        diff = va != vb
        if diff.any():
            idx = tuple(int(i) for i in np.argwhere(diff)[0])
            tile = (idx[0] // cfg.rows, idx[1] // cfg.cols) if a.acc is not None else None
            return Mismatch(a.name, a.op, idx, va[idx].item(), vb[idx].item(), tile, *labels, int(diff.sum()))
    return None

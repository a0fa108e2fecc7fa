"""Software-only 4-bit baselines, quantized on the same code path as ANT: NF4, FP4 E2M1, int4-pc.

These are the 4-bit formats people use today, so that the accuracy report compares ANT with them
honestly. Each is a fixed codebook with absmax scaling (no clip search, no type choice):

* ``nf4``: NormalFloat4, the 16 normal-distribution quantiles of QLoRA / bitsandbytes
  (``create_normal_map``), blockwise absmax over blocks of 64 consecutive weights (the bitsandbytes
  default).
* ``fp4``: OCP/MX E2M1, +-{0, 0.5, 1, 1.5, 2, 3, 4, 6}, blockwise absmax over blocks of 64.
  (bitsandbytes' own ``fp4`` uses another subnormal code; E2M1 is the format of MX and NVFP4.)
* ``int4-pc``: symmetric int4, -7..7, one absmax scale per output channel.

Activations use the same codebook with one absmax scale per tensor (``int4-pc`` switches to the
unsigned grid 0..15 when the calibration data has no negative value; NF4 and FP4 are signed
codebooks, so on post-ReLU data half their codes go unused, as they would in practice).

No hardware computes on these codebooks, so ``antq`` never exports them to an ``.antq`` model.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

BLOCK = 64
"""Weights per absmax block for NF4/FP4 (bitsandbytes' default blocksize)."""


def nf4_values(offset: float = 0.9677083) -> np.ndarray:
    """The NF4 codebook: 8 positive and 7 negative N(0,1) quantiles plus 0, normalised to [-1, 1].

    Follows bitsandbytes ``create_normal_map(offset, use_extra_value=True)``: quantiles of
    ``linspace(offset, 0.5, 9)`` (positive side) and ``linspace(offset, 0.5, 8)`` (negative side),
    with the float32 linspace of torch, so the table equals bitsandbytes' to the last bit.
    """
    ppf = np.vectorize(NormalDist().inv_cdf)  # the standard normal quantile function (stdlib)
    pos = ppf(_torch_linspace_f32(offset, 0.5, 9)[:-1].astype(np.float64))
    neg = -ppf(_torch_linspace_f32(offset, 0.5, 8)[:-1].astype(np.float64))
    v = np.sort(np.concatenate([pos, [0.0], neg]).astype(np.float32))
    return (v / v.max()).astype(np.float64)


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace in float32: the first half steps up from start, the second down from end."""
    a, b = np.float32(start), np.float32(end)
    step = np.float32((b - a) / np.float32(steps - 1))
    i = np.arange(steps).astype(np.float32)
    return np.where(i < steps // 2, a + i * step, b - (np.float32(steps - 1) - i) * step).astype(np.float32)


def e2m1_values() -> np.ndarray:
    """FP4 E2M1 from its bit definition: sign, 2 exponent bits (bias 1), 1 mantissa bit.

    Exponent 0 is subnormal (0 and 0.5); exponent e >= 1 gives 2^(e-1) * (1 + m/2).
    """
    mags = []
    for code in range(8):
        e, m = code >> 1, code & 1
        mags.append(m * 0.5 if e == 0 else 2.0 ** (e - 1) * (1 + m / 2))
    return np.unique(np.concatenate([np.negative(mags), mags]))


@dataclass(frozen=True)
class Baseline:
    """A fixed 4-bit codebook with absmax scaling. ``block`` = None means per output channel."""

    name: str
    description: str
    grid: np.ndarray
    """Sorted distinct values of the signed codebook; absmax maps to ``max(|grid|)``."""
    unsigned_grid: np.ndarray | None
    """Codebook used for non-negative activations, or None to keep the signed one."""
    block: int | None

    def grid_for(self, signed: bool) -> np.ndarray:
        return self.grid if signed or self.unsigned_grid is None else self.unsigned_grid

    def fit(self, x: np.ndarray, role: str) -> tuple[np.ndarray, np.ndarray, str, bool]:
        """Calibrate on ``x``: returns (grid, absmax per scale group, grouping, signed).

        ``role`` is ``"weight"`` (grouping ``"block"`` or ``"channel"``) or ``"input"``
        (``"tensor"``). Zero groups get absmax = max(|grid|), i.e. scale 1.
        """
        x = np.asarray(x, dtype=np.float64)
        if role == "weight":
            signed, group = True, ("channel" if self.block is None else "block")
            if group == "channel":
                g = x.reshape(x.shape[0], -1)
            else:
                flat = x.reshape(-1)
                flat = np.concatenate([flat, np.zeros(-len(flat) % self.block)])
                g = flat.reshape(-1, self.block)
        else:
            signed, group, g = bool(x.min() < 0), "tensor", x.reshape(1, -1)
        grid = self.grid_for(signed)
        top = float(np.abs(grid).max())
        absmax = np.abs(g).max(axis=1)
        return grid, np.where(absmax > 0, absmax, top), group, signed


BASELINES: dict[str, Baseline] = {
    "nf4": Baseline("nf4", "NormalFloat4 (QLoRA), blockwise absmax, 64 per block",
                    nf4_values(), None, BLOCK),
    "fp4": Baseline("fp4", "FP4 E2M1 (OCP MX), blockwise absmax, 64 per block",
                    e2m1_values(), None, BLOCK),
    "int4-pc": Baseline("int4-pc", "int4 symmetric -7..7, per-channel absmax",
                        np.arange(-7.0, 8.0), np.arange(0.0, 16.0), None),
}

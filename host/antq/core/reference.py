"""Bit-exact reference of the accelerator's GEMM on codes.

``Y[m, n] = sum_k sign_a*sign_w * (M_a * M_w) << (S_a + S_w)`` over the decoded PE form of the
codes, for any M, N, K and any pair of formats. The result is exact (int64). The accelerator
computes the same sum in ``arch.ACC_BITS``-bit accumulators over jobs of at most
:func:`antq.core.arch.max_k` steps, which cannot overflow, and adds the jobs in int64; so its result
equals :func:`gemm` bit for bit. See docs/contracts.md for the bound.
"""

from __future__ import annotations

import numpy as np

from . import arch
from .quantize import QuantizedTensor


def _check_pair(a: QuantizedTensor, w: QuantizedTensor) -> None:
    for name, t in (("a", a), ("w", w)):
        if not isinstance(t, QuantizedTensor):
            raise TypeError(f"{name} must be a QuantizedTensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {t.shape}")
    if a.shape[1] != w.shape[1]:
        raise ValueError(
            f"K mismatch: a is {a.shape} (M, K) and w is {w.shape} (N, K); their K must be equal"
        )


def _terms(t: QuantizedTensor) -> np.ndarray:
    """Signed integer value of each element, rebuilt from (sign, M, S) as the PE sees it."""
    largest = max(abs(int(t.fmt.values[c])) for c in np.unique(t.codes))
    if largest >= 1 << 62:
        raise OverflowError(f"{t.fmt.name} holds values up to {largest:.3g}, beyond int64")
    sign, m, s = t.fmt.decode(t.codes)
    return sign * (m << s)


def gemm(a: QuantizedTensor, w: QuantizedTensor) -> np.ndarray:
    """Integer accumulators (M, N) int64 of a (M, K) times w (N, K) transposed.

    Raises OverflowError if the data could make a partial sum exceed int64.
    """
    _check_pair(a, w)
    va, vw = _terms(a), _terms(w)
    bound = a.shape[1] * int(np.abs(va).max()) * int(np.abs(vw).max())
    if bound >= 1 << 63:
        raise OverflowError(
            f"{a.fmt.name} x {w.fmt.name} with K={a.shape[1]} can reach {bound:.3g}, beyond int64; "
            "the reference (and any accelerator) cannot accumulate it exactly"
        )
    if bound < 1 << 53:  # every partial sum is exact in float64, so use BLAS
        return (va.astype(np.float64) @ vw.astype(np.float64).T).astype(np.int64)
    return va @ vw.T


def check_accumulator(a: QuantizedTensor, w: QuantizedTensor, acc_bits: int = arch.ACC_BITS) -> None:
    """Raise OverflowError if one job of this K could overflow a signed ``acc_bits`` accumulator."""
    _check_pair(a, w)
    limit = arch.max_k(a.fmt, w.fmt, acc_bits)
    if a.shape[1] > limit:
        raise OverflowError(
            f"K={a.shape[1]} exceeds the {acc_bits}-bit accumulator bound for {a.fmt.name} x "
            f"{w.fmt.name} (K <= {limit}); split K into jobs of at most {limit}"
        )


def gemm_float(a: QuantizedTensor, w: QuantizedTensor) -> np.ndarray:
    """Rescaled result (float32): ``gemm(a, w) * scale_a[m] * scale_w[n]``.

    ``a`` must be per tensor or per row (axis 0); ``w`` per tensor or per output channel (axis 0).
    Equals ``a.dequantize() @ w.dequantize().T`` up to float rounding.
    """
    _check_pair(a, w)
    for name, t in (("a", a), ("w", w)):
        if t.channel_axis not in (None, 0):
            raise ValueError(f"{name} must be scaled per tensor or along axis 0, not axis {t.channel_axis}")
    sa = np.broadcast_to(a.scale.astype(np.float64).reshape(-1, 1), (a.shape[0], 1))
    sw = np.broadcast_to(w.scale.astype(np.float64).reshape(1, -1), (1, w.shape[0]))
    return (gemm(a, w).astype(np.float64) * sa * sw).astype(np.float32)

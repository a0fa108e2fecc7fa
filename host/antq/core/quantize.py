"""ANT's quantizer: nearest-grid rounding, clip search and adaptive type selection.

A tensor is quantized to ``codes`` of one :class:`~antq.core.formats.Format` and a scale, per tensor or
per channel: ``real ~= values[codes] * scale`` with ``scale = alpha / max_value``. The clip value
alpha is searched over ``r * max|x|`` and the type is the first of the candidates (in ANT's order
int, flint, pot, float) with the smallest MSE. For weights a type's score is the sum over channels
of each channel's best MSE, exactly as in the ANT reference.

Rounding is defined in float32 so that numpy, torch and the host runtime agree bit for bit:
``u = fl32(x / scale)``, then the nearest grid point with ties going to the larger value, and
values outside the grid clip to its ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import formats
from .formats import Format, FormatError

DEFAULT_CANDIDATES: tuple[str, ...] = ("int", "flint", "pot", "float")
RATIO_LOW, RATIO_HIGH, RATIO_LOW_8BIT = 75, 150, 95
INT_ONLY_ABOVE_BITS = 6
"""As in ANT, widths above 6 bits use int only (PoT/flint grids are too sparse to win there)."""
MAX_RATIO = 1000.0
"""Largest clip ratio a search takes: beyond about 2 * max_value (510 for uint8) every value
already rounds to code 0, and much larger ratios overflow the search's float64 error sums."""


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""antq computes scales and rounding in float32: data beyond this magnitude cannot be quantized."""


def to_numpy(x: object, what: str = "tensor") -> np.ndarray:
    """``x`` as a numpy array. A torch tensor is detached and copied to the CPU; a floating-point
    dtype that numpy lacks (bfloat16, float8) becomes float32, which holds every such value exactly."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        t = x.detach().cpu()
        try:
            return t.numpy()
        except TypeError:
            if not t.is_floating_point():
                raise TypeError(f"{what} has torch dtype {t.dtype}, which numpy cannot hold; convert it "
                                "first, e.g. x.float()") from None
            return t.float().numpy()
    return np.asarray(x)


def check_real(a: np.ndarray, what: str = "tensor") -> np.ndarray:
    """``a`` if it is a non-empty real array whose values float32 can hold; else an error naming why."""
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{what} must be a real numeric array, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (shape {a.shape}); nothing to quantize")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            raise ValueError(f"{what} contains {n_nan} NaN and {n_inf} Inf values; refusing to quantize")
        big = float(np.abs(a).max())
        if big > FLOAT32_MAX:
            raise ValueError(f"{what} ({a.dtype}) has values up to {big:.3g}, which overflow float32 "
                             f"(max {FLOAT32_MAX:.3g}) to Inf: antq quantizes in float32; scale the data "
                             "down")
    return a


def _as_numpy(x: object, what: str = "tensor") -> np.ndarray:
    a = check_real(to_numpy(x, what), what)
    if a.ndim == 0:
        raise ValueError(f"{what} is 0-d (a single number); quantize a tensor of at least one dimension, "
                         "e.g. np.atleast_1d(x)")
    return a


def _check_axis(shape: tuple[int, ...], channel_axis: int | None) -> int | None:
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
        raise TypeError(f"channel_axis must be an int or None, got {channel_axis!r}")
    if not -len(shape) <= channel_axis < len(shape):
        raise ValueError(f"channel_axis {channel_axis} is out of range for shape {shape}")
    return int(channel_axis) % len(shape)


class QuantizedTensor:
    """Codes of one format plus their scale(s); ``dequantize()`` gives the float tensor back.

    ``scale`` is a scalar (per tensor) or a 1-D array along ``channel_axis`` (per channel).
    """

    def __init__(
        self,
        codes: np.ndarray,
        *,
        kind: str,
        bits: int,
        signed: bool,
        scale: float | np.ndarray = 1.0,
        channel_axis: int | None = None,
    ) -> None:
        self.fmt = formats.get(kind, bits, signed)
        c = np.asarray(codes)
        if c.ndim == 0:
            raise ValueError("codes must have at least one dimension")
        self.codes = self.fmt.check_codes(c).astype(np.uint8, copy=False)
        self.channel_axis = _check_axis(self.codes.shape, channel_axis)
        with np.errstate(over="ignore"):  # a float64 scale beyond float32 becomes Inf: refused below
            s = np.asarray(scale, dtype=np.float32)
        if self.channel_axis is None:
            if s.size != 1:
                raise ValueError(f"per-tensor scale must be a scalar, got shape {s.shape}")
            s = s.reshape(())
        elif s.shape != (self.codes.shape[self.channel_axis],):
            raise ValueError(
                f"per-channel scale must have shape ({self.codes.shape[self.channel_axis]},) "
                f"for axis {self.channel_axis} of {self.codes.shape}, got {s.shape}"
            )
        bad = s[~(np.isfinite(s) & (s > 0))]
        if bad.size:
            raise ValueError(f"scales must be finite and positive in float32, got {bad[:3].tolist()}")
        self.scale = s
        self.selection: Selection | None = None

    kind = property(lambda self: self.fmt.kind)
    bits = property(lambda self: self.fmt.bits)
    signed = property(lambda self: self.fmt.signed)
    shape = property(lambda self: self.codes.shape)
    ndim = property(lambda self: self.codes.ndim)

    def values(self) -> np.ndarray:
        """Integer-unit value of every element (int64)."""
        return np.asarray(self.fmt.values)[self.codes]

    def broadcast_scale(self) -> np.ndarray:
        """Scale shaped to broadcast against the tensor."""
        if self.channel_axis is None:
            return self.scale
        shape = [1] * self.ndim
        shape[self.channel_axis] = -1
        return self.scale.reshape(shape)

    def dequantize(self) -> np.ndarray:
        """float32 tensor: values * scale (the exact product, rounded once to float32)."""
        v = self.values().astype(np.float64)
        return (v * self.broadcast_scale().astype(np.float64)).astype(np.float32)

    def __repr__(self) -> str:
        sc = "per-tensor" if self.channel_axis is None else f"per-channel[axis {self.channel_axis}]"
        return f"QuantizedTensor({self.fmt.name}, shape={self.shape}, scale={sc})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        return (
            self.fmt == other.fmt
            and self.channel_axis == other.channel_axis
            and np.array_equal(self.codes, other.codes)
            and np.array_equal(self.scale, other.scale)
        )

    __hash__ = None  # mutable arrays inside


@dataclass
class Selection:
    """What the search decided, and why: every candidate's score and the winner's clip values."""

    kind: str
    fmt: Format
    scores: dict[str, float]
    ratio: np.ndarray
    alpha: np.ndarray
    skipped: list[str] = field(default_factory=list)
    mse: float = float("nan")
    sqnr_db: float = float("nan")


def ratios_for(bits: int) -> np.ndarray:
    """Clip ratios r searched: 0.75 .. 1.49 (0.95 .. 1.49 above 6 bits)."""
    low = RATIO_LOW_8BIT if bits > INT_ONLY_ABOVE_BITS else RATIO_LOW
    return np.arange(low, RATIO_HIGH) / 100.0


def _check_ratios(ratios: object) -> np.ndarray:
    """The clip ratios of a search: a non-empty 1-D sequence of finite positive numbers."""
    try:
        r = np.asarray(ratios, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"ratios must be a sequence of numbers, got {ratios!r}") from None
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"ratios must be a non-empty 1-D sequence of clip ratios (alpha = r * max|x|), "
                         f"got shape {r.shape}")
    bad = r[~(np.isfinite(r) & (r > 0) & (r <= MAX_RATIO))]
    if bad.size:
        raise ValueError(f"ratios must be finite, positive and at most {MAX_RATIO:g} (alpha = r * max|x|), "
                         f"got {bad[:3].tolist()}")
    return r


def _candidate_formats(
    candidates: Sequence[str], bits: int, signed: bool
) -> tuple[list[Format], list[str]]:
    if isinstance(candidates, str):
        candidates = (candidates,)
    cands = list(candidates)
    if not cands:
        raise ValueError("candidates is empty; give at least one of " + ", ".join(formats.KINDS))
    unknown = [c for c in cands if c not in formats.KINDS]
    if unknown:
        raise FormatError(f"unknown candidate type(s) {unknown}; expected {formats.KINDS}")
    formats.get("int", bits, signed)  # validates bits and signed
    if bits > INT_ONLY_ABOVE_BITS:
        cands = ["int"]
    order = [k for k in formats.KINDS if k in cands]
    fmts, skipped = [], []
    for k in order:
        try:
            fmts.append(formats.get(k, bits, signed))
        except FormatError:
            skipped.append(k)
    if not fmts:
        raise FormatError(f"none of {cands} exists at {bits} bits {'signed' if signed else 'unsigned'}")
    return fmts, skipped


def _to_2d(x: np.ndarray, channel_axis: int | None) -> np.ndarray:
    if channel_axis is None:
        return x.reshape(1, -1)
    return np.moveaxis(x, channel_axis, 0).reshape(x.shape[channel_axis], -1)


def _mids(fmt: Format) -> np.ndarray:
    g = fmt.grid
    return (g[:-1] + g[1:]) / 2


def search(
    x2d: np.ndarray, fmts: Sequence[Format], ratios: np.ndarray, max_elems: int = 1 << 22
) -> dict[Format, tuple[np.ndarray, np.ndarray]]:
    """Per-channel MSE of every (format, ratio) in one sort: returns best (mse, ratio index).

    Each row of ``x2d`` is normalised by its max |x| and sorted once; for a grid g and ratio r
    the rounding thresholds are the midpoints of g scaled by r/max(g), so one ``searchsorted``
    gives every bin's element count and, through prefix sums of x and x^2, its squared error.
    Cost: O(n log n) for the sort plus O(C * ratios * grid * log n) instead of
    O(n * ratios * types) for the direct loop (:func:`search_loop`).
    """
    x2d = np.asarray(x2d, dtype=np.float64)
    C, n = x2d.shape
    maxabs = np.abs(x2d).max(axis=1)
    safe = np.where(maxabs > 0, maxabs, 1.0)
    ys = np.sort(x2d / safe[:, None], axis=1)
    p1 = np.zeros((C, n + 1))
    p2 = np.zeros((C, n + 1))
    np.cumsum(ys, axis=1, out=p1[:, 1:])
    np.cumsum(ys * ys, axis=1, out=p2[:, 1:])
    offsets = 4.0 * np.arange(C)  # rows live in disjoint windows [4c-1.5, 4c+1.5]
    z = (ys + offsets[:, None]).ravel()
    out = {}
    for fmt in fmts:
        g = fmt.grid
        s = ratios / fmt.max_value  # scale in normalised units, same for every row
        thr = _mids(fmt)[None, :] * s[:, None]  # (R, G-1)
        step = max(1, max_elems // (len(ratios) * (len(g) + 1)))
        mse = np.empty((C, len(ratios)))
        for c0 in range(0, C, step):
            cs = slice(c0, min(C, c0 + step))
            rows = np.arange(cs.start, cs.stop)
            idx = np.searchsorted(z, thr[None] + offsets[rows, None, None], side="left")
            idx -= (rows * n)[:, None, None]
            b = np.concatenate(
                [np.zeros(idx.shape[:2] + (1,), np.int64), idx, np.full(idx.shape[:2] + (1,), n)],
                axis=2,
            )  # (c, R, G+1) bin boundaries
            flat = b.reshape(len(rows), -1)
            s1 = np.diff(np.take_along_axis(p1[cs], flat, 1).reshape(b.shape), axis=2)
            s2 = np.diff(np.take_along_axis(p2[cs], flat, 1).reshape(b.shape), axis=2)
            cnt = np.diff(b, axis=2)
            gs = g[None, None, :] * s[None, :, None]  # quantised value of each bin
            err = (s2 - 2 * gs * s1 + cnt * gs * gs).sum(axis=2)
            mse[cs] = np.maximum(err, 0) / n * (maxabs[cs, None] ** 2)
        best = np.argmin(mse, axis=1)
        out[fmt] = (mse[np.arange(C), best], best)
    return out


def search_loop(
    x2d: np.ndarray, fmts: Sequence[Format], ratios: np.ndarray
) -> dict[Format, tuple[np.ndarray, np.ndarray]]:
    """The straightforward search (one full quantization per type and ratio, as ANT's reference
    does on a GPU). The oracle that tests and ``make bench-quant`` compare :func:`search` with."""
    x2d = np.asarray(x2d, dtype=np.float64)
    C = x2d.shape[0]
    maxabs = np.abs(x2d).max(axis=1)
    safe = np.where(maxabs > 0, maxabs, 1.0)
    out = {}
    for fmt in fmts:
        g, mids = fmt.grid, _mids(fmt)
        best = np.full(C, np.inf)
        best_i = np.zeros(C, dtype=np.int64)
        for i, r in enumerate(ratios):
            scale = r * safe / fmt.max_value
            q = g[np.searchsorted(mids, x2d / scale[:, None], side="right")] * scale[:, None]
            mse = ((q - x2d) ** 2).mean(axis=1)
            better = mse < best
            best[better], best_i[better] = mse[better], i
        out[fmt] = (best, best_i)
    return out


def quantize_as(
    x: object,
    fmt: Format,
    scale: float | np.ndarray,
    channel_axis: int | None = None,
) -> QuantizedTensor:
    """Quantize to a fixed format and scale (a frozen quantizer): float32 nearest-grid rounding."""
    a = _as_numpy(x, "x").astype(np.float32, copy=False)
    axis = _check_axis(a.shape, channel_axis)
    q = QuantizedTensor(
        np.zeros(a.shape, np.uint8), kind=fmt.kind, bits=fmt.bits, signed=fmt.signed,
        scale=scale, channel_axis=axis,
    )
    u = a / q.broadcast_scale()
    idx = np.searchsorted(_mids(fmt).astype(np.float32), u, side="right")
    q.codes = fmt.grid_codes[idx]
    return q


def quantize_tensor(
    x: object,
    bits: int = 4,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    channel_axis: int | None = None,
    signed: bool | None = None,
    ratios: np.ndarray | None = None,
) -> QuantizedTensor:
    """ANT adaptive quantization of one tensor.

    ``channel_axis`` gives per-channel clip values (weights, axis 0 for Conv/Linear); ``None`` is
    per tensor (activations). ``signed=None`` picks unsigned unless ``x`` has a negative value.
    The returned tensor's ``selection`` records every candidate's MSE and the chosen clip ratio.
    """
    a = _as_numpy(x, "x")
    axis = _check_axis(a.shape, channel_axis)
    lowest = a.min()
    if signed is None:
        signed = bool(lowest < 0)
    elif not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be True, False or None, got {signed!r}")
    elif not signed and lowest < 0:
        raise ValueError(f"signed=False, but x has {int((a < 0).sum())} negative values (down to "
                         f"{float(lowest):.3g}) that an unsigned format would clip to 0; pass signed=True, "
                         "or None to choose from the data")
    fmts, skipped = _candidate_formats(candidates, bits, bool(signed))
    r = ratios_for(bits) if ratios is None else _check_ratios(ratios)
    x2d = _to_2d(a.astype(np.float64), axis)
    results = search(x2d, fmts, r)
    scores = {f.kind: float(results[f][0].sum()) for f in fmts}
    best_fmt = fmts[int(np.argmin([scores[f.kind] for f in fmts]))]
    ratio = r[results[best_fmt][1]]
    maxabs = np.abs(x2d).max(axis=1)
    alpha = ratio * maxabs
    with np.errstate(over="ignore"):  # refused below
        scale = np.where(alpha > 0, alpha / best_fmt.max_value, 1.0).astype(np.float32)
    reach = scale.astype(np.float64) * best_fmt.max_abs  # the largest |value| dequantize() gives
    bad = ~np.isfinite(scale) | (scale <= 0) | (reach > FLOAT32_MAX)
    if bad.any():
        where = " in a channel" if axis is not None else ""
        raise ValueError(f"x has max |x| = {float(maxabs[bad][0]):.3g}{where}, so its {best_fmt.name} "
                         f"scale alpha / {best_fmt.max_value} = "
                         f"{float(alpha[bad][0] / best_fmt.max_value):.3g} (whose grid reaches "
                         f"{float(alpha[bad][0] / best_fmt.max_value * best_fmt.max_abs):.3g}) is outside "
                         "float32's range; rescale the data")
    q = quantize_as(a, best_fmt, scale if axis is not None else scale[0], axis)
    err = q.dequantize().astype(np.float64) - a
    mse = float(np.mean(err**2))
    power = float(np.mean(a.astype(np.float64) ** 2))
    q.selection = Selection(
        kind=best_fmt.kind, fmt=best_fmt, scores=scores, ratio=ratio, alpha=alpha,
        skipped=skipped, mse=mse,
        sqnr_db=float(10 * np.log10(power / mse)) if mse > 0 else float("inf"),
    )
    return q

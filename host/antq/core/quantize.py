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
WIDE_LOW, WIDE_STEPS = 0.05, 30
"""Below ANT's 0.75 (0.95) the clip search continues geometrically down to 0.05 of max|x| in 30 steps:
activations with outliers (BERT's Linear inputs have max/rms of 9-93) are best clipped far below
their maximum, which ANT's range cannot reach."""
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

    def rows(self, start: int, stop: int) -> QuantizedTensor:
        """Rows ``start:stop`` of a 2-D per-tensor-scaled tensor, sharing its codes (already checked:
        one check for many slices, e.g. the block-diagonal operands of attention's calls)."""
        if self.channel_axis is not None or self.ndim != 2:
            raise ValueError("rows() slices a 2-D tensor with a per-tensor scale")
        t = object.__new__(QuantizedTensor)
        t.fmt, t.codes, t.scale = self.fmt, self.codes[start:stop], self.scale
        t.channel_axis, t.selection = None, None
        if t.codes.shape[0] == 0:
            raise ValueError(f"rows {start}:{stop} of a tensor of {self.shape[0]} rows are empty")
        return t

    def broadcast_scale(self) -> np.ndarray:
        """Scale shaped to broadcast against the tensor."""
        if self.channel_axis is None:
            return self.scale
        shape = [1] * self.ndim
        shape[self.channel_axis] = -1
        return self.scale.reshape(shape)

    def dequantize(self) -> np.ndarray:
        """float32 tensor: values * scale (the exact product, rounded once to float32)."""
        if self.channel_axis is None:  # the same product per code, looked up: no float64 tensor
            with np.errstate(over="ignore"):  # codes this tensor may not use can pass float32's range
                lut = np.asarray(self.fmt.values).astype(np.float64) * np.float64(self.scale)
                lut = lut.astype(np.float32)
            return lut[self.codes]
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
    """Clip ratios r searched: ANT's 0.75 .. 1.49 in steps of 0.01 (0.95 .. 1.49 above 6 bits), and
    below that :data:`WIDE_STEPS` geometric steps from :data:`WIDE_LOW` (a superset of ANT's search, so
    no tensor's MSE can grow)."""
    low = RATIO_LOW_8BIT if bits > INT_ONLY_ABOVE_BITS else RATIO_LOW
    return np.concatenate([np.geomspace(WIDE_LOW, low / 100.0, WIDE_STEPS, endpoint=False),
                           np.arange(low, RATIO_HIGH) / 100.0])


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


def _below(x: np.ndarray, safe: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """For rows ``x`` normalised by ``safe`` and sorted thresholds ``t``: the count and the sum of each
    row's elements below every threshold (c, T), and each row's sum and sum of squares (c,)."""
    c, n = x.shape
    if c == 1:  # one long row (an activation): sort it and locate the thresholds in it
        # sorting in the input's precision and normalising after gives the same float64 values (a
        # positive scale keeps the order), about twice as fast for float32 data
        y = np.sort(x, axis=1).astype(np.float64) / safe[:, None]
        p1 = np.cumsum(y, axis=1)
        count = np.searchsorted(y[0], t, side="left")[None, :]
        s1 = np.where(count > 0, np.take_along_axis(p1, np.maximum(count - 1, 0), axis=1), 0.0)
        return count, s1, p1[:, -1], np.einsum("ij,ij->i", y, y)
    # many rows (a weight's channels): bin every element among the thresholds, count and sum per bin
    y = x.astype(np.float64) / safe[:, None]
    L = len(t)
    key = (np.searchsorted(t, y, side="right") + (L + 1) * np.arange(c)[:, None]).ravel()
    yr = y.ravel()
    per_bin = [np.bincount(key, weights=w, minlength=c * (L + 1)).reshape(c, L + 1)[:, :L]
               for w in (None, yr)]
    count, s1 = (np.cumsum(b, axis=1) for b in per_bin)  # below threshold k: the bins 0..k
    return count.astype(np.int64), s1, y.sum(axis=1), np.einsum("ij,ij->i", y, y)


def search(
    x2d: np.ndarray, fmts: Sequence[Format], ratios: np.ndarray, max_elems: int = 1 << 22
) -> dict[Format, tuple[np.ndarray, np.ndarray]]:
    """Per-channel MSE of every (format, ratio), all candidates at once: returns best (mse, ratio index).

    Each row of ``x2d`` is normalised by its max |x|. For a grid g and ratio r the rounding
    thresholds are the midpoints of g scaled by r/max(g); the thresholds of every candidate format
    and ratio together are sorted once. The count and sum of each row's elements below every
    threshold (elements equal to a threshold round up, as the quantizer does) come from sorting a
    single long row and locating the thresholds in it, or, for many rows, from binning every
    element among the thresholds (:func:`_below`); with the row's sum of squares they give every
    (format, ratio)'s squared error (summing over the bins by parts). Cost: O(n log n) or
    O(n log T) for T thresholds, instead of O(n * ratios * types) for the direct loop
    (:func:`search_loop`). Rows are processed in chunks of about ``max_elems`` values.
    """
    x2d = np.asarray(x2d)
    if x2d.dtype not in (np.float32, np.float64):
        x2d = x2d.astype(np.float64)
    C, n = x2d.shape
    maxabs = np.abs(x2d).max(axis=1).astype(np.float64)
    safe = np.where(maxabs > 0, maxabs, 1.0)
    thresholds = [_mids(f)[None, :] * (ratios / f.max_value)[:, None] for f in fmts]  # each (R, G-1)
    flat = np.concatenate([t.ravel() for t in thresholds])
    order = np.argsort(flat, kind="stable")
    sorted_t = flat[order]
    pos = np.empty(len(flat), np.int64)
    pos[order] = np.arange(len(flat))  # where each threshold sits among the sorted ones
    mse = {f: np.empty((C, len(ratios))) for f in fmts}
    step = max(1, min(C, max_elems // max(n, len(flat))))
    for c0 in range(0, C, step):
        rows = slice(c0, min(C, c0 + step))
        c = rows.stop - rows.start
        count, s1, total1, total2 = _below(x2d[rows], safe[rows], sorted_t)
        off = 0
        for f, thr in zip(fmts, thresholds, strict=True):
            at = pos[off:off + thr.size]
            off += thr.size
            shape = (c,) + thr.shape  # (c, R, G-1)
            nt, st = count[:, at].reshape(shape), s1[:, at].reshape(shape)
            g = f.grid[None, :] * (ratios / f.max_value)[:, None]  # (R, G): the value of each bin
            # sum over bins b of (S2_b - 2 g_b S1_b + N_b g_b^2), with S_b = S(t_b) - S(t_{b-1}) summed by
            # parts: S2 adds up to the row's total, the rest to g_top-weighted totals plus threshold terms
            lin = g[:, -1] * total1[:, None] + np.einsum("crj,rj->cr", st, g[:, :-1] - g[:, 1:])
            sq = g[:, -1] ** 2 * n + np.einsum("crj,rj->cr", nt.astype(np.float64),
                                               g[:, :-1] ** 2 - g[:, 1:] ** 2)
            err = total2[:, None] - 2 * lin + sq
            mse[f][rows] = np.maximum(err, 0) / n * (maxabs[rows, None] ** 2)
    out = {}
    for f in fmts:
        best = np.argmin(mse[f], axis=1)
        out[f] = (mse[f][np.arange(C), best], best)
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


def select(
    x: object,
    bits: int = 4,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    channel_axis: int | None = None,
    signed: bool | None = None,
    ratios: np.ndarray | None = None,
) -> Selection:
    """ANT's choice of type and clip values for one tensor, without quantizing it (the search of
    :func:`quantize_tensor`, whose arguments it takes; ``mse`` and ``sqnr_db`` stay NaN)."""
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
    x2d = _to_2d(a if a.dtype.kind == "f" else a.astype(np.float64), axis)
    results = search(x2d, fmts, r)
    scores = {f.kind: float(results[f][0].sum()) for f in fmts}
    best_fmt = fmts[int(np.argmin([scores[f.kind] for f in fmts]))]
    ratio = r[results[best_fmt][1]]
    alpha = ratio * np.abs(x2d).max(axis=1).astype(np.float64)
    return Selection(kind=best_fmt.kind, fmt=best_fmt, scores=scores, ratio=ratio, alpha=alpha,
                     skipped=skipped)


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
    sel = select(a, bits, candidates, channel_axis, signed, ratios)
    axis = _check_axis(a.shape, channel_axis)
    with np.errstate(over="ignore"):  # refused below
        scale = np.where(sel.alpha > 0, sel.alpha / sel.fmt.max_value, 1.0).astype(np.float32)
    reach = scale.astype(np.float64) * sel.fmt.max_abs  # the largest |value| dequantize() gives
    bad = ~np.isfinite(scale) | (scale <= 0) | (reach > FLOAT32_MAX)
    if bad.any():
        where = " in a channel" if axis is not None else ""
        alpha = float(sel.alpha[bad][0])
        maxabs = float(np.abs(_to_2d(a.astype(np.float64), axis)).max(axis=1)[bad][0])
        raise ValueError(f"x has max |x| = {maxabs:.3g}{where}, so its {sel.fmt.name} "
                         f"scale alpha / {sel.fmt.max_value} = {alpha / sel.fmt.max_value:.3g} (whose grid "
                         f"reaches {alpha / sel.fmt.max_value * sel.fmt.max_abs:.3g}) is outside "
                         "float32's range; rescale the data")
    q = quantize_as(a, sel.fmt, scale if axis is not None else scale[0], axis)
    err = q.dequantize().astype(np.float64) - a
    sel.mse = float(np.mean(err**2))
    power = float(np.mean(a.astype(np.float64) ** 2))
    sel.sqnr_db = float(10 * np.log10(power / sel.mse)) if sel.mse > 0 else float("inf")
    q.selection = sel
    return q

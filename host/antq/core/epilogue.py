"""The requantization epilogue: int64 GEMM accumulators -> the next layer's activation codes.

The accelerator will apply it on chip after a layer's GEMM (issue 13) so that the output goes
back to DDR as packed 4-bit (or int8) codes instead of int32/int64 accumulators. This module is
the bit-level definition (docs/contracts.md section 12) and its reference; the HLS C++ is tested
against the vectors that :mod:`antq.core.golden` writes from it (``tests/golden/epilogue.txt``).

Per call: a multiplier ``M[n]`` (0 <= M[n] < 2^31) and a bias ``B[n]`` (int64) per output column
n, one right shift ``S`` (1..62), clamp bounds ``L <= H`` (int64) and the output format F. For an
accumulator ``acc`` of column n, all in int64::

    t   = acc * M[n] + B[n]                  # |t| <= 2^62 by the choice of M, B (acc_max)
    t   = min(max(t, L), H)
    idx = #{ j : t >= T_j },  T_j = (G_j + G_{j+1}) << (S - 1),  j = 0 .. q-2
    code = grid_codes[idx]

with G_0 < ... < G_{q-1} the format's grid in integer units. ``t / 2^S`` is the real output in
units of ``s_out``, and ``T_j / 2^S`` is the midpoint between two grid values: the index is the
nearest grid point with ties going up, the rule of :func:`antq.core.quantize.quantize_as`, and
values beyond the grid go to its ends. For int8 (G_j = lo + j) the same count is the arithmetic
round-half-up ``clamp((t >> S) + ((t >> (S-1)) & 1), lo, hi)``, which equals
``clamp(floor((t + 2^(S-1)) / 2^S), lo, hi)`` without the overflow of the addition
(:func:`round_int8`): T_j = (lo+j)·2^S + 2^(S-1), so ``t >= T_j`` iff
``floor((t - 2^(S-1)) / 2^S) >= lo + j``, and the count plus lo is ``floor((t + 2^(S-1)) / 2^S)``
clamped to the grid.

Host side, :func:`params` turns float scales into M, B, S, L, H with exact rational arithmetic on
the float64 values of its inputs and Python's ``round`` (half to even), so it is deterministic on
every machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np

from . import arch, formats, pack, regmap
from .formats import Format
from .quantize import QuantizedTensor

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
T_BOUND = 1 << 62
"""|acc * M[n] + B[n]| <= T_BOUND for every |acc| <= acc_max: nothing before the clamp leaves int64."""
MULT_LIMIT = 1 << 31
"""M[n] < MULT_LIMIT: the multiplier is an unsigned 31-bit number (a non-negative int32)."""
SHIFT_MIN, SHIFT_MAX = 1, 62
ACTS: tuple[str, ...] = ("none", "relu", "relu6")


def output_formats() -> list[Format]:
    """Every format the epilogue writes: the 4-bit accelerator formats, int8 unsigned and signed."""
    return [*regmap.array_formats(), formats.get("int", 8, False), formats.get("int", 8, True)]


def check_format(fmt: object) -> Format:
    """``fmt`` if the epilogue can write it, else ValueError (the accelerator's own set)."""
    if not isinstance(fmt, Format):
        raise TypeError(f"the output format must be an antq.core.formats.Format, got {type(fmt).__name__}")
    if not regmap.supported(fmt):
        raise ValueError(f"the epilogue writes 4-bit int/pot/flint/float and int8 codes, not {fmt.name}")
    return fmt


@cache
def grid(fmt: Format) -> tuple[int, ...]:
    """The format's distinct values G_0 < ... < G_{q-1} (integer units), as Python ints.

    ``fmt.grid_codes[i]`` is the code of ``grid(fmt)[i]`` (the same sorted set as ``fmt.grid``)."""
    return tuple(sorted({int(v) for v in check_format(fmt).values}))


def max_shift(fmt: Format) -> int:
    """Largest S whose thresholds ``(G_j + G_{j+1}) << (S-1)`` all fit in int64 (pot4u 49, int8 55)."""
    g = grid(fmt)
    widest = max(abs(a + b) for a, b in zip(g[:-1], g[1:], strict=True))
    s = SHIFT_MAX
    while widest << (s - 1) > INT64_MAX:
        s -= 1
    return s


def thresholds(fmt: Format, shift: int) -> tuple[int, ...]:
    """T_j = (G_j + G_{j+1}) * 2^(S-1), j = 0 .. q-2: the rounding boundaries in the units of t."""
    g = grid(fmt)
    return tuple((a + b) << (shift - 1) for a, b in zip(g[:-1], g[1:], strict=True))


def acc_bound(a: Format, w: Format, k: int) -> int:
    """A_max = K * max|a| * max|w|: no GEMM result of these formats and this K is larger in magnitude.

    This bounds the finished int64 sum (all jobs and nibble passes added), not one 32-bit job."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"K must be a positive int, got {k!r}")
    return int(k) * a.max_abs * w.max_abs


def _as_int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Params:
    """One epilogue call: M[n], B[n] per output column, S, L, H, the output format, the acc bound.

    ``acc_max`` is the largest |acc| the parameters are valid for: validation checks
    ``acc_max * max(M) + max|B| <= 2^62`` so that ``acc * M + B`` cannot leave int64, and
    :func:`apply` refuses a larger accumulator instead of wrapping around.
    """

    fmt: Format
    shift: int
    mult: tuple[int, ...]
    bias: tuple[int, ...]
    lo: int = INT64_MIN
    hi: int = INT64_MAX
    acc_max: int = 0
    s_out: float | tuple[float, ...] | None = None
    """The output scale the codes are in, or one per output column (set by :func:`params`; the
    driver gives it to the output tensor). Not part of the arithmetic."""

    def __post_init__(self) -> None:
        check_format(self.fmt)
        s = _as_int(self.shift, "S (shift)")
        if not SHIFT_MIN <= s <= SHIFT_MAX:
            raise ValueError(f"S (shift) must lie in {SHIFT_MIN}..{SHIFT_MAX}, got {s}")
        if s > max_shift(self.fmt):
            raise ValueError(f"S = {s} puts the thresholds of {self.fmt.name} beyond int64; "
                             f"at most {max_shift(self.fmt)}")
        mult = tuple(_as_int(v, "M[n]") for v in np.asarray(self.mult, dtype=object).reshape(-1))
        bias = tuple(_as_int(v, "B[n]") for v in np.asarray(self.bias, dtype=object).reshape(-1))
        if not mult:
            raise ValueError("M must have at least one output channel")
        if len(bias) != len(mult):
            raise ValueError(f"M has {len(mult)} channels but B has {len(bias)}")
        if min(mult) < 0 or max(mult) >= MULT_LIMIT:
            raise ValueError(f"M[n] must lie in 0..2^31-1, got {min(mult)}..{max(mult)}")
        lo, hi = _as_int(self.lo, "L"), _as_int(self.hi, "H")
        for name, v in (("L", lo), ("H", hi)):
            if not INT64_MIN <= v <= INT64_MAX:
                raise ValueError(f"{name} = {v} does not fit in int64")
        if lo > hi:
            raise ValueError(f"clamp bounds must satisfy L <= H, got L = {lo} > H = {hi}")
        acc_max = _as_int(self.acc_max, "acc_max")
        if acc_max < 0:
            raise ValueError(f"acc_max must be >= 0, got {acc_max}")
        worst = acc_max * max(mult) + max(abs(b) for b in bias)
        if worst > T_BOUND:
            raise ValueError(f"acc_max * max(M) + max|B| = {worst} exceeds 2^62: acc * M + B could "
                             "overflow int64; lower S or M")
        for name, v in (("shift", s), ("mult", mult), ("bias", bias), ("lo", lo), ("hi", hi),
                        ("acc_max", acc_max)):
            object.__setattr__(self, name, v)

    @property
    def channels(self) -> int:
        return len(self.mult)

    @property
    def m(self) -> np.ndarray:
        """M as int64 (N,)."""
        return np.array(self.mult, dtype=np.int64)

    @property
    def b(self) -> np.ndarray:
        """B as int64 (N,)."""
        return np.array(self.bias, dtype=np.int64)

    @property
    def thresholds(self) -> np.ndarray:
        """T_j as int64 (q-1,), strictly increasing."""
        return np.array(thresholds(self.fmt, self.shift), dtype=np.int64)


def _positive(x: object, what: str) -> Fraction:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {x!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what} must be positive and finite, got {v}")
    return Fraction(v)


def _vector(x: object, n: int | None, what: str) -> tuple[np.ndarray, int | None]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim > 1:
        raise ValueError(f"{what} must be a scalar or 1-D (one value per output channel), "
                         f"got shape {a.shape}")
    if a.ndim == 1:
        if a.size == 0:
            raise ValueError(f"{what} is empty")
        if n is not None and a.size != n:
            raise ValueError(f"{what} has {a.size} channels, expected {n}")
        n = a.size
    return a, n


def _round_sat(x: Fraction) -> int:
    """Python round (half to even), saturated to int64 (a bound that far out never binds: |t| <= 2^62)."""
    return min(max(round(x), INT64_MIN), INT64_MAX)


def _clamp_bounds(act: str | tuple[float | None, float | None], s_out: Fraction,
                  shift: int) -> tuple[int, int]:
    if isinstance(act, str):
        if act == "none":
            return INT64_MIN, INT64_MAX
        if act == "relu":
            return 0, INT64_MAX
        if act == "relu6":
            return 0, _round_sat(Fraction(6) / s_out * (1 << shift))
        raise ValueError(f"act must be one of {', '.join(ACTS)} or a (low, high) pair in real units, "
                         f"got {act!r}")
    try:
        lo, hi = act
    except (TypeError, ValueError):
        raise ValueError(f"act must be one of {', '.join(ACTS)} or a (low, high) pair, got {act!r}") from None
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    if math.isnan(lo) or math.isnan(hi) or lo == math.inf or hi == -math.inf or lo > hi:
        raise ValueError(f"clamp bounds must be real numbers (or None) with low <= high, got {act!r}")

    def bound(v: float, unbounded: int) -> int:
        return unbounded if math.isinf(v) else _round_sat(Fraction(v) / s_out * (1 << shift))

    return bound(lo, INT64_MIN), bound(hi, INT64_MAX)


def params(
    *,
    fmt: Format,
    s_a: float,
    s_w: float | Sequence[float] | np.ndarray,
    s_out: float | Sequence[float] | np.ndarray,
    acc_max: int,
    bias: Sequence[float] | np.ndarray | None = None,
    act: str | tuple[float | None, float | None] = "none",
    channels: int | None = None,
    shift: int | None = None,
) -> Params:
    """Epilogue parameters of one layer from its float scales (at export; float64 allowed here).

    ``acc * s_a * s_w[n] + bias[n]`` is the layer's real output and ``s_out`` the next layer's
    activation scale, or ``s_out[n]`` per column (consumers that each read their own columns, as
    attention's q, k and v of one projection: the thresholds are in units of the output scale, so
    a per-column scale folds into M[n] and B[n] and needs nothing more of the IP; ``act`` is then
    "none" or "relu"). With r[n] = s_a * s_w[n] / s_out[n], exactly as rationals of the float64
    inputs: ``M[n] = round(r[n] * 2^S)``, ``B[n] = round(bias[n] / s_out[n] * 2^S)`` (round = half to even),
    ``H = round(6 / s_out * 2^S)`` for relu6, and S is the largest shift in 1..62 with
    ``max M < 2^31``, ``acc_max * max M + max|B| <= 2^62`` and every threshold in int64 (or the
    given ``shift``, checked against the same limits). Each condition only tightens as S grows, so
    the largest S is found by bisection. ``act`` is "none", "relu", "relu6" or ``(low, high)`` in
    real units (None or an infinity for no bound). ``channels`` is N when s_w and bias are scalars/None.
    """
    check_format(fmt)
    sa = _positive(s_a, "s_a")
    acc_max = _as_int(acc_max, "acc_max")
    if acc_max < 0:
        raise ValueError(f"acc_max must be >= 0, got {acc_max}")
    if channels is not None and (_as_int(channels, "channels") < 1):
        raise ValueError(f"channels must be >= 1, got {channels}")
    sw, n = _vector(s_w, channels, "s_w")
    bv, n = _vector(0.0 if bias is None else bias, n, "bias")
    if np.ndim(s_out) == 0:
        so = _positive(s_out, "s_out")
        sos = None
    else:
        sv, n = _vector(s_out, n, "s_out")
        sos = [_positive(v, f"s_out[{i}]") for i, v in enumerate(sv.tolist())]
        if not isinstance(act, str) or act not in ("none", "relu"):
            raise ValueError(f"act {act!r} bounds the output in real units, which per-column output scales "
                             "make a bound per column; only 'none' and 'relu' take s_out per column")
        so = sos[0]
    if n is None:
        raise ValueError("per-tensor s_w and no bias: give channels= (N, the output columns)")
    if not np.all(np.isfinite(bv)):
        raise ValueError(f"bias has {int(np.isnan(bv).sum())} NaN and {int(np.isinf(bv).sum())} Inf values")
    if not np.all(np.isfinite(sw)) or np.any(sw <= 0):
        raise ValueError("s_w must be positive and finite in every channel")
    outs = [so] * n if sos is None else sos
    sws, bvs = np.broadcast_to(sw, (n,)).tolist(), np.broadcast_to(bv, (n,)).tolist()
    ratios = [sa * Fraction(float(w)) / o for w, o in zip(sws, outs, strict=True)]
    biases = [Fraction(float(b)) / o for b, o in zip(bvs, outs, strict=True)]
    top = max_shift(fmt)

    def mb(s: int) -> tuple[list[int], list[int]]:
        return [round(r * (1 << s)) for r in ratios], [round(b * (1 << s)) for b in biases]

    def problem(s: int) -> str | None:
        m, b = mb(s)
        if max(m) >= MULT_LIMIT:
            return f"max M = {max(m)} >= 2^31 (s_a*s_w/s_out up to {float(max(ratios)):.6g})"
        if acc_max * max(m) + max(abs(v) for v in b) > T_BOUND:
            return f"acc_max * max M + max|B| = {acc_max * max(m) + max(abs(v) for v in b)} > 2^62"
        return None

    if shift is not None:
        s = _as_int(shift, "shift")
        if not SHIFT_MIN <= s <= min(SHIFT_MAX, top):
            raise ValueError(f"shift S = {s} is out of range: 1..{min(SHIFT_MAX, top)} for {fmt.name}")
        if (why := problem(s)) is not None:
            raise ValueError(f"shift S = {s} does not fit: {why}")
    else:
        if (why := problem(SHIFT_MIN)) is not None:
            raise ValueError(f"no shift S in {SHIFT_MIN}..{top} fits even at S = 1: {why}")
        good, bad = SHIFT_MIN, top + 1  # problem(good) is None; everything >= bad fails or is out of range
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if problem(mid) is None else (good, mid)
        s = good
    m, b = mb(s)
    if min(m) == 0:
        n0 = m.index(0)
        raise ValueError(f"channel {n0}: s_a*s_w/s_out = {float(ratios[n0]):.6g} rounds to M = 0 at S = {s}; "
                         "its accumulators would be lost")
    lo, hi = _clamp_bounds(act, so, s)
    scale = float(so) if sos is None else tuple(float(v) for v in sos)
    return Params(fmt, s, tuple(m), tuple(b), lo, hi, acc_max, scale)


def _check_acc(acc: object, p: Params) -> np.ndarray:
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise TypeError(f"acc must be an integer array, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] != p.channels:
        raise ValueError(f"acc must be (M, {p.channels}) for {p.channels} output channels, "
                         f"got shape {a.shape}")
    if a.size and (int(a.max()) > p.acc_max or int(a.min()) < -p.acc_max):
        raise ValueError(f"acc reaches {int(a.min())}..{int(a.max())}, beyond acc_max = {p.acc_max} the "
                         "parameters were made for (acc * M + B could overflow int64)")
    return a.astype(np.int64)


def transform(acc: np.ndarray, p: Params) -> np.ndarray:
    """t = min(max(acc * M[n] + B[n], L), H) in int64, (M, N): the first two steps of the epilogue."""
    a = _check_acc(acc, p)
    t = a * p.m[None, :] + p.b[None, :]
    return np.minimum(np.maximum(t, np.int64(p.lo)), np.int64(p.hi))


def grid_index(t: np.ndarray, p: Params) -> np.ndarray:
    """idx = #{j : t >= T_j} (nearest grid point, ties up), int64, the shape of t."""
    return np.searchsorted(p.thresholds, np.asarray(t, dtype=np.int64), side="right").astype(np.int64)


def round_int8(t: np.ndarray, p: Params) -> np.ndarray:
    """int8 values by arithmetic: clamp((t >> S) + ((t >> (S-1)) & 1), lo, hi), int64.

    Equal to ``clamp(floor((t + 2^(S-1)) / 2^S), lo, hi)`` and to the threshold count (module
    docstring); hardware may use either form. The code is ``value & 0xFF``."""
    f = p.fmt
    if f.kind != "int" or f.bits != 8:
        raise ValueError(f"round_int8 is for int8 outputs, not {f.name}")
    t = np.asarray(t, dtype=np.int64)
    v = (t >> p.shift) + ((t >> (p.shift - 1)) & 1)
    lo, hi = (-128, 127) if f.signed else (0, 255)
    return np.clip(v, lo, hi)


def apply(acc: np.ndarray, p: Params) -> np.ndarray:
    """Output codes (uint8, (M, N)) of the accumulators acc (M, N): the epilogue's definition."""
    return p.fmt.grid_codes[grid_index(transform(acc, p), p)]


def apply_packed(acc: np.ndarray, p: Params, cfg: arch.ArrayConfig = arch.DEFAULT) -> np.ndarray:
    """The codes packed as the next layer's activations (``accelerator_layout("a", cfg)``, K = N)."""
    return pack.pack(apply(acc, p), p.fmt.bits, pack.accelerator_layout("a", cfg))


def tile_slices(cfg: arch.ArrayConfig, shape: tuple[int, int], bits: int, m0: int, n0: int) -> list[slice]:
    """Bytes of the packed output that the R x C output tile at (m0, n0) writes, one slice per plane.

    It is steps n0 .. n0+C-1 of tile block m0/R (the last column tile: up to K_pad, its padding
    steps being code 0), so an interior tile is C*R/2 bytes = C*4R/bus_bits bus words per plane.
    Needs R even (a step is whole bytes) and C*4R a multiple of the bus (a tile is whole words)."""
    r, c = cfg.rows, cfg.cols
    if r % 2 or (4 * r * c) % cfg.bus_bits:
        raise ValueError(f"a {r}x{c} array on a {cfg.bus_bits}-bit bus does not write whole bus words "
                         "per output tile (needs R even and C*4R a multiple of the bus width)")
    rows, n = shape
    if m0 % r or n0 % c or not 0 <= m0 < rows or not 0 <= n0 < n:
        raise ValueError(f"({m0}, {n0}) is not the corner of an output tile of a {shape} matrix on {r}x{c}")
    lay = pack.accelerator_layout("a", cfg)
    r_pad, k_pad = lay.padded(rows, n)
    plane, block = r_pad * k_pad // 2, (m0 // r) * (k_pad * r // 2)
    last = k_pad if n0 + c >= n else n0 + c  # the last column tile also writes the zero steps N..K_pad-1
    start, end = block + n0 * r // 2, block + last * r // 2
    return [slice(p * plane + start, p * plane + end) for p in range(pack.planes(bits))]


def dequantized(codes: np.ndarray, fmt: Format, s_out: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """float32 real values of output codes (``values * s_out``, as QuantizedTensor.dequantize);
    ``s_out`` a scalar or one scale per column (the last axis)."""
    codes = np.asarray(codes)
    axis = None if np.ndim(s_out) == 0 else codes.ndim - 1
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed,
                           scale=np.asarray(s_out, np.float32), channel_axis=axis).dequantize()


# ---- the parameter buffer the IP reads (docs/contracts.md section 12) -------------------------

def threshold_count(fmt: Format) -> int:
    """Thresholds the parameter buffer carries: q - 1 for a 4-bit format, none for int8 (the IP
    rounds int8 by the shift form, :func:`round_int8`, which equals the count)."""
    return 0 if check_format(fmt).bits == 8 else len(grid(fmt)) - 1


def param_words(fmt: Format, channels: int) -> int:
    """int64 words of the parameter buffer of an N-column call: ceil(N/2) + N + 2 + thresholds."""
    return -(-channels // 2) + channels + 2 + threshold_count(fmt)


def param_buffer(p: Params) -> np.ndarray:
    """The parameter buffer of ``p`` as little-endian int64 words, the one layout the IP reads:

    * words 0 .. ceil(N/2)-1: M[2i] in bits 31:0 and M[2i+1] in bits 63:32 (0 past the last column);
    * the next N words: B[0 .. N-1];
    * then L, H, and for a 4-bit output format its q-1 thresholds T_0 .. T_{q-2} (none for int8).
    """
    n = p.channels
    m = np.zeros(2 * -(-n // 2), np.uint64)
    m[:n] = p.m.astype(np.uint64)
    words = [(m[0::2] | (m[1::2] << np.uint64(32))).view(np.int64), p.b,
             np.array([p.lo, p.hi], np.int64)]
    if threshold_count(p.fmt):
        words.append(p.thresholds)
    out = np.concatenate(words).astype("<i8")
    assert out.size == param_words(p.fmt, n)
    return out


def read_param_buffer(words: np.ndarray, fmt: Format, shift: int, channels: int) -> Params:
    """Params back from a parameter buffer (the ref level reads the IP's buffer with it).

    ``acc_max`` is the largest the parameters allow (``(2^62 - max|B|) // max M``). ValueError if
    the buffer is malformed: too short, M out of range, L > H, or thresholds other than those of
    ``fmt`` and ``shift``."""
    w = np.asarray(words).view("<i8").reshape(-1)
    need = param_words(fmt, channels)
    if w.size < need:
        raise ValueError(f"parameter buffer has {w.size} words; {fmt.name} with {channels} columns "
                         f"needs {need}")
    h = -(-channels // 2)
    pairs = w[:h].view(np.uint64)
    mult = np.empty(2 * h, np.int64)
    mult[0::2], mult[1::2] = pairs & np.uint64(0xFFFFFFFF), pairs >> np.uint64(32)
    bias = w[h:h + channels]
    lo, hi = int(w[h + channels]), int(w[h + channels + 1])
    mult_t = tuple(int(v) for v in mult[:channels])
    if max(mult_t) >= MULT_LIMIT:
        raise ValueError(f"parameter buffer: M[n] = {max(mult_t)} is not below 2^31")
    top = max(mult_t)
    acc_max = (T_BOUND - max(abs(int(b)) for b in bias)) // top if top else T_BOUND
    p = Params(fmt, shift, mult_t, tuple(int(b) for b in bias), lo, hi, max(acc_max, 0))
    thr = w[h + channels + 2:need]
    if thr.size and not np.array_equal(thr, p.thresholds):
        raise ValueError(f"parameter buffer: its thresholds are not those of {fmt.name} at S = {shift}")
    return p

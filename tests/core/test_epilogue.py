"""The requantization epilogue: integer definition vs exact rationals, vs quantize_as, int8 forms,
parameter choice and validation, the int64 bound, the packed layout and the golden file."""

import bisect
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from antq.core import arch, epilogue, formats, golden, pack
from antq.core.epilogue import INT64_MAX, INT64_MIN, T_BOUND, Params
from antq.core.quantize import quantize_as
from hypothesis import given, settings
from hypothesis import strategies as st

GOLDEN_EPI = Path(__file__).resolve().parents[1] / "golden" / "epilogue.txt"
FORMATS = epilogue.output_formats()
INT8 = [f for f in FORMATS if f.bits == 8]


def slow_codes(acc: np.ndarray, p: Params) -> np.ndarray:
    """Obviously correct: Python ints, then the grid value nearest to t / 2^S as an exact
    fraction, the larger one on a tie; encode() gives its code. No thresholds, no int64."""
    values = sorted({int(v) for v in p.fmt.values})
    out = np.zeros(acc.shape, np.uint8)
    for (i, n), a in np.ndenumerate(acc):
        t = int(a) * p.mult[n] + p.bias[n]
        assert abs(t) <= T_BOUND  # the parameters' promise: nothing leaves int64
        t = min(max(t, p.lo), p.hi)
        x = Fraction(t, 1 << p.shift)
        k = bisect.bisect_left(values, x)  # the nearest value is one of x's two neighbours
        near = values[max(k - 1, 0):k + 1]
        best = min(near, key=lambda v, x=x: (abs(x - v), -v))
        out[i, n] = p.fmt.encode(np.array([best]))[0]
    return out


@st.composite
def params_and_acc(draw, fmts=FORMATS, max_shape=6):
    """Random parameters and accumulators, many of them landing on or next to a threshold."""
    fmt = draw(st.sampled_from(fmts))
    s = draw(st.integers(1, epilogue.max_shift(fmt)))
    n = draw(st.integers(1, max_shape))
    rows = draw(st.integers(1, max_shape))
    mult = draw(st.lists(st.one_of(st.integers(0, 2**31 - 1), st.integers(0, 8), st.just(1 << min(s, 30))),
                         min_size=n, max_size=n))
    bias = draw(st.lists(st.one_of(st.integers(-2**61, 2**61), st.integers(-1000, 1000)),
                         min_size=n, max_size=n))
    room = T_BOUND - max(abs(b) for b in bias)
    acc_max = room // max(mult) if max(mult) else 2**62
    acc_max = min(acc_max, draw(st.one_of(st.just(acc_max), st.integers(0, acc_max))))
    thr = epilogue.thresholds(fmt, s)
    acc = np.zeros((rows, n), np.int64)
    for i in range(rows):
        for j in range(n):
            kind = draw(st.integers(0, 3))
            if kind == 0 or mult[j] == 0:
                a = draw(st.integers(-acc_max, acc_max))
            elif kind == 1:
                a = draw(st.sampled_from([acc_max, -acc_max, 0]))
            else:  # near a threshold: t within one M of T_j
                tj = draw(st.sampled_from(thr))
                a = (tj - bias[j]) // mult[j] + draw(st.integers(-1, 2))
            acc[i, j] = min(max(a, -acc_max), acc_max)
    return fmt, s, mult, bias, acc_max, acc, thr


@st.composite
def clamp_for(draw, thr):
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return INT64_MIN, INT64_MAX
    if choice == 1:
        return 0, INT64_MAX
    if choice == 2:  # bounds exactly on thresholds
        a, b = sorted(draw(st.lists(st.sampled_from(thr), min_size=2, max_size=2)))
        return a, b
    a, b = sorted(draw(st.lists(st.integers(-2**62, 2**62), min_size=2, max_size=2)))
    return a, b


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_apply_equals_the_exact_rational_reference(data):
    fmt, s, mult, bias, acc_max, acc, thr = data.draw(params_and_acc())
    lo, hi = data.draw(clamp_for(thr))
    p = Params(fmt, s, tuple(mult), tuple(bias), lo, hi, acc_max)
    codes = epilogue.apply(acc, p)
    assert codes.dtype == np.uint8 and codes.shape == acc.shape
    assert np.array_equal(codes, slow_codes(acc, p))


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_ties_go_up_and_the_ends_saturate(fmt):
    s = 3
    thr = epilogue.thresholds(fmt, s)
    p = Params(fmt, s, (1,), (0,), acc_max=2**40)
    g = fmt.grid_codes
    t = np.array([[v] for tj in thr for v in (tj - 1, tj, tj + 1)] + [[-2**40], [2**40]], np.int64)
    expect = [g[j + d] for j in range(len(thr)) for d in (0, 1, 1)] + [g[0], g[-1]]
    assert epilogue.apply(t, p).ravel().tolist() == [int(c) for c in expect]
    assert np.array_equal(epilogue.apply(t, p), slow_codes(t, p))


def test_the_reference_can_fail():
    """The slow reference is not a copy of apply: a tie rounded down would be caught."""
    fmt = formats.get("int", 4, True)
    p = Params(fmt, 2, (1,), (0,), acc_max=100)
    tie = np.array([[epilogue.thresholds(fmt, 2)[5]]], np.int64)
    assert epilogue.apply(tie, p)[0, 0] == fmt.grid_codes[6]
    wrong = fmt.grid_codes[np.searchsorted(p.thresholds, tie, side="left")]
    assert not np.array_equal(wrong, slow_codes(tie, p))


def _real(acc: np.ndarray, s_a: float, s_w: np.ndarray, bias: np.ndarray, s_out: float,
          act: str) -> tuple[np.ndarray, list[list[Fraction]]]:
    """The layer's real output y (float64, rounded once from exact) and u = act(y) / s_out exactly."""
    lo, hi = {"none": (None, None), "relu": (Fraction(0), None), "relu6": (Fraction(0), Fraction(6))}[act]
    y = np.zeros(acc.shape)
    u = []
    for i in range(acc.shape[0]):
        row = []
        for n in range(acc.shape[1]):
            v = int(acc[i, n]) * Fraction(s_a) * Fraction(float(s_w[n])) + Fraction(float(bias[n]))
            if lo is not None:
                v = max(v, lo)
            if hi is not None:
                v = min(v, hi)
            y[i, n] = float(v)
            row.append(v / Fraction(s_out))
        u.append(row)
    return y, u


def _near_mid(u: Fraction, mids: list[Fraction], band: Fraction) -> bool:
    return any(abs(u - m) <= band for m in mids)


scale = st.floats(2**-10, 1.0, width=32)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FORMATS), scale, st.lists(scale, min_size=1, max_size=5), scale,
       st.sampled_from(["none", "relu", "relu6"]), st.integers(1, 10**7), st.integers(0, 2**32 - 1))
def test_apply_is_quantize_as_on_the_real_values(fmt, s_a, s_w, s_out, act, acc_max, seed):
    """The integer epilogue is the float quantizer on the same grid: it gives quantize_as's codes for
    the real output act(acc*s_a*s_w + b), except where the real value is so close to a rounding
    threshold that the two sides' proven error bounds overlap it: the epilogue's
    (|acc| + 2) * 2^-(S+1) (M, B, H rounded to integers) plus 1e-9 relative, and quantize_as's
    float32 rounding of y and y / s_out (2^-21 relative covers both)."""
    rng = np.random.default_rng(seed)
    s_w = np.array(s_w, np.float32)
    n = s_w.size
    bias = (rng.uniform(-1, 1, n) * s_out * fmt.max_value).astype(np.float32)
    p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, acc_max=acc_max, bias=bias, act=act)
    spread = max(1, min(acc_max, int(1.5 * fmt.max_value * s_out / (s_a * float(s_w.min())))))
    acc = rng.integers(-spread, spread, size=(6, n), endpoint=True)
    acc[0, 0] = acc_max
    codes = epilogue.apply(acc, p)
    y, u = _real(acc, s_a, s_w, bias, s_out, act)
    q = quantize_as(y, fmt, s_out).codes
    g = sorted({int(v) for v in fmt.values})
    mids = [Fraction(a + b, 2) for a, b in zip(g[:-1], g[1:], strict=True)]
    for (i, j), c in np.ndenumerate(codes):
        band = Fraction(abs(int(acc[i, j])) + 2, 1 << (p.shift + 1)) + abs(u[i][j]) * Fraction(1, 2**21)
        band += Fraction(1, 10**9) * abs(u[i][j])
        if not _near_mid(u[i][j], mids, band):
            assert c == q[i, j], (i, j, float(u[i][j]), p)


def test_quantize_as_comparison_is_not_vacuous():
    """With typical scales almost no element falls into the excluded bands of the test above."""
    rng = np.random.default_rng(5)
    fmt = formats.get("flint", 4, False)
    s_a, s_out = 0.0123, 0.0456
    s_w = rng.uniform(0.005, 0.02, 20).astype(np.float32)
    bias = rng.uniform(-0.2, 0.2, 20).astype(np.float32)
    acc_max = epilogue.acc_bound(formats.get("int", 4, False), formats.get("int", 4, True), 1000)
    p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, acc_max=acc_max, bias=bias, act="relu")
    acc = rng.integers(-30000, 30000, size=(50, 20))
    y, u = _real(acc, s_a, s_w, bias, s_out, "relu")
    q = quantize_as(y, fmt, s_out).codes
    codes = epilogue.apply(acc, p)
    assert len(set(codes.ravel().tolist())) >= 10  # the values cover the grid
    assert np.mean(codes == q) > 0.99


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FORMATS), st.floats(1e-6, 1e3), st.lists(st.floats(1e-6, 1e3), min_size=1, max_size=4),
       st.floats(1e-6, 1e3), st.integers(1, 2**40), st.floats(-1e3, 1e3))
def test_integer_output_is_within_its_bound_of_the_real_value(fmt, s_a, s_w, s_out, acc_max, b):
    """|t / 2^S - (acc*s_a*s_w + b) / s_out| <= (|acc| + 1) * 2^-(S+1) before the clamp, for the worst
    accumulators, with no int64 wraparound (apply agrees with Python ints at +-acc_max)."""
    n = len(s_w)
    try:
        p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, acc_max=acc_max, bias=[b] * n)
    except ValueError as e:  # ratios beyond 2^30 or below 2^-63 are refused, and only those
        r = [Fraction(s_a) * Fraction(w) / Fraction(s_out) for w in s_w]
        assert "M = 0" in str(e) or max(r) * 2 >= 2**31 - 0.5 or acc_max * max(r) * 2 > 2**61, e
        return
    acc = np.array([[acc_max] * n, [-acc_max] * n, [0] * n, [1] * n], np.int64)
    for i in range(acc.shape[0]):
        for j in range(n):
            t = int(acc[i, j]) * p.mult[j] + p.bias[j]
            assert abs(t) <= T_BOUND
            exact = (int(acc[i, j]) * Fraction(s_a) * Fraction(s_w[j]) + Fraction(b)) / Fraction(s_out)
            bound = Fraction(abs(int(acc[i, j])) + 1, 1 << (p.shift + 1))
            assert abs(Fraction(t, 1 << p.shift) - exact) <= bound
    assert np.array_equal(epilogue.transform(acc, p), [[int(a) * m + c for a, m, c in zip(row, p.mult, p.bias,
                                                                                          strict=True)]
                                                      for row in acc.tolist()])
    assert np.array_equal(epilogue.apply(acc, p), slow_codes(acc, p))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FORMATS), st.floats(1e-4, 10.0), st.floats(1e-4, 10.0), st.integers(1, 2**36))
def test_params_picks_the_largest_shift(fmt, s_w, s_out, acc_max):
    p = epilogue.params(fmt=fmt, s_a=0.01, s_w=s_w, s_out=s_out, acc_max=acc_max, channels=3)
    assert p.mult == (p.mult[0],) * 3 and p.bias == (0, 0, 0)
    assert p.mult[0] == round(Fraction(0.01) * Fraction(s_w) / Fraction(s_out) * (1 << p.shift))
    if p.shift < epilogue.max_shift(fmt):
        with pytest.raises(ValueError, match="does not fit"):
            epilogue.params(fmt=fmt, s_a=0.01, s_w=s_w, s_out=s_out, acc_max=acc_max, channels=3,
                            shift=p.shift + 1)
    else:
        with pytest.raises(ValueError, match="out of range"):
            epilogue.params(fmt=fmt, s_a=0.01, s_w=s_w, s_out=s_out, acc_max=acc_max, channels=3,
                            shift=p.shift + 1)


def test_params_rounds_half_to_even_and_sets_the_clamps():
    fmt = formats.get("int", 4, False)
    p = epilogue.params(fmt=fmt, s_a=1.0, s_w=[1.25, 1.75], s_out=1.0, acc_max=10, bias=[0.75, 0.25], shift=1)
    assert (p.mult, p.bias) == ((2, 4), (2, 0))  # 2.5 -> 2, 3.5 -> 4, 1.5 -> 2, 0.5 -> 0
    p = epilogue.params(fmt=fmt, s_a=0.5, s_w=0.5, s_out=0.25, acc_max=10, channels=2, act="relu6", shift=4)
    assert (p.mult, p.lo, p.hi) == ((16, 16), 0, 24 * 16)
    p = epilogue.params(fmt=fmt, s_a=0.5, s_w=0.5, s_out=0.25, acc_max=10, channels=1, act=(-1.0, None),
                        shift=4)
    assert (p.lo, p.hi) == (-64, INT64_MAX)
    p = epilogue.params(fmt=fmt, s_a=0.5, s_w=0.5, s_out=0.25, acc_max=10, channels=1, act="none")
    assert (p.lo, p.hi) == (INT64_MIN, INT64_MAX)
    p = epilogue.params(fmt=fmt, s_a=1e-30, s_w=0.5, s_out=1e-30, acc_max=10, channels=1, act="relu6",
                        shift=1)
    assert p.hi == INT64_MAX  # saturated: a bound beyond 2^62 never binds


@pytest.mark.parametrize("kwargs, err, match", [
    ({"s_a": 0.0}, ValueError, "s_a must be positive"),
    ({"s_a": float("nan")}, ValueError, "s_a must be positive"),
    ({"s_out": float("inf")}, ValueError, "s_out must be positive"),
    ({"s_out": -1.0}, ValueError, "s_out must be positive"),
    ({"s_w": [0.1, 0.0]}, ValueError, "s_w must be positive"),
    ({"s_w": [0.1, float("nan")]}, ValueError, "s_w must be positive"),
    ({"s_w": [[0.1]]}, ValueError, "scalar or 1-D"),
    ({"bias": [0.1, float("nan")]}, ValueError, "1 NaN and 0 Inf"),
    ({"bias": [float("inf"), 0.0]}, ValueError, "0 NaN and 1 Inf"),
    ({"bias": [0.1, 0.2, 0.3]}, ValueError, "bias has 3 channels, expected 2"),
    ({"fmt": formats.get("int", 3, True)}, ValueError, "not int3s"),
    ({"fmt": formats.get("flint", 8, False)}, ValueError, "not flint8u"),
    ({"fmt": "int4"}, TypeError, "must be an antq.core.formats.Format"),
    ({"act": "gelu"}, ValueError, "act must be one of"),
    ({"act": (1.0, 0.0)}, ValueError, "low <= high"),
    ({"act": (float("nan"), 1.0)}, ValueError, "low <= high"),
    ({"shift": 0}, ValueError, "out of range"),
    ({"shift": 63}, ValueError, "out of range"),
    ({"shift": 50, "fmt": formats.get("pot", 4, False)}, ValueError, "out of range: 1..49"),
    ({"shift": 40}, ValueError, "does not fit: max M"),
    ({"acc_max": -1}, ValueError, "acc_max must be >= 0"),
    ({"s_a": 1e10}, ValueError, "even at S = 1: max M"),
    ({"s_a": 1e-300}, ValueError, "rounds to M = 0"),
    ({"acc_max": 2**62, "s_a": 1.0}, ValueError, "even at S = 1: acc_max"),
])
def test_params_refuses(kwargs, err, match):
    args = {"fmt": formats.get("int", 4, True), "s_a": 0.01, "s_w": [0.1, 0.2], "s_out": 0.05,
            "acc_max": 1000, "bias": [0.0, 0.1]} | kwargs
    with pytest.raises(err, match=match):
        epilogue.params(**args)


def test_params_needs_the_channel_count():
    with pytest.raises(ValueError, match="give channels="):
        epilogue.params(fmt=formats.get("int", 4, True), s_a=0.1, s_w=0.1, s_out=0.1, acc_max=10)


def test_params_validation():
    f = formats.get("int", 4, True)
    ok = {"fmt": f, "shift": 8, "mult": (3, 4), "bias": (0, -5), "lo": 0, "hi": 100, "acc_max": 10}
    assert Params(**ok).channels == 2
    for bad, err, match in [
        ({"shift": 0}, ValueError, "must lie in 1..62"), ({"shift": 63}, ValueError, "must lie in 1..62"),
        ({"shift": 2.0}, TypeError, "must be an integer"), ({"shift": True}, TypeError, "must be an integer"),
        ({"fmt": formats.get("pot", 4, False), "shift": 50}, ValueError, "at most 49"),
        ({"mult": (3, 2**31)}, ValueError, "0..2\\^31-1"), ({"mult": (-1, 2)}, ValueError, "0..2\\^31-1"),
        ({"mult": (3.0, 4)}, TypeError, "M\\[n\\] must be an integer"),
        ({"mult": ()}, ValueError, "at least one"),
        ({"bias": (1,)}, ValueError, "B has 1"), ({"lo": 5, "hi": 4}, ValueError, "L <= H"),
        ({"hi": 2**63}, ValueError, "does not fit in int64"), ({"acc_max": -2}, ValueError, ">= 0"),
        ({"fmt": formats.get("int", 2, True)}, ValueError, "not int2s"),
        ({"mult": (2**31 - 1, 1), "acc_max": 2**31 + 2}, ValueError, "exceeds 2\\^62"),
        ({"bias": (0, 2**62 + 1), "acc_max": 0}, ValueError, "exceeds 2\\^62"),
    ]:
        with pytest.raises(err, match=match):
            Params(**(ok | bad))
    # exactly at the bound is legal, one more is not
    m = 2**31 - 1
    edge = (T_BOUND - 7) // m
    Params(f, 60, (m,), (7,), acc_max=edge)
    with pytest.raises(ValueError, match="exceeds 2\\^62"):
        Params(f, 60, (m,), (7,), acc_max=edge + 1)


def test_apply_refuses_accumulators_beyond_acc_max_and_bad_shapes():
    p = Params(formats.get("int", 4, True), 4, (1, 2), (0, 0), acc_max=100)
    assert epilogue.apply(np.array([[100, -100]]), p).shape == (1, 2)
    with pytest.raises(ValueError, match="beyond acc_max = 100"):
        epilogue.apply(np.array([[101, 0]]), p)
    with pytest.raises(ValueError, match="beyond acc_max"):
        epilogue.apply(np.array([[0, 2**64 - 1]], np.uint64), p)
    with pytest.raises(ValueError, match=r"must be \(M, 2\)"):
        epilogue.apply(np.zeros((2, 3), np.int64), p)
    with pytest.raises(TypeError, match="integer array"):
        epilogue.apply(np.zeros((2, 2)), p)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(INT8), st.data())
def test_int8_threshold_form_equals_the_arithmetic_form(fmt, data):
    s = data.draw(st.integers(1, epilogue.max_shift(fmt)))
    t = np.array(data.draw(st.lists(st.one_of(
        st.integers(INT64_MIN, INT64_MAX), st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 1]),
        st.integers(-300, 300).map(lambda k: (k << s) + (1 << (s - 1)) + data.draw(st.integers(-1, 1)))
        .filter(lambda v: INT64_MIN <= v <= INT64_MAX)), min_size=1, max_size=40)), np.int64)
    p = Params(fmt, s, (1,), (0,))
    lo, hi = (-128, 127) if fmt.signed else (0, 255)
    by_count = epilogue.grid_index(t, p) + lo
    by_shift = epilogue.round_int8(t, p)
    by_floor = [min(max((int(v) + (1 << (s - 1))) >> s, lo), hi) for v in t]  # Python ints: no overflow
    assert np.array_equal(by_count, by_shift)
    assert by_shift.tolist() == by_floor
    codes = fmt.grid_codes[epilogue.grid_index(t, p)]
    assert np.array_equal(codes, (by_shift & 0xFF).astype(np.uint8))


def test_round_int8_is_for_int8_only():
    with pytest.raises(ValueError, match="not int4s"):
        epilogue.round_int8(np.zeros(2, np.int64), Params(formats.get("int", 4, True), 3, (1,), (0,)))


def test_formats_grids_and_thresholds():
    assert len(FORMATS) == 10 and {f.name for f in INT8} == {"int8u", "int8s"}
    for f in FORMATS:
        g = epilogue.grid(f)
        assert list(g) == f.grid.tolist() and len(f.grid_codes) == len(g)
        s = epilogue.max_shift(f)
        thr = epilogue.thresholds(f, s)
        assert all(INT64_MIN <= v <= INT64_MAX for v in thr)
        assert not all(INT64_MIN <= v <= INT64_MAX for v in epilogue.thresholds(f, s + 1)) or s == 62
        assert all(a < b for a, b in zip(thr[:-1], thr[1:], strict=True)) and 0 not in thr
    assert epilogue.max_shift(formats.get("pot", 4, False)) == 49
    assert epilogue.acc_bound(formats.get("int", 8, True), formats.get("int", 8, True), 3) == 3 * 128 * 128
    with pytest.raises(ValueError, match="positive int"):
        epilogue.acc_bound(formats.get("int", 8, True), formats.get("int", 8, True), 0)


CFGS = [arch.DEFAULT, arch.ArrayConfig(32, 32, 128), arch.ArrayConfig(4, 8, 64), arch.ArrayConfig(2, 4, 32)]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FORMATS), st.sampled_from(CFGS), st.integers(1, 70), st.integers(1, 70),
       st.integers(0, 2**32 - 1))
def test_each_output_tile_writes_its_own_steps(fmt, cfg, rows, cols, seed):
    """An R x C output tile is steps n0..n0+C-1 of tile block m0/R (C*R/2 bytes, C*4R/bus words) in
    each nibble plane; the tiles cover the packed output exactly once."""
    rng = np.random.default_rng(seed)
    p = Params(fmt, 2, tuple(int(v) for v in rng.integers(1, 4, cols)), (0,) * cols, acc_max=200)
    acc = rng.integers(-200, 200, size=(rows, cols), endpoint=True)
    codes = epilogue.apply(acc, p)
    layout = pack.accelerator_layout("a", cfg)
    full = epilogue.apply_packed(acc, p, cfg)
    assert np.array_equal(full, pack.pack(codes, fmt.bits, layout))
    assert np.array_equal(pack.unpack(full, fmt.bits, (rows, cols), layout), codes)
    owner = np.full(full.size, -1)
    for ti, m0 in enumerate(range(0, rows, cfg.rows)):
        for n0 in range(0, cols, cfg.cols):
            sl = epilogue.tile_slices(cfg, (rows, cols), fmt.bits, m0, n0)
            assert len(sl) == pack.planes(fmt.bits)
            only = np.zeros_like(codes)
            only[m0:m0 + cfg.rows, n0:n0 + cfg.cols] = codes[m0:m0 + cfg.rows, n0:n0 + cfg.cols]
            part = pack.pack(only, fmt.bits, layout)
            inside = np.zeros(full.size, bool)
            for s in sl:
                if n0 + cfg.cols < cols:  # an interior tile: exactly C steps
                    assert (s.stop - s.start) * 8 == cfg.cols * 4 * cfg.rows
                    assert (s.stop - s.start) * 8 % cfg.bus_bits == 0
                assert (s.start * 8) % cfg.bus_bits == 0
                inside[s] = True
                assert np.all(owner[s] == -1)
                owner[s] = ti
            assert np.array_equal(part[inside], full[inside]) and not part[~inside].any()
    assert np.all(owner >= 0)


def test_tile_slices_refuses_misaligned_arrays_and_corners():
    with pytest.raises(ValueError, match="whole bus words"):
        epilogue.tile_slices(arch.ArrayConfig(3, 4, 64), (5, 5), 4, 0, 0)
    with pytest.raises(ValueError, match="not the corner"):
        epilogue.tile_slices(arch.DEFAULT, (40, 40), 4, 8, 0)


def test_dequantized_is_values_times_scale():
    f = formats.get("flint", 4, True)
    codes = f.grid_codes[None, :]
    expect = (np.asarray(f.grid) * 0.5).astype(np.float32)[None]
    assert np.array_equal(epilogue.dequantized(codes, f, 0.5), expect)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FORMATS), scale, st.lists(st.tuples(scale, scale), min_size=1, max_size=6),
       st.sampled_from(["none", "relu"]), st.integers(1, 10**6), st.integers(0, 2**32 - 1))
def test_a_scale_per_column_is_each_columns_own_epilogue(fmt, s_a, cols, act, acc_max, seed):
    """s_out per column (consumers reading their own columns): column n gets exactly the M, B and
    codes of a one-column epilogue with the scalar s_out[n] at the same shift."""
    rng = np.random.default_rng(seed)
    s_w, s_out = (np.array(v, np.float32) for v in zip(*cols, strict=True))
    bias = (rng.uniform(-1, 1, s_w.size) * s_out * fmt.max_value).astype(np.float32)
    p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, acc_max=acc_max, bias=bias, act=act)
    assert p.s_out == tuple(float(v) for v in s_out)
    acc = rng.integers(-acc_max, acc_max, size=(5, s_w.size), endpoint=True)
    codes = epilogue.apply(acc, p)
    for n in range(s_w.size):
        one = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w[n:n + 1], s_out=float(s_out[n]), acc_max=acc_max,
                              bias=bias[n:n + 1], act=act, shift=p.shift)
        assert (one.mult[0], one.bias[0], one.lo, one.hi) == (p.mult[n], p.bias[n], p.lo, p.hi)
        assert np.array_equal(epilogue.apply(acc[:, n:n + 1], one)[:, 0], codes[:, n])


def test_a_scale_per_column_takes_no_bound_in_real_units():
    f = formats.get("int", 4, False)
    for act in ("relu6", (0.0, 1.0)):
        with pytest.raises(ValueError, match="per column"):
            epilogue.params(fmt=f, s_a=0.1, s_w=[0.1, 0.1], s_out=[0.1, 0.2], acc_max=100, act=act)
    with pytest.raises(ValueError, match="s_out has 3 channels, expected 2"):
        epilogue.params(fmt=f, s_a=0.1, s_w=[0.1, 0.1], s_out=[0.1, 0.2, 0.3], acc_max=100)
    with pytest.raises(ValueError, match=r"s_out\[1\]"):
        epilogue.params(fmt=f, s_a=0.1, s_w=[0.1, 0.1], s_out=[0.1, -0.2], acc_max=100)


def test_dequantized_takes_a_scale_per_column():
    f = formats.get("int", 4, True)
    codes = np.stack([f.grid_codes, f.grid_codes[::-1]], axis=1)  # (q, 2)
    got = epilogue.dequantized(codes, f, np.array([0.5, 0.25], np.float32))
    assert np.array_equal(got[:, 0], epilogue.dequantized(codes[:, 0], f, 0.5))
    assert np.array_equal(got[:, 1], epilogue.dequantized(codes[:, 1], f, 0.25))


def test_golden_file_is_current_and_correct(tmp_path):
    fresh = golden.write_epilogue(tmp_path / "epilogue.txt")
    assert fresh.read_text() == GOLDEN_EPI.read_text(), "run `make golden`"
    cfg, cases = golden.read_epilogue(GOLDEN_EPI)
    assert cfg == arch.DEFAULT
    names = [c.name for c in cases]
    assert len(set(names)) == len(names)
    for f in FORMATS:  # every format with every activation, and both ends of its grid reached
        mine = [c for c in cases if c.params.fmt == f]
        for act in epilogue.ACTS:
            assert any(c.name.startswith(f"scaled_{f.name}_{act}_") for c in mine)
        assert any(c.name.startswith(f"ties_{f.name}_") for c in mine)
        reached = set().union(*(set(c.codes.ravel().tolist()) for c in mine))
        assert {int(f.grid_codes[0]), int(f.grid_codes[-1])} <= reached
    ties = near = 0
    for c in cases:
        p = c.params
        assert np.array_equal(epilogue.apply(c.acc, p), c.codes), c.name
        assert np.array_equal(c.codes, slow_codes(c.acc, p)), c.name
        assert np.array_equal(epilogue.apply_packed(c.acc, p, cfg), c.packed), c.name
        layout = pack.accelerator_layout("a", cfg)
        assert np.array_equal(pack.unpack(c.packed, p.fmt.bits, c.acc.shape, layout), c.codes)
        t = c.acc.astype(object) * np.array(p.mult, dtype=object) + np.array(p.bias, dtype=object)
        ties += int(np.isin(t.astype(np.int64), p.thresholds).sum())
        near += int((np.abs(t) > 2**61).sum())
    assert ties > 1000 and near > 50
    assert any(c.acc.shape[0] > cfg.rows and c.acc.shape[1] > cfg.cols for c in cases)  # several tiles
    assert any(c.acc.shape[0] % 2 and c.acc.shape[1] % 2 for c in cases) and (c.acc < 0).any()
    assert any(c.params.lo in c.params.thresholds.tolist() for c in cases)  # a clamp bound on a threshold

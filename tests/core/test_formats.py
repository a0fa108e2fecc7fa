"""Every code of every format: value sets against ANT's generators, decode, M << S, encode."""

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from antq.core import formats, regmap
from antq.core.formats import FormatError
from hypothesis import given
from hypothesis import strategies as st

ALL = formats.all_formats()


# Independent re-statements of the ANT reference's value generators (quant_modules.py), in raw
# (un-normalised) units, as multisets of 2^bits entries including the duplicated zero.
def ant_values(kind: str, bits: int, signed: bool) -> list[Fraction]:
    B = bits - 1 if signed else bits
    vals: list[Fraction] = []

    def add(v: Fraction) -> None:
        vals.append(v)
        if signed:
            vals.append(-v)

    if kind == "int":
        vals.append(Fraction(0))
        for i in range(1, 2**B):
            add(Fraction(i))
        if signed:
            vals.append(Fraction(-(2**B)))
    elif kind == "pot":
        vals.append(Fraction(0))
        for i in range(2**B - 1):
            add(Fraction(2) ** i)
    elif kind == "float":
        eb, mb = (2, 0) if B == 2 else (3, B - 3)
        first = True
        for i in range(2**eb):
            for j in range(2**mb):
                if first:
                    vals.append(Fraction(0))
                    first = False
                elif i == 0:
                    add(Fraction(2) ** i * j / 2**mb)
                else:
                    add(Fraction(2) ** (i - 1) * (1 + Fraction(j, 2**mb)))
    else:  # flint
        vals.append(Fraction(0))
        for i in range(B):  # negative exponents
            e, mb = -(i + 1), B - (i + 2)
            for j in range(2 ** max(mb, 0)) if mb >= 0 else []:
                add(Fraction(2) ** e * (1 + Fraction(j, 2**mb)))
        for i in range(B - 1):  # exponent 0 .. B-2
            mb = B - (i + 2)
            for j in range(2**mb):
                add(Fraction(2) ** i * (1 + Fraction(j, 2**mb)))
        add(Fraction(2) ** (B - 1))
    if len(vals) < 2**bits:
        vals.append(Fraction(0))
    assert len(vals) == 2**bits
    return vals


@pytest.mark.parametrize("fmt", ALL, ids=str)
def test_value_multiset_matches_ant_reference(fmt):
    raw = ant_values(fmt.kind, fmt.bits, fmt.signed)
    step = min(abs(v) for v in raw if v != 0)  # integer units: smallest non-zero step is 1
    expected = Counter(int(v / step) for v in raw)
    assert all((v / step).denominator == 1 for v in raw)
    assert Counter(int(v) for v in fmt.values) == expected


@pytest.mark.parametrize("fmt", ALL, ids=str)
def test_decode_rebuilds_every_value(fmt):
    codes = np.arange(fmt.ncodes)
    sign, m, s = fmt.decode(codes)
    assert set(np.unique(sign)) <= {-1, 1}
    assert np.all(m >= 0) and np.all(s >= 0)
    for c in range(fmt.ncodes):
        assert int(sign[c]) * (int(m[c]) << int(s[c])) == int(fmt.values[c])
        assert formats.decode(fmt.kind, fmt.bits, fmt.signed, np.array([c]))[1][0] == m[c]


@pytest.mark.parametrize("fmt", ALL, ids=str)
def test_encode_decode_round_trip(fmt):
    codes = np.arange(fmt.ncodes)
    vals = fmt.values
    back = fmt.encode(vals)
    # Every code round-trips except sign-magnitude "-0", which encodes to +0 (code 0).
    neg_zero = 1 << fmt.value_bits if (fmt.signed and fmt.kind != "int") else None
    for c in codes:
        assert back[c] == (0 if c == neg_zero else c)
    assert np.array_equal(fmt.values[back], vals)


@pytest.mark.parametrize("fmt", ALL, ids=str)
def test_pe_form_per_kind(fmt):
    sign, m, s = fmt.decode(np.arange(fmt.ncodes))
    n = fmt.value_bits
    if fmt.kind == "int":
        assert np.all(s == 0)
    elif fmt.kind == "pot":
        assert set(np.unique(m)) <= {0, 1}
    elif fmt.kind == "flint":
        mag = np.arange(fmt.ncodes) & ((1 << n) - 1)
        hi, low = mag >> (n - 1), mag & ((1 << (n - 1)) - 1)
        for c in range(fmt.ncodes):
            if hi[c] == 0:
                assert (m[c], s[c]) == (low[c], 0)
            elif low[c]:
                lzd = (n - 1) - int(low[c]).bit_length()
                assert (m[c], s[c]) == (low[c], 2 * lzd + 1)
            else:
                assert (m[c], s[c]) == (1 << (n - 2), n)


def test_issue_tables_4bit():
    u = formats.values("flint", 4, False)
    assert list(u) == [0, 1, 2, 3, 4, 5, 6, 7, 64, 32, 16, 24, 8, 10, 12, 14]
    s = formats.values("flint", 4, True)
    assert list(s[:8]) == [0, 1, 2, 3, 16, 8, 4, 6]
    assert list(s[8:]) == [0, -1, -2, -3, -16, -8, -4, -6]
    assert sorted(set(u)) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 24, 32, 64]
    assert list(formats.values("int", 4, True)) == list(range(8)) + list(range(-8, 0))
    assert formats.get("pot", 4, False).max_abs == 2**14
    # signed float4 (E3M0) has exactly the PoT4 code table
    assert list(formats.values("float", 4, True)) == list(formats.values("pot", 4, True))
    assert list(formats.values("float", 4, False)) == [
        0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192]


def test_hardware_widths_4bit():
    """The PE datapath: mantissa <= 4 bits, shift <= 14 for every 4-bit format."""
    for fmt in regmap.array_formats():
        assert int(fmt.mantissa.max()) < 16 and int(fmt.shift.max()) <= 14
    assert int(formats.get("pot", 4, False).shift.max()) == 14
    assert sorted(set(formats.get("flint", 4, False).shift)) == [0, 1, 3, 4, 5]
    assert sorted(set(formats.get("flint", 4, True).shift)) == [0, 1, 3]


def test_big_pot_values_are_exact_python_ints():
    f = formats.get("pot", 8, False)
    assert f.values.dtype == object and int(f.values[255]) == 2**254
    assert f.encode(np.array([2**254], dtype=object))[0] == 255


@pytest.mark.parametrize(
    "args, match",
    [(("flint", 2, True), "at least 2 value bits"), (("float", 2, True), "at least 2 value bits"),
     (("int", 9, False), "unsupported bit width 9"), (("int", 1, True), "unsupported bit width 1"),
     (("nf4", 4, True), "unknown kind"), (("int", 4.0, True), "bits must be an int"),
     (("int", 4, 1), "signed must be a bool")],
)
def test_unsupported_formats_raise(args, match):
    with pytest.raises(FormatError, match=match):
        formats.Format(*args)


def test_encode_rejects_unrepresentable():
    with pytest.raises(FormatError, match="not representable in flint4u"):
        formats.encode("flint", 4, False, np.array([9]))
    with pytest.raises(FormatError, match="not representable"):
        formats.encode("int", 4, True, np.array([2.5]))
    with pytest.raises(FormatError, match="non-finite"):
        formats.encode("int", 4, True, np.array([np.nan]))


def test_decode_rejects_bad_codes():
    with pytest.raises(FormatError, match="code out of range"):
        formats.decode("flint", 4, True, np.array([16]))
    with pytest.raises(FormatError, match="must be integers"):
        formats.decode("flint", 4, True, np.array([1.0]))


small = [f for f in ALL if f.max_abs < 2**62]


@given(st.sampled_from(small), st.data())
def test_hypothesis_round_trip(fmt, data):
    codes = np.array(data.draw(st.lists(st.integers(0, fmt.ncodes - 1), min_size=1, max_size=64)))
    vals = fmt.values[codes]
    sign, m, s = fmt.decode(codes)
    assert np.array_equal(sign * (m << s), vals)
    assert np.array_equal(fmt.values[fmt.encode(vals)], vals)

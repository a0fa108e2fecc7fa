"""The four ANT number formats (int, PoT, float, flint) at the bit level.

Everything here is in *integer units*: the smallest non-zero magnitude of a format is 1, so every
value is an integer and a real number is ``value * scale``. Each code decodes to the PE form
``(sign, mantissa, shift)`` with ``value = sign * (mantissa << shift)``; this module is the single
source of truth for the code tables that the HLS C++ and the RTL are tested against.

Bit layouts (b = total bits, n = value bits = b for unsigned, b-1 for signed):

* ``int``: unsigned binary, or two's complement when signed (-2^(b-1) .. 2^(b-1)-1).
* ``pot``, ``float``, ``flint``: sign-magnitude when signed, sign in bit b-1, magnitude in the low
  n bits. The code with the sign set and magnitude 0 is "-0": it decodes to sign -1, mantissa 0,
  i.e. the value 0. :func:`encode` never produces it; hardware treats it as zero.
* ``pot`` magnitude c: 0 -> 0, c >= 1 -> 1 << (c-1).
* ``float`` magnitude: 3 exponent bits e and m = n-3 mantissa bits f (E2M0 when n == 2):
  e == 0 -> f (subnormal first binade), e >= 1 -> (2^m + f) << (e-1).
* ``flint`` magnitude: top bit H, low n-1 bits L. H == 0 -> L. H == 1 and L != 0 ->
  L << (2*LZD(L) + 1), with LZD counted over n-1 bits. H == 1 and L == 0 -> the maximum
  2^(n-2) << n = 2^(2n-2). This is ANT's "first-one" encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

KINDS: tuple[str, ...] = ("int", "flint", "pot", "float")
"""Candidate types, in ANT's evaluation order (the first minimum wins)."""

KIND_IDS: dict[str, int] = {"int": 0, "pot": 1, "flint": 2, "float": 3}
"""2-bit type id carried in the accelerator's config word."""

MIN_BITS, MAX_BITS = 2, 8


class FormatError(ValueError):
    """An unsupported (kind, bits, signed) combination or a value/code outside a format."""


@dataclass(frozen=True)
class Format:
    """One number format: a kind, a bit width and a signedness. Hashable and cached."""

    kind: str
    bits: int
    signed: bool

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FormatError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
            raise FormatError(f"bits must be an int, got {type(self.bits).__name__}")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise FormatError(f"unsupported bit width {self.bits}: antq supports {MIN_BITS}..{MAX_BITS}")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise FormatError(f"signed must be a bool, got {type(self.signed).__name__}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "signed", bool(self.signed))
        if self.kind in ("flint", "float") and self.value_bits < 2:
            raise FormatError(
                f"{self.kind} needs at least 2 value bits; a signed {self.bits}-bit {self.kind} has "
                f"{self.value_bits}"
            )

    @property
    def name(self) -> str:
        return f"{self.kind}{self.bits}{'s' if self.signed else 'u'}"

    def __str__(self) -> str:
        return self.name

    @property
    def value_bits(self) -> int:
        """n: magnitude bits (b for unsigned, b-1 for signed)."""
        return self.bits - 1 if self.signed else self.bits

    @property
    def ncodes(self) -> int:
        return 1 << self.bits

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes = np.arange(self.ncodes, dtype=np.int64)
        return _decode_codes(self.kind, self.bits, self.signed, codes)

    @property
    def sign(self) -> np.ndarray:
        """Sign (+1/-1) of every code, index = code."""
        return self._table[0]

    @property
    def mantissa(self) -> np.ndarray:
        return self._table[1]

    @property
    def shift(self) -> np.ndarray:
        return self._table[2]

    @cached_property
    def values(self) -> np.ndarray:
        """Value of every code, index = code. int64, or Python ints (object) past 2^62."""
        s, m, e = self._table
        if int(e.max()) + int(m.max()).bit_length() <= 62:
            out = s * (m << e)
        else:
            terms = zip(s.tolist(), m.tolist(), e.tolist(), strict=True)
            out = np.array([a * (b << c) for a, b, c in terms], dtype=object)
        out.setflags(write=False)
        return out

    @cached_property
    def max_abs(self) -> int:
        """Largest magnitude, in integer units (bounds products and accumulators)."""
        return int(max(abs(int(v)) for v in self.values))

    @cached_property
    def max_value(self) -> int:
        """Largest positive value: the grid maximum that a clip value alpha maps to."""
        return int(max(int(v) for v in self.values))

    @cached_property
    def grid(self) -> np.ndarray:
        """Sorted distinct values as float64 (exact: every value is a power-of-two multiple)."""
        g = np.unique(np.asarray(self.values, dtype=np.float64))
        g.setflags(write=False)
        return g

    @cached_property
    def grid_codes(self) -> np.ndarray:
        """Code of each grid point (``grid[i]`` is encoded as ``grid_codes[i]``)."""
        codes = self.encode(self.grid)
        codes.setflags(write=False)
        return codes

    @cached_property
    def _lookup(self) -> dict[int, int]:
        lut: dict[int, int] = {}
        for code, v in enumerate(self.values):
            lut.setdefault(int(v), code)  # first code wins: +0 (code 0) over -0
        return lut

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sign, mantissa, shift) of each code; shape follows ``codes``."""
        c = self.check_codes(codes).astype(np.int64)
        return self.sign[c], self.mantissa[c], self.shift[c]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Codes (uint8) of values that the format represents exactly; raises otherwise."""
        v = np.asarray(values)
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)):
                raise FormatError(f"cannot encode non-finite values into {self.name}")
            if np.any(v != np.round(v)):
                bad = v[v != np.round(v)].flat[0]
                raise FormatError(f"value {bad} is not representable in {self.name}")
        elif v.dtype.kind not in "iuO":
            raise FormatError(f"cannot encode dtype {v.dtype} into {self.name}")
        flat = v.reshape(-1)
        keys = np.asarray(sorted(self._lookup), dtype=np.float64)
        if flat.dtype != object and keys.max() < 2**53:
            fv = flat.astype(np.float64)
            idx = np.clip(np.searchsorted(keys, fv), 0, len(keys) - 1)
            ok = keys[idx] == fv
            if not np.all(ok):
                raise FormatError(f"value {flat[~ok][0]} is not representable in {self.name}")
            codes_by_key = np.asarray([self._lookup[int(k)] for k in keys], dtype=np.uint8)
            return codes_by_key[idx].reshape(v.shape)
        out = np.empty(flat.shape, dtype=np.uint8)
        for i, x in enumerate(flat):
            try:
                out[i] = self._lookup[int(x)]
            except KeyError:
                raise FormatError(f"value {x} is not representable in {self.name}") from None
        return out.reshape(v.shape)

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """Return codes as an integer array, raising if any is outside 0 .. 2^bits-1."""
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise FormatError(f"codes must be integers, got dtype {c.dtype}")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= self.ncodes):
            raise FormatError(
                f"code out of range for {self.name}: codes must lie in 0..{self.ncodes - 1}, "
                f"got {int(c.min())}..{int(c.max())}"
            )
        return c


def _lzd(low: np.ndarray, width: int) -> np.ndarray:
    """Leading zeros of ``low`` in a ``width``-bit field (0 -> width)."""
    _, bit_length = np.frexp(low.astype(np.float64))  # exact for these small integers
    return width - bit_length.astype(np.int64)


def _decode_codes(
    kind: str, bits: int, signed: bool, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = bits - 1 if signed else bits
    if kind == "int":
        v = codes - (1 << bits) * (codes >> (bits - 1)) if signed else codes.copy()
        return np.where(v < 0, -1, 1), np.abs(v), np.zeros_like(v)
    sign = np.where((codes >> n) & 1, -1, 1) if signed else np.ones_like(codes)
    mag = codes & ((1 << n) - 1)
    if kind == "pot":
        m = (mag > 0).astype(np.int64)
        s = np.maximum(mag - 1, 0)
    elif kind == "float":
        mb = 0 if n == 2 else n - 3
        e, f = mag >> mb, mag & ((1 << mb) - 1)
        m = np.where(e == 0, f, (1 << mb) + f)
        s = np.maximum(e - 1, 0)
    else:  # flint
        hi, low = mag >> (n - 1), mag & ((1 << (n - 1)) - 1)
        lz = _lzd(low, n - 1)
        m = np.where(hi == 0, low, np.where(low == 0, 1 << (n - 2), low))
        s = np.where(hi == 0, 0, np.where(low == 0, n, 2 * lz + 1))
    return sign, m.astype(np.int64), s.astype(np.int64)


@cache
def get(kind: str, bits: int, signed: bool) -> Format:
    """The cached :class:`Format` for (kind, bits, signed)."""
    return Format(kind, bits, signed)


def values(kind: str, bits: int, signed: bool) -> np.ndarray:
    """Value of every code (index = code), in integer units."""
    return get(kind, bits, signed).values


def decode(
    kind: str, bits: int, signed: bool, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PE form of codes: (sign, mantissa, shift) with value = sign * (mantissa << shift)."""
    return get(kind, bits, signed).decode(codes)


def encode(kind: str, bits: int, signed: bool, values: np.ndarray) -> np.ndarray:
    """Codes of exactly representable values (integer units); raises FormatError otherwise."""
    return get(kind, bits, signed).encode(values)


def all_formats() -> list[Format]:
    """Every supported (kind, bits, signed) combination."""
    out = []
    for kind in KINDS:
        for bits in range(MIN_BITS, MAX_BITS + 1):
            for signed in (False, True):
                try:
                    out.append(get(kind, bits, signed))
                except FormatError:
                    continue
    return out


def table(fmt: Format) -> str:
    """A printable code table: code bits, value, sign, mantissa, shift."""
    rows = [f"{fmt.name}: {fmt.ncodes} codes, max |value| {fmt.max_abs}"]
    rows.append(f"  {'code':>{max(4, fmt.bits)}}  {'value':>8}  sign  M    S")
    for c in range(fmt.ncodes):
        rows.append(
            f"  {c:0{fmt.bits}b}{'':>{max(0, 4 - fmt.bits)}}  {int(fmt.values[c]):>8}  "
            f"{'-' if fmt.sign[c] < 0 else '+':>4}  {int(fmt.mantissa[c]):<4} {int(fmt.shift[c])}"
        )
    return "\n".join(rows)

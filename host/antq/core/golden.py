"""Golden GEMM vectors shared by the Python, HLS C++ and RTL tests.

The test suites keep them in ``tests/golden/gemm.txt``, written by ``make golden``
(``antq golden -o tests/golden/gemm.txt``) and read by every test level, so all three
implementations are checked against the same bits; a test regenerates them and compares. Text format,
one record per line, whitespace separated (trivial to parse from C++)::

    array R C BUS_BITS
    case NAME A_KIND A_BITS A_SIGNED W_KIND W_BITS W_SIGNED M N K
    a   M*K codes, row-major (decimal)
    w   N*K codes, row-major
    pa  hex bytes of a packed with the accelerator layout (tile R)
    pw  hex bytes of w packed with the accelerator layout (tile C)
    y   M*N exact accumulators, row-major (decimal)
    end

The requantization epilogue (:mod:`antq.core.epilogue`, docs/contracts.md section 12) has its own
file, ``tests/golden/epilogue.txt``, written by the same command (:func:`write_epilogue`). Same
conventions; every integer is decimal and fits in int64 (``strtoll``)::

    array R C BUS_BITS
    case NAME KIND BITS SIGNED ROWS COLS S L H ACC_MAX
    mult   COLS multipliers M[n]          (0 <= M[n] < 2^31)
    bias   COLS biases B[n]
    thr    the q-1 thresholds T_j = (G_j + G_{j+1}) << (S-1) of the output format (derived; a check)
    acc    ROWS*COLS accumulators, row-major (|acc| <= ACC_MAX)
    codes  ROWS*COLS expected output codes, row-major
    packed hex bytes of the codes in the accelerator activation layout (tile R, K = COLS; int8:
           low nibble plane, then high nibble plane)
    end

KIND BITS SIGNED name the output format (int/pot/flint/float 4-bit, or int 8); L and H may be
-2^63 and 2^63-1 (no clamp). ``codes[m, n] = epilogue(acc[m, n], M[n], B[n], S, L, H)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import arch, epilogue, formats, pack, reference, regmap
from .quantize import QuantizedTensor

SHAPES = [(5, 3, 7), (1, 1, 1), (9, 10, 13), (3, 17, 5), (8, 8, 16), (2, 9, 33), (11, 4, 2)]


@dataclass
class Case:
    name: str
    a: QuantizedTensor
    w: QuantizedTensor
    y: np.ndarray
    packed_a: np.ndarray
    packed_w: np.ndarray


def _random_codes(rng: np.random.Generator, fmt: formats.Format, shape: tuple[int, int]) -> np.ndarray:
    codes = rng.integers(0, fmt.ncodes, size=shape)
    if fmt.kind != "int" and fmt.signed:  # never emit the unused "-0" code
        codes[codes == 1 << fmt.value_bits] = 0
    return codes.astype(np.uint8)


def _make(name: str, a: QuantizedTensor, w: QuantizedTensor, cfg: arch.ArrayConfig) -> Case:
    return Case(
        name, a, w, reference.gemm(a, w),
        pack.pack(a.codes, a.bits, pack.accelerator_layout("a", cfg)),
        pack.pack(w.codes, w.bits, pack.accelerator_layout("w", cfg)),
    )


def _qt(codes: np.ndarray, fmt: formats.Format) -> QuantizedTensor:
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed)


def generate(cfg: arch.ArrayConfig = arch.DEFAULT, seed: int = 2022) -> list[Case]:
    """The fixed case list: every 4-bit type pair, int8 nibble cases, and accumulator extremes."""
    rng = np.random.default_rng(seed)
    cases = []
    hw = regmap.array_formats()
    for i, (fa, fw) in enumerate(itertools.product(hw, hw)):
        m, n, k = SHAPES[i % len(SHAPES)]
        a = _qt(_random_codes(rng, fa, (m, k)), fa)
        w = _qt(_random_codes(rng, fw, (n, k)), fw)
        cases.append(_make(f"{fa.name}_x_{fw.name}_{m}x{n}x{k}", a, w, cfg))
    i8u, i8s = formats.get("int", 8, False), formats.get("int", 8, True)
    f4u, f4s = formats.get("flint", 4, False), formats.get("flint", 4, True)
    for fa, fw, (m, n, k) in [(i8u, i8s, (5, 3, 7)), (i8s, i8s, (9, 10, 13)), (i8s, i8u, (3, 2, 17)),
                              (i8u, i8u, (2, 2, 4)), (f4u, i8s, (4, 5, 6)), (i8s, f4s, (3, 3, 9))]:
        a = _qt(_random_codes(rng, fa, (m, k)), fa)
        w = _qt(_random_codes(rng, fw, (n, k)), fw)
        cases.append(_make(f"{fa.name}_x_{fw.name}_{m}x{n}x{k}", a, w, cfg))
    # Extremes: largest products of each sign. PoT-U x PoT-S at its largest legal K brings the
    # accumulator to within 2^20 of +-2^31 (the worst case with signed weights).
    pot_k = arch.max_k(formats.get("pot", 4, False), formats.get("pot", 4, True))
    for fa, fw, k in [(formats.get("pot", 4, False), formats.get("pot", 4, True), pot_k),
                      (formats.get("flint", 4, False), formats.get("flint", 4, True), 257),
                      (i8s, i8s, 129)]:
        amax = fa.encode(np.array([fa.max_value]))[0]
        amin = fa.encode(np.array([min(int(v) for v in fa.values)]))[0]
        wmax = fw.encode(np.array([fw.max_value]))[0]
        wmin = fw.encode(np.array([min(int(v) for v in fw.values)]))[0]
        a = _qt(np.array([[amax] * k, [amin] * k], np.uint8), fa)
        w = _qt(np.array([[wmax] * k, [wmin] * k], np.uint8), fw)
        cases.append(_make(f"extreme_{fa.name}_x_{fw.name}_2x2x{k}", a, w, cfg))
    return cases


def _fmt_line(tag: str, arr: np.ndarray) -> str:
    return tag + " " + " ".join(str(int(v)) for v in np.asarray(arr).reshape(-1))


def write(path: str | Path, cfg: arch.ArrayConfig = arch.DEFAULT) -> Path:
    lines = ["# antq golden GEMM vectors: generated by `make golden`; do not edit by hand",
             f"array {cfg.rows} {cfg.cols} {cfg.bus_bits}"]
    for c in generate(cfg):
        m, k = c.a.shape
        lines += [
            f"case {c.name} {c.a.kind} {c.a.bits} {int(c.a.signed)} {c.w.kind} {c.w.bits} "
            f"{int(c.w.signed)} {m} {c.w.shape[0]} {k}",
            _fmt_line("a", c.a.codes), _fmt_line("w", c.w.codes),
            "pa " + c.packed_a.tobytes().hex(), "pw " + c.packed_w.tobytes().hex(),
            _fmt_line("y", c.y), "end",
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(path: str | Path, ints: tuple[str, ...], hexes: tuple[str, ...]
             ) -> tuple[arch.ArrayConfig, list[tuple[int, dict]]]:
    """(array config, [(line of ``end``, case record)]) of a golden file: ``array R C BUS``, then per
    case ``case`` (its fields, as strings, under ``head``), records of integers (``ints``) and of
    hex bytes (``hexes``), and ``end``. The one parser of both golden formats."""
    cfg, cases, cur = None, [], {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        tag, *rest = line.split()
        if tag == "array":
            r, c, b = map(int, rest)
            cfg = arch.ArrayConfig(rows=r, cols=c, bus_bits=b)
        elif tag == "case":
            cur = {"head": rest}
        elif tag in ints:
            cur[tag] = [int(v) for v in rest]
        elif tag in hexes:
            cur[tag] = np.frombuffer(bytes.fromhex(rest[0]) if rest else b"", np.uint8)
        elif tag == "end":
            cases.append((lineno, cur))
        else:
            raise ValueError(f"{path}:{lineno}: unknown record {tag!r}")
    if cfg is None:
        raise ValueError(f"{path}: no 'array' record")
    return cfg, cases


def read(path: str | Path) -> tuple[arch.ArrayConfig, list[Case]]:
    """Parse a golden file back into cases (array config, list of :class:`Case`)."""
    cfg, records = _records(path, ("a", "w", "y"), ("pa", "pw"))
    cases = []
    for _, cur in records:
        name, ak, ab, asg, wk, wb, wsg, m, n, k = cur["head"]
        m, n, k = int(m), int(n), int(k)
        fa = formats.get(ak, int(ab), bool(int(asg)))
        fw = formats.get(wk, int(wb), bool(int(wsg)))
        cases.append(Case(
            name, _qt(np.array(cur["a"], np.int64).reshape(m, k).astype(np.uint8), fa),
            _qt(np.array(cur["w"], np.int64).reshape(n, k).astype(np.uint8), fw),
            np.array(cur["y"], np.int64).reshape(m, n), cur["pa"], cur["pw"],
        ))
    return cfg, cases


# ---- requantization epilogue ------------------------------------------------------------------

EPI_SHAPES = [(37, 35), (1, 1), (17, 33), (5, 3), (16, 16), (33, 17), (3, 49), (31, 2), (20, 9)]
"""(ROWS, COLS) of the cases from scales: odd sizes, one element, several 16x16 tiles each way."""
EPI_INPUTS = [("int4u", "int4s", 64), ("flint4u", "flint4s", 576), ("pot4u", "pot4s", 2047),
              ("int8u", "int8s", 1000), ("int8s", "int8s", 300_000), ("float4u", "pot4s", 5000)]
"""(a, w, K) whose accumulator bound acc_bound(a, w, K) a case is made for; int8s x int8s at
K = 300000 (many jobs) makes the 2^62 overflow bound, not 2^31, limit M."""


@dataclass
class EpilogueCase:
    name: str
    params: epilogue.Params
    acc: np.ndarray
    codes: np.ndarray
    packed: np.ndarray


def _fmt_named(name: str) -> formats.Format:
    return next(f for f in formats.all_formats() if f.name == name)


def _epi_case(name: str, p: epilogue.Params, acc: np.ndarray, cfg: arch.ArrayConfig) -> EpilogueCase:
    acc = np.asarray(acc, dtype=np.int64)
    return EpilogueCase(name, p, acc, epilogue.apply(acc, p), epilogue.apply_packed(acc, p, cfg))


def _scaled_cases(rng: np.random.Generator, cfg: arch.ArrayConfig) -> list[EpilogueCase]:
    """Every output format x activation, parameters from float scales (epilogue.params)."""
    cases = []
    for i, (fmt, act) in enumerate(itertools.product(epilogue.output_formats(), epilogue.ACTS)):
        rows, cols = EPI_SHAPES[i % len(EPI_SHAPES)]
        an, wn, k = EPI_INPUTS[i % len(EPI_INPUTS)]
        acc_max = epilogue.acc_bound(_fmt_named(an), _fmt_named(wn), k)
        s_a = float(np.float32(rng.uniform(0.005, 0.05)))
        s_w = rng.uniform(0.002, 0.02, cols).astype(np.float32)
        top = fmt.max_value
        s_out = float(np.float32(6 / (0.6 * top) if act == "relu6" else rng.uniform(0.01, 1.0)))
        bias = (rng.uniform(-0.5, 0.5, cols) * s_out * top).astype(np.float32)
        # accumulators spread over 1.25x the grid's range, so both ends saturate
        spread = int(min(acc_max, max(1, 1.25 * top * s_out / (s_a * float(np.median(s_w))))))
        acc = rng.integers(-spread, spread, size=(rows, cols), endpoint=True)
        acc[0, ::2] = acc_max
        if rows > 1:
            acc[1, 1::2] = -acc_max
            acc[-1, :] = 0
        p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, acc_max=acc_max, bias=bias, act=act)
        cases.append(_epi_case(f"scaled_{fmt.name}_{act}_{an}x{wn}k{k}_{rows}x{cols}", p, acc, cfg))
    return cases


def _tie_cases(rng: np.random.Generator, cfg: arch.ArrayConfig) -> list[EpilogueCase]:
    """t exactly on, one below and one above every threshold (ties go up), both ends beyond the grid,
    and clamp bounds that are thresholds themselves."""
    cases = []
    for i, fmt in enumerate(epilogue.output_formats()):
        s = 1 + i % 6
        thr = epilogue.thresholds(fmt, s)
        for act in ("none", "relu", "clamp"):
            js = range(len(thr))
            if fmt.bits == 8 and act != "none":
                js = sorted(set(range(0, len(thr), 8)) | {0, 1, 2, 126, 127, 128, len(thr) - 3,
                                                          len(thr) - 2, len(thr) - 1})
            targets = [thr[0] - 1000, thr[-1] + 1000] + [thr[j] + d for j in js for d in (-1, 0, 1)]
            odd = int(rng.integers(1, 1 << 20)) | 1
            # (M, B) per column: M = 1 puts t exactly on the targets; 2^S and an odd M land near them
            cols = [(1, 0), (1, 5), (1, -(7 << (s - 1)))]
            cols += [(1 << s, 0), (odd, int(rng.integers(-999, 999)))] if fmt.bits == 4 else [(odd, 3)]
            acc = np.array([[(t - b) // m for m, b in cols] for t in targets], dtype=np.int64)
            lo, hi = {"none": (epilogue.INT64_MIN, epilogue.INT64_MAX), "relu": (0, epilogue.INT64_MAX),
                      "clamp": (thr[1], thr[-2])}[act]
            p = epilogue.Params(fmt, s, tuple(m for m, _ in cols), tuple(b for _, b in cols), lo, hi,
                                int(np.abs(acc).max()))
            cases.append(_epi_case(f"ties_{fmt.name}_{act}_s{s}", p, acc, cfg))
    return cases


def _extreme_cases(rng: np.random.Generator, cfg: arch.ArrayConfig) -> list[EpilogueCase]:
    """acc = +-acc_max with acc_max * M + |B| at 2^62: the largest t the contract allows."""
    cases = []
    for name, s, rows, cols in [("int4s", 59, 7, 19), ("int8s", 55, 18, 5), ("pot4u", 49, 3, 17),
                                ("float4s", 56, 5, 5)]:
        fmt = _fmt_named(name)
        acc_max = (1 << 31) - 1
        bias = [int(v) for v in rng.integers(-(1 << 40), 1 << 40, size=cols)]
        m_top = (epilogue.T_BOUND - max(abs(b) for b in bias)) // acc_max
        mult = [m_top] + [int(v) for v in rng.integers(m_top // 4, m_top, size=cols - 1, endpoint=True)]
        acc = rng.integers(-acc_max, acc_max, size=(rows, cols), endpoint=True)
        acc[0], acc[1] = acc_max, -acc_max
        p = epilogue.Params(fmt, s, tuple(mult), tuple(bias), acc_max=acc_max)
        cases.append(_epi_case(f"extreme_{name}_s{s}_{rows}x{cols}", p, acc, cfg))
    return cases


def generate_epilogue(cfg: arch.ArrayConfig = arch.DEFAULT, seed: int = 13) -> list[EpilogueCase]:
    """The fixed epilogue case list: from scales (every format x none/relu/relu6), ties, extremes."""
    rng = np.random.default_rng(seed)
    return [*_scaled_cases(rng, cfg), *_tie_cases(rng, cfg), *_extreme_cases(rng, cfg)]


def write_epilogue(path: str | Path, cfg: arch.ArrayConfig = arch.DEFAULT) -> Path:
    lines = ["# antq golden requantization-epilogue vectors: generated by `make golden`; do not edit by hand",
             f"array {cfg.rows} {cfg.cols} {cfg.bus_bits}"]
    for c in generate_epilogue(cfg):
        p, (rows, cols) = c.params, c.acc.shape
        lines += [
            f"case {c.name} {p.fmt.kind} {p.fmt.bits} {int(p.fmt.signed)} {rows} {cols} {p.shift} "
            f"{p.lo} {p.hi} {p.acc_max}",
            _fmt_line("mult", p.m), _fmt_line("bias", p.b), _fmt_line("thr", p.thresholds),
            _fmt_line("acc", c.acc), _fmt_line("codes", c.codes), "packed " + c.packed.tobytes().hex(), "end",
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_epilogue(path: str | Path) -> tuple[arch.ArrayConfig, list[EpilogueCase]]:
    """Parse an epilogue golden file (array config, list of :class:`EpilogueCase`); checks ``thr``."""
    cfg, records = _records(path, ("mult", "bias", "thr", "acc", "codes"), ("packed",))
    cases = []
    for lineno, cur in records:
        name, kind, bits, signed, rows, cols, s, lo, hi, acc_max = cur["head"]
        rows, cols = int(rows), int(cols)
        p = epilogue.Params(formats.get(kind, int(bits), bool(int(signed))), int(s), tuple(cur["mult"]),
                            tuple(cur["bias"]), int(lo), int(hi), int(acc_max))
        if tuple(cur["thr"]) != epilogue.thresholds(p.fmt, p.shift):
            raise ValueError(f"{path}:{lineno}: case {name}: thr does not match the format and S")
        cases.append(EpilogueCase(name, p, np.array(cur["acc"], np.int64).reshape(rows, cols),
                                  np.array(cur["codes"], np.uint8).reshape(rows, cols), cur["packed"]))
    return cfg, cases

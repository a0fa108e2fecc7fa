"""Command-line tools of the overlay: ``antq bench-gemm`` and ``antq overlay-info``.

``bench-gemm`` measures GEMM throughput through the driver (emulation levels unpaced, so the
emulator's own speed is what is measured; or the board) against numpy's int32 matmul on the same
shape in the same run, and prints the IP's cycle count with the board time it projects.
"""

from __future__ import annotations

import re

import numpy as np

from . import formats, reference, regmap
from .bench import best_time
from .driver import AntOverlay
from .quantize import QuantizedTensor


def _random_tensor(rng: np.random.Generator, fmt: formats.Format, shape: tuple[int, int]) -> QuantizedTensor:
    codes = rng.integers(0, fmt.ncodes, size=shape).astype(np.uint8)
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed)


def _parse_format(name: str) -> formats.Format:
    """``"flint4s"`` -> the Format (kind, bits, u/s)."""
    hit = re.fullmatch(r"(int|pot|flint|float)(\d)([us])", name)
    if not hit:
        raise ValueError(f"format {name!r} is not <kind><bits><u|s>, e.g. flint4u or int8s")
    return formats.get(hit[1], int(hit[2]), hit[3] == "s")


def bench_gemm(shape: tuple[int, int, int] = (256, 256, 256), backends: tuple[str, ...] = ("csim", "rtl"),
               a_fmt: str = "flint4u", w_fmt: str = "flint4s", repeats: int = 3, seed: int = 0) -> list[dict]:
    """GEMM throughput (MAC/s) of each backend through the driver, against numpy's int32 matmul
    on the same shape measured in the same run. Weights are resident; every result is checked."""
    m, n, k = shape
    rng = np.random.default_rng(seed)
    fa, fw = _parse_format(a_fmt), _parse_format(w_fmt)
    a, w = _random_tensor(rng, fa, (m, k)), _random_tensor(rng, fw, (n, k))
    want = reference.gemm(a, w)
    va = a.values().astype(np.int32)
    vwt = np.ascontiguousarray(w.values().astype(np.int32).T)
    t_np = best_time(lambda: va @ vwt, repeats)
    macs = m * n * k
    exact_np = bool(np.array_equal((va @ vwt).astype(np.int64), want))
    rows = [{"backend": "numpy int32", "seconds": t_np, "macs_per_s": macs / t_np, "vs_numpy": 1.0,
             "cycles": None, "board_s": None, "exact": exact_np}]
    for be in backends:
        with AntOverlay(backend=be, **({} if be == "board" else {"pace": 0})) as ov:
            hw = ov.load_weights(w)
            y = ov.gemm(a, hw)
            t = best_time(lambda ov=ov, hw=hw: ov.gemm(a, hw), repeats)
            rows.append({"backend": be, "seconds": t, "macs_per_s": macs / t, "vs_numpy": t_np / t,
                         "cycles": ov.last_cycles, "board_s": ov.last_timing.device_s,
                         "exact": bool(np.array_equal(y, want))})
    print(f"GEMM {m}x{n}x{k} {fa.name} x {fw.name} ({macs / 1e6:.1f} M MACs), best of {repeats}")
    print(f"{'backend':<12} {'seconds':>9} {'MAC/s':>10} {'x numpy':>8} {'IP cycles':>11} "
          f"{'board s @clk':>12}  exact")
    for r in rows:
        cyc = f"{r['cycles']:>11,}" if r["cycles"] is not None else f"{'-':>11}"
        board = f"{r['board_s']:>12.4f}" if r["board_s"] is not None else f"{'-':>12}"
        print(f"{r['backend']:<12} {r['seconds']:>9.4f} {r['macs_per_s'] / 1e6:>8.1f} M "
              f"{r['vs_numpy']:>8.3f} {cyc} {board}  {'yes' if r['exact'] else 'NO'}")
    return rows


def overlay_info(backend: str | None = None) -> None:
    """Load the overlay and print what the IP reports and its register map."""
    with AntOverlay(backend=backend) as ov:
        name = next(n for n, d in ov.ip_dict.items() if d.get("type") == regmap.VLNV)
        print(f"bitstream  {ov.bitfile_name}")
        print(f"device     {type(ov.device).__name__} {getattr(ov.device, 'level', '')}".rstrip())
        print(f"IP         {name}: {regmap.VLNV}, IP version {regmap.IP_VERSION}, "
              f"{ov.array.rows}x{ov.array.cols} PEs, {ov.array.bus_bits}-bit bus, "
              f"{ov.array.acc_bits}-bit accumulators")
        print(f"clock      {ov.clock_mhz:g} MHz: peak {ov.peak_macs_per_s / 1e9:.2f} G MAC/s")
        print("registers  (offset, access, name)")
        for r in sorted(ov.ip_dict[name]["registers"].items(), key=lambda kv: kv[1]["address_offset"]):
            print(f"  0x{r[1]['address_offset']:02x}  {r[1]['access']:<10}  {r[0]}")


def add_commands(sub) -> None:
    p = sub.add_parser("bench-gemm", help="GEMM MAC/s of the emulated (or real) overlay vs numpy int32",
                       description=bench_gemm.__doc__)
    p.add_argument("--shape", type=int, nargs=3, default=(256, 256, 256), metavar=("M", "N", "K"))
    p.add_argument("--backends", default="csim,rtl", help="comma-separated: ref, csim, rtl, board")
    p.add_argument("--a-fmt", default="flint4u", help="activation format, e.g. int4s, flint4u, int8s")
    p.add_argument("--w-fmt", default="flint4s", help="weight format")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("overlay-info", help="load the overlay and print the IP's identity and registers",
                       description=overlay_info.__doc__)
    p.add_argument("--backend", default=None, help="ref, csim, rtl or board (default: $ANTQ_BACKEND or auto)")
    p.set_defaults(func=lambda a: overlay_info(a.backend))


def _cmd_bench(a) -> int:
    rows = bench_gemm(tuple(a.shape), tuple(a.backends.split(",")), a.a_fmt, a.w_fmt, a.repeats)
    return 0 if all(r["exact"] for r in rows) else 1

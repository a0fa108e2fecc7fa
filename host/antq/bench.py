"""Micro-benchmarks that print ratios against a baseline measured in the same run.

Timings are the best of a few repeats (wall clock), because the machine is shared and noisy; the
figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from . import pack, quantize


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _weight(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal((rows, cols)).astype(np.float32) * rng.uniform(0.02, 0.2, (rows, 1))
    w[rng.random(w.shape) < 1e-3] *= 8  # a few outliers, as trained weights have
    return w


def bench_quant(weight_shape: tuple[int, int] = (4096, 4096), act_elems: int = 8 << 20,
                seed: int = 0) -> list[dict]:
    """Vectorized type/clip search against the per-(type, ratio) loop on the same tensors."""
    rng = np.random.default_rng(seed)
    cases = [
        ("weight", _weight(*weight_shape, rng), 0, True),
        ("activation", np.maximum(rng.standard_normal(act_elems).astype(np.float32), 0)
         * rng.gamma(2.0, 1.0, act_elems).astype(np.float32), None, False),
    ]
    rows = []
    for name, x, axis, signed in cases:
        fmts, _ = quantize._candidate_formats(quantize.DEFAULT_CANDIDATES, 4, signed)
        r = quantize.ratios_for(4)
        x2d = quantize._to_2d(x.astype(np.float64), axis)
        t0 = time.perf_counter()
        fast = quantize.search(x2d, fmts, r)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        slow = quantize.search_loop(x2d, fmts, r)
        t_loop = time.perf_counter() - t0
        same = all(np.array_equal(fast[f][1], slow[f][1]) for f in fmts)
        rel = max(float(np.max(np.abs(fast[f][0] - slow[f][0]) / np.maximum(slow[f][0], 1e-300)))
                  for f in fmts)
        rows.append({"tensor": name, "shape": list(x.shape), "elements": int(x.size),
                     "fast_s": t_fast, "loop_s": t_loop, "speedup": t_loop / t_fast,
                     "same_choice": same, "max_rel_mse_diff": rel})
    print(f"{'tensor':<11} {'elements':>10} {'vectorized s':>13} {'loop s':>9} {'speedup':>8}  same choice")
    for row in rows:
        print(f"{row['tensor']:<11} {row['elements']:>10} {row['fast_s']:>13.2f} {row['loop_s']:>9.2f} "
              f"{row['speedup']:>7.1f}x  {'yes' if row['same_choice'] else 'NO'} "
              f"(MSE rel. diff {row['max_rel_mse_diff']:.1e})")
    return rows


def bench_pack(shape: tuple[int, int] = (4096, 4096), seed: int = 0) -> list[dict]:
    """Pack/unpack throughput in GB/s of codes, against ``np.copy`` of the same code bytes."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 16, size=shape, dtype=np.uint8)
    t_copy = best_time(lambda: np.copy(codes), 5)
    gb = codes.nbytes / 1e9
    rows = []
    for label, layout in [("container", pack.Layout()), ("accel-a", pack.accelerator_layout("a")),
                          ("accel-w", pack.accelerator_layout("w"))]:
        buf = pack.pack(codes, 4, layout)
        t_pack = best_time(lambda layout=layout: pack.pack(codes, 4, layout))
        t_unpack = best_time(lambda layout=layout, buf=buf: pack.unpack(buf, 4, shape, layout))
        rows.append({"layout": label, "tile": layout.tile, "bus_bits": layout.bus_bits,
                     "pack_GBps": gb / t_pack, "unpack_GBps": gb / t_unpack, "copy_GBps": gb / t_copy,
                     "pack_vs_copy": t_copy / t_pack, "unpack_vs_copy": t_copy / t_unpack})
    print(f"{shape[0]}x{shape[1]} 4-bit codes ({gb * 1e3:.0f} MB of codes); np.copy: {gb / t_copy:.2f} GB/s")
    print(f"{'layout':<10} {'tile':>4} {'pack GB/s':>10} {'x copy':>7} {'unpack GB/s':>12} {'x copy':>7}")
    for r in rows:
        print(f"{r['layout']:<10} {r['tile']:>4} {r['pack_GBps']:>10.2f} {r['pack_vs_copy']:>7.2f} "
              f"{r['unpack_GBps']:>12.2f} {r['unpack_vs_copy']:>7.2f}")
    return rows


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-quant", help="time the vectorized ANT type/clip search against a loop",
                       description=bench_quant.__doc__)
    p.add_argument("--rows", type=int, default=4096, help="weight rows (output channels)")
    p.add_argument("--cols", type=int, default=4096, help="weight columns")
    p.add_argument("--act-elems", type=int, default=8 << 20, help="activation tensor elements")
    p.set_defaults(func=lambda a: bench_quant((a.rows, a.cols), a.act_elems))
    p = sub.add_parser("bench-pack", help="pack/unpack throughput against np.copy",
                       description=bench_pack.__doc__)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--cols", type=int, default=4096)
    p.set_defaults(func=lambda a: bench_pack((a.rows, a.cols)))

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
    p = sub.add_parser(
        "bench", help="per-layer latency of a .antq model on the overlay (table, JSON, plot)",
        description="Run a batch of the model's held-out data on the overlay and split each layer's time "
        "into quantize+pack, copy in (flush), compute (the IP's cycle counter at --clock-mhz, or the DDR "
        "time at --ddr-gbps if longer), copy out (invalidate), unpack+rescale and host-only layers. In "
        "emulation the compute times are a projection of the board; on a board they are measured. Also "
        "prints MACs/cycle against the array peak, the cost of the same layers as int8 nibble passes, and "
        "images/s.")
    p.add_argument("model", help="a .antq file")
    p.add_argument("--backend", choices=("auto", "board", "ref", "csim", "rtl"), default=None,
                   help="default: $ANTQ_BACKEND, else board if present, else csim")
    p.add_argument("--batch", type=int, default=16, help="samples per inference (default 16)")
    p.add_argument("--clock-mhz", type=float, default=None, help="PL clock for the projection (default: "
                   "the overlay's, 100 MHz)")
    p.add_argument("--ddr-gbps", type=float, default=1.2, help="DDR bandwidth the IP sees, GB/s (default "
                   "1.2, a Zynq-7000 HP port)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; each part is the best (default 3)")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--plot", help="write a stacked-bar PNG of the per-layer breakdown here")
    p.set_defaults(func=_cmd_bench)


# ---- model latency ------------------------------------------------------------------------------

PARTS = ("quantize_pack_s", "flush_s", "compute_s", "invalidate_s", "unpack_rescale_s", "host_s")
"""Wall-time parts of each layer, in the order of the stacked bars."""


def _gemm_row(rec, call, ov, clock_mhz: float, ddr_gbps: float) -> dict:
    """One GEMM layer's breakdown: host-side wall times, compute from the IP's cycle counter."""
    from . import regmap

    t = call.timing
    cfg = ov.array
    layer_a, layer_w = rec.layer_fmts
    a_bytes, w_bytes, y_bytes = regmap.footprint(call.m, call.n, call.k, layer_a, layer_w, cfg)
    ddr_bytes = a_bytes + w_bytes * -(-call.m // cfg.rows) + y_bytes
    cycle_s = t.cycles / (clock_mhz * 1e6)
    ddr_s = ddr_bytes / (ddr_gbps * 1e9) if ddr_gbps else 0.0
    return {
        "name": rec.name, "kind": "gemm", "m": call.m, "n": call.n, "k": call.k,
        "a_fmt": layer_a.name, "w_fmt": layer_w.name, "macs": call.m * call.n * call.k,
        "cycles": int(t.cycles), "macs_per_cycle": call.m * call.n * call.k / max(t.cycles, 1),
        "ddr_bytes": int(ddr_bytes),
        "quantize_pack_s": rec.times["quantize"] + t.pack_s, "flush_s": t.flush_s,
        "compute_s": max(cycle_s, ddr_s), "compute_wall_s": t.start_s + t.compute_s,
        "invalidate_s": t.invalidate_s,
        "unpack_rescale_s": t.unpack_s + rec.times["rescale"] + max(0.0, rec.times["gemm"] - t.total_s),
        "host_s": 0.0,
    }


class _Rec:
    def __init__(self, record, layer) -> None:
        self.name, self.times = record.name, record.times
        self.layer_fmts = (layer.act_fmt, layer.w_fmt)


def bench_model(model, overlay, x: np.ndarray, *, clock_mhz: float | None = None, ddr_gbps: float = 1.2,
                repeats: int = 3, int8_cost: bool = True, progress: bool = True) -> dict:
    """Per-layer and end-to-end latency of ``model`` on ``overlay`` for the batch ``x``.

    Host-side parts (quantize+pack, flush, invalidate, unpack+rescale, host-only layers) are wall
    times measured here (best of ``repeats``). Compute comes from the IP's cycle counter at
    ``clock_mhz`` (default: the overlay's PL clock), or the DDR time of the layer's traffic at
    ``ddr_gbps`` if that is longer. In emulation the result is a projection of the board and is
    labelled so; on a board the cycles are the hardware's own.
    """
    from tqdm import tqdm

    from .runtime import Runtime

    clock = float(clock_mhz or overlay.clock_mhz)
    if not clock > 0:
        raise ValueError(f"clock must be positive MHz, got {clock}")
    layers = {layer.name: layer for layer in model.gemm_layers}
    projected = getattr(overlay.device, "level", None) is not None
    best: list[dict] | None = None
    with Runtime(model, overlay) as rt:
        rt.run(x)  # warm-up: scratch buffers allocated, caches filled
        for _ in tqdm(range(repeats), desc="bench", unit="run", disable=not progress):
            _, records = rt.run(x, trace=True)
            calls = iter(rt.calls)
            rows: list[dict] = []
            pending: list[str] = []
            host_s = 0.0
            for r in records:
                if r.op == "gemm":
                    if pending:
                        rows.append(_host_row(pending, host_s))
                        pending, host_s = [], 0.0
                    rows.append(_gemm_row(_Rec(r, layers[r.name]), next(calls), overlay, clock, ddr_gbps))
                elif r.op not in ("input", "output"):
                    pending.append(r.op)
                    host_s += r.seconds
            if pending:
                rows.append(_host_row(pending, host_s))
            if best is None:
                best = rows
            else:
                for b, row in zip(best, rows, strict=True):
                    for key in (*PARTS, "compute_wall_s"):
                        if key in row:
                            b[key] = min(b[key], row[key])
        if int8_cost:
            for row in best:
                if row["kind"] == "gemm":
                    row["int8_cycles"] = _int8_cycles(overlay, row, layers[row["name"]])
    total = {p: sum(r[p] for r in best) for p in PARTS}
    total_s = sum(total.values())
    gemm_rows = [r for r in best if r["kind"] == "gemm"]
    macs, cycles = sum(r["macs"] for r in gemm_rows), sum(r["cycles"] for r in gemm_rows)
    out = {
        "model": model.name, "backend": getattr(overlay.device, "level", "board"), "projected": projected,
        "clock_mhz": clock, "ddr_gbps": ddr_gbps, "batch": int(len(x)), "repeats": repeats,
        "array": {"rows": overlay.array.rows, "cols": overlay.array.cols},
        "layers": best, "totals": total, "total_s": total_s, "macs": macs, "cycles": cycles,
        "macs_per_cycle": macs / max(cycles, 1), "peak_macs_per_cycle": overlay.array.peak_macs_per_cycle,
        "images_per_s": len(x) / total_s,
    }
    if int8_cost:
        c8 = sum(r["int8_cycles"] for r in gemm_rows)
        out["int8_cycles"], out["int8_vs_ant4"] = c8, c8 / max(cycles, 1)
    return out


def _host_row(ops: list[str], seconds: float) -> dict:
    name = "host: " + ", ".join(dict.fromkeys(ops))
    return {"name": name, "kind": "host", "macs": 0, "cycles": 0, **dict.fromkeys(PARTS, 0.0),
            "host_s": seconds}


def _int8_cycles(overlay, row: dict, layer) -> int:
    """IP cycles of the same GEMM shape with int8 operands (four nibble passes on the same array).

    The array's cycle count depends only on the shapes and the formats, not the values, so random
    int8 codes of the layer's shape give the layer's int8 cost.
    """
    from .quantize import QuantizedTensor

    rng = np.random.default_rng(0)
    a = QuantizedTensor(rng.integers(0, 256, (row["m"], row["k"])), kind="int", bits=8,
                        signed=layer.act_fmt.signed)
    w = QuantizedTensor(rng.integers(0, 256, (row["n"], row["k"])), kind="int", bits=8, signed=True)
    overlay.gemm(a, w)
    return int(overlay.last_cycles)


def print_latency(res: dict) -> None:
    """The latency table: one row per layer, then totals, MACs/cycle, int8 cost and images/s."""
    label = "projected" if res["projected"] else "measured"
    print(f"{res['model'] or 'model'}: batch {res['batch']} on the {res['backend']} overlay, "
          f"{res['array']['rows']}x{res['array']['cols']} array; compute from IP cycles at "
          f"{res['clock_mhz']:g} MHz ({label}); other parts are wall time on this host (ms, best of "
          f"{res['repeats']})")
    head = (f"{'layer':<34} {'MACs':>9} {'cycles':>9} {'MAC/cyc':>7} {'q+pack':>7} {'flush':>6} "
            f"{'compute':>8} {'inval':>6} {'unpack':>7} {'host':>6} {'int8 x':>6}")
    print(head)
    print("-" * len(head))

    def ms(v: float) -> str:
        return f"{1e3 * v:.3f}"

    for r in res["layers"]:
        ratio = f"{r['int8_cycles'] / r['cycles']:.2f}" if r.get("int8_cycles") else ""
        mpc = f"{r['macs_per_cycle']:.2f}" if r["kind"] == "gemm" else ""
        print(f"{r['name'][:34]:<34} {r['macs']:>9} {r['cycles']:>9} {mpc:>7} {ms(r['quantize_pack_s']):>7} "
              f"{ms(r['flush_s']):>6} {ms(r['compute_s']):>8} {ms(r['invalidate_s']):>6} "
              f"{ms(r['unpack_rescale_s']):>7} {ms(r['host_s']):>6} {ratio:>6}")
    t = res["totals"]
    print("-" * len(head))
    print(f"{'total':<34} {res['macs']:>9} {res['cycles']:>9} {res['macs_per_cycle']:>7.2f} "
          f"{ms(t['quantize_pack_s']):>7} {ms(t['flush_s']):>6} {ms(t['compute_s']):>8} "
          f"{ms(t['invalidate_s']):>6} {ms(t['unpack_rescale_s']):>7} {ms(t['host_s']):>6}")
    print(f"achieved {res['macs_per_cycle']:.2f} MACs/cycle of a peak {res['peak_macs_per_cycle']} "
          f"({100 * res['macs_per_cycle'] / res['peak_macs_per_cycle']:.1f} %)")
    if "int8_cycles" in res:
        print(f"int8 nibble passes on the same array: {res['int8_cycles']} cycles, "
              f"{res['int8_vs_ant4']:.2f}x the 4-bit ANT cost")
    print(f"end to end {1e3 * res['total_s']:.2f} ms ({label} compute): {res['images_per_s']:.0f} images/s")


def plot_latency(res: dict, path: str) -> None:
    """A stacked horizontal bar per layer: where each layer's time goes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["layers"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    left = np.zeros(len(rows))
    names = {"quantize_pack_s": "quantize + pack", "flush_s": "copy in (flush)",
             "compute_s": f"compute ({'projected' if res['projected'] else 'IP cycles'})",
             "invalidate_s": "copy out (invalidate)", "unpack_rescale_s": "unpack + rescale",
             "host_s": "host-only layers"}
    for part in PARTS:
        vals = np.array([1e3 * r[part] for r in rows])
        ax.barh(range(len(rows)), vals, left=left, label=names[part])
        left += vals
    ax.set_yticks(range(len(rows)), [r["name"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds")
    ax.set_title(f"{res['model'] or 'model'}: batch {res['batch']}, {res['backend']} overlay, "
                 f"{res['clock_mhz']:g} MHz")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cmd_bench(a: argparse.Namespace) -> int:
    import json

    from .driver import AntOverlay
    from .runtime import held_out, load_model

    model = load_model(a.model)
    x, _ = held_out(model, a.batch)
    with AntOverlay(backend=a.backend) as ov:
        res = bench_model(model, ov, x, clock_mhz=a.clock_mhz, ddr_gbps=a.ddr_gbps, repeats=a.repeats)
    print_latency(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {a.json}")
    if a.plot:
        plot_latency(res, a.plot)
        print(f"wrote {a.plot}")
    return 0

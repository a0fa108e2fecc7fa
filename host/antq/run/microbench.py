"""Micro-benchmarks that print ratios against a baseline measured in the same run.

``bench-quant`` (the vectorized type/clip search vs. a loop), ``bench-pack`` (packing vs.
``np.copy``), ``bench-gemm`` (GEMMs through the driver vs. numpy) and ``bench-rtl`` (the Verilated
core under the C harness vs. a cocotb driver). Timings are the best of a few repeats (wall clock),
because the machine is shared and noisy; the figures are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..core import arch, formats, pack, quantize, reference, regmap
from ..core.formats import Format
from ..core.quantize import QuantizedTensor
from ..core.stream import config_word, job_beats
from ..emu.antcore import AntCore
from ..emu.levels.ref import model_cycles
from ..model.graph import im2col
from ..toolchain import verilator
from ..toolchain.paths import build_dir, file_lock, makeflags
from ..toolchain.verilator import RTLError
from .backends import open_overlay


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


BENCH_QUANT_QUICK = ((1024, 1024), 1 << 21)
"""``make bench-quant``'s sizes (weight shape, activation elements): about a minute on 2 cores."""
BENCH_QUANT_FULL = ((4096, 4096), 8 << 20)
"""``antq bench-quant --full``: 16x and 4x those, several minutes (the loop dominates)."""


def bench_quant(weight_shape: tuple[int, int] = BENCH_QUANT_QUICK[0], act_elems: int = BENCH_QUANT_QUICK[1],
                seed: int = 0, progress: bool = True) -> list[dict]:
    """Vectorized type/clip search against the per-(type, ratio) loop on the same tensors.

    A progress bar (stderr) steps once per tensor for the vectorized search (it sorts once for
    every type, so it runs as one call) and once per candidate type for the loop, which takes
    almost all of the time."""
    from tqdm import tqdm

    if min(*weight_shape, act_elems) < 1:
        raise ValueError(f"sizes must be positive, got a {weight_shape} weight and {act_elems} activations")
    rng = np.random.default_rng(seed)
    cases = [
        ("weight", _weight(*weight_shape, rng), 0, True),
        ("activation", np.maximum(rng.standard_normal(act_elems).astype(np.float32), 0)
         * rng.gamma(2.0, 1.0, act_elems).astype(np.float32), None, False),
    ]
    fmts_of = {s: quantize._candidate_formats(quantize.DEFAULT_CANDIDATES, 4, s)[0] for s in (False, True)}
    steps = sum(1 + len(fmts_of[signed]) for *_, signed in cases)
    bar = tqdm(total=steps, desc="bench-quant", unit="search", disable=not progress)
    rows = []
    for name, x, axis, signed in cases:
        fmts, r = fmts_of[signed], quantize.ratios_for(4)
        x2d = quantize._to_2d(x.astype(np.float64), axis)
        bar.set_postfix_str(f"{name}, vectorized")
        t0 = time.perf_counter()
        fast = quantize.search(x2d, fmts, r)
        t_fast = time.perf_counter() - t0
        bar.update()
        slow, t_loop = {}, 0.0
        for f in fmts:  # the loop treats each type on its own anyway
            bar.set_postfix_str(f"{name}, loop, {f.kind}")
            t0 = time.perf_counter()
            slow.update(quantize.search_loop(x2d, [f], r))
            t_loop += time.perf_counter() - t0
            bar.update()
        same = all(np.array_equal(fast[f][1], slow[f][1]) for f in fmts)
        rel = max(float(np.max(np.abs(fast[f][0] - slow[f][0]) / np.maximum(slow[f][0], 1e-300)))
                  for f in fmts)
        rows.append({"tensor": name, "shape": list(x.shape), "elements": int(x.size),
                     "fast_s": t_fast, "loop_s": t_loop, "speedup": t_loop / t_fast,
                     "same_choice": same, "max_rel_mse_diff": rel})
    bar.close()
    print(f"{'tensor':<11} {'elements':>10} {'vectorized s':>13} {'loop s':>9} {'speedup':>8}  same choice")
    for row in rows:
        print(f"{row['tensor']:<11} {row['elements']:>10} {row['fast_s']:>13.2f} {row['loop_s']:>9.2f} "
              f"{row['speedup']:>7.1f}x  {'yes' if row['same_choice'] else 'NO'} "
              f"(MSE rel. diff {row['max_rel_mse_diff']:.1e})")
    return rows


IM2COL_CASES: dict[str, tuple[tuple[int, int, int, int], int, int, int]] = {
    "cifar 3x3": ((32, 64, 32, 32), 3, 1, 1), "digits 3x3": ((1024, 16, 8, 8), 3, 1, 1)}
"""bench-pack im2col rows: (B, C, H, W) codes, kernel, stride, padding. A CIFAR-sized 3x3 layer and
the second conv of ``digits-cnn`` (16 channels on 8x8) on a batch of 1024."""


def bench_pack(shape: tuple[int, int] = (4096, 4096), seed: int = 0, repeats: int = 5) -> list[dict]:
    """Pack/unpack throughput in GB/s of codes, against ``np.copy`` of the same code bytes, for
    4-bit and 8-bit codes through the container and the accelerator layouts; and the runtime's
    im2col against ``np.copy`` of its output bytes. Each ratio uses a copy timed in this run."""
    rng = np.random.default_rng(seed)
    layouts = [("container", pack.Layout()), ("accel-a", pack.accelerator_layout("a")),
               ("accel-w", pack.accelerator_layout("w"))]
    rows = []
    for bits in (4, 8):
        codes = rng.integers(0, 1 << bits, size=shape, dtype=np.uint8)
        t_copy = best_time(lambda c=codes: np.copy(c), repeats)
        gb = codes.nbytes / 1e9
        for label, lay in layouts:
            buf = pack.pack(codes, bits, lay)
            if not np.array_equal(pack.unpack(buf, bits, shape, lay), codes):
                raise RuntimeError(f"pack/unpack of {bits}-bit codes through {lay} is not a round trip")
            t_pack = best_time(lambda c=codes, b=bits, lay=lay: pack.pack(c, b, lay), repeats)
            t_unpack = best_time(lambda p=buf, b=bits, lay=lay: pack.unpack(p, b, shape, lay), repeats)
            rows.append({"op": "pack", "layout": label, "bits": bits, "tile": lay.tile,
                         "bus_bits": lay.bus_bits, "shape": list(shape), "copy_GBps": gb / t_copy,
                         "pack_GBps": gb / t_pack, "unpack_GBps": gb / t_unpack,
                         "pack_vs_copy": t_copy / t_pack, "unpack_vs_copy": t_copy / t_unpack})
    for label, (xshape, k, stride, pad) in IM2COL_CASES.items():
        x = rng.integers(0, 16, size=xshape, dtype=np.uint8)
        args = ((k, k), (stride, stride), (pad, pad), (1, 1))
        out = im2col(x, *args)
        t_copy = best_time(lambda o=out: np.copy(o), repeats)
        t_im2col = best_time(lambda x=x, args=args: im2col(x, *args), repeats)
        gb = out.nbytes / 1e9
        rows.append({"op": "im2col", "layout": label, "shape": list(xshape), "out_shape": list(out.shape),
                     "copy_GBps": gb / t_copy, "im2col_GBps": gb / t_im2col,
                     "im2col_vs_copy": t_copy / t_im2col})
    _print_pack(rows, shape, repeats)
    return rows


def _print_pack(rows: list[dict], shape: tuple[int, int], repeats: int) -> None:
    print(f"{shape[0]}x{shape[1]} codes; GB/s of code bytes; x copy = np.copy time / time; best of {repeats}")
    print(f"{'layout':<10} {'bits':>4} {'tile':>4} {'copy GB/s':>10} {'pack GB/s':>10} {'x copy':>7} "
          f"{'unpack GB/s':>12} {'x copy':>7}")
    for r in (r for r in rows if r["op"] == "pack"):
        print(f"{r['layout']:<10} {r['bits']:>4} {r['tile']:>4} {r['copy_GBps']:>10.2f} "
              f"{r['pack_GBps']:>10.2f} {r['pack_vs_copy']:>7.2f} {r['unpack_GBps']:>12.2f} "
              f"{r['unpack_vs_copy']:>7.2f}")
    print(f"{'im2col':<11} {'codes B C H W':<16} {'output':>12} {'copy GB/s':>10} {'GB/s':>7} {'x copy':>7}")
    for r in (r for r in rows if r["op"] == "im2col"):
        src, dst = " ".join(map(str, r["shape"])), "x".join(map(str, r["out_shape"]))
        print(f"{r['layout']:<11} {src:<16} {dst:>12} {r['copy_GBps']:>10.2f} {r['im2col_GBps']:>7.2f} "
              f"{r['im2col_vs_copy']:>7.2f}")


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
               a_fmt: str = "flint4u", w_fmt: str = "flint4s", repeats: int = 3, seed: int = 0,
               cfg: arch.ArrayConfig = arch.DEFAULT) -> list[dict]:
    """GEMM throughput (MAC/s) of each backend through the driver, against numpy's int32 matmul
    on the same shape measured in the same run, and the IP's cycles and utilization
    (``macs / (cycles * rows * cols)``). Weights are resident; every result is checked.

    ``stages`` are the per-stage totals of the dataflow model (``antq.emu.levels.ref``), labelled
    as modelled; ``cycles`` and ``counters`` are what the IP reports (the core's own counters at
    the rtl level and on a board). ``cfg`` sets the emulated array; a board reports its own.
    """
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
    common = {"shape": [m, n, k], "a_fmt": fa.name, "w_fmt": fw.name, "macs": macs}
    rows = [common | {"backend": "numpy int32", "seconds": t_np, "macs_per_s": macs / t_np, "vs_numpy": 1.0,
                      "cycles": None, "board_s": None, "exact": exact_np}]
    for be in backends:
        with open_overlay(be, **({} if be == "board" else {"pace": 0, "cfg": cfg})) as ov:
            hw = ov.load_weights(w)
            y = ov.gemm(a, hw)
            t = best_time(lambda ov=ov, hw=hw: ov.gemm(a, hw), repeats)
            tm, arr = ov.last_timing, ov.array
            _, stages, _ = model_cycles(m, n, k, fa, fw, regmap.pass_mask(fa, fw), arr)
            rows.append(common | {
                "backend": be, "seconds": t, "macs_per_s": macs / t, "vs_numpy": t_np / t,
                "cycles": tm.cycles, "board_s": tm.device_s, "exact": bool(np.array_equal(y, want)),
                "array": [arr.rows, arr.cols], "peak_macs_per_cycle": arr.peak_macs_per_cycle,
                "utilization": macs / (tm.cycles * arr.peak_macs_per_cycle), "clock_mhz": tm.clock_mhz,
                "counters": {"core_busy": tm.core_busy, "stall_in": tm.stall_in, "stall_out": tm.stall_out},
                "stages": dict(zip(("load", "compute", "store"), stages, strict=True)),
                "stages_source": "model"})
    print(f"GEMM {m}x{n}x{k} {fa.name} x {fw.name} ({macs / 1e6:.1f} M MACs), best of {repeats}")
    print(f"{'backend':<12} {'seconds':>9} {'MAC/s':>10} {'x numpy':>8} {'IP cycles':>11} {'util':>6} "
          f"{'board s @clk':>12}  exact")
    for r in rows:
        cyc = f"{r['cycles']:>11,}" if r["cycles"] is not None else f"{'-':>11}"
        util = f"{r['utilization']:>6.3f}" if "utilization" in r else f"{'-':>6}"
        board = f"{r['board_s']:>12.4f}" if r["board_s"] is not None else f"{'-':>12}"
        print(f"{r['backend']:<12} {r['seconds']:>9.4f} {r['macs_per_s'] / 1e6:>8.1f} M "
              f"{r['vs_numpy']:>8.3f} {cyc} {util} {board}  {'yes' if r['exact'] else 'NO'}")
    for r in rows[1:]:
        st = r["stages"]
        print(f"{r['backend']}: {r['array'][0]}x{r['array'][1]} PEs at {r['clock_mhz']:g} MHz; stages "
              f"(modelled cycles) load {st['load']:,}, compute {st['compute']:,}, store {st['store']:,}; "
              f"core busy {r['counters']['core_busy']:,}, stalled on input {r['counters']['stall_in']:,}, "
              f"on output {r['counters']['stall_out']:,}")
    return rows


def _bench_jobs(rows: int, cols: int, k: int, jobs: int, seed: int) -> np.ndarray:
    """(jobs, K + 1, words) beats of random flint4u x flint4s jobs, each emitting."""
    rng = np.random.default_rng(seed)
    f = formats.get("flint", 4, False), formats.get("flint", 4, True)
    return np.stack([job_beats(rng.integers(0, 16, (rows, k)), rng.integers(0, 16, (cols, k)),
                               config_word(k, *f), rows, cols) for _ in range(jobs)])


def bench_rtl(rows: int = 16, cols: int = 16, k: int = 4096, jobs: int = 100, seed: int = 0) -> dict:
    """Array cycles per second of the -O3 Verilated core under the C harness (random 4-bit jobs)."""
    t0 = time.perf_counter()
    path = verilator.build(rows, cols)
    build_s = time.perf_counter() - t0
    work = _bench_jobs(rows, cols, k, jobs, seed)
    with AntCore(rows, cols, lib=path) as core:
        start_cycles = core.cycles
        t0 = time.perf_counter()
        for b in work:
            core.job(b)
        wall = time.perf_counter() - t0
        cycles = core.cycles - start_cycles
    return {"rows": rows, "cols": cols, "k": k, "jobs": jobs, "cycles": cycles, "seconds": wall,
            "cycles_per_s": cycles / wall, "macs_per_s": rows * cols * k * jobs / wall,
            "build_s": build_s}


def bench_cocotb(rows: int = 16, cols: int = 16, k: int = 4096, jobs: int = 2, seed: int = 0) -> dict:
    """The same kind of jobs through cocotb (lean driver, overlay/harness/cocotb_bench.py) on the
    same Verilated model (-O3, no tracing): the baseline the C harness is compared with."""
    import warnings

    with warnings.catch_warnings():  # "Python runners ... are an experimental feature"
        warnings.simplefilter("ignore", UserWarning)
        from cocotb.runner import get_runner  # only the benchmark needs cocotb

    out_dir = build_dir() / "rtl" / f"cocotb_{rows}x{cols}"
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner("verilator")
    t0 = time.perf_counter()
    quiet = contextlib.redirect_stdout(io.StringIO())  # the runner prints every command it runs
    with file_lock(out_dir.with_suffix(".lock")), quiet:
        try:
            with makeflags(verilator.MAKE_FLAGS):
                runner.build(verilog_sources=verilator.sources(), hdl_toplevel="ant_core", build_dir=out_dir,
                             parameters={"ROWS": rows, "COLS": cols}, build_args=["-O3"],
                             timescale=("1ns", "1ps"), log_file=out_dir / "build.log")
        except SystemExit as e:
            raise RTLError(f"cocotb Verilator build failed ({e}); see {out_dir / 'build.log'}") from None
    build_s = time.perf_counter() - t0
    beats, result = out_dir / "beats.npy", out_dir / "result.json"
    np.save(beats, _bench_jobs(rows, cols, k, jobs, seed))
    result.unlink(missing_ok=True)
    harness = str(verilator.harness_dir())
    if harness not in sys.path:
        sys.path.insert(0, harness)  # the runner hands sys.path to the simulator
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runner.test(hdl_toplevel="ant_core", test_module="cocotb_bench", build_dir=out_dir,
                        test_dir=out_dir, log_file=out_dir / "test.log",
                        extra_env={"ANTQ_BENCH": json.dumps({"beats": str(beats), "out": str(result),
                                                             "rows": rows, "cols": cols})})
    except SystemExit as e:
        raise RTLError(f"cocotb run failed ({e}); see {out_dir / 'test.log'}") from None
    if not result.exists():
        raise RTLError(f"the cocotb run wrote no result; see {out_dir / 'test.log'}")
    r = json.loads(result.read_text())
    r.update(rows=rows, cols=cols, k=k, jobs=jobs, cycles_per_s=r["cycles"] / r["seconds"], build_s=build_s)
    return r


# ------------------------------------------------------------------------------------------------
# Calibration: antq's against the calibration as it was before (same results, measured in one run)

def _search_before(
    x2d: np.ndarray, fmts: Sequence[Format], ratios: np.ndarray, max_elems: int = 1 << 22
) -> dict[Format, tuple[np.ndarray, np.ndarray]]:
    """The search as it was: one format at a time, thresholds located in all rows at once."""
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
        thr = quantize._mids(fmt)[None, :] * s[:, None]  # (R, G-1)
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


def _count_index(u, mids):
    """The grid index as it was computed: counting the midpoints <= u in uint8."""
    import torch

    idx = torch.zeros(u.shape, dtype=torch.uint8, device=u.device)
    for m in mids:
        idx.add_(u >= m)
    return idx.long()


@contextlib.contextmanager
def calibration_before() -> Iterator[None]:
    """Calibration as antq did it before the candidates were searched together: every quantizer ran the
    full ``quantize_tensor`` (search one format at a time, quantize, dequantize, MSE), then a float32
    fake-quant pass for its statistics, and the forward rounded the tensor again (grid indices by
    counting comparisons). Same choices; kept only as the baseline of :func:`bench_calib`."""
    import math

    import torch

    from ..model import fakequant
    from ..model.configs import CANDIDATES

    def calibrate(self, x):
        a = x.detach().float().cpu().numpy()
        q = quantize.quantize_tensor(a, self.spec.bits, CANDIDATES[self.spec.scheme],
                                     channel_axis=0 if self.role == "weight" else None,
                                     signed=True if self.role == "weight" else None)
        sel = q.selection
        self.fmt, grid, max_value = sel.fmt, sel.fmt.grid, float(sel.fmt.max_value)
        alpha = np.where(sel.alpha > 0, sel.alpha, max_value)
        self.group = "channel" if self.role == "weight" else "tensor"
        self.signed, scores = sel.fmt.signed, sel.scores
        self.max_value = max_value
        self.grid = torch.tensor(grid, dtype=torch.float32)
        self.mids = torch.tensor((grid[:-1] + grid[1:]) / 2, dtype=torch.float32)
        self.alpha = torch.nn.Parameter(torch.tensor(np.asarray(alpha).reshape(-1), dtype=torch.float32))
        with torch.no_grad():
            err = (self._fake(x.float()) - x.float()).double()
            mse = float(err.pow(2).mean())
            power = float(x.double().pow(2).mean())
        self.stats = {"type": self.label, "signed": self.signed, "mse": mse, "scores": scores,
                      "sqnr_db": 10 * math.log10(power / mse) if mse > 0 and power > 0 else math.inf}
        if self.on_calibrated is not None:
            self.on_calibrated()

    def integers(self, x):
        self._ready(x)
        return self.grid[_count_index(x.float() / self._broadcast_scale(x), self.mids)].double()

    Q = fakequant.Quantizer
    saved = (quantize.search, fakequant._grid_index, Q.calibrate, Q.integers)
    quantize.search, fakequant._grid_index = _search_before, _count_index
    Q.calibrate, Q.integers = calibrate, integers
    try:
        yield
    finally:
        quantize.search, fakequant._grid_index, Q.calibrate, Q.integers = saved


def bench_calib(sentences: int = 32, config: str = "ip-f", bits: int = 4, layers: int | None = None) -> dict:
    """Calibrating all-MiniLM-L6-v2 (every GEMM) on ``sentences`` sentences: antq's calibration against
    :func:`calibration_before`, with the ratio and whether both chose the same types and clips."""
    from ..model import text
    from ..model.calibrate import quantize_model

    model = text.load_minilm(layers)
    x = {k: v[:sentences] for k, v in text.load_text("murphy", "calib").items()}
    quantize_model(model, {k: v[:2] for k, v in x.items()}, config, bits, progress=False)  # warm-up: imports
    t0 = time.perf_counter()
    fast = quantize_model(model, x, config, bits, progress=False)
    t_fast = time.perf_counter() - t0
    with calibration_before():
        t0 = time.perf_counter()
        slow = quantize_model(model, x, config, bits, progress=False)
        t_slow = time.perf_counter() - t0
    same = all(a.fmt == b.fmt and bool((a.alpha == b.alpha).all())
               for a, b in zip(fast.quantizers(), slow.quantizers(), strict=True))
    row = {"model": text.MINILM, "layers": len(model.bert.encoder.layer), "sentences": sentences,
           "tokens": int(x["input_ids"].shape[1]), "config": config, "bits": bits, "gemms": len(fast.layers),
           "tensors": len(list(fast.quantizers())), "fast_s": t_fast, "before_s": t_slow,
           "speedup": t_slow / t_fast, "same_choice": same}
    print(f"calibrating {row['model']} ({row['layers']} layers, {row['gemms']} GEMMs, {row['tensors']} "
          f"tensors) "
          f"on {sentences} sentences of {row['tokens']} tokens, {config} {bits}-bit:")
    print(f"  antq {t_fast:.1f} s, as before {t_slow:.1f} s: {row['speedup']:.1f}x faster, "
          f"same types and clip values: {'yes' if same else 'NO'}")
    return row

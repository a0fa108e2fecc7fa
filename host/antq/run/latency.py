"""``antq bench``: where the time of a model's inference on the overlay goes, layer by layer.

Host-side parts are wall times measured here; the accelerator's part comes from the IP's cycle
counter (on a board the hardware's; in emulation a projection, and labelled so). The run is
chained (:mod:`antq.run.runtime`: requantized outputs stay on the device); the same batch is
also run unchained, every int64 result read back and requantized on the host, as the baseline
whose images/s the chained run is compared with. Both give the same outputs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import regmap
from ..core.quantize import QuantizedTensor
from ..model.graph import batch_len, value_users
from ..model.hostops import LAYOUT_OPS
from .runtime import Runtime

PARTS = ("quantize_pack_s", "flush_s", "compute_s", "invalidate_s", "unpack_rescale_s", "host_s")
"""Wall-time parts of each layer, in the order of the stacked bars."""


def _gemm_row(rec, calls: list, ov, clock_mhz: float, ddr_gbps: float | None, out_fmt=None) -> dict:
    """One GEMM node's breakdown (one accelerator call, or one per group or per attention head and
    sample): host-side wall times, compute from the IP's cycle counter, summed over its calls."""
    cfg = ov.array
    layer_a, layer_w = rec.layer_fmts
    cycles = ddr_bytes = macs = 0
    pack_s = flush_s = invalidate_s = unpack_s = total_s = wall_s = 0.0
    for call in calls:
        t = call.timing
        a_bytes, w_bytes, y_bytes = regmap.footprint(call.m, call.n, call.k, layer_a, layer_w, cfg,
                                                     out_fmt)
        ddr_bytes += a_bytes + w_bytes * -(-call.m // cfg.rows) + y_bytes
        cycles += t.cycles
        macs += call.m * call.n * call.k
        pack_s, flush_s, invalidate_s = pack_s + t.pack_s, flush_s + t.flush_s, invalidate_s + t.invalidate_s
        unpack_s, total_s = unpack_s + t.unpack_s, total_s + t.total_s
        wall_s += t.start_s + t.compute_s
    cycle_s = cycles / (clock_mhz * 1e6)
    ddr_s = ddr_bytes / (ddr_gbps * 1e9) if ddr_gbps else 0.0
    c0 = calls[0]
    return {
        "name": rec.name, "kind": "gemm", "m": c0.m, "n": c0.n, "k": c0.k, "calls": len(calls),
        "a_fmt": layer_a.name, "w_fmt": layer_w.name, "out_fmt": out_fmt.name if out_fmt else "int64",
        "macs": macs,
        "cycles": int(cycles), "macs_per_cycle": macs / max(cycles, 1),
        "ddr_bytes": int(ddr_bytes),
        "quantize_pack_s": rec.times["quantize"] + pack_s, "flush_s": flush_s,
        "compute_s": max(cycle_s, ddr_s), "compute_wall_s": wall_s,
        "invalidate_s": invalidate_s,
        "unpack_rescale_s": unpack_s + rec.times["rescale"] + rec.times.get("fetch", 0.0)
        + max(0.0, rec.times["gemm"] - total_s),
        "host_s": 0.0,
    }


class _Rec:
    def __init__(self, record, layer) -> None:
        self.name, self.times = record.name, record.times
        self.layer_fmts = (layer.act_fmt, layer.w_fmt)


def bench_model(model, overlay, x: np.ndarray, *, clock_mhz: float | None = None,
                ddr_gbps: float | None = 1.2, repeats: int = 3, int8_cost: bool = True,
                progress: bool = True, baseline: bool = True) -> dict:
    """Per-layer and end-to-end latency of ``model`` on ``overlay`` for the batch ``x``.

    Host-side parts (quantize+pack, flush, invalidate, unpack+rescale, host-only layers) are wall
    times measured here (best of ``repeats``). Compute comes from the IP's cycle counter at
    ``clock_mhz`` (default: the overlay's PL clock), or the DDR time of the layer's traffic at
    ``ddr_gbps`` if that is longer (``None``: no DDR bound). In emulation the result is a
    projection of the board and is labelled so; on a board the cycles are the hardware's own.
    ``bytes_to_device``, ``bytes_from_device`` and ``round_trips`` (IP results the host reads) are
    per inference of the batch; weights and epilogue parameters are resident and not counted. Each
    GEMM row has the same three for its own calls and the fetches of its requantized codes (where
    the traffic goes: the rows add up to the totals), ``out_fmt``, what its result is, and
    ``read_by``, what takes it (:func:`read_by`: the next layers, or the host ops that need it).
    With ``baseline`` the unchained run's figures are under ``"unchained"``, and
    ``speedup`` is the ratio of the two images/s; the two modes alternate run by run.
    """
    clock = float(overlay.clock_mhz if clock_mhz is None else clock_mhz)
    for what, v in (("clock_mhz", clock), ("ddr_gbps", 1.0 if ddr_gbps is None else ddr_gbps)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{what} must be a positive number{' or None' if what == 'ddr_gbps' else ''}, "
                             f"got {v}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    from tqdm import tqdm

    runs = [_Bench(model, overlay, x, clock, ddr_gbps, chain=True)]
    try:
        if baseline:
            runs.append(_Bench(model, overlay, x, clock, ddr_gbps, chain=False))
        # chained and unchained alternate run by run: a drift in the host's speed hits both alike
        for _ in tqdm(range(repeats), desc="bench" + (" (chained, unchained alternate)" if baseline else ""),
                      unit="run", disable=not progress):
            for run in runs:
                run.step()
        out = runs[0].result(int8_cost)
        if baseline:
            base = runs[1].result(False)
            out["unchained"] = {k: base[k] for k in ("images_per_s", "total_s", "totals", "bytes_to_device",
                                                     "bytes_from_device", "round_trips", "layers")}
            out["speedup"] = out["images_per_s"] / base["images_per_s"]
    finally:
        for run in runs:
            run.rt.close()
    return out


def read_by(model) -> dict[str, str]:
    """Layer name -> what its output reaches past the ops that only move elements: the next GEMM
    layers' names, or host op names (why a result the host reads comes back)."""
    users = value_users(model.nodes)
    out = {}
    for n in model.nodes:
        if n.layer is None:
            continue
        todo, names = [n.name], []
        while todo:  # breadth first: the readers in graph order
            for u in users.get(todo.pop(0), []):
                if u.op in LAYOUT_OPS:
                    todo.append(u.name)
                else:
                    names.append(u.layer.name if u.layer is not None else u.op)
        out[n.layer.name] = ", ".join(dict.fromkeys(names))
    return out


class _Bench:
    """One mode's (chained or unchained) runs of the batch: per-part best of its :meth:`step` s."""

    def __init__(self, model, overlay, x, clock: float, ddr_gbps: float | None, chain: bool) -> None:
        self.model, self.overlay, self.x, self.clock, self.ddr_gbps, self.chain = \
            model, overlay, x, clock, ddr_gbps, chain
        self.layers = {layer.name: layer for layer in model.layers}
        self.read_by = read_by(model)
        self.best: list[dict] | None = None
        self.repeats = 0
        self.rt = Runtime(model, overlay, chain=chain)
        self.rt.run(x)  # warm-up: scratch buffers allocated, parameter buffers written, caches filled

    def step(self) -> None:
        rt, x, layers, chain = self.rt, self.x, self.layers, self.chain
        _, records = rt.run(x, trace=True)
        self.traffic = rt.traffic  # counted before the trace's values were fetched
        calls = iter(rt.calls)
        rows: list[dict] = []
        pending: list[str] = []
        host_s = 0.0
        for r in records:
            if r.op in ("gemm", "act_gemm"):
                if pending:
                    rows.append(_host_row(pending, host_s))
                    pending, host_s = [], 0.0
                layer = layers[r.name]
                n_calls = layer.calls(batch_len(x)) if r.op == "act_gemm" else layer.groups
                layer_calls = [next(calls) for _ in range(n_calls)]
                out_fmt = layer.out.fmt if chain and getattr(layer, "out", None) is not None else None
                row = _gemm_row(_Rec(r, layer), layer_calls, self.overlay, self.clock, self.ddr_gbps, out_fmt)
                moved = rt.layer_traffic.get(layer.name)
                row.update(bytes_to_device=moved.to_device if moved else 0,
                           bytes_from_device=moved.from_device if moved else 0,
                           round_trips=moved.reads if moved else 0, read_by=self.read_by[layer.name])
                rows.append(row)
            elif r.op not in ("input", "output"):
                pending.append(r.op)
                host_s += r.seconds
        if pending:
            rows.append(_host_row(pending, host_s))
        if self.best is None:
            self.best = rows
        else:
            for b, row in zip(self.best, rows, strict=True):
                for key in (*PARTS, "compute_wall_s"):
                    if key in row:
                        b[key] = min(b[key], row[key])
        self.repeats += 1

    def result(self, int8_cost: bool) -> dict:
        overlay, x, best, traffic = self.overlay, self.x, self.best, self.traffic
        if int8_cost:
            for row in best:
                if row["kind"] == "gemm":
                    row["int8_cycles"] = row["calls"] * _int8_cycles(overlay, row, self.layers[row["name"]])
        total = {p: sum(r[p] for r in best) for p in PARTS}
        total_s = sum(total.values())
        gemm_rows = [r for r in best if r["kind"] == "gemm"]
        macs, cycles = sum(r["macs"] for r in gemm_rows), sum(r["cycles"] for r in gemm_rows)
        out = {
            "model": self.model.name, "backend": getattr(overlay.device, "level", "board"),
            "projected": getattr(overlay.device, "level", None) is not None,
            "clock_mhz": self.clock, "ddr_gbps": self.ddr_gbps, "batch": int(batch_len(x)),
            "repeats": self.repeats,
            "array": {"rows": overlay.array.rows, "cols": overlay.array.cols}, "chained": self.chain,
            "layers": best, "totals": total, "total_s": total_s, "macs": macs, "cycles": cycles,
            "macs_per_cycle": macs / max(cycles, 1), "peak_macs_per_cycle": overlay.array.peak_macs_per_cycle,
            "images_per_s": batch_len(x) / total_s,
            "bytes_to_device": traffic.to_device, "bytes_from_device": traffic.from_device,
            "round_trips": traffic.reads,
        }
        if int8_cost:
            c8 = sum(r["int8_cycles"] for r in gemm_rows)
            out["int8_cycles"], out["int8_vs_ant4"] = c8, c8 / max(cycles, 1)
        return out


def _host_row(ops: list[str], seconds: float) -> dict:
    name = "host: " + ", ".join(dict.fromkeys(ops))
    return {"name": name, "kind": "host", "macs": 0, "cycles": 0, **dict.fromkeys(PARTS, 0.0),
            "host_s": seconds, "bytes_to_device": 0, "bytes_from_device": 0, "round_trips": 0}


def _int8_cycles(overlay, row: dict, layer) -> int:
    """IP cycles of the same GEMM shape with int8 operands (four nibble passes on the same array).

    The array's cycle count depends only on the shapes and the formats, not the values, so random
    int8 codes of the layer's shape give the layer's int8 cost.
    """
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
            f"{'compute':>8} {'inval':>6} {'unpack':>7} {'host':>6} {'int8 x':>6} {'B back':>7} {'out':>7}")
    print(head)
    print("-" * len(head))

    def ms(v: float) -> str:
        return f"{1e3 * v:.3f}"

    for r in res["layers"]:
        ratio = f"{r['int8_cycles'] / r['cycles']:.2f}" if r.get("int8_cycles") else ""
        mpc = f"{r['macs_per_cycle']:.2f}" if r["kind"] == "gemm" else ""
        back = r.get("bytes_from_device", 0) if r["kind"] == "gemm" else ""
        print(f"{r['name'][:34]:<34} {r['macs']:>9} {r['cycles']:>9} {mpc:>7} {ms(r['quantize_pack_s']):>7} "
              f"{ms(r['flush_s']):>6} {ms(r['compute_s']):>8} {ms(r['invalidate_s']):>6} "
              f"{ms(r['unpack_rescale_s']):>7} {ms(r['host_s']):>6} {ratio:>6} {back:>7} "
              f"{r.get('out_fmt', ''):>7}")
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
    print(traffic_line(res))
    if "unchained" in res:
        u = res["unchained"]
        print(f"unchained baseline (int64 back after every layer, requantized on the host), same run: "
              f"{u['images_per_s']:.0f} images/s, {u['bytes_to_device']} B to / {u['bytes_from_device']} B "
              f"from the device, {u['round_trips']} round trips; chained is {res['speedup']:.2f}x")


def traffic_line(res: dict) -> str:
    """Host <-> device traffic per inference of the batch, in one line (the demo prints it too)."""
    return (f"per inference of {res['batch']}: {res['bytes_to_device']} B to the device, "
            f"{res['bytes_from_device']} B from it, {res['round_trips']} round trips (results the host "
            "reads)")


def plot_latency(res: dict, path: str | Path) -> None:
    """A stacked horizontal bar per layer: where each layer's time goes (the suffix of ``path``
    picks the format; missing folders are created)."""
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""``antq demo``: the main job, end to end on the overlay (board or emulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import container
from ..toolchain.paths import build_dir
from .backends import open_overlay
from .evaluate import evaluate

DEMO_MODELS = ("digits-cnn", "digits-transformer")
_TRAFFIC = ("images_per_s", "bytes_to_device", "bytes_from_device", "round_trips", "speedup")
_ROW = ("name", "calls", "out_fmt", "bytes_to_device", "bytes_from_device", "round_trips", "read_by")
"""Each GEMM layer's traffic in the chained run, for docs/runtime.md's table."""


def demo(backend: str | None = None, out_dir: str | Path | None = None, batch: int = 16) -> dict:
    """The main job: load the zoo models (shipped fp32 weights), quantize them with ANT (ip-f, 4-bit PTQ), run
    the held-out set on the overlay, check every prediction against the software reference, measure
    each model's host <-> device traffic chained and unchained, and the latency breakdown of the
    digits CNN. Returns the figures it prints."""
    import json

    from ..model import zoo
    from ..model.calibrate import quantize_model
    from ..model.datasets import load_dataset
    from . import latency

    out = Path(out_dir) if out_dir else build_dir() / "demo"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"models": {}}
    with open_overlay(backend) as ov:
        level = getattr(ov.device, "level", "board")
        print(f"overlay: {ov.array.rows}x{ov.array.cols} ANT PE array at {ov.clock_mhz:g} MHz on the "
              f"{level} {'emulator' if level != 'board' else 'PYNQ board'}\n")
        for name in DEMO_MODELS:
            net = zoo.get(name)
            xc, _ = load_dataset(net.dataset_name, "calib")
            xt, yt = load_dataset(net.dataset_name, "test")
            fp32 = zoo.accuracy(zoo.predict(net, xt), yt)
            qmodel = quantize_model(net, xc, config="ip-f", bits=4).export()
            path = container.save(out / f"{name}-ip-f-4bit.antq", qmodel)
            r = evaluate(qmodel, ov, xt, yt)
            kinds = sorted({f"{layer.act_fmt.name} x {layer.w_fmt.name}" for layer in qmodel.gemm_layers})
            print(f"{name}: ANT ip-f 4-bit PTQ, {len(qmodel.gemm_layers)} GEMM layers, saved to {path}")
            print(qmodel.summary())
            print(f"  held-out accuracy: fp32 {fp32:.2f} %, ANT-4 on the overlay {100 * r.accuracy:.2f} %")
            same = r.mismatched_predictions == 0 and r.identical_logits
            logits = "bit-identical" if r.identical_logits else "NOT identical"
            print(f"  {r.samples} predictions checked against the software reference: "
                  f"{'all identical' if same else 'DIFFER'} ({r.mismatched_predictions} differ, logits "
                  f"{logits})\n  operand formats used: {', '.join(kinds)}")
            bench = latency.bench_model(qmodel, ov, xt[:batch], progress=False,
                                        int8_cost=name == DEMO_MODELS[0])
            u, how = bench["unchained"], "projected" if bench["projected"] else "measured"
            print(f"  chained, {latency.traffic_line(bench)}: {bench['images_per_s']:.0f} images/s ({how})\n"
                  f"  unchained: {u['bytes_to_device']} B to / {u['bytes_from_device']} B from the device, "
                  f"{u['round_trips']} round trips, {u['images_per_s']:.0f} images/s; chained is "
                  f"{bench['speedup']:.2f}x\n")
            results["models"][name] = {"fp32": fp32, "ant4": 100 * r.accuracy, "samples": r.samples,
                                       "mismatches": r.mismatched_predictions,
                                       "identical": r.identical_logits, "file": str(path),
                                       **{k: bench[k] for k in _TRAFFIC},
                                       "unchained": {k: u[k] for k in _TRAFFIC if k != "speedup"},
                                       "layers": [{k: row[k] for k in _ROW} for row in bench["layers"]
                                                  if row["kind"] == "gemm"]}
            if name == DEMO_MODELS[0]:
                lat = bench
        latency.print_latency(lat)
    plot, js = out / "latency.png", out / "latency.json"
    latency.plot_latency(lat, str(plot))
    js.write_text(json.dumps(lat, indent=1))
    results["latency"] = {k: lat.get(k) for k in ("macs_per_cycle", "int8_vs_ant4", *_TRAFFIC)}
    (out / "demo.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {plot} (latency breakdown), {js}, {out / 'demo.json'}")
    print("accuracy-per-format report: docs/report/report.md (`make docs` measures it, `make report` "
          "into build/report)")
    results["ok"] = all(m["mismatches"] == 0 and m["identical"] for m in results["models"].values())
    return results

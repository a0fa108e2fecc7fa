"""Run a quantized model on the overlay: GEMMs on the accelerator, everything else on the host.

:class:`Runtime` loads every Conv/Linear weight of a :class:`~antq.qmodel.QuantizedModel` into a
device buffer once and passes :meth:`Runtime.gemm` to :meth:`QuantizedModel.run`, so the host
graph (requantization, bias, ReLU, pooling, softmax, LayerNorm, ...) is the very code that runs
with :func:`antq.reference.gemm`. Because the accelerator's GEMM is exact, a run on the overlay
(board or any emulation level) equals the software reference bit for bit; :func:`compare` finds
the first layer, tile and element where two levels disagree when they do not.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import arch, container, reference
from .cache import build_dir
from .formats import Format
from .qmodel import Gemm, QuantizedModel, TraceRecord
from .quantize import QuantizedTensor


@dataclass
class LayerCall:
    """One GEMM of a run: the layer, its shape and the overlay's timing breakdown of the call."""

    name: str
    m: int
    n: int
    k: int
    timing: Any
    """The driver's ``GemmTiming`` for this call."""


def _mappable(fmt: Format) -> bool:
    """The driver feeds 4-bit formats to the PE as they are and any int of 2..8 bits as int4/int8."""
    return fmt.bits == arch.CODE_BITS or fmt.kind == "int"


class Runtime:
    """A QuantizedModel bound to an AntOverlay, its weights resident on the device.

    >>> with Runtime(antq.load("m.antq"), AntOverlay(backend="csim")) as rt:
    ...     logits = rt.run(x)
    """

    def __init__(self, model: QuantizedModel, overlay: Any) -> None:
        if not isinstance(model, QuantizedModel):
            raise TypeError(f"model must be an antq QuantizedModel (antq.load of a .antq file), got "
                            f"{type(model).__name__}")
        bad = [f"{layer.name} ({layer.act_fmt.name} x {layer.w_fmt.name})" for layer in model.gemm_layers
               if not (_mappable(layer.act_fmt) and _mappable(layer.w_fmt))]
        if bad:
            raise ValueError("the accelerator cannot run these layers' formats (it decodes 4-bit int/pot/"
                             f"flint/float, and ints up to 8 bits): {', '.join(bad)}; re-quantize them with "
                             "bits=4 or as int")
        self.model, self.overlay = model, overlay
        self.calls: list[LayerCall] = []
        self._weights: dict[int, tuple[str, Any]] = {}
        try:
            for layer in model.gemm_layers:
                try:
                    handle = overlay.load_weights(layer.weight)
                except ValueError as e:
                    raise ValueError(f"layer {layer.name} ({layer.op}, N={layer.n}, K={layer.k}) cannot be "
                                     f"mapped onto the accelerator: {e}") from e
                self._weights[id(layer.weight)] = (layer.name, handle)
        except BaseException:
            self.close()
            raise

    def gemm(self, a: QuantizedTensor, w: QuantizedTensor) -> np.ndarray:
        """The accelerator's exact GEMM with ``w`` taken from its resident device buffer."""
        try:
            name, handle = self._weights[id(w)]
        except KeyError:
            raise ValueError("this weight is not resident on the device: Runtime.gemm only serves the "
                             "model's own layers") from None
        y = self.overlay.gemm(a, handle)
        self.calls.append(LayerCall(name, a.shape[0], w.shape[0], a.shape[1], self.overlay.last_timing))
        return y

    def run(self, x: Any, *, trace: bool = False, batch_size: int | None = None, progress: bool = False
            ) -> np.ndarray | tuple[np.ndarray, list[TraceRecord]]:
        """Outputs for inputs ``x`` (B, ...), in batches of ``batch_size`` (default: one batch)."""
        self.calls.clear()
        n = len(x)
        step = n if batch_size is None else int(batch_size)
        if step < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if trace and step < n:
            raise ValueError("trace=True needs the whole input in one batch (batch_size=None)")
        if step >= n:
            return self.model.run(x, gemm=self.gemm, trace=trace)
        outs = [self.model.run(x[i:i + step], gemm=self.gemm)
                for i in tqdm(range(0, n, step), desc="inference", unit="batch", disable=not progress)]
        return np.concatenate(outs)

    __call__ = run

    @property
    def resident_buffers(self) -> int:
        return len(self._weights)

    def close(self) -> None:
        """Free the resident weight buffers (the overlay stays usable)."""
        for _, handle in self._weights.values():
            handle.free()
        self._weights.clear()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Mismatch:
    """Where two runs of the same model first differ."""

    layer: str
    op: str
    index: tuple[int, ...]
    value_a: Any
    value_b: Any
    tile: tuple[int, int] | None = None
    """(row tile, column tile) of the R x C array for a GEMM layer: (m // R, n // C)."""
    label_a: str = "a"
    label_b: str = "b"
    differing: int = 1
    """How many elements of that layer differ."""

    def __str__(self) -> str:
        where = f"layer {self.layer} ({self.op})"
        if self.tile is not None:
            m, n = self.index
            where += f", array tile {self.tile}, accumulator (m={m}, n={n})"
        else:
            where += f", element {self.index}"
        return (f"first difference at {where}: {self.label_a}={self.value_a!r} "
                f"{self.label_b}={self.value_b!r} ({self.differing} element(s) of that layer differ)")


def compare(model: QuantizedModel, x: Any, gemm_a: Gemm, gemm_b: Gemm, *,
            labels: tuple[str, str] = ("a", "b"), cfg: arch.ArrayConfig = arch.DEFAULT) -> Mismatch | None:
    """Run ``model`` on ``x`` with two GEMM implementations and report the first difference (or None).

    GEMM layers are compared on their exact integer accumulators, so the report names the array
    tile and the (m, n) element; other nodes are compared on their outputs.
    """
    _, ra = model.run(x, gemm=gemm_a, trace=True)
    _, rb = model.run(x, gemm=gemm_b, trace=True)
    for a, b in zip(ra, rb, strict=True):
        if a.acc is not None:
            va, vb = a.acc, b.acc
        else:
            va, vb = np.asarray(a.output), np.asarray(b.output)
        if va.shape != vb.shape:
            return Mismatch(a.name, a.op, (), va.shape, vb.shape, None, *labels)
        diff = va != vb
        if diff.any():
            idx = tuple(int(i) for i in np.argwhere(diff)[0])
            tile = (idx[0] // cfg.rows, idx[1] // cfg.cols) if a.acc is not None else None
            return Mismatch(a.name, a.op, idx, va[idx].item(), vb[idx].item(), tile, *labels, int(diff.sum()))
    return None


# ---- command line -------------------------------------------------------------------------------

def load_model(path: str | Path) -> QuantizedModel:
    """A QuantizedModel from a .antq file, with a clear error for anything else."""
    obj = container.load(path)
    if not isinstance(obj, QuantizedModel):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a quantized model "
                         "(write one with `antq quantize` or antq.save(path, qmodel))")
    return obj


def held_out(model: QuantizedModel, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The model's held-out test split (first ``limit`` samples)."""
    from .datasets import load_dataset

    if not model.dataset:
        raise ValueError("the model file records no dataset, so there is no held-out split to run on")
    x, y = load_dataset(model.dataset, "test")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        x, y = x[:limit], y[:limit]
    return x, y


@dataclass
class RunResult:
    """Accuracy of a model on the overlay, and its agreement with the software reference."""

    samples: int
    accuracy: float
    reference_accuracy: float
    mismatched_predictions: int
    identical_logits: bool
    backend: str
    predictions: np.ndarray = field(repr=False)


def evaluate(model: QuantizedModel, overlay: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int = 64,
             progress: bool = True) -> RunResult:
    """Run ``x`` on the overlay and on the software reference; count agreement and accuracy."""
    with Runtime(model, overlay) as rt:
        logits = rt.run(x, batch_size=batch_size, progress=progress)
    ref = np.concatenate([model.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    pred, ref_pred = logits.argmax(-1), ref.argmax(-1)
    return RunResult(len(x), float((pred == y).mean()), float((ref_pred == y).mean()),
                     int((pred != ref_pred).sum()), bool(np.array_equal(logits, ref)),
                     getattr(overlay.device, "level", "board"), pred)


def _overlay(backend: str | None, **kw: Any) -> Any:
    from .driver import AntOverlay

    return AntOverlay(backend=backend, **kw)


def _cmd_run(a: argparse.Namespace) -> int:
    model = load_model(a.model)
    x, y = held_out(model, a.limit)
    with _overlay(a.backend) as ov:
        r = evaluate(model, ov, x, y, batch_size=a.batch)
    print(f"{model.name or Path(a.model).stem}: {r.samples} held-out samples of {model.dataset} on the "
          f"{r.backend} overlay")
    print(f"  accuracy {100 * r.accuracy:.2f} % (software reference {100 * r.reference_accuracy:.2f} %)")
    same = "identical" if r.identical_logits else "NOT identical"
    print(f"  predictions differing from the reference: {r.mismatched_predictions}; logits {same}")
    return 0 if r.mismatched_predictions == 0 and r.identical_logits else 1


def _gemm_of(level: str, stack: list) -> Callable:
    if level == "host":
        return reference.gemm
    ov = _overlay(level)
    stack.append(ov)
    return lambda a, w: ov.gemm(a, w)


def _cmd_compare(a: argparse.Namespace) -> int:
    model = load_model(a.model)
    x, _ = held_out(model, a.limit)
    opened: list = []
    try:
        mm = compare(model, x, _gemm_of(a.a, opened), _gemm_of(a.b, opened), labels=(a.a, a.b))
    finally:
        for ov in opened:
            ov.close()
    if mm is None:
        print(f"{a.a} and {a.b} agree bit for bit on every layer ({len(x)} samples)")
        return 0
    print(mm)
    return 1


DEMO_MODELS = ("digits-cnn", "digits-transformer")


def demo(backend: str | None = None, out_dir: str | Path | None = None, batch: int = 16) -> dict:
    """The main job: train (or load) the zoo models, quantize them with ANT (ip-f, 4-bit PTQ), run
    the held-out set on the overlay, check every prediction against the software reference, and
    measure the latency breakdown of the digits CNN. Returns the figures it prints."""
    import json

    from . import bench, models
    from .nn import quantize_model

    out = Path(out_dir) if out_dir else build_dir() / "demo"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"models": {}}
    with _overlay(backend) as ov:
        level = getattr(ov.device, "level", "board")
        print(f"overlay: {ov.array.rows}x{ov.array.cols} ANT PE array at {ov.clock_mhz:g} MHz on the "
              f"{level} {'emulator' if level != 'board' else 'PYNQ board'}\n")
        for name in DEMO_MODELS:
            net = models.get(name)
            xc, _ = models.load_dataset(net.dataset_name, "calib")
            xt, yt = models.load_dataset(net.dataset_name, "test")
            fp32 = models.accuracy(models.predict(net, xt), yt)
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
                  f"{logits})\n  operand formats used: {', '.join(kinds)}\n")
            results["models"][name] = {"fp32": fp32, "ant4": 100 * r.accuracy, "samples": r.samples,
                                       "mismatches": r.mismatched_predictions,
                                       "identical": r.identical_logits, "file": str(path)}
            if name == DEMO_MODELS[0]:
                lat = bench.bench_model(qmodel, ov, xt[:batch], progress=False)
        bench.print_latency(lat)
    plot, js = out / "latency.png", out / "latency.json"
    bench.plot_latency(lat, str(plot))
    js.write_text(json.dumps(lat, indent=1))
    results["latency"] = {"images_per_s": lat["images_per_s"], "macs_per_cycle": lat["macs_per_cycle"],
                          "int8_vs_ant4": lat.get("int8_vs_ant4")}
    (out / "demo.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {plot} (latency breakdown), {js}, {out / 'demo.json'}")
    print("accuracy-per-format report: docs/report/report.md (`make docs` measures it, `make report` "
          "into build/report)")
    results["ok"] = all(m["mismatches"] == 0 and m["identical"] for m in results["models"].values())
    return results


def _cmd_demo(a: argparse.Namespace) -> int:
    return 0 if demo(a.backend, a.out, a.batch)["ok"] else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    backends = ("auto", "board", "ref", "csim", "rtl")
    p = sub.add_parser(
        "run", help="accuracy of a .antq model on the overlay, checked against the software reference",
        description="Load a quantized model, run its dataset's held-out split on the overlay (a PYNQ board, "
        "or an emulation level) with the weights resident on the device, and check every prediction and "
        "logit against the bit-exact software reference. Exit status 1 if anything differs.")
    p.add_argument("model", help="a .antq file (antq quantize / antq.save)")
    p.add_argument("--backend", choices=backends, default=None,
                   help="board, or emulation level ref/csim/rtl (default: $ANTQ_BACKEND, else auto = board "
                   "if present, else csim)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N samples")
    p.add_argument("--batch", type=int, default=64, help="samples per accelerator batch (default 64)")
    p.set_defaults(func=_cmd_run)

    levels = ("host", "ref", "csim", "rtl", "board")
    p = sub.add_parser(
        "compare", help="find the first layer, tile and element where two levels disagree",
        description="Run the same inputs through two levels (host = antq.reference in numpy; ref/csim/rtl "
        "emulation; board) with full tracing, and print the first layer whose output differs, with the array "
        "tile and accumulator (m, n) for Conv/Linear layers and both values.")
    p.add_argument("model", help="a .antq file")
    p.add_argument("--a", default="host", choices=levels, help="first level (default host)")
    p.add_argument("--b", default="csim", choices=levels, help="second level (default csim)")
    p.add_argument("--limit", type=int, default=8, metavar="N", help="held-out samples to trace (default 8)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "demo", help="the main job: quantize the digits models with ANT and run them on the overlay",
        description="Train (or load the cached) digits CNN and digits transformer, quantize them with ANT "
        "(ip-f, 4-bit PTQ), run the held-out test set on the overlay (a PYNQ board, else the csim emulator), "
        "check every prediction against the software reference, and print accuracy, per-layer types and "
        "the latency breakdown. Exit status 1 if the overlay disagrees with the reference.")
    p.add_argument("--backend", choices=backends, default=None,
                   help="default: $ANTQ_BACKEND, else board if present, else csim; rtl is cycle-accurate")
    p.add_argument("--out", default=None, help="output folder (default build/demo)")
    p.add_argument("--batch", type=int, default=16, help="batch for the latency breakdown (default 16)")
    p.set_defaults(func=_cmd_demo)


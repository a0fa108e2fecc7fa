"""Run an integer model on the overlay: every GEMM on the accelerator, everything else on the host.

:class:`Runtime` loads every Conv/Linear weight of an :class:`~antq.model.graph.IntegerModel` (each
group's, for grouped convolutions) into a device buffer once and passes :meth:`Runtime.gemm` to
:meth:`IntegerModel.run`; the activation x activation GEMMs (attention's Q.K^T and P.V) have no
resident operand, so :meth:`Runtime.act_gemm` packs both per call. The host graph
(requantization, bias, ReLU, pooling, softmax, LayerNorm, ...) is the very code that runs with
:func:`antq.core.reference.gemm`. Because the accelerator's GEMM is exact, a run on the
overlay (board or any emulation level) equals the software reference bit for bit, and so equals
the eval-mode fake-quant torch model (docs/contracts.md §11).

**Chained execution** (``chain=True``, the default): a layer with a requantized output
(:class:`~antq.model.graph.Requant`) runs with the integer epilogue on the IP, and its codes stay
in a device buffer (:class:`ResidentCodes`). The next Linear layer takes them as its activation
operand as they are, the next convolution as the IP's own im2col of them (conv mode,
``AntOverlay.im2col``); a host op that needs them (pooling, flatten, ...) fetches the 4-bit codes,
not int64 accumulators. The epilogue is the function the reference applies on the host, so the
results are the same bits (docs/contracts.md §13). ``chain=False`` reads every layer's int64
result and requantizes on the host: the baseline ``antq bench`` measures against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from tqdm import tqdm

from ..core import epilogue, regmap
from ..core.epilogue import Params
from ..core.quantize import QuantizedTensor
from ..model.graph import (
    DeviceValue,
    GemmLayer,
    IntegerModel,
    TraceRecord,
    batch_len,
    batch_slice,
    requantized,
)


def _concat(outs: list[Any]) -> Any:
    """Batches of outputs (arrays, tuples or dicts of arrays) joined along the batch axis."""
    if isinstance(outs[0], dict):
        return {k: _concat([o[k] for o in outs]) for k in outs[0]}
    if isinstance(outs[0], tuple):
        return tuple(_concat(list(parts)) for parts in zip(*outs, strict=True))
    return np.concatenate(outs)


ACT_GEMM = "act_gemm"
"""The name :attr:`Runtime.calls` records for an activation x activation GEMM call."""


@dataclass
class LayerCall:
    """One GEMM of a run: the layer, its shape and the overlay's timing breakdown of the call."""

    name: str
    m: int
    n: int
    k: int
    timing: Any
    """The driver's ``GemmTiming`` for this call."""


class ResidentCodes(DeviceValue):
    """A requantized layer output left on the device: (M, N) codes packed as activations."""

    def __init__(self, rt: Runtime, tensor: Any, layer: GemmLayer, batch: int) -> None:
        self.rt, self.tensor, self.layer, self.batch = rt, tensor, layer, batch
        rt._resident.append(self)

    def operand_for(self, layer: GemmLayer) -> Any | None:
        """The codes as they are, for a Linear layer whose (M, K) operand they already are, or the
        IP's own im2col of them (conv mode) for a convolution on the NHWC pixels they are."""
        src, t = self.layer, self.tensor
        if layer.groups != 1 or layer.act_fmt != t.fmt or layer.act_scale != src.out.scale:
            return None
        if src.op == "linear" and layer.op == "linear" \
                and t.shape == (self.batch * layer.rows_per_sample, layer.k):
            return t
        if src.op == "conv2d" and layer.op == "conv2d":
            c, h, w = layer.in_shape
            geo = {"hw": (h, w), "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
                   "dilation": layer.dilation}
            ov = self.rt.overlay
            if t.shape == (self.batch * h * w, c) and ov.can_im2col(t, **geo):
                return ov.im2col(t, **geo)
        return None

    def materialize(self) -> np.ndarray:
        """Fetch the codes (4-bit, or int8) and give the values the reference computes."""
        q = self.rt.overlay.fetch(self.tensor)
        return self.layer.output_layout(q.dequantize(), self.batch)


class HostValue(DeviceValue):
    """A requantized output the host computed (the IP's epilogue cannot hold the layer)."""

    def __init__(self, values: np.ndarray, batch: int) -> None:
        self.values, self.batch = values, batch

    def materialize(self) -> np.ndarray:
        return self.values


class Runtime:
    """A IntegerModel bound to an AntOverlay, its weights resident on the device.

    >>> with Runtime(antq.load("m.antq"), antq.open_overlay("csim")) as rt:
    ...     logits = rt.run(x)
    ...     rt.traffic                    # bytes to / from the device and results read, last run
    """

    def __init__(self, model: IntegerModel, overlay: Any, *, chain: bool = True) -> None:
        if not isinstance(model, IntegerModel):
            raise TypeError(f"model must be an antq IntegerModel (antq.load of a .antq file), got "
                            f"{type(model).__name__}")
        bad = [f"{layer.name} ({layer.act_fmt.name} x {layer.w_fmt.name})" for layer in model.layers
               if not regmap.accepts(layer.act_fmt, layer.w_fmt)]
        if bad:
            raise ValueError("the accelerator cannot run these layers' formats (it decodes 4-bit int/pot/"
                             f"flint/float, and ints up to 8 bits): {', '.join(bad)}; re-quantize them with "
                             "bits=4 or as int")
        self.model, self.overlay, self.chain = model, overlay, bool(chain)
        self.calls: list[LayerCall] = []
        self.traffic: Any = None
        """The overlay's :class:`~antq.driver.overlay.Traffic` of the last :meth:`run` (all batches)."""
        self._resident: list[ResidentCodes] = []
        self._weights: dict[int, tuple[str, Any]] = {}
        self._closed = False
        try:
            for layer in model.gemm_layers:
                for w in layer.group_weights:
                    try:
                        handle = overlay.load_weights(w)
                    except ValueError as e:
                        raise ValueError(f"layer {layer.name} ({layer.op}, N={w.shape[0]}, K={layer.k}) "
                                         f"cannot "
                                         f"be mapped onto the accelerator: {e}") from e
                    self._weights[id(w)] = (layer.name, handle)
        except BaseException:
            self.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Runtime is closed (close() or the end of its with block freed the "
                               "model's weights on the device); make a new Runtime(model, overlay)")
        if getattr(self.overlay, "closed", False):
            raise RuntimeError("the overlay under this Runtime was closed, which freed the model's weights "
                               "on the device; open a new overlay (antq.open_overlay) and a new Runtime")

    def gemm(self, a: QuantizedTensor, w: QuantizedTensor) -> np.ndarray:
        """The accelerator's exact GEMM with ``w`` taken from its resident device buffer."""
        self._check_open()
        try:
            name, handle = self._weights[id(w)]
        except KeyError:
            raise ValueError("this weight is not resident on the device: Runtime.gemm only serves the "
                             "model's own layers") from None
        y = self.overlay.gemm(a, handle)
        self.calls.append(LayerCall(name, a.shape[0], w.shape[0], a.shape[1], self.overlay.last_timing))
        return y

    def requantize(self, a: Any, w: QuantizedTensor, p: Params, layer: GemmLayer, batch: int) -> DeviceValue:
        """The layer's GEMM with its epilogue on the IP; the codes stay on the device. (With more
        output columns than the IP's epilogue holds, or an array that cannot write packed tiles,
        the int64 result comes back and the host applies the same epilogue.)"""
        self._check_open()
        if layer.n > regmap.EPI_MAX_COLS or not regmap.epilogue_tiles_ok(self.overlay.array):
            acc = self.gemm(a, w)  # the epilogue's own function, on the host
            return HostValue(layer.output_layout(requantized(acc, p, layer.out), batch), batch)
        _, handle = self._weights[id(w)]
        out = self.overlay.gemm(a, handle, epilogue=p)
        self.calls.append(LayerCall(layer.name, a.shape[0], w.shape[0], a.shape[1], self.overlay.last_timing))
        return ResidentCodes(self, out, layer, batch)

    def act_requantize(self, a: QuantizedTensor, b: QuantizedTensor, p: Params) -> np.ndarray:
        """One activation x activation GEMM call with its epilogue on the IP: its (M, N) codes,
        fetched (4-bit codes back instead of int64; the consumer needs them rearranged on the host)."""
        if b.shape[0] > regmap.EPI_MAX_COLS or not regmap.epilogue_tiles_ok(self.overlay.array):
            return epilogue.apply(self.act_gemm(a, b), p)
        out = self.overlay.gemm(a, b, epilogue=p)
        self.calls.append(LayerCall(ACT_GEMM, a.shape[0], b.shape[0], a.shape[1], self.overlay.last_timing))
        try:
            return self.overlay.fetch(out).codes
        finally:
            out.free()

    def act_gemm(self, a: QuantizedTensor, b: QuantizedTensor) -> np.ndarray:
        """The accelerator's exact GEMM of two activation operands, both packed for this call. Its calls
        are recorded as :data:`ACT_GEMM` (a MatmulLayer makes ``layer.calls(batch)`` of them, in order)."""
        y = self.overlay.gemm(a, b)
        self.calls.append(LayerCall(ACT_GEMM, a.shape[0], b.shape[0], a.shape[1], self.overlay.last_timing))
        return y

    def run(self, x: Any, *, trace: bool = False, batch_size: int | None = None, progress: bool = False
            ) -> np.ndarray | tuple[np.ndarray, list[TraceRecord]]:
        """Outputs for inputs ``x`` (B, ...), in batches of ``batch_size`` (default: one batch)."""
        self._check_open()
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, Integral)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.model.check_inputs(x)  # names, shape, dtype, empty batch, NaN, float32 range: before any GEMM
        self.calls.clear()
        n = batch_len(x)
        step = n if batch_size is None else int(batch_size)
        if trace and step < n:
            raise ValueError("trace=True needs the whole input in one batch (batch_size=None)")
        before = dataclasses.replace(self.overlay.traffic)
        try:
            if step >= n:
                res = self._run_batch(x, trace)
            else:
                res = _concat([self._run_batch(batch_slice(x, i, i + step), False)
                               for i in tqdm(range(0, n, step), desc="inference", unit="batch",
                                             disable=not progress)])
            self.traffic = self.overlay.traffic.since(before)
            if trace:  # the records hold values, as with the reference (fetched after the count)
                for r in res[1]:
                    if isinstance(r.output, DeviceValue):
                        r.output = r.output.materialize()
            return res
        finally:
            self._free_resident()

    def _run_batch(self, x: Any, trace: bool) -> Any:
        try:
            return self.model.run(x, gemm=self.gemm, trace=trace, act_gemm=self.act_gemm,
                                  requantize=self.requantize if self.chain else None,
                                  act_requantize=self.act_requantize)
        finally:
            if not trace:
                self._free_resident()

    def _free_resident(self) -> None:
        for r in self._resident:
            r.tensor.free()
        self._resident.clear()

    __call__ = run

    @property
    def resident_buffers(self) -> int:
        return len(self._weights)

    def close(self) -> None:
        """Free the resident weight buffers (the overlay stays usable)."""
        self._free_resident()
        if not getattr(self.overlay, "closed", False):
            for layer in self.model.layers:
                for p in {id(q): q for q in (layer.epilogue, getattr(layer, "call_epilogue", None))
                          if q is not None}.values():
                    self.overlay.release(p)
        for _, handle in self._weights.values():
            handle.free()
        self._weights.clear()
        self._closed = True

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Run an integer model on the overlay: every GEMM on the accelerator, everything else on the host.

:class:`Runtime` loads every Conv/Linear weight of an :class:`~antq.model.graph.IntegerModel` (each
group's, for grouped convolutions) into a device buffer once and passes :meth:`Runtime.gemm` to
:meth:`IntegerModel.run`; the activation x activation GEMMs (attention's Q.K^T and P.V) have no
resident operand, so :meth:`Runtime.act_gemm` packs both per call. The host graph
(requantization, bias, ReLU, pooling, softmax, LayerNorm, ...) is the very code that runs with
:func:`antq.core.reference.gemm`. Because the accelerator's GEMM is exact, a run on the
overlay (board or any emulation level) equals the software reference bit for bit, and so equals
the eval-mode fake-quant torch model (docs/contracts.md §11).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from tqdm import tqdm

from ..core import regmap
from ..core.quantize import QuantizedTensor
from ..model.graph import IntegerModel, TraceRecord, batch_len, batch_slice


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


class Runtime:
    """A IntegerModel bound to an AntOverlay, its weights resident on the device.

    >>> with Runtime(antq.load("m.antq"), antq.open_overlay("csim")) as rt:
    ...     logits = rt.run(x)
    """

    def __init__(self, model: IntegerModel, overlay: Any) -> None:
        if not isinstance(model, IntegerModel):
            raise TypeError(f"model must be an antq IntegerModel (antq.load of a .antq file), got "
                            f"{type(model).__name__}")
        bad = [f"{layer.name} ({layer.act_fmt.name} x {layer.w_fmt.name})" for layer in model.layers
               if not regmap.accepts(layer.act_fmt, layer.w_fmt)]
        if bad:
            raise ValueError("the accelerator cannot run these layers' formats (it decodes 4-bit int/pot/"
                             f"flint/float, and ints up to 8 bits): {', '.join(bad)}; re-quantize them with "
                             "bits=4 or as int")
        self.model, self.overlay = model, overlay
        self.calls: list[LayerCall] = []
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

    def act_gemm(self, a: QuantizedTensor, b: QuantizedTensor) -> np.ndarray:
        """The accelerator's exact GEMM of two activation operands, both packed for this call. Its calls
        are recorded as :data:`ACT_GEMM` (a MatmulLayer makes one call per leading index, in order)."""
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
        if step >= n:
            return self.model.run(x, gemm=self.gemm, trace=trace, act_gemm=self.act_gemm)
        outs = [self.model.run(batch_slice(x, i, i + step), gemm=self.gemm, act_gemm=self.act_gemm)
                for i in tqdm(range(0, n, step), desc="inference", unit="batch", disable=not progress)]
        return _concat(outs)

    __call__ = run

    @property
    def resident_buffers(self) -> int:
        return len(self._weights)

    def close(self) -> None:
        """Free the resident weight buffers (the overlay stays usable)."""
        for _, handle in self._weights.values():
            handle.free()
        self._weights.clear()
        self._closed = True

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

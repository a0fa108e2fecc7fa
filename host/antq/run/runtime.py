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
in a device buffer (:class:`DeviceCodes`). The next Linear layer takes them as its activation
operand as they are, the next convolution as the IP's own im2col of them (conv mode,
``AntOverlay.im2col``); a host op that needs them (pooling, flatten, ...) fetches the 4-bit codes,
not int64 accumulators. The epilogue is the function the reference applies on the host, so the
results are the same bits (docs/contracts.md §13). ``chain=False`` reads every layer's int64
result and requantizes on the host: the baseline ``antq bench`` measures against.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from tqdm import tqdm

from ..core import epilogue, pack, regmap
from ..core.epilogue import Params
from ..core.quantize import QuantizedTensor
from ..model.graph import (
    DeviceValue,
    GemmLayer,
    HeadsSlice,
    HeadsSource,
    IntegerModel,
    MatmulCall,
    MatmulLayer,
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


class DeviceCodes(DeviceValue):
    """Requantized codes left on the device: a packed (M, N) tensor, and where in it each element
    of the value the graph sees lies (``index``, the value's shape)."""

    def __init__(self, rt: Runtime, tensor: Any, index: np.ndarray, batch: int, scale: np.float32, name: str,
                 base: DeviceCodes | None = None, layout: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> None:
        self.rt, self.tensor, self.index, self.batch = rt, tensor, index, batch
        self.scale = np.float32(scale) if np.ndim(scale) == 0 else np.asarray(scale, np.float32)
        """The codes' scale, or one per column of the (M, N) tensor."""
        self.name = name
        """The producing layer's name."""
        self._base = self if base is None else base
        self._layout = layout
        """The (M, N) values -> this value as a view (what ``index`` is of ``arange``), if known."""
        self._values: np.ndarray | None = None
        if base is None:
            rt._resident.append(self)

    def relayout(self, op: Any) -> DeviceCodes | None:
        idx = op(self.index)
        if not isinstance(idx, np.ndarray) or idx.ndim == 0 or idx.dtype != self.index.dtype:
            return None
        return DeviceCodes(self.rt, self.tensor, idx, self.batch, self.scale, self.name, self._base)

    def shaped(self) -> np.ndarray:
        return self.index

    def operand_for(self, layer: GemmLayer) -> Any | None:
        """The codes as they are, for a Linear layer whose (M, K) operand they already are, or the
        IP's own im2col of them (conv mode) for a convolution on the NHWC pixels they are."""
        t, idx = self.tensor, self.index
        if layer.groups != 1 or layer.act_fmt != t.fmt or np.ndim(self.scale) \
                or layer.act_scale != self.scale or idx.shape != (self.batch, *layer.in_shape):
            return None
        if layer.op == "linear":
            if t.shape == (idx.size // layer.k, layer.k) and _is_arange(idx):
                return t
            return None
        c, h, w = layer.in_shape
        geo = {"hw": (h, w), "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
               "dilation": layer.dilation}
        ov = self.rt.overlay
        if t.shape == (self.batch * h * w, c) and _is_arange(idx.transpose(0, 2, 3, 1)) \
                and ov.can_im2col(t, **geo):
            return ov.im2col(t, **geo)
        return None

    def heads_source(self, layer: MatmulLayer, which: str) -> HeadsSource | None:
        """Where ``layer``'s operand ``which`` lies in these codes, when this value's indices are
        attention's head split of a (B*T, Ks) projection output (Q as A, K^T or V as B: one of the
        three rules of docs/contracts.md section 15), its columns carry the operand's scale, and
        the IP can take every call of the batch; None otherwise."""
        t, idx, ov = self.tensor, self.index, self.rt.overlay
        if len(layer.a_shape) != 3 or len(layer.b_shape) != 3 or not hasattr(ov, "can_heads"):
            return None
        fmt, scale = (layer.a_fmt, layer.a_scale) if which == "a" else (layer.b_fmt, layer.b_scale)
        heads, m, k, n, b = layer.heads, layer.a_shape[-2], layer.k, layer.n, self.batch
        shape = (b, heads, m, k) if which == "a" else (b, heads, k, n)
        if t.fmt != fmt or idx.shape != shape or t.shape[1] == 0:
            return None
        ks = t.shape[1]
        p_, h_, i_, j_ = np.ix_(*(np.arange(d) for d in shape))
        c0 = int(idx.flat[0])
        hs = int(idx[0, 1, 0, 0]) - c0 if heads > 1 else 0
        for rule, tokens, width in ([("rows", m, k)] if which == "a" else [("kt", n, k), ("v", k, n)]):
            if t.shape[0] != b * tokens or c0 >= ks or hs < 0:
                continue
            row, col = {"rows": (p_ * tokens + i_, h_ * hs + j_), "kt": (p_ * tokens + j_, h_ * hs + i_),
                        "v": (p_ * tokens + i_, h_ * hs + j_)}[rule]
            if not np.array_equal(idx, row * ks + c0 + col):
                continue
            stride = hs if heads > 1 else width
            cols = (c0 + np.arange(heads)[:, None] * stride + np.arange(width)).ravel()
            if not np.all(np.broadcast_to(self.scale, (ks,))[cols] == np.float32(scale)):
                return None
            s_max, g, tile = layer.samples_per_call, layer.heads_per_call, ov.array.rows
            # the call reading the most source rows (from its first sample's row tile) and the last
            # head group (the furthest columns) bound what every call needs
            p0 = max(range(0, b, s_max), key=lambda p: min(b, p + s_max) * tokens - p * tokens // tile * tile)
            if not ov.can_heads(t, rule, samples=s_max, heads=g, tokens=tokens, width=width,
                                col0=c0 + (heads - g) * stride, stride=stride, row0=p0 * tokens):
                return None
            return HeadsSource(self, rule, tokens, width, c0, stride)
        return None

    def materialize(self) -> np.ndarray:
        """Fetch the codes (4-bit, or int8; once for all the views of one tensor) and give the
        values the reference computes."""
        base = self._base
        if base._values is None:
            with self.rt._count(self.name):
                q = self.rt.overlay.fetch(base.tensor)
            base._values = epilogue.dequantized(q.codes, q.fmt, self.scale)
        if self._layout is not None:  # the producer's own layout: a view, no gather
            return self._layout(base._values)
        return base._values.reshape(-1)[self.index]


def _is_arange(idx: np.ndarray) -> bool:
    """Whether ``idx`` in row-major order is 0, 1, 2, ...: the tensor's own element order."""
    return bool((idx.reshape(-1) == np.arange(idx.size)).all())


class HostValue(DeviceValue):
    """A requantized output the host computed (the IP's epilogue cannot hold the layer)."""

    def __init__(self, values: np.ndarray, batch: int) -> None:
        self.values, self.batch = values, batch

    def shaped(self) -> np.ndarray:
        return self.values

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
        self.layer_traffic: dict[str, Any] = {}
        """The same per GEMM layer of the last run: its calls' operands, results and parameters,
        and the fetches of its requantized codes; the layers' sum is :attr:`traffic`."""
        self._counts: dict[str, Any] = {}
        self._counting = False
        self._resident: list[DeviceCodes] = []
        self._stack_s = 0.0
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

    @contextlib.contextmanager
    def _count(self, name: str) -> Iterator[None]:
        """Add the traffic of the block to layer ``name`` (the outermost block only)."""
        if self._counting:
            yield
            return
        before = dataclasses.replace(self.overlay.traffic)
        self._counting = True
        try:
            yield
        finally:
            self._counting = False
            d = self.overlay.traffic.since(before)
            t = self._counts.get(name)
            self._counts[name] = d if t is None else t + d

    def gemm(self, a: QuantizedTensor, w: QuantizedTensor) -> np.ndarray:
        """The accelerator's exact GEMM with ``w`` taken from its resident device buffer."""
        self._check_open()
        try:
            name, handle = self._weights[id(w)]
        except KeyError:
            raise ValueError("this weight is not resident on the device: Runtime.gemm only serves the "
                             "model's own layers") from None
        with self._count(name):
            y = self.overlay.gemm(a, handle)
        self.calls.append(LayerCall(name, a.shape[0], w.shape[0], a.shape[1], self.overlay.last_timing))
        return y

    def requantize(self, a: Any, w: QuantizedTensor, p: Params, layer: GemmLayer, batch: int) -> DeviceValue:
        """The layer's GEMM with its epilogue on the IP; the codes stay on the device. (With more
        output columns than the IP's epilogue holds, or an array that cannot write packed tiles,
        the int64 result comes back and the host applies the same epilogue.)"""
        with self._count(layer.name):
            return self._requantize(a, w, p, layer, batch)

    def _requantize(self, a: Any, w: QuantizedTensor, p: Params, layer: GemmLayer, batch: int) -> DeviceValue:
        self._check_open()
        if layer.n > regmap.EPI_MAX_COLS or not regmap.epilogue_tiles_ok(self.overlay.array):
            acc = self.gemm(a, w)  # the epilogue's own function, on the host
            return HostValue(layer.output_layout(requantized(acc, p, layer.out), batch), batch)
        _, handle = self._weights[id(w)]
        out = self.overlay.gemm(a, handle, epilogue=p)
        self.calls.append(LayerCall(layer.name, a.shape[0], w.shape[0], a.shape[1], self.overlay.last_timing))
        m, n = out.shape
        layout = functools.partial(layer.output_layout, batch=batch)
        return DeviceCodes(self, out, layout(np.arange(m * n).reshape(m, n)), batch, layer.out.s_out,
                           layer.name, layout=layout)

    def act_requantize(self, layer: MatmulLayer, calls: list[MatmulCall], shape: tuple[int, int],
                       index: np.ndarray, batch: int) -> DeviceValue:
        """An activation x activation GEMM with its epilogue on the IP: every call writes its block
        of one (P*M, H*N) device tensor of codes (``out=``), which stays on the device (attention's
        P.V is then the output projection's operand as it is). Blocks the packed layout cannot
        hold apart (:meth:`~antq.driver.overlay.DeviceTensor.block`) are written to their own
        buffers and fetched, 4-bit codes instead of int64; an epilogue the IP cannot run is the
        host's."""
        with self._count(layer.name):
            return self._act_requantize(layer, calls, shape, index, batch)

    def _act_requantize(self, layer: MatmulLayer, calls: list[MatmulCall], shape: tuple[int, int],
                        index: np.ndarray, batch: int) -> DeviceValue:
        p, ov = layer.call_epilogue, self.overlay
        codes = np.empty(shape, np.uint8)  # a host copy of the codes, where they come back
        if p.channels > regmap.EPI_MAX_COLS or not regmap.epilogue_tiles_ok(ov.array):
            for acc, (_, _, (r0, r1), (c0, c1)) in zip(self.act_calls(layer, calls), calls, strict=True):
                codes[r0:r1, c0:c1] = epilogue.apply(acc, p)
            return HostValue(epilogue.dequantized(codes, p.fmt, layer.out.s_out).reshape(-1)[index], batch)
        out = ov.empty(shape, p.fmt, scale=layer.out.s_out)
        try:
            blocks = [out.block(rows, cols) for _, _, rows, cols in calls]
        except ValueError:
            out.free()
            blocks = None
        with self._stacked(calls) as operands:
            if blocks is not None:
                try:
                    for (a, b), blk in zip(operands, blocks, strict=True):
                        self._act_call(a, b, p, blk)
                except TimeoutError:
                    raise  # the IP may still write the output: the overlay's close() frees it
                except BaseException:
                    out.free()
                    raise
                return DeviceCodes(self, out, index, batch, layer.out.s_out, layer.name)  # freed with the run
            for (a, b), (_, _, (r0, r1), (c0, c1)) in zip(operands, calls, strict=True):
                y = self._act_call(a, b, p, None)  # each call's own buffer, fetched
                try:
                    codes[r0:r1, c0:c1] = ov.fetch(y).codes
                finally:
                    y.free()
        return HostValue(epilogue.dequantized(codes, p.fmt, layer.out.s_out).reshape(-1)[index], batch)

    def act_calls(self, layer: MatmulLayer, calls: list[MatmulCall]) -> list[np.ndarray]:
        """All calls of an activation x activation GEMM, their operands packed together
        (:meth:`_stacked`): their int64 results, in order."""
        self._check_open()
        with self._count(layer.name), self._stacked(calls) as operands:
            return [self._act_call(a, b, None, None) for a, b in operands]

    @contextlib.contextmanager
    def _stacked(self, calls: list[MatmulCall]) -> Iterator[list[tuple[Any, Any]]]:
        """Each call's (a, b) as blocks of one device tensor per side, packed and flushed once for
        all the calls instead of once per call (freed afterwards). A side whose calls' operands do
        not stack into one packed matrix (rows not whole tiles, int8's two nibble planes, a single
        call) stays per call."""
        ov, sides, loaded = self.overlay, [], []
        t0 = time.perf_counter()
        try:
            for j, side in ((0, "a"), (1, "w")):
                mats = [c[j] for c in calls]
                if isinstance(mats[0], HeadsSlice):  # generated by the IP from codes on the device
                    sides.append([self._heads_operand(x) for x in mats])
                    continue
                rows = np.cumsum([0] + [t.shape[0] for t in mats])
                tile = ov.array.rows if side == "a" else ov.array.cols
                if len(mats) == 1 or len({t.shape[1] for t in mats}) != 1 or pack.planes(mats[0].bits) != 1 \
                        or any(r % tile for r in rows[1:-1]):
                    sides.append(mats)
                    continue
                f = mats[0].fmt
                codes = np.concatenate([t.codes for t in mats])
                big = ov.load(QuantizedTensor(codes, kind=f.kind, bits=f.bits, signed=f.signed,
                                              scale=mats[0].scale), side)
                loaded.append(big)
                try:
                    sides.append([big.block((rows[i], rows[i + 1])) for i in range(len(mats))])
                except ValueError:  # a layout whose blocks are not packed matrices
                    sides.append(mats)
            self._stack_s = time.perf_counter() - t0
            yield list(zip(*sides, strict=True))
        finally:
            for t in loaded:
                t.free()

    def _heads_operand(self, x: HeadsSlice) -> Any:
        """The overlay's heads-mode operand of one call's side."""
        src = x.source
        return self.overlay.heads(src.value.tensor, src.rule, samples=x.samples, heads=x.heads,
                                  tokens=src.tokens, width=src.width, col0=src.col0 + x.head0 * src.stride,
                                  stride=src.stride, row0=x.first * src.tokens, count=x.count)

    def _act_call(self, a: Any, b: Any, p: Params | None, out: Any) -> Any:
        y = self.overlay.gemm(a, b, epilogue=p, out=out)
        t = self.overlay.last_timing
        if self._stack_s:  # the stacked operands' pack and flush count as the first call's packing
            t.pack_s, t.total_s, self._stack_s = t.pack_s + self._stack_s, t.total_s + self._stack_s, 0.0
        self.calls.append(LayerCall(ACT_GEMM, a.shape[0], b.shape[0], a.shape[1], t))
        return y

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
        self._counts = {}
        try:
            if step >= n:
                res = self._run_batch(x, trace)
            else:
                res = _concat([self._run_batch(batch_slice(x, i, i + step), False)
                               for i in tqdm(range(0, n, step), desc="inference", unit="batch",
                                             disable=not progress)])
            self.traffic = self.overlay.traffic.since(before)
            self.layer_traffic = dict(self._counts)
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
                                  act_requantize=self.act_requantize, act_calls=self.act_calls)
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

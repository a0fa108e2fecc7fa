"""The exported quantized model: integer GEMM layers plus a host graph, runnable without fp32 weights.

A :class:`IntegerModel` is what ``antq.save`` writes for a quantized network and ``antq.load``
gives back. It holds a list of graph nodes. Conv2d and Linear nodes are :class:`GemmLayer` s:
packed weight codes (N, K) with per-output-channel scales (BatchNorm folded in before
calibration), a bias and a frozen per-tensor activation format and scale; a grouped convolution
is one GEMM per group. Activation x activation GEMMs (attention's Q.K^T and P.V) are
:class:`MatmulLayer` s with both operands requantized per tensor. Everything else (embeddings,
ReLU, pooling, residual adds, LayerNorm, softmax, masks, reshapes) is a host op on float32 (or
integer) values (:data:`HOST_OPS`). A model has one or more typed inputs (:class:`InputSpec`).

:meth:`IntegerModel.run` executes the graph. For every GEMM layer it requantizes the input with
:func:`antq.core.quantize.quantize_as` (the canonical float32 rounding), forms the (M, K) activation
matrix (im2col for Conv2d), and calls ``gemm(a, w)``, which must return the exact int64
accumulators (M, N): :func:`antq.core.reference.gemm` by default, the accelerator's in the runtime.
The output is :func:`rescale` of them, or, for a layer whose output feeds the next GEMM layer
through ops that keep grid values (a :class:`Requant`, chosen at export by
:func:`antq.model.export.fusion_plan`), the integer epilogue's codes in that layer's activation
format (:func:`antq.core.epilogue.apply`, docs/contracts.md section 13) as float32 values. Nothing
outside ``gemm`` depends on it, so any exact ``gemm`` gives bit-identical results; the fake-quant
torch model in eval mode calls the same functions, so it gives them too; and a runtime may keep
such an output on the device as codes (a :class:`DeviceValue`) because the next layer's
requantization gives back exactly those codes. This module needs numpy only (not torch).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import arch, container, epilogue, formats, native, reference, regmap
from ..core.formats import Format
from ..core.quantize import QuantizedTensor, check_real, quantize_as, to_numpy
from ..core.regmap import conv_out_hw
from .hostops import DTYPES as HOST_DTYPES
from .hostops import HOST_OPS, LAYOUT_OPS, SHAPE_OPS

STATE_FORMAT = "antq-qmodel"
STATE_VERSION = 4
"""2: several typed inputs, grouped convolutions, activation x activation GEMMs. 3: a GEMM layer's
output may be requantized by the integer epilogue (:class:`Requant`). 4: with one scale per output
column (several consumers)."""
PLAIN_VERSION = 3
"""The version written for a model without per-column scales, which an antq reading 2-3 loads."""
READS = (2, 3, 4)
"""Model format versions this antq loads (a version-2 model has no requantized outputs)."""

Gemm = Callable[[QuantizedTensor, QuantizedTensor], np.ndarray]
Requantize = Callable[..., "DeviceValue"]
"""``requantize(a, w, params, layer, batch)``: a runtime's GEMM with the epilogue on the device."""

REQUANT_ACTS = ("none", "relu")
"""Activations a :class:`Requant` folds into the epilogue's clamp (relu: L = 0)."""


@dataclass(frozen=True)
class Requant:
    """A GEMM layer's output as codes of its consumers' activation format and scale.

    The consumer is the next GEMM layer, reached through ops that map grid values to grid values
    (a folded ReLU, max pooling, flatten, reshape): its requantization of those float32 values
    gives back the codes exactly, so the output can stay on the device as codes. Several
    consumers of one format may each read their own output columns through ops that only move
    elements (attention's q, k and v of one projection): ``scale`` is then one scale per output
    column, each its consumer's.
    """

    fmt: Format
    scale: np.float32 | tuple[np.float32, ...]
    act: str = "none"
    to: str = ""
    """The consuming layers' names (for summaries; not part of the arithmetic)."""

    def __post_init__(self) -> None:
        if np.ndim(self.scale) == 0:
            scale = np.float32(self.scale)
        else:
            scale = tuple(np.float32(v) for v in np.asarray(self.scale, np.float64).reshape(-1))
            if not scale:
                raise ValueError("requantization scale per column is empty")
        object.__setattr__(self, "scale", scale)
        if not all(np.isfinite(v) and v > 0 for v in np.atleast_1d(np.asarray(scale, np.float32))):
            raise ValueError("requantization scale must be finite and positive")
        if self.act not in REQUANT_ACTS:
            raise ValueError(f"requantization act must be one of {REQUANT_ACTS}, got {self.act!r}")
        epilogue.check_format(self.fmt)

    @property
    def s_out(self) -> np.float32 | np.ndarray:
        """The scale as :func:`antq.core.epilogue.dequantized` takes it: a scalar or float32 (N,)."""
        return self.scale if np.ndim(self.scale) == 0 else np.asarray(self.scale, np.float32)

    def state(self) -> dict:
        scale = float(self.scale) if np.ndim(self.scale) == 0 else [float(v) for v in self.scale]
        return {"kind": self.fmt.kind, "bits": self.fmt.bits, "signed": self.fmt.signed,
                "scale": scale, "act": self.act, "to": self.to}

    @classmethod
    def from_state(cls, s: dict) -> Requant:
        return cls(formats.get(s["kind"], s["bits"], s["signed"]), s["scale"], s["act"], s["to"])


def requant_params(act_fmt: Format, act_scale: np.float32, w_fmt: Format, w_scale: np.ndarray, k: int,
                   bias: np.ndarray | None, out: Requant) -> epilogue.Params | None:
    """The epilogue parameters of a layer requantizing to ``out``; None where the integer epilogue
    cannot represent them (a channel whose multiplier rounds to 0, say a dead channel with a tiny
    weight scale): such a layer keeps :func:`rescale`. Exact rational arithmetic on the float32
    scales and bias, so the integer model and the fake-quant model get the same answer anywhere."""
    n = max(int(np.asarray(w_scale).size), int(np.size(out.s_out)))
    try:
        return epilogue.params(fmt=out.fmt, s_a=float(np.float32(act_scale)),
                               s_w=np.asarray(w_scale, np.float32).astype(np.float64).reshape(-1),
                               s_out=np.asarray(out.s_out, np.float64),
                               acc_max=epilogue.acc_bound(act_fmt, w_fmt, k),
                               bias=None if bias is None else np.asarray(bias, np.float32).astype(np.float64),
                               act=out.act, channels=n)
    except ValueError:
        return None


def requantized(acc: np.ndarray, p: epilogue.Params, out: Requant) -> np.ndarray:
    """float32 (M, N) values of the epilogue's codes for exact accumulators ``acc`` (M, N)."""
    return epilogue.dequantized(epilogue.apply(acc, p), out.fmt, out.s_out)


@dataclass(frozen=True)
class HeadsSource:
    """Where an attention operand lies in a projection's (B*T, Ks) codes on the device (heads
    mode, docs/contracts.md section 15): sample b's token t in row b*T + t, head h's D columns
    from ``col0 + h*stride``, read by ``rule`` (``rows``: A = Q; ``kt``: B = K^T; ``v``: B = V)."""

    value: Any
    """The device value whose codes these are (the runtime's)."""
    rule: str
    tokens: int
    width: int
    col0: int
    stride: int


@dataclass(frozen=True)
class HeadsSlice:
    """One call's side of a :class:`MatmulLayer` in heads mode: ``count`` samples from sample
    ``first``, the g heads from head ``head0``, generated by the IP from ``source``."""

    source: HeadsSource
    samples: int
    heads: int
    first: int
    count: int
    head0: int

    @property
    def shape(self) -> tuple[int, int]:
        s, g, t, d = self.samples, self.heads, self.source.tokens, self.source.width
        return {"rows": (self.count * t, s * g * d), "kt": (g * t, s * g * d), "v": (g * d, s * g * t)}[
            self.source.rule]


class DeviceValue:
    """A layer's output left in device memory by a runtime, brought to the host only when a host op
    needs it. :meth:`IntegerModel.run` calls :meth:`materialize` before any host op reads it and
    offers it to the next GEMM layer as it is (:meth:`operand_for`), and to an activation x
    activation GEMM as the IP's own heads-mode operand (:meth:`heads_source`)."""

    batch: int

    def operand_for(self, layer: GemmLayer) -> Any | None:
        """The (M, K) operand of ``layer`` this value already is on the device, or None."""
        return None

    def heads_source(self, layer: MatmulLayer, which: str) -> HeadsSource | None:
        """Where operand ``which`` (``"a"`` or ``"b"``) of ``layer`` lies in this value's codes, if
        the IP can generate every call's operand from them (heads mode); None: fetch it."""
        return None

    def relayout(self, op: Callable[[np.ndarray], Any]) -> DeviceValue | None:
        """This value after a :data:`~antq.model.hostops.LAYOUT_OPS` host op (``op`` applies it to
        an array), still on the device; None: the host must fetch the value and apply the op."""
        return None

    def shaped(self) -> np.ndarray | None:
        """An array of this value's shape, for the :data:`~antq.model.hostops.SHAPE_OPS` (its
        elements are not the values); None: the host must fetch the value."""
        return None

    def materialize(self) -> np.ndarray:
        """The float32 values in the producing layer's output layout (what the reference computes)."""
        raise NotImplementedError


@dataclass
class GemmLayer:
    """One Conv2d or Linear layer as an integer GEMM: ``y = (A_codes x W_codes^T) * s_a * s_w + b``.

    ``weight`` is the (N, K) weight matrix (for Conv2d, K = C_in * kh * kw in torch's
    ``weight.reshape(N, -1)`` order), scaled per output channel along axis 0. The same object is
    used on every call, so a runtime can keep it resident on the device.
    """

    name: str
    op: str
    """``"conv2d"`` or ``"linear"``."""
    weight: QuantizedTensor
    bias: np.ndarray | None
    act_fmt: Format
    act_scale: np.float32
    in_shape: tuple[int, ...]
    """Input shape of one sample: (C, H, W) for conv2d, (..., K) for linear."""
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    """Grouped / depthwise conv2d: ``groups`` GEMMs per call, group g multiplying input channels
    ``g*C/groups ..`` by weight rows ``g*N/groups ..`` (each its own accelerator call)."""
    out: Requant | None = None
    """The output requantized to the consumer's format by the integer epilogue (groups = 1 only);
    None: the float32 :func:`rescale`."""

    def __post_init__(self) -> None:
        if self.op not in ("conv2d", "linear"):
            raise ValueError(f"layer {self.name}: op must be conv2d or linear, got {self.op!r}")
        w = self.weight
        if not isinstance(w, QuantizedTensor) or w.ndim != 2 or w.channel_axis != 0:
            raise ValueError(f"layer {self.name}: weight must be an (N, K) QuantizedTensor scaled along "
                             "axis 0")
        self.act_scale = np.float32(self.act_scale)
        if not (np.isfinite(self.act_scale) and self.act_scale > 0):
            raise ValueError(f"layer {self.name}: activation scale must be finite and positive")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, np.float32)
            if self.bias.shape != (self.n,):
                raise ValueError(f"layer {self.name}: bias shape {self.bias.shape} != ({self.n},)")
        self.in_shape = tuple(int(s) for s in self.in_shape)
        if self.op == "conv2d" and len(self.in_shape) != 3:
            raise ValueError(f"layer {self.name}: conv2d input shape must be (C, H, W), got {self.in_shape}")
        self.groups = int(self.groups)
        if self.groups < 1 or self.n % self.groups or \
                (self.op == "conv2d" and self.in_shape[0] % self.groups) \
                or (self.op == "linear" and self.groups != 1):
            raise ValueError(f"layer {self.name}: groups={self.groups} must divide the input and output "
                             "channels of a conv2d (linear layers have one group)")
        kh, kw = self.kernel
        per_k = self.in_shape[-1] if self.op == "linear" else self.in_shape[0] // self.groups * kh * kw
        if per_k != self.k:
            raise ValueError(f"layer {self.name}: input shape {self.in_shape} does not match K = {self.k}")
        ng = self.n // self.groups
        w = self.weight
        self.group_weights = [w] if self.groups == 1 else [
            QuantizedTensor(w.codes[g * ng:(g + 1) * ng], kind=w.kind, bits=w.bits, signed=w.signed,
                            scale=w.scale[g * ng:(g + 1) * ng], channel_axis=0) for g in range(self.groups)]
        """The (N/groups, K) weight of each group: the objects passed to ``gemm`` (the same on every call)."""
        self.epilogue: epilogue.Params | None = None
        """The integer epilogue of :attr:`out` (None without it)."""
        if self.out is not None:
            if self.groups != 1:
                raise ValueError(f"layer {self.name}: a requantized output needs groups = 1")
            self.epilogue = requant_params(self.act_fmt, self.act_scale, self.w_fmt, self.weight.scale,
                                           self.k, self.bias, self.out)
            if self.epilogue is None:
                raise ValueError(f"layer {self.name}: its scales cannot be requantized to "
                                 f"{self.out.fmt.name} by the integer epilogue")

    n = property(lambda self: self.weight.shape[0], doc="Output channels / features (N).")
    k = property(lambda self: self.weight.shape[1], doc="Reduction length (K).")

    @property
    def w_fmt(self) -> Format:
        return self.weight.fmt

    @property
    def hardware(self) -> bool:
        """True if the accelerator can run this layer (:func:`antq.core.regmap.accepts`)."""
        return regmap.accepts(self.act_fmt, self.w_fmt)

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        return conv_out_hw((h, w), self.kernel, self.stride, self.padding, self.dilation)

    @property
    def rows_per_sample(self) -> int:
        """M per sample: output pixels for conv2d, tokens (product of leading dims) for linear."""
        if self.op == "conv2d":
            oh, ow = self._out_hw(*self.in_shape[1:])
            return oh * ow
        return int(np.prod(self.in_shape[:-1], dtype=np.int64))

    def out_shape(self, batch: int) -> tuple[int, ...]:
        if self.op == "conv2d":
            return (batch, self.n, *self._out_hw(*self.in_shape[1:]))
        return (batch, *self.in_shape[:-1], self.n)

    def macs(self, batch: int = 1) -> int:
        """Multiply-accumulates of one call on ``batch`` samples: M * N * K."""
        return batch * self.rows_per_sample * self.n * self.k

    def activation_matrices(self, x: np.ndarray) -> list[QuantizedTensor]:
        """Requantize a float input (B, *in_shape) and lay it out as the (M, K) GEMM operand of each group."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"layer {self.name}: input of shape {x.shape}, expected (B, *{self.in_shape})")
        q = quantize_as(x, self.act_fmt, self.act_scale)
        if self.op == "linear":
            parts = [q.codes]
        else:
            cg = self.in_shape[0] // self.groups
            parts = [im2col(q.codes[:, g * cg:(g + 1) * cg], self.kernel, self.stride, self.padding,
                            self.dilation) for g in range(self.groups)]
        return [QuantizedTensor(c.reshape(-1, self.k), kind=self.act_fmt.kind, bits=self.act_fmt.bits,
                                signed=self.act_fmt.signed, scale=self.act_scale) for c in parts]

    def operands(self, x: np.ndarray | DeviceValue) -> list[Any]:
        """Each group's (M, K) operand: a DeviceValue that already is it, else :meth:`activation_matrices`."""
        if isinstance(x, DeviceValue):
            a = x.operand_for(self)
            if a is not None:
                return [a]
            x = x.materialize()
        return self.activation_matrices(x)

    def output_layout(self, y: np.ndarray, batch: int) -> np.ndarray:
        """(M, N) rows -> the layer's output (B, N, OH, OW) for conv2d, (B, ..., N) for linear."""
        if self.op == "conv2d":
            oh, ow = self._out_hw(*self.in_shape[1:])
            return y.reshape(batch, oh, ow, self.n).transpose(0, 3, 1, 2)
        return y.reshape(batch, *self.in_shape[:-1], self.n)

    def forward(self, x: np.ndarray | DeviceValue, gemm: Gemm, times: dict[str, float] | None = None,
                requantize: Requantize | None = None) -> tuple[np.ndarray | DeviceValue, np.ndarray | None]:
        """(float32 output, int64 accumulators) of this layer on input ``x``: see :func:`rescale`.

        With :attr:`out`, the output is :func:`requantized` instead; given ``requantize`` (a runtime
        that runs the epilogue on the device) it is what that returns, a :class:`DeviceValue`, and
        there are no host accumulators. ``times``, if given, receives the wall seconds of
        ``quantize`` (requantize + im2col), ``gemm`` (the callable) and ``rescale``.
        """
        t0 = time.perf_counter()
        batch = x.batch if isinstance(x, DeviceValue) else x.shape[0]
        mats = self.operands(x)
        t1 = time.perf_counter()
        if self.epilogue is not None and requantize is not None:
            val = requantize(mats[0], self.weight, self.epilogue, self, batch)
            if times is not None:
                times.update(quantize=t1 - t0, gemm=time.perf_counter() - t1, rescale=0.0)
            return val, None
        parts = [_checked_gemm(gemm, a, w, self.name) for a, w in zip(mats, self.group_weights, strict=True)]
        acc = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        t2 = time.perf_counter()
        if self.epilogue is not None:
            y = requantized(acc, self.epilogue, self.out)
        else:
            y = rescale(acc, self.act_scale, self.weight.scale, self.bias)
        y = self.output_layout(y, batch)
        if times is not None:
            times.update(quantize=t1 - t0, gemm=t2 - t1, rescale=time.perf_counter() - t2)
        return y, acc

    def state(self) -> dict:
        return {
            "name": self.name, "op": self.op, "weight": self.weight, "bias": self.bias,
            "act": {"kind": self.act_fmt.kind, "bits": self.act_fmt.bits, "signed": self.act_fmt.signed,
                    "scale": float(self.act_scale)},
            "in_shape": list(self.in_shape), "kernel": list(self.kernel), "stride": list(self.stride),
            "padding": list(self.padding), "dilation": list(self.dilation), "groups": self.groups,
            **({"out": self.out.state()} if self.out is not None else {}),
        }

    @classmethod
    def from_state(cls, s: dict) -> GemmLayer:
        act = s["act"]
        return cls(
            name=s["name"], op=s["op"], weight=s["weight"], bias=s["bias"],
            act_fmt=formats.get(act["kind"], act["bits"], act["signed"]), act_scale=np.float32(act["scale"]),
            in_shape=tuple(s["in_shape"]), kernel=tuple(s["kernel"]), stride=tuple(s["stride"]),
            padding=tuple(s["padding"]), dilation=tuple(s["dilation"]), groups=s["groups"],
            out=Requant.from_state(s["out"]) if s.get("out") is not None else None,
        )


def _checked_gemm(gemm: Gemm, a: QuantizedTensor, w: QuantizedTensor, name: str) -> np.ndarray:
    """``gemm(a, w)``, checked to be an integer (M, N) array, naming the layer if it is not."""
    acc = gemm(a, w)
    if not isinstance(acc, np.ndarray) or acc.dtype.kind not in "iu":
        raise TypeError(f"layer {name}: gemm must return an integer numpy array, got "
                        f"{type(acc).__name__} {getattr(acc, 'dtype', '')}")
    if acc.shape != (a.shape[0], w.shape[0]):
        raise ValueError(f"layer {name}: gemm returned shape {acc.shape}, expected "
                         f"{(a.shape[0], w.shape[0])}")
    return acc


MatmulCall = tuple[QuantizedTensor, QuantizedTensor, tuple[int, int], tuple[int, int]]
"""One IP call of a :class:`MatmulLayer`: ``(a, b, rows, cols)``, its result the block
``[rows[0]:rows[1], cols[0]:cols[1]]`` of the layer's output matrix (:meth:`MatmulLayer.calls_of`)."""


@dataclass
class MatmulLayer:
    """An activation x activation GEMM (attention's Q.K^T and P.V): ``y = (A x B) * s_a * s_b``.

    Both operands are activations, each requantized per tensor to its frozen format and scale
    (chosen by ANT at calibration). ``A`` is (..., M, K) and ``B`` (..., K, N) with broadcast
    leading dimensions, as ``torch.matmul``; the last leading dimension (attention's heads, H of
    them) and the others with the batch (P products of H heads) index the independent products.
    One ``gemm(a, b)`` call takes :attr:`samples_per_call` (S) of the P and
    :attr:`heads_per_call` (g) of the H at once, block-diagonally with the code of 0 elsewhere:
    ``a`` is (S*M, S*g*K), row (s, m), column (s', h, k) holding ``A[s, h, m, k]`` where s' = s;
    ``b`` is (g*N, S*g*K), row (h, n), column (s', h', k) holding ``B[s', h, k, n]`` where h' = h.
    Result row (s, m), column (h, n) is then exactly ``(A[s, h] @ B[s, h])[m, n]`` (the zeros add
    nothing), and it is the block of the layer's output matrix (P*M, H*N), row (p, m), column
    (h, n), that :meth:`calls_of` names: the layout of ``y.transpose(1, 2).reshape(B*M, H*N)``
    that attention's output projection reads. Both operands are packed per call (no operand is
    resident). The rescale is :func:`rescale` with the scalar ``s_b`` and no bias.
    """

    name: str
    a_fmt: Format
    a_scale: np.float32
    b_fmt: Format
    b_scale: np.float32
    a_shape: tuple[int, ...]
    """Per-sample shapes of the operands (without the batch dimension)."""
    b_shape: tuple[int, ...]
    op: str = "matmul"
    out: Requant | None = None
    """The output requantized by the integer epilogue (as :attr:`GemmLayer.out`; no bias)."""

    def __post_init__(self) -> None:
        self.a_scale, self.b_scale = np.float32(self.a_scale), np.float32(self.b_scale)
        for what, v in (("a", self.a_scale), ("b", self.b_scale)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"layer {self.name}: operand {what} scale must be finite and positive")
        self.a_shape, self.b_shape = tuple(int(d) for d in self.a_shape), tuple(int(d) for d in self.b_shape)
        if len(self.a_shape) < 1 or len(self.b_shape) < 2 or self.a_shape[-1] != self.b_shape[-2]:
            raise ValueError(f"layer {self.name}: operand shapes {self.a_shape} x {self.b_shape} do not "
                             "multiply (..., M, K) x (..., K, N)")
        self.epilogue: epilogue.Params | None = None
        if self.out is not None:
            self.epilogue = requant_params(self.a_fmt, self.a_scale, self.b_fmt,
                                           np.full(self.n, self.b_scale), self.k, None, self.out)
            if self.epilogue is None:
                raise ValueError(f"layer {self.name}: its scales cannot be requantized to "
                                 f"{self.out.fmt.name} by the integer epilogue")
        self.samples_per_call, self.heads_per_call, self.call_epilogue = self._merge_plan()

    @property
    def lead(self) -> tuple[int, ...]:
        """The broadcast leading dimensions of one sample."""
        return tuple(np.broadcast_shapes(self.a_shape[:-2], self.b_shape[:-2]))

    @property
    def heads(self) -> int:
        """H: the last leading dimension (1 without leading dimensions)."""
        return self.lead[-1] if self.lead else 1

    def _merge_plan(self) -> tuple[int, int, epilogue.Params | None]:
        """(S, g, the epilogue of one call): the S <= MAX_STACK and divisor g of H with the fewest
        modelled IP cycles per sample (:func:`_call_cost` on the default array), within the IP's
        limits; one call's epilogue repeats each column's M and B g times and bounds |acc| for S*g*K."""
        heads, m, k, n = self.heads, self.a_shape[-2], self.k, self.n
        best, best_cost = (1, 1, self.epilogue), heads * _call_cost(m, n, k)
        for s in range(1, MAX_STACK + 1):
            if s > 1 and (_zero_code(self.a_fmt) is None or s * m > regmap.MAX_DIM):
                break
            for g in range(1, heads + 1):
                if heads % g or (g > 1 and _zero_code(self.b_fmt) is None) or s * g * k > regmap.MAX_DIM \
                        or g * n > regmap.MAX_DIM or (s, g) == (1, 1):
                    continue
                p = self.epilogue
                if p is not None:
                    if g * n > regmap.EPI_MAX_COLS:
                        continue
                    try:
                        p = dataclasses.replace(p, mult=p.mult * g, bias=p.bias * g, acc_max=max(
                            p.acc_max, epilogue.acc_bound(self.a_fmt, self.b_fmt, s * g * k)))
                    except ValueError:  # the larger bound leaves int64: fewer products per call
                        continue
                cost = heads // g * _call_cost(s * m, g * n, s * g * k) / s
                if cost < best_cost:
                    best, best_cost = (s, g, p), cost
        return best

    @property
    def hardware(self) -> bool:
        return regmap.accepts(self.a_fmt, self.b_fmt)

    act_fmt = property(lambda self: self.a_fmt, doc="The first operand's format (as GemmLayer.act_fmt).")
    w_fmt = property(lambda self: self.b_fmt, doc="The second operand's format (as GemmLayer.w_fmt).")
    k = property(lambda self: self.a_shape[-1])
    n = property(lambda self: self.b_shape[-1])

    @property
    def calls_per_sample(self) -> int:
        """Independent (M, K) x (K, N) products per sample."""
        return int(np.prod(self.lead, dtype=np.int64))

    @property
    def rows_per_sample(self) -> int:
        return self.calls_per_sample * self.a_shape[-2]

    def macs(self, batch: int = 1) -> int:
        return batch * self.rows_per_sample * self.n * self.k

    def calls(self, batch: int) -> int:
        """IP calls of a batch of ``batch`` samples."""
        p = batch * self.calls_per_sample // self.heads
        return -(-p // self.samples_per_call) * (self.heads // self.heads_per_call)

    def calls_of(self, qa: np.ndarray | HeadsSource, qb: np.ndarray | HeadsSource,
                 ps: int | None = None) -> list[MatmulCall]:
        """The calls' operands and output blocks from the (P, H, M, K) and (P, H, K, N) codes. The
        last call of a batch may take fewer than S products; every call has the same K. A side
        given as a :class:`HeadsSource` (then ``ps`` = P) is a :class:`HeadsSlice` per call: the
        IP generates that operand (heads mode) instead of the host packing it."""
        heads, m, k, n = self.heads, self.a_shape[-2], self.k, self.n
        ps = next(q.shape[0] for q in (qa, qb) if isinstance(q, np.ndarray)) if ps is None else ps
        s_max, g = self.samples_per_call, self.heads_per_call
        groups, hg = -(-ps // s_max), heads // g
        za, zb = (0 if z is None else z for z in (_zero_code(self.a_fmt), _zero_code(self.b_fmt)))
        ar_s, ar_g = np.arange(s_max), np.arange(g)
        pad = ((0, groups * s_max - ps), (0, 0), (0, 0), (0, 0))  # samples past the batch: zeros
        fa, fb = self.a_fmt, self.b_fmt
        ta = tb = None
        # a[G, hg, s, m, s', h, k] = A[G*S + s, hg*g + h, m, k] where s' = s; b[G, hg, h, n, s', h', k] =
        # B[G*S + s', hg*g + h, k, n] where h' = h; the code of 0 elsewhere
        if isinstance(qa, np.ndarray):
            qa = np.pad(qa, pad, constant_values=za)
            a_all = np.full((groups, hg, s_max, m, s_max, g, k), za, dtype=qa.dtype)
            a_all[:, :, ar_s, :, ar_s] = qa.reshape(groups, s_max, hg, g, m, k).transpose(1, 0, 2, 4, 3, 5)
            ta = QuantizedTensor(a_all.reshape(-1, s_max * g * k), kind=fa.kind, bits=fa.bits,
                                 signed=fa.signed, scale=self.a_scale)  # checked once; calls slice it
        if isinstance(qb, np.ndarray):
            qb = np.pad(qb, pad, constant_values=zb)
            b_all = np.full((groups, hg, g, n, s_max, g, k), zb, dtype=qb.dtype)
            b_all[:, :, ar_g, :, :, ar_g] = qb.reshape(groups, s_max, hg, g, k, n).transpose(3, 0, 2, 5, 1, 4)
            tb = QuantizedTensor(b_all.reshape(-1, s_max * g * k), kind=fb.kind, bits=fb.bits,
                                 signed=fb.signed, scale=self.b_scale)
        calls = []
        for gi in range(groups):
            p0, p1 = gi * s_max, min((gi + 1) * s_max, ps)
            for hi in range(hg):
                i = gi * hg + hi
                r = i * s_max * m
                a = ta.rows(r, r + (p1 - p0) * m) if ta is not None else \
                    HeadsSlice(qa, s_max, g, p0, p1 - p0, hi * g)
                b = tb.rows(i * g * n, (i + 1) * g * n) if tb is not None else \
                    HeadsSlice(qb, s_max, g, p0, p1 - p0, hi * g)
                calls.append((a, b, (p0 * m, p1 * m), (hi * g * n, (hi + 1) * g * n)))
        return calls

    def output_index(self, batch: int) -> np.ndarray:
        """(batch, *lead, M, N): each output element's flat position in the (P*M, H*N) matrix the
        calls write (:meth:`calls_of`)."""
        m, n, heads = self.a_shape[-2], self.n, self.heads
        ps = batch * self.calls_per_sample // heads
        idx = np.arange(ps * m * heads * n).reshape(ps, m, heads, n).transpose(0, 2, 1, 3)
        return idx.reshape((batch, *self.lead, m, n))

    def forward(self, a: np.ndarray, b: np.ndarray, gemm: Gemm, times: dict[str, float] | None = None,
                requantize: Callable[..., DeviceValue] | None = None,
                gemm_calls: Callable[[MatmulLayer, list[MatmulCall]], list[np.ndarray]] | None = None
                ) -> tuple[np.ndarray | DeviceValue, np.ndarray | None]:
        """(float32 ``a @ b``, int64 accumulators (P*H, M, N)) on the quantized operands.

        ``gemm(a, b)`` runs each call of :meth:`calls_of`, or ``gemm_calls(layer, calls)`` (a
        runtime's, which packs the calls' operands together) all of them, giving their int64
        results in order. With :attr:`out` the output is :func:`requantized`; given
        ``requantize`` (a runtime's, called as ``requantize(layer, calls, shape, index, batch)``
        with :meth:`calls_of`, the output matrix's shape and :meth:`output_index`) the epilogue
        runs on the device, the output is the :class:`DeviceValue` it returns, and there are no
        host accumulators."""
        t0 = time.perf_counter()
        host = [x for x in (a, b) if not isinstance(x, HeadsSource)]
        batch = host[0].shape[0] if host else a.value.batch
        for x, want in ((a, self.a_shape), (b, self.b_shape)):
            if not isinstance(x, HeadsSource) and tuple(x.shape[1:]) != want:
                raise ValueError(f"layer {self.name}: operands of shapes {getattr(a, 'shape', 'device')} x "
                                 f"{getattr(b, 'shape', 'device')}, expected (B, *{self.a_shape}) x "
                                 f"(B, *{self.b_shape})")
        heads, (m, k), n = self.heads, self.a_shape[-2:], self.n
        lead = (batch, *self.lead)
        qa, qb = a, b  # a HeadsSource side stays on the device: the IP generates it per call
        if not isinstance(a, HeadsSource):
            qa = quantize_as(a, self.a_fmt, self.a_scale).codes
            qa = np.broadcast_to(qa, lead + qa.shape[-2:]).reshape(-1, heads, m, k)
        if not isinstance(b, HeadsSource):
            qb = quantize_as(b, self.b_fmt, self.b_scale).codes
            qb = np.broadcast_to(qb, lead + qb.shape[-2:]).reshape(-1, heads, k, n)
        ps = batch * self.calls_per_sample // heads
        calls = self.calls_of(qa, qb, ps)
        shape = (ps * m, heads * n)
        t1 = time.perf_counter()
        if self.epilogue is not None and requantize is not None:
            val = requantize(self, calls, shape, self.output_index(batch), batch)
            if times is not None:
                times.update(quantize=t1 - t0, gemm=time.perf_counter() - t1, rescale=0.0)
            return val, None
        if gemm_calls is None and any(isinstance(x, HeadsSlice) for c in calls for x in c[:2]):
            raise ValueError(f"layer {self.name}: an operand left on the device (HeadsSource) needs a "
                             "runtime's gemm_calls")
        y_mat = np.empty(shape, np.int64)
        accs = gemm_calls(self, calls) if gemm_calls is not None else \
            [_checked_gemm(gemm, ta, tb, self.name) for ta, tb, _, _ in calls]
        for acc_i, (_, _, (r0, r1), (c0, c1)) in zip(accs, calls, strict=True):
            y_mat[r0:r1, c0:c1] = acc_i
        t2 = time.perf_counter()
        acc = y_mat.reshape(-1)[self.output_index(batch)].reshape(-1, m, n)
        if self.epilogue is not None:
            y = requantized(acc.reshape(-1, n), self.epilogue, self.out)
        else:
            y = rescale(acc, self.a_scale, self.b_scale, None)
        y = y.reshape(lead + (m, n))
        if times is not None:
            times.update(quantize=t1 - t0, gemm=t2 - t1, rescale=time.perf_counter() - t2)
        return y, acc

    def state(self) -> dict:
        return {"name": self.name, "op": self.op, "a_shape": list(self.a_shape),
                "b_shape": list(self.b_shape),
                **{f"{w}": {"kind": f.kind, "bits": f.bits, "signed": f.signed, "scale": float(sc)}
                   for w, f, sc in (("a", self.a_fmt, self.a_scale), ("b", self.b_fmt, self.b_scale))},
                **({"out": self.out.state()} if self.out is not None else {})}

    @classmethod
    def from_state(cls, s: dict) -> MatmulLayer:
        fa, fb = (formats.get(s[w]["kind"], s[w]["bits"], s[w]["signed"]) for w in ("a", "b"))
        return cls(s["name"], fa, np.float32(s["a"]["scale"]), fb, np.float32(s["b"]["scale"]),
                   tuple(s["a_shape"]), tuple(s["b_shape"]),
                   out=Requant.from_state(s["out"]) if s.get("out") is not None else None)


MAX_STACK = 16
"""The most products of different samples one :class:`MatmulLayer` call stacks (S)."""


def _zero_code(fmt: Format) -> int | None:
    """The code of 0 in ``fmt``, or None if it has none (then products cannot share a call)."""
    z = np.flatnonzero(fmt.values == 0)
    return int(z[0]) if z.size else None


def _call_cost(m: int, n: int, k: int, cfg: arch.ArrayConfig = arch.DEFAULT) -> int:
    """A coarse model of one call's IP cycles: the fixed cost (arguments, one DDR latency for the
    operands and one for the results) plus, per R x C output tile, its K steps and the array's
    fill. Used only to choose how many heads one call takes; the emulator's model is exact."""
    tiles = -(-m // cfg.rows) * -(-n // cfg.cols)
    return regmap.CALL_OVERHEAD + 2 * regmap.MEM_LATENCY + tiles * (k + cfg.rows + cfg.cols)


def _layer_from_state(s: dict) -> GemmLayer | MatmulLayer:
    return MatmulLayer.from_state(s) if s["op"] == "matmul" else GemmLayer.from_state(s)


def rescale(acc: np.ndarray, act_scale: np.float32, w_scale: np.ndarray, bias: np.ndarray | None
            ) -> np.ndarray:
    """A GEMM layer's float32 output from its exact int64 accumulators (M, N).

    ``fl32(acc * (fl64(s_a) * fl64(s_w[n])) + fl64(bias[n]))``: the scale product is exact in
    float64, the accumulators are exact below 2^53, and the result is rounded once to float32.
    The fake-quant torch model (:mod:`antq.model.fakequant`) computes exactly these float64 operations in this
    order, so both give the same bits.
    """
    scale = np.float64(act_scale) * np.asarray(w_scale, np.float32).astype(np.float64)
    y = acc.astype(np.float64) * scale
    if bias is not None:
        y = y + np.asarray(bias, np.float32).astype(np.float64)
    return y.astype(np.float32)


def im2col(codes: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
    """(B, C, H, W) codes -> (B*OH*OW, C*kh*kw); padding uses code 0, which is the value 0.

    The native kernel (:mod:`antq.core.native`) copies the kw-byte runs; numpy's strided view of
    the windows copies one byte at a time, 20x slower than a copy (``antq bench-pack``).
    """
    c = np.ascontiguousarray(codes, dtype=np.uint8)
    if c.ndim != 4:
        raise ValueError(f"im2col takes (B, C, H, W) codes, got shape {c.shape}")
    oh, ow = conv_out_hw(c.shape[2:], kernel, stride, padding, dilation)
    if oh < 1 or ow < 1 or min(*kernel, *stride, *dilation) < 1 or min(padding) < 0:
        raise ValueError(f"no output pixels for input {c.shape[2:]} with kernel {kernel}, stride {stride}, "
                         f"padding {padding}, dilation {dilation}")
    return native.im2col(c, tuple(kernel), tuple(stride), tuple(padding), tuple(dilation), (oh, ow))


# ------------------------------------------------------------------------------------------------
# Graph nodes. Arguments are JSON-like: numbers, strings, None, lists, arrays, and the tagged dicts
# {"ref": node name}, {"slice": [start, stop, step]}, {"ellipsis": True} and {"dtype": name}.

@dataclass
class Node:
    """One step of the graph: ``input`` (kwargs ``shape``, ``dtype``), ``output``, ``gemm`` (a
    GemmLayer), ``act_gemm`` (a MatmulLayer on two activations), ``constant`` or a host op."""

    name: str
    op: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    layer: GemmLayer | MatmulLayer | None = None


@dataclass
class TraceRecord:
    """What one node produced in a traced run. ``name`` is the layer name (e.g. ``features.0``) for a
    GEMM node, whose ``acc`` holds the int64 accumulators, and the graph node name otherwise."""

    name: str
    op: str
    output: Any
    acc: np.ndarray | None = None
    seconds: float = 0.0
    """Wall time of the node."""
    times: dict[str, float] | None = None
    """For a GEMM node: seconds spent to ``quantize``, in ``gemm`` and to ``rescale``."""


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, the shape of one sample and its dtype (float32 or an integer type)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def _apply_op(fn: Callable[..., Any], rest: list[Any], kwargs: dict[str, Any], x: Any) -> Any:
    return fn(x, *rest, **kwargs)


def _resolve(a: Any, env: dict[str, Any]) -> Any:
    if isinstance(a, dict):
        if "ref" in a:
            return env[a["ref"]]
        if "slice" in a:
            return slice(*(_resolve(v, env) for v in a["slice"]))
        if "ellipsis" in a:
            return Ellipsis
        if "dtype" in a and len(a) == 1:
            return np.dtype(a["dtype"])
        return {k: _resolve(v, env) for k, v in a.items()}
    if isinstance(a, list):
        return [_resolve(v, env) for v in a]
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    return a


def value_users(nodes: list[Node]) -> dict[str, list[Node]]:
    """Node name -> the nodes that read its value, each once, in graph order (an op that reads
    only a shape, :data:`~antq.model.hostops.SHAPE_OPS`, is no use of the value)."""
    users: dict[str, list[Node]] = {}
    for n in nodes:
        if n.op not in SHAPE_OPS:
            for r in dict.fromkeys(_refs([n.args, n.kwargs])):
                users.setdefault(r, []).append(n)
    return users


def _refs(a: Any) -> list[str]:
    if isinstance(a, dict):
        return [a["ref"]] if "ref" in a else [r for v in a.values() for r in _refs(v)]
    if isinstance(a, list):
        return [r for v in a for r in _refs(v)]
    return []


def batch_len(x: Any) -> int:
    """Samples in a model input: an array, a tuple/list of arrays or a dict of arrays (one per input)."""
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    if isinstance(x, (tuple, list)):
        return len(x[0])
    return len(x)


def batch_slice(x: Any, start: int, stop: int) -> Any:
    """Samples ``start:stop`` of a model input (see :func:`batch_len`)."""
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(v[start:stop] for v in x)
    return x[start:stop]


class IntegerModel:
    """A quantized network that runs on integer GEMMs, with no fp32 Conv/Linear weights.

    Build one with ``antq.quantize_model(...).export()`` (or save the quantized torch model, which
    exports it) and load it with ``antq.load``. ``run(x)`` executes it in numpy.
    """

    def __init__(self, nodes: list[Node], *, name: str | None = None, dataset: str | None = None,
                 config: str | None = None, bits: int | None = None) -> None:
        self.nodes = list(nodes)
        self.name, self.dataset, self.config, self.bits = name, dataset, config, bits
        self._check_graph()
        self.inputs = [InputSpec(n.name, tuple(int(d) for d in n.kwargs["shape"]), str(n.kwargs["dtype"]))
                       for n in self.nodes if n.op == "input"]

    def _check_graph(self) -> None:
        seen: set[str] = set()
        if not any(n.op == "input" for n in self.nodes) or self.nodes[-1].op != "output":
            raise ValueError("an IntegerModel graph needs at least one input node and ends with an "
                             "output node")
        for n in self.nodes:
            if n.name in seen:
                raise ValueError(f"duplicate node name {n.name!r}")
            missing = [r for r in _refs([n.args, n.kwargs]) if r not in seen]
            if missing:
                raise ValueError(f"node {n.name!r} uses {missing} before they are computed")
            if n.op in ("gemm", "act_gemm") and not isinstance(n.layer, GemmLayer if n.op == "gemm"
                                                                else MatmulLayer):
                raise ValueError(f"{n.op} node {n.name!r} has no layer of the right kind")
            if n.op == "input" and ("shape" not in n.kwargs or n.kwargs.get("dtype") not in HOST_DTYPES):
                raise ValueError(f"input node {n.name!r} needs a shape and a dtype of {HOST_DTYPES}")
            if n.op not in ("input", "output", "gemm", "act_gemm", "constant") and n.op not in HOST_OPS:
                raise ValueError(f"node {n.name!r}: unknown host op {n.op!r}")
            seen.add(n.name)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample of the (first) input."""
        return self.inputs[0].shape

    @property
    def gemm_layers(self) -> list[GemmLayer]:
        """The Conv2d/Linear layers in execution order (their weights are what :meth:`run` passes to
        ``gemm``)."""
        return [n.layer for n in self.nodes if isinstance(n.layer, GemmLayer)]

    @property
    def matmul_layers(self) -> list[MatmulLayer]:
        """The activation x activation GEMMs (attention's Q.K^T and P.V) in execution order."""
        return [n.layer for n in self.nodes if isinstance(n.layer, MatmulLayer)]

    @property
    def layers(self) -> list[GemmLayer | MatmulLayer]:
        """Every GEMM of the model, weight and activation x activation, in execution order."""
        return [n.layer for n in self.nodes if n.layer is not None]

    @property
    def accelerator_ready(self) -> bool:
        """True if every GEMM (weight or activation x activation) uses formats the accelerator decodes."""
        return all(layer.hardware for layer in self.layers)

    def macs(self, batch: int = 1) -> int:
        return sum(layer.macs(batch) for layer in self.layers)

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        """The inputs :meth:`run` computes on, one array per model input, or a clear error naming what
        is wrong (names, count, shape, dtype, empty batch, NaN/Inf, float32 range) before any GEMM."""
        if isinstance(x, dict):
            unknown = set(x) - {i.name for i in self.inputs}
            missing = [i.name for i in self.inputs if i.name not in x]
            if unknown or missing:
                raise ValueError(f"model inputs are {[i.name for i in self.inputs]}; got {sorted(x)}")
            values = [x[i.name] for i in self.inputs]
        elif isinstance(x, (tuple, list)) and len(self.inputs) > 1:
            if len(x) != len(self.inputs):
                raise ValueError(f"the model takes {len(self.inputs)} inputs "
                                 f"({', '.join(i.name for i in self.inputs)}), got {len(x)}")
            values = list(x)
        else:
            if len(self.inputs) > 1:
                raise ValueError(f"the model takes {len(self.inputs)} inputs "
                                 f"({', '.join(i.name for i in self.inputs)}): pass a tuple or a dict")
            values = [x]
        named = len(self.inputs) > 1
        out = [self._check_input(v, spec, named) for v, spec in zip(values, self.inputs, strict=True)]
        if len({len(v) for v in out}) != 1:
            raise ValueError(f"model inputs have different batch sizes: {[len(v) for v in out]}")
        return out

    @staticmethod
    def _check_input(x: Any, spec: InputSpec, named: bool) -> np.ndarray:
        what = f"model input {spec.name!r}" if named else "model input"
        a = to_numpy(x, what)
        integer = np.dtype(spec.dtype).kind in "iub"
        if a.dtype.kind not in ("iub" if integer else "fiu") or \
                (a.dtype == np.bool_) != (spec.dtype == "bool"):
            raise TypeError(f"{what} must be a {'integer' if integer else 'real numeric'} array "
                            f"({spec.dtype}), got dtype {a.dtype}")
        want = f"(batch, {', '.join(map(str, spec.shape))})"
        if a.ndim == 0:
            raise ValueError(f"{what} is 0-d (a single number); expected a batch of shape {want}")
        if a.ndim != len(spec.shape) + 1 or tuple(a.shape[1:]) != spec.shape:
            raise ValueError(f"{what} has shape {a.shape}; expected {want}")
        if a.shape[0] == 0:
            raise ValueError(f"{what} has an empty batch (0 samples): nothing to run")
        if not integer:
            check_real(a, what)  # NaN/Inf and values float32 cannot hold
        return a.astype(spec.dtype)

    def run(self, x: Any, gemm: Gemm | None = None, trace: bool = False, act_gemm: Gemm | None = None,
            requantize: Requantize | None = None, act_requantize: Callable[..., DeviceValue] | None = None,
            act_calls: Callable[[MatmulLayer, list[MatmulCall]], list[np.ndarray]] | None = None
            ) -> np.ndarray | tuple[np.ndarray, list[TraceRecord]]:
        """Run on a batch ``x`` (B, *input_shape); returns float32 outputs.

        ``x`` is an array for a one-input model, else a tuple (in input order) or a dict by input
        name. ``gemm(a, w)`` computes every Conv/Linear layer: ``a`` is the (M, K) activation
        QuantizedTensor (per-tensor scale), ``w`` the layer's (N, K) weight (per-channel scale);
        it must return exact int64 accumulators (M, N). Default: :func:`antq.core.reference.gemm`.
        ``act_gemm(a, b)`` (default: ``gemm``) computes the activation x activation GEMMs, both
        operands per-tensor QuantizedTensors made in this call; ``act_calls(layer, calls)`` (a
        runtime's) instead runs all of one such layer's calls at once. ``requantize`` (a runtime's) runs
        the layers with a :class:`Requant` output with their epilogue on the device and returns
        :class:`DeviceValue` s, fetched only where a host op reads them (ops that only move
        elements, :data:`~antq.model.hostops.LAYOUT_OPS`, move a device value's indices instead);
        ``act_requantize`` does it for an activation x activation GEMM (needed with ``requantize``;
        see :meth:`MatmulLayer.forward`). The values are the same.
        With ``trace=True`` returns ``(output, records)``, one :class:`TraceRecord` per node (a
        requantized layer's ``acc`` is None when ``requantize`` ran it).
        """
        gemm = reference.gemm if gemm is None else gemm
        act_gemm = gemm if act_gemm is None else act_gemm
        inputs = iter(self.check_inputs(x))
        env: dict[str, Any] = {}
        records: list[TraceRecord] = []
        by_name: dict[str, TraceRecord] = {}
        out: Any = None
        for node in self.nodes:
            acc, times = None, ({} if node.layer is not None else None)
            # values left on the device come to the host before the node's clock starts: their copy
            # out is the producing layer's time ("fetch"), not this node's
            direct = node.op == "gemm" and len(node.args) == 1 and isinstance(node.args[0], dict) \
                and "ref" in node.args[0]
            if direct and isinstance(env.get(node.args[0]["ref"]), DeviceValue) \
                    and env[node.args[0]["ref"]].operand_for(node.layer) is None:
                direct = False  # not this layer's operand as it is: fetched like any host input
            # an op that only moves elements of a device value moves its indices (the value stays)
            lazy = node.op in LAYOUT_OPS and bool(node.args) and isinstance(node.args[0], dict) \
                and isinstance(env.get(node.args[0].get("ref")), DeviceValue)
            # an op that reads only the shape of a device value reads it off the value's indices
            shaped = None
            if node.op in SHAPE_OPS and node.args and isinstance(node.args[0], dict) \
                    and isinstance(env.get(node.args[0].get("ref")), DeviceValue):
                shaped = env[node.args[0]["ref"]].shaped()
            keep = direct or lazy or shaped is not None  # the first argument stays on the device
            on_device = self._heads_sources(node, env) if act_calls is not None else {}
            fetched = [x for j, x in enumerate(node.args) if j not in on_device and not (keep and j == 0)]
            for r in _refs([fetched, node.kwargs]):
                if isinstance(env.get(r), DeviceValue):
                    tf = time.perf_counter()
                    env[r] = env[r].materialize()
                    if r in by_name and by_name[r].times is not None:
                        by_name[r].times["fetch"] = time.perf_counter() - tf
            t0 = time.perf_counter()
            if node.op == "input":
                val = next(inputs)
            elif node.op == "output":
                val = out = _to_float32(_resolve(node.args[0], env))
            elif node.op == "gemm":
                src = env[node.args[0]["ref"]] if direct else _resolve(node.args[0], env)
                val, acc = node.layer.forward(src, gemm, times, requantize)
            elif node.op == "act_gemm":
                a, b = (on_device.get(j) or _resolve(node.args[j], env) for j in (0, 1))
                val, acc = node.layer.forward(a, b, act_gemm, times,
                                              None if requantize is None else act_requantize, act_calls)
            elif node.op == "constant":
                val = _resolve(node.kwargs["value"], env)
            else:
                try:
                    kwargs = {k: _resolve(v, env) for k, v in node.kwargs.items()}
                    val = None
                    if shaped is not None:
                        val = HOST_OPS[node.op](shaped, *_resolve(node.args[1:], env), **kwargs)
                    src = env[node.args[0]["ref"]] if lazy else None
                    if isinstance(src, DeviceValue):  # (not if another argument made the host fetch it)
                        val = src.relayout(functools.partial(_apply_op, HOST_OPS[node.op],
                                                             _resolve(node.args[1:], env), kwargs))
                        if val is None:
                            env[node.args[0]["ref"]] = src.materialize()
                    if val is None:
                        val = HOST_OPS[node.op](*_resolve(node.args, env), **kwargs)
                except (TypeError, ValueError, IndexError) as e:
                    raise ValueError(f"node {node.name!r} ({node.op}): {e}") from e
            env[node.name] = val
            if trace:
                rec = TraceRecord(node.layer.name if node.layer else node.name, node.op, val, acc,
                                  time.perf_counter() - t0, times)
                records.append(rec)
                by_name[node.name] = rec
        return (out, records) if trace else out

    __call__ = run

    @staticmethod
    def _heads_sources(node: Node, env: dict[str, Any]) -> dict[int, HeadsSource]:
        """The operands of an activation x activation GEMM the IP can generate from device values
        (heads mode), by argument position; {} for any other node. Both sides must agree on the
        tokens and head width (one call multiplies one set of products), else only A stays."""
        if node.op != "act_gemm" or len(node.args) < 2:
            return {}
        found = {}
        for j, which in ((0, "a"), (1, "b")):
            arg = node.args[j]
            v = env.get(arg.get("ref")) if isinstance(arg, dict) else None
            if isinstance(v, DeviceValue):
                src = v.heads_source(node.layer, which)
                if src is not None:
                    found[j] = src
        if len(found) == 2 and (found[0].tokens, found[0].width) != (found[1].tokens, found[1].width):
            del found[1]
        return found

    def summary(self) -> str:
        """One line per GEMM layer: shapes, operand formats, MACs per sample, accelerator support."""
        w = max([22, *(len(layer.name) for layer in self.layers)])
        rows = [f"{'layer':<{w}} {'op':<7} {'N x K':>11} {'act':>7} {'weight':>8} {'MACs':>9}  hw"]
        for layer in self.layers:
            rows.append(f"{layer.name:<{w}} {layer.op:<7} {f'{layer.n} x {layer.k}':>11} "
                        f"{layer.act_fmt.name:>7} "
                        f"{layer.w_fmt.name:>8} {layer.macs(1):>9}  {'yes' if layer.hardware else 'NO'}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{i.name} {i.shape}" for i in self.inputs)
        return (f"IntegerModel({self.name or 'model'}, input {shapes}, {len(self.gemm_layers)} GEMM layers, "
                f"{len(self.matmul_layers)} activation GEMMs, config {self.config}, dataset {self.dataset})")

    def __antq_state__(self) -> dict:
        nodes = []
        for n in self.nodes:
            d: dict[str, Any] = {"name": n.name, "op": n.op, "args": n.args, "kwargs": n.kwargs}
            if n.layer is not None:
                d["layer"] = n.layer.state()
            nodes.append(d)
        # the lowest version that holds the model, so that an older antq still reads what it can
        per_column = any(layer.out is not None and np.ndim(layer.out.scale) for layer in self.layers)
        version = STATE_VERSION if per_column else PLAIN_VERSION
        return {"format": STATE_FORMAT, "version": version, "name": self.name,
                "dataset": self.dataset, "config": self.config, "bits": self.bits, "nodes": nodes}

    @classmethod
    def from_state(cls, s: Any) -> IntegerModel:
        if not isinstance(s, dict) or s.get("format") != STATE_FORMAT:
            raise container.ContainerError("not a quantized model (missing the antq-qmodel header)")
        if s.get("version") not in READS:
            raise container.ContainerError(
                f"quantized model format version {s.get('version')}, but this antq reads versions "
                f"{', '.join(map(str, READS))}; re-export the model with a matching antq")
        try:
            nodes = [Node(d["name"], d["op"], d["args"], d["kwargs"],
                          _layer_from_state(d["layer"]) if "layer" in d else None) for d in s["nodes"]]
            return cls(nodes, name=s["name"], dataset=s["dataset"], config=s["config"], bits=s["bits"])
        except (KeyError, TypeError) as e:
            raise container.ContainerError(f"malformed quantized model: missing or bad field {e}") from e


def _to_float32(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.astype(np.float32) if v.dtype.kind == "f" else v
    if isinstance(v, (list, tuple)):  # a model returning several tensors: a tuple, as torch does
        return tuple(_to_float32(x) for x in v)
    if isinstance(v, dict):  # a model returning named outputs (e.g. Hugging Face's last_hidden_state)
        return {k: _to_float32(x) for k, x in v.items()}
    return v


TAG = "antq.QuantizedModel"
"""Container tag of an integer model (its name predates the IntegerModel class; files keep it)."""
TORCH_TAG = "antq.nn.QuantModel"
"""Container tag of a file saved straight from the fake-quant torch model (exported on save)."""

container.register(TAG, IntegerModel, IntegerModel.from_state)
# Files saved from the torch model carry TORCH_TAG and the same state; they load as an
# IntegerModel without importing torch. antq.model.calibrate registers its torch class for saving.
container.register(TORCH_TAG, IntegerModel, IntegerModel.from_state)

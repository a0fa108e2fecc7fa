"""The exported quantized model: integer GEMM layers plus a host graph, runnable without fp32 weights.

A :class:`QuantizedModel` is what ``antq.save`` writes for a quantized network and ``antq.load``
gives back. It holds a list of graph nodes. Conv2d and Linear nodes are :class:`GemmLayer` s:
packed weight codes (N, K) with per-output-channel scales (BatchNorm folded in before
calibration), a bias and a frozen per-tensor activation format and scale. Everything else (ReLU,
pooling, residual adds, LayerNorm, softmax, attention matmuls, reshapes) is a host op on float32
values (:data:`HOST_OPS`).

:meth:`QuantizedModel.run` executes the graph. For every GEMM layer it requantizes the input with
:func:`antq.quantize.quantize_as` (the canonical float32 rounding), forms the (M, K) activation
matrix (im2col for Conv2d), and calls ``gemm(a, w)``, which must return the exact int64
accumulators (M, N): :func:`antq.reference.gemm` by default, the accelerator's in the runtime.
The output is :func:`rescale` of them. Nothing outside ``gemm`` depends on it, so any exact
``gemm`` gives bit-identical results; and the fake-quant torch model in eval mode computes the
same operations, so it gives them too. This module needs numpy only (not torch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import container, formats, reference
from .formats import Format
from .quantize import QuantizedTensor, quantize_as

STATE_FORMAT = "antq-qmodel"
STATE_VERSION = 1

Gemm = Callable[[QuantizedTensor, QuantizedTensor], np.ndarray]


def hardware_supported(a: Format, w: Format) -> bool:
    """Can the accelerator run this operand pair: 4-bit hardware formats, or int8 x int8?"""
    hw = set(formats.hardware_formats())
    if a in hw and w in hw:
        return True
    return a.kind == w.kind == "int" and a.bits == w.bits == 8 and w.signed


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
        kh, kw = self.kernel
        per_k = self.in_shape[-1] if self.op == "linear" else self.in_shape[0] * kh * kw
        if per_k != self.k:
            raise ValueError(f"layer {self.name}: input shape {self.in_shape} does not match K = {self.k}")

    n = property(lambda self: self.weight.shape[0], doc="Output channels / features (N).")
    k = property(lambda self: self.weight.shape[1], doc="Reduction length (K).")

    @property
    def w_fmt(self) -> Format:
        return self.weight.fmt

    @property
    def hardware(self) -> bool:
        """True if the accelerator can run this layer (see :func:`hardware_supported`)."""
        return hardware_supported(self.act_fmt, self.w_fmt)

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

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

    def activation_matrix(self, x: np.ndarray) -> QuantizedTensor:
        """Requantize a float input (B, *in_shape) and lay it out as the (M, K) GEMM operand."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"layer {self.name}: input of shape {x.shape}, expected (B, *{self.in_shape})")
        q = quantize_as(x, self.act_fmt, self.act_scale)
        codes = q.codes if self.op == "linear" else _im2col(q.codes, self)
        return QuantizedTensor(codes.reshape(-1, self.k), kind=self.act_fmt.kind, bits=self.act_fmt.bits,
                               signed=self.act_fmt.signed, scale=self.act_scale)

    def forward(self, x: np.ndarray, gemm: Gemm, times: dict[str, float] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(float32 output, int64 accumulators) of this layer on input ``x``: see :func:`rescale`.

        ``times``, if given, receives the wall seconds of ``quantize`` (requantize + im2col),
        ``gemm`` (the callable) and ``rescale`` (scales, bias, layout), for latency breakdowns.
        """
        t0 = time.perf_counter()
        a = self.activation_matrix(x)
        t1 = time.perf_counter()
        acc = gemm(a, self.weight)
        t2 = time.perf_counter()
        if not isinstance(acc, np.ndarray) or acc.dtype.kind not in "iu":
            raise TypeError(f"layer {self.name}: gemm must return an integer numpy array, got "
                            f"{type(acc).__name__} {getattr(acc, 'dtype', '')}")
        if acc.shape != (a.shape[0], self.n):
            raise ValueError(f"layer {self.name}: gemm returned shape {acc.shape}, expected "
                             f"{(a.shape[0], self.n)}")
        y = rescale(acc, self.act_scale, self.weight.scale, self.bias)
        batch = x.shape[0]
        if self.op == "conv2d":
            oh, ow = self._out_hw(*self.in_shape[1:])
            y = y.reshape(batch, oh, ow, self.n).transpose(0, 3, 1, 2)
        else:
            y = y.reshape(batch, *self.in_shape[:-1], self.n)
        if times is not None:
            times.update(quantize=t1 - t0, gemm=t2 - t1, rescale=time.perf_counter() - t2)
        return y, acc

    def state(self) -> dict:
        return {
            "name": self.name, "op": self.op, "weight": self.weight, "bias": self.bias,
            "act": {"kind": self.act_fmt.kind, "bits": self.act_fmt.bits, "signed": self.act_fmt.signed,
                    "scale": float(self.act_scale)},
            "in_shape": list(self.in_shape), "kernel": list(self.kernel), "stride": list(self.stride),
            "padding": list(self.padding), "dilation": list(self.dilation),
        }

    @classmethod
    def from_state(cls, s: dict) -> GemmLayer:
        act = s["act"]
        return cls(
            name=s["name"], op=s["op"], weight=s["weight"], bias=s["bias"],
            act_fmt=formats.get(act["kind"], act["bits"], act["signed"]), act_scale=np.float32(act["scale"]),
            in_shape=tuple(s["in_shape"]), kernel=tuple(s["kernel"]), stride=tuple(s["stride"]),
            padding=tuple(s["padding"]), dilation=tuple(s["dilation"]),
        )


def rescale(acc: np.ndarray, act_scale: np.float32, w_scale: np.ndarray, bias: np.ndarray | None
            ) -> np.ndarray:
    """A GEMM layer's float32 output from its exact int64 accumulators (M, N).

    ``fl32(acc * (fl64(s_a) * fl64(s_w[n])) + fl64(bias[n]))``: the scale product is exact in
    float64, the accumulators are exact below 2^53, and the result is rounded once to float32.
    The fake-quant torch model (:mod:`antq.nn`) computes exactly these float64 operations in this
    order, so both give the same bits.
    """
    scale = np.float64(act_scale) * np.asarray(w_scale, np.float32).astype(np.float64)
    y = acc.astype(np.float64) * scale
    if bias is not None:
        y = y + np.asarray(bias, np.float32).astype(np.float64)
    return y.astype(np.float32)


def _im2col(codes: np.ndarray, layer: GemmLayer) -> np.ndarray:
    """(B, C, H, W) codes -> (B*OH*OW, C*kh*kw); padding uses code 0, which is the value 0."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel, layer.stride, layer.padding, layer.dilation
    p = np.pad(codes, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(p, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (B, C, OH, OW, kh, kw)
    b, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, c * kh * kw)


# ------------------------------------------------------------------------------------------------
# Host ops: numpy versions of the torch functions a traced model calls, with torch's signatures.
#
# Every value between ops is float32, as in the torch model. Two kinds of op keep the fake-quant
# torch model and this executor equal bit for bit (docs/contracts.md, "Fake-quant = integer model"):
#
# * exact ops (data movement, max, and one IEEE float32 operation per element: add, sub, mul,
#   div, neg, relu) give the same bits in torch and numpy, so the torch model runs its own;
# * ROUNDED_OPS (reductions, transcendentals, float matmuls, normalisations), whose float32 result
#   depends on the implementation, are defined here: float64 inside, rounded to float32 once,
#   reductions over a contiguous last axis so that a row's result does not depend on the batch.
#   In eval mode the fake-quant torch model calls these very functions (antq.nn routes them).

F32 = np.float32


def _f64(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted({int(d) % ndim for d in dims})) if dims else tuple(range(ndim))


def _reduce(x: np.ndarray, dims: tuple[int, ...], fn: Callable[[np.ndarray], np.ndarray],
            keepdim: bool) -> np.ndarray:
    """``fn`` over the last axis of ``x`` with ``dims`` moved to the end and flattened (float64)."""
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = _f64(np.transpose(x, rest + list(dims)))
    out = fn(moved.reshape(moved.shape[:len(rest)] + (-1,)))
    if keepdim:
        out = out.reshape([1 if d in dims else x.shape[d] for d in range(x.ndim)])
    return out


def _rowwise(x: np.ndarray, dim: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` on rows along ``dim`` (moved last, contiguous float64), moved back, rounded to float32."""
    d = int(dim) % x.ndim
    return np.moveaxis(fn(_f64(np.moveaxis(x, d, -1))), -1, d).astype(F32)


def _shape_args(shape: tuple) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else tuple(shape)


def _unsupported(op: str, **kw: Any) -> None:
    bad = {k: v for k, v in kw.items() if v}
    if bad:
        raise ValueError(f"host op {op}: unsupported arguments {bad}")


def _batch_norm(x, mean, var, weight, bias, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = 1.0 / np.sqrt(_f64(var) + eps)
    y = (_f64(x) - _f64(mean).reshape(shape)) * (inv * _f64(weight)).reshape(shape)
    return (y + _f64(bias).reshape(shape)).astype(F32)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(x.ndim - len(_shape_args(tuple(normalized_shape))), x.ndim))
    n = int(np.prod([x.shape[d] for d in dims]))
    mu = _reduce(x, dims, lambda r: r.sum(axis=-1) / n, keepdim=True)
    dev = _f64(x) - mu
    var = _reduce(dev, dims, lambda r: (r * r).sum(axis=-1) / n, keepdim=True)
    y = dev / np.sqrt(var + eps)
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    return y.astype(F32)


def _gelu(x, approximate="none"):
    v = _f64(x)
    if approximate == "tanh":
        return (0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))).astype(F32)
    if approximate != "none":
        raise ValueError(f"host op gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    from scipy.special import erf

    return (0.5 * v * (1 + erf(v / math.sqrt(2)))).astype(F32)


def _softmax_rows(r: np.ndarray) -> np.ndarray:
    e = np.exp(r - r.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax_rows(r: np.ndarray) -> np.ndarray:
    z = r - r.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _softmax(x, dim=None, _stacklevel=3, dtype=None):
    _unsupported("softmax", dtype=dtype)
    if dim is None:
        raise ValueError("host op softmax needs an explicit dim")
    return _rowwise(x, dim, _softmax_rows)


def _log_softmax(x, dim=None, _stacklevel=3, dtype=None):
    _unsupported("log_softmax", dtype=dtype)
    if dim is None:
        raise ValueError("host op log_softmax needs an explicit dim")
    return _rowwise(x, dim, _log_softmax_rows)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _pool_windows(x, kernel_size, stride, padding, dilation, fill):
    """(..., OH, OW, kh*kw) windows (a contiguous copy: the pooled axis is last)."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(kernel_size if stride is None or stride == [] or stride == () else stride)
    p = np.pad(x, ((0, 0),) * (x.ndim - 2) + ((ph, ph), (pw, pw)), constant_values=fill)
    win = sliding_window_view(p, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(-2, -1))
    win = win[..., ::sh, ::sw, ::dh, ::dw]
    return np.ascontiguousarray(win).reshape(win.shape[:-2] + (-1,))


def _max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _unsupported("max_pool2d", ceil_mode=ceil_mode, return_indices=return_indices)
    return _pool_windows(x, kernel_size, stride, padding, dilation, -np.inf).max(axis=-1)


def _avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    _unsupported("avg_pool2d", ceil_mode=ceil_mode, divisor_override=divisor_override)
    win = _pool_windows(_f64(x), kernel_size, stride, padding, 1, 0.0)
    if count_include_pad or _pair(padding) == (0, 0):
        return (win.sum(axis=-1) / win.shape[-1]).astype(F32)
    ones = _pool_windows(np.ones((1,) * (x.ndim - 2) + x.shape[-2:]), kernel_size, stride, padding, 1, 0.0)
    return (win.sum(axis=-1) / ones.sum(axis=-1)).astype(F32)


def _adaptive_avg_pool2d(x, output_size):
    oh, ow = _pair(output_size)
    h, w = x.shape[-2:]
    v = _f64(x)
    out = np.empty(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            cell = np.ascontiguousarray(v[..., h0:h1, w0:w1]).reshape(v.shape[:-2] + (-1,))
            out[..., i, j] = cell.sum(axis=-1) / cell.shape[-1]
    return out.astype(F32)


def _flatten(x, start_dim=0, end_dim=-1):
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def _reshape(x, *shape):
    return x.reshape(_shape_args(shape))


def _permute(x, *dims):
    return x.transpose(_shape_args(dims))


def _mean(x, dim=None, keepdim=False, dtype=None):
    _unsupported("mean", dtype=dtype)
    dims = _dims(dim, x.ndim)
    n = int(np.prod([x.shape[d] for d in dims]))
    return np.asarray(_reduce(x, dims, lambda r: r.sum(axis=-1) / n, keepdim)).astype(F32)


def _sum(x, dim=None, keepdim=False, dtype=None):
    _unsupported("sum", dtype=dtype)
    return np.asarray(_reduce(x, _dims(dim, x.ndim), lambda r: r.sum(axis=-1), keepdim)).astype(F32)


def _matmul(a, b):
    return np.matmul(_f64(a), _f64(b)).astype(F32)


def _size(x, dim=None):
    return tuple(x.shape) if dim is None else x.shape[dim]


def _getattr(x, name):
    if name == "shape":
        return tuple(x.shape)
    if name == "ndim":
        return x.ndim
    raise ValueError(f"host op getattr: unsupported attribute {name!r}")


def _getitem(x, idx):
    return x[tuple(idx) if isinstance(idx, list) else idx]


def _squeeze(x, dim=None):
    if dim is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=dim) if x.shape[dim] == 1 else x


def _cat(tensors, dim=0):
    return np.concatenate(tensors, axis=dim)


def _binary(fn):
    def op(a, b, alpha=None):
        _unsupported(fn.__name__, alpha=alpha)
        return fn(a, b)
    return op


HOST_OPS: dict[str, Callable[..., Any]] = {
    "identity": lambda x: x,
    "relu": lambda x, inplace=False: np.maximum(x, F32(0)),
    "gelu": _gelu,
    "tanh": lambda x: np.tanh(_f64(x)).astype(F32),
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-_f64(x)))).astype(F32),
    "neg": lambda x: -x,
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.true_divide),
    "matmul": _matmul,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
    "unsqueeze": lambda x, dim: np.expand_dims(x, dim % (x.ndim + 1)),
    "squeeze": _squeeze,
    "mean": _mean,
    "sum": _sum,
    "size": _size,
    "getattr": _getattr,
    "getitem": _getitem,
    "cat": _cat,
}
"""Host op name -> numpy implementation with the torch function's signature (float32 in and out)."""

ROUNDED_OPS: frozenset[str] = frozenset({
    "gelu", "tanh", "sigmoid", "matmul", "softmax", "log_softmax", "batch_norm", "layer_norm",
    "avg_pool2d", "adaptive_avg_pool2d", "mean", "sum",
})
"""Host ops defined here in float64 with one final rounding to float32. Their float32 result would
depend on the implementation, so the fake-quant torch model calls these functions in eval mode
(:mod:`antq.nn`); every other host op is exact (bit-identical in torch and numpy float32)."""


# ------------------------------------------------------------------------------------------------
# Graph nodes. Arguments are JSON-like: numbers, strings, None, lists, arrays, and the tagged dicts
# {"ref": node name}, {"slice": [start, stop, step]} and {"ellipsis": True}.

@dataclass
class Node:
    """One step of the graph: ``input``, ``output``, ``gemm`` (with a layer), ``constant`` or a host op."""

    name: str
    op: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    layer: GemmLayer | None = None


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


def _resolve(a: Any, env: dict[str, Any]) -> Any:
    if isinstance(a, dict):
        if "ref" in a:
            return env[a["ref"]]
        if "slice" in a:
            return slice(*a["slice"])
        if "ellipsis" in a:
            return Ellipsis
        return {k: _resolve(v, env) for k, v in a.items()}
    if isinstance(a, list):
        return [_resolve(v, env) for v in a]
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    return a


def _refs(a: Any) -> list[str]:
    if isinstance(a, dict):
        return [a["ref"]] if "ref" in a else [r for v in a.values() for r in _refs(v)]
    if isinstance(a, list):
        return [r for v in a for r in _refs(v)]
    return []


class QuantizedModel:
    """A quantized network that runs on integer GEMMs, with no fp32 Conv/Linear weights.

    Build one with ``antq.quantize_model(...).export()`` (or save the quantized torch model, which
    exports it) and load it with ``antq.load``. ``run(x)`` executes it in numpy.
    """

    def __init__(self, nodes: list[Node], input_shape: Sequence[int], *, name: str | None = None,
                 dataset: str | None = None, config: str | None = None, bits: int | None = None) -> None:
        self.nodes = list(nodes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.name, self.dataset, self.config, self.bits = name, dataset, config, bits
        self._check_graph()

    def _check_graph(self) -> None:
        seen: set[str] = set()
        inputs = [n for n in self.nodes if n.op == "input"]
        if len(inputs) != 1 or self.nodes[-1].op != "output":
            raise ValueError("a QuantizedModel graph needs exactly one input node and ends with an "
                             "output node")
        for n in self.nodes:
            if n.name in seen:
                raise ValueError(f"duplicate node name {n.name!r}")
            missing = [r for r in _refs([n.args, n.kwargs]) if r not in seen]
            if missing:
                raise ValueError(f"node {n.name!r} uses {missing} before they are computed")
            if n.op == "gemm" and n.layer is None:
                raise ValueError(f"gemm node {n.name!r} has no layer")
            if n.op not in ("input", "output", "gemm", "constant") and n.op not in HOST_OPS:
                raise ValueError(f"node {n.name!r}: unknown host op {n.op!r}")
            seen.add(n.name)

    @property
    def gemm_layers(self) -> list[GemmLayer]:
        """The Conv2d/Linear layers in execution order (the objects :meth:`run` passes to ``gemm``)."""
        return [n.layer for n in self.nodes if n.layer is not None]

    @property
    def accelerator_ready(self) -> bool:
        """True if every GEMM layer uses operand formats the accelerator decodes."""
        return all(layer.hardware for layer in self.gemm_layers)

    def macs(self, batch: int = 1) -> int:
        return sum(layer.macs(batch) for layer in self.gemm_layers)

    def _check_input(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            x = x.detach().cpu().numpy()
        a = np.asarray(x)
        if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
            raise TypeError(f"model input must be a real numeric array, got dtype {a.dtype}")
        if a.ndim != len(self.input_shape) + 1 or tuple(a.shape[1:]) != self.input_shape:
            raise ValueError(f"model input has shape {a.shape}; expected (batch, "
                             f"{', '.join(map(str, self.input_shape))})")
        if a.shape[0] == 0:
            raise ValueError("model input has an empty batch")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError("model input contains NaN or Inf")
        return a.astype(np.float32)

    def run(self, x: Any, gemm: Gemm | None = None, trace: bool = False
            ) -> np.ndarray | tuple[np.ndarray, list[TraceRecord]]:
        """Run on a batch ``x`` (B, *input_shape); returns float32 outputs.

        ``gemm(a, w)`` computes every Conv/Linear layer: ``a`` is the (M, K) activation
        QuantizedTensor (per-tensor scale), ``w`` the layer's (N, K) weight (per-channel scale);
        it must return exact int64 accumulators (M, N). Default: :func:`antq.reference.gemm`.
        With ``trace=True`` returns ``(output, records)``, one :class:`TraceRecord` per node.
        """
        gemm = reference.gemm if gemm is None else gemm
        env: dict[str, Any] = {}
        records: list[TraceRecord] = []
        out: Any = None
        for node in self.nodes:
            acc, times = None, ({} if node.op == "gemm" else None)
            t0 = time.perf_counter()
            if node.op == "input":
                val = self._check_input(x)
            elif node.op == "output":
                val = out = _to_float32(_resolve(node.args[0], env))
            elif node.op == "gemm":
                val, acc = node.layer.forward(_resolve(node.args[0], env), gemm, times)
            elif node.op == "constant":
                val = _resolve(node.kwargs["value"], env)
            else:
                try:
                    kwargs = {k: _resolve(v, env) for k, v in node.kwargs.items()}
                    val = HOST_OPS[node.op](*_resolve(node.args, env), **kwargs)
                except (TypeError, ValueError, IndexError) as e:
                    raise ValueError(f"node {node.name!r} ({node.op}): {e}") from e
            env[node.name] = val
            if trace:
                records.append(TraceRecord(node.layer.name if node.layer else node.name, node.op, val, acc,
                                           time.perf_counter() - t0, times))
        return (out, records) if trace else out

    __call__ = run

    def summary(self) -> str:
        """One line per GEMM layer: shapes, operand formats, MACs per sample, accelerator support."""
        rows = [f"{'layer':<22} {'op':<7} {'N x K':>11} {'act':>7} {'weight':>8} {'MACs':>9}  hw"]
        for layer in self.gemm_layers:
            rows.append(f"{layer.name:<22} {layer.op:<7} {f'{layer.n} x {layer.k}':>11} "
                        f"{layer.act_fmt.name:>7} "
                        f"{layer.w_fmt.name:>8} {layer.macs(1):>9}  {'yes' if layer.hardware else 'NO'}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return (f"QuantizedModel({self.name or 'model'}, input {self.input_shape}, "
                f"{len(self.gemm_layers)} GEMM layers, config {self.config}, dataset {self.dataset})")

    def __antq_state__(self) -> dict:
        nodes = []
        for n in self.nodes:
            d: dict[str, Any] = {"name": n.name, "op": n.op, "args": n.args, "kwargs": n.kwargs}
            if n.layer is not None:
                d["layer"] = n.layer.state()
            nodes.append(d)
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "name": self.name,
                "dataset": self.dataset, "config": self.config, "bits": self.bits,
                "input_shape": list(self.input_shape), "nodes": nodes}

    @classmethod
    def from_state(cls, s: Any) -> QuantizedModel:
        if not isinstance(s, dict) or s.get("format") != STATE_FORMAT:
            raise container.ContainerError("not a quantized model (missing the antq-qmodel header)")
        if s.get("version") != STATE_VERSION:
            raise container.ContainerError(
                f"quantized model format version {s.get('version')}, but this antq reads version "
                f"{STATE_VERSION}; re-export the model with a matching antq")
        try:
            nodes = [Node(d["name"], d["op"], d["args"], d["kwargs"],
                          GemmLayer.from_state(d["layer"]) if "layer" in d else None) for d in s["nodes"]]
            return cls(nodes, s["input_shape"], name=s["name"], dataset=s["dataset"], config=s["config"],
                       bits=s["bits"])
        except (KeyError, TypeError) as e:
            raise container.ContainerError(f"malformed quantized model: missing or bad field {e}") from e


def _to_float32(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.astype(np.float32)
    if isinstance(v, (list, tuple)):  # a model returning several tensors: a tuple, as torch does
        return tuple(_to_float32(x) for x in v)
    return v


TORCH_TAG = "antq.nn.QuantModel"
"""Container tag of a file saved straight from the torch fake-quant model (exported on save)."""

container.register("antq.QuantizedModel", QuantizedModel, QuantizedModel.from_state)
# Files saved from the torch model carry TORCH_TAG and the same state; they load as a
# QuantizedModel without importing torch. antq.nn re-registers the tag with its torch class.
container.register(TORCH_TAG, QuantizedModel, QuantizedModel.from_state)

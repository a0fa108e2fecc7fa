"""The exported quantized model: integer GEMM layers plus a host graph, runnable without fp32 weights.

A :class:`IntegerModel` is what ``antq.save`` writes for a quantized network and ``antq.load``
gives back. It holds a list of graph nodes. Conv2d and Linear nodes are :class:`GemmLayer` s:
packed weight codes (N, K) with per-output-channel scales (BatchNorm folded in before
calibration), a bias and a frozen per-tensor activation format and scale. Everything else (ReLU,
pooling, residual adds, LayerNorm, softmax, attention matmuls, reshapes) is a host op on float32
values (:data:`HOST_OPS`).

:meth:`IntegerModel.run` executes the graph. For every GEMM layer it requantizes the input with
:func:`antq.core.quantize.quantize_as` (the canonical float32 rounding), forms the (M, K) activation
matrix (im2col for Conv2d), and calls ``gemm(a, w)``, which must return the exact int64
accumulators (M, N): :func:`antq.core.reference.gemm` by default, the accelerator's in the runtime.
The output is :func:`rescale` of them. Nothing outside ``gemm`` depends on it, so any exact
``gemm`` gives bit-identical results; and the fake-quant torch model in eval mode computes the
same operations, so it gives them too. This module needs numpy only (not torch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import container, formats, native, reference, regmap
from ..core.formats import Format
from ..core.quantize import QuantizedTensor, quantize_as
from .hostops import HOST_OPS

STATE_FORMAT = "antq-qmodel"
STATE_VERSION = 1

Gemm = Callable[[QuantizedTensor, QuantizedTensor], np.ndarray]


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

    def activation_matrix(self, x: np.ndarray) -> QuantizedTensor:
        """Requantize a float input (B, *in_shape) and lay it out as the (M, K) GEMM operand."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"layer {self.name}: input of shape {x.shape}, expected (B, *{self.in_shape})")
        q = quantize_as(x, self.act_fmt, self.act_scale)
        codes = q.codes if self.op == "linear" else im2col(q.codes, self.kernel, self.stride, self.padding,
                                                            self.dilation)
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
    The fake-quant torch model (:mod:`antq.model.fakequant`) computes exactly these float64 operations in this
    order, so both give the same bits.
    """
    scale = np.float64(act_scale) * np.asarray(w_scale, np.float32).astype(np.float64)
    y = acc.astype(np.float64) * scale
    if bias is not None:
        y = y + np.asarray(bias, np.float32).astype(np.float64)
    return y.astype(np.float32)


def conv_out_hw(hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """(OH, OW) of a Conv2d on an (H, W) input, as PyTorch computes it."""
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = hw, kernel, stride, padding, dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


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


class IntegerModel:
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
            raise ValueError("a IntegerModel graph needs exactly one input node and ends with an "
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
        it must return exact int64 accumulators (M, N). Default: :func:`antq.core.reference.gemm`.
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
        return (f"IntegerModel({self.name or 'model'}, input {self.input_shape}, "
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
    def from_state(cls, s: Any) -> IntegerModel:
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


TAG = "antq.QuantizedModel"
"""Container tag of an integer model (its name predates the IntegerModel class; files keep it)."""
TORCH_TAG = "antq.nn.QuantModel"
"""Container tag of a file saved straight from the fake-quant torch model (exported on save)."""

container.register(TAG, IntegerModel, IntegerModel.from_state)
# Files saved from the torch model carry TORCH_TAG and the same state; they load as an
# IntegerModel without importing torch. antq.model.calibrate registers its torch class for saving.
container.register(TORCH_TAG, IntegerModel, IntegerModel.from_state)

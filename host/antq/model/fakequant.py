"""Fake quantization of Conv2d/Linear layers with ANT: the quantizer, the layers, the eval-mode arithmetic.

Every ``nn.Conv2d`` and ``nn.Linear`` of a quantized model is a :class:`QuantConv2d` /
:class:`QuantLinear` with two :class:`Quantizer` s: a signed weight quantizer with one clip value
per output channel, and an input-activation quantizer with one clip value per tensor, unsigned
unless the calibration data has a negative value. Each calibrates once, on the data reaching it
(:mod:`antq.model.calibrate`); then type, signedness and grid are frozen and alpha stays a
learnable parameter for QAT.

Both modes round exactly like :func:`antq.core.quantize.quantize_as` (float32 ``u = x / scale``,
nearest grid point, ties up). **Train mode** returns ``q * scale`` and conv/matmul in float32, with
ANT's straight-through estimator: ``dy/dx = 1`` and ``dy/dscale = q - u`` per element, so
``dy/dalpha = (q - u) / max_value``. **Eval mode** computes what the exported integer model
computes: the exact integer GEMM of the codes (float64 on integer values), rescaled with
:func:`antq.model.graph.rescale`'s operations, or, for a layer the export's fusion plan links
to its consumer (``requant_link``, set by :func:`antq.model.export.link` after calibration),
requantized by the integer epilogue with the same :func:`antq.model.graph.requantized` call
the integer model makes, and antq's definitions of the host ops whose
float32 result depends on the implementation (:data:`antq.model.hostops.ROUNDED_OPS`, routed by
:class:`HostOps`). So eval-mode outputs equal the integer model's, and the accelerator's, bit
for bit (docs/contracts.md §11). Software-only baselines keep float fake quantization in both modes.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import quantize
from ..core.formats import Format
from ..core.quantize import QuantizedTensor, quantize_as
from .baselines import BASELINES
from .configs import CANDIDATES, LayerSpec
from .graph import Requant, requant_params, requantized
from .hostops import HOST_OPS
from .torchops import routed

_TINY = 1e-30


class ExportError(ValueError):
    """The quantized torch model cannot be turned into an integer model (raised by export)."""


def _grid_index(u: torch.Tensor, mids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest grid point: the number of midpoints <= u (``bucketize(right=True)``, a binary
    search: on 2 CPU threads 3x faster than counting the comparisons, even for a 16-point grid)."""
    return torch.bucketize(u.contiguous(), mids, right=True)


def _grid_values(u: torch.Tensor, q: Quantizer) -> torch.Tensor:
    """``grid[_grid_index(u, mids)]`` (the nearest grid value, ties to the larger), without a search for
    the two kinds most tensors choose:

    * int (consecutive integers, midpoints at k + 1/2): ``clamp(floor(u + 1/2))``; ``u + 1/2`` is
      exact in float32 below 2^23, and beyond that the clamp gives the grid's end either way;
    * PoT (0 and powers of two, midpoints 1/2 and 3/4 * 2^e): ``frexp`` splits |u| = m * 2^e with
      m in [1/2, 1) exactly, so |u| rounds up to 2^e iff m >= 3/4 (m > 3/4 for negative u, whose
      larger neighbour is the smaller magnitude), and below 1 to 1 iff |u| >= 1/2 (> for negative).
    Zeros come out as +0, as the grid holds them.
    """
    kind = q.fmt.kind if q.fmt is not None else None
    lo, hi = float(q.grid[0]), float(q.grid[-1])
    if kind == "int":
        return torch.floor(u + 0.5).clamp_(lo, hi)
    if kind == "pot" and q.fmt.bits <= quantize.INT_ONLY_ABOVE_BITS:  # wider PoT grids leave float32's range
        a = u.abs()
        m, e = torch.frexp(a)
        pos = u > 0
        up = torch.where(pos, m >= 0.75, m > 0.75)
        v = torch.ldexp(torch.ones_like(a), torch.where(up, e, e - 1))
        v = torch.where(a < 1, torch.where(pos, a >= 0.5, a > 0.5).to(a.dtype), v).clamp_(max=max(hi, -lo))
        return torch.copysign(v, u).clamp_(lo, hi) + 0.0
    return q.grid[_grid_index(u, q.mids)]


class _FakeQuant(torch.autograd.Function):
    """q * scale with q = nearest grid point of fl32(x / scale); ANT's STE in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, grid: torch.Tensor, mids: torch.Tensor):
        u = x.float() / scale
        q = grid[_grid_index(u, mids)]
        ctx.save_for_backward(q - u)
        ctx.scale_shape = scale.shape
        return q.to(x.dtype) * scale.to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (d,) = ctx.saved_tensors
        prod = g * d.to(g.dtype)
        gs = prod.sum() if len(ctx.scale_shape) == 0 else prod.sum_to_size(ctx.scale_shape)
        return g, gs.float(), None, None


class Quantizer(nn.Module):
    """Fake quantizer of one tensor: frozen type, signedness and grid; learnable clip value alpha.

    ``role`` is ``"weight"`` (signed, alpha per output channel, or per block for NF4/FP4) or
    ``"input"`` (alpha per tensor). Calibrate it with :meth:`calibrate`; before that it refuses
    to run, and after it nothing but alpha changes.
    """

    def __init__(self, spec: LayerSpec, role: str, owner: str = "") -> None:
        super().__init__()
        if role not in ("weight", "input"):
            raise ValueError(f"role must be 'weight' or 'input', got {role!r}")
        self.spec, self.role, self.owner = spec, role, owner
        self.alpha = nn.Parameter(torch.zeros(0))
        self.register_buffer("grid", torch.zeros(0))
        self.register_buffer("mids", torch.zeros(0))
        self.max_value = 1.0
        self.group = "tensor"
        self.block = 0
        self.signed = True
        self.fmt: Format | None = None
        self.stats: dict[str, Any] = {}
        self._cache: tuple | None = None
        """(tensor, its version, alpha's version, grid values): the last rounding, reused while valid."""
        self.calibrating = False
        self.on_calibrated: Callable[[], object] | None = None

    @property
    def calibrated(self) -> bool:
        return self.grid.numel() > 0

    @property
    def label(self) -> str:
        """The chosen type: an antq format name (``flint4s``) or a baseline name."""
        if self.fmt is not None:
            return self.fmt.name
        return self.spec.scheme + ("" if self.signed else "u")

    def reset(self) -> None:
        """Forget the calibration (the next calibration chooses type and alpha afresh)."""
        self.alpha = nn.Parameter(torch.zeros(0, device=self.alpha.device))
        self.grid, self.mids = self.grid[:0], self.mids[:0]
        self.fmt, self.stats, self._cache = None, {}, None

    def calibrate(self, x: torch.Tensor) -> None:
        """Choose signedness, type and alpha for ``x`` (by MSE for ANT, absmax for baselines), then freeze.

        The grid indices computed for the statistics are kept, so the forward pass that follows
        (:meth:`integers` on the same ``x``) does not round it again.
        """
        a = x.detach().float().cpu().numpy()
        where = f"{self.owner} {self.role}".strip()
        try:
            if self.spec.baseline:
                grid, alpha, self.group, self.signed = BASELINES[self.spec.scheme].fit(a, self.role)
                self.block = BASELINES[self.spec.scheme].block or 0
                self.fmt, max_value, scores = None, float(np.abs(grid).max()), {}
            else:
                sel = quantize.select(
                    a, self.spec.bits, CANDIDATES[self.spec.scheme],
                    channel_axis=0 if self.role == "weight" else None,
                    signed=True if self.role == "weight" else None)
                self.fmt, grid, max_value = sel.fmt, sel.fmt.grid, float(sel.fmt.max_value)
                alpha = np.where(sel.alpha > 0, sel.alpha, max_value)  # an all-zero channel: scale 1
                self.group = "channel" if self.role == "weight" else "tensor"
                self.signed, scores = sel.fmt.signed, sel.scores
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        dev = self.alpha.device
        self.max_value = max_value
        self.grid = torch.tensor(grid, dtype=torch.float32, device=dev)
        self.mids = torch.tensor((grid[:-1] + grid[1:]) / 2, dtype=torch.float32, device=dev)
        alpha = torch.tensor(np.asarray(alpha).reshape(-1), dtype=torch.float32, device=dev)
        self.alpha = nn.Parameter(alpha)
        with torch.no_grad():
            if self.fmt is None:
                mse = float((self._fake(x.float()) - x.float()).double().pow(2).mean())
            else:  # the search's MSE of the chosen format and clip; one rounding, kept for the forward
                mse = sel.scores[sel.fmt.kind] / len(sel.alpha)
                xf = x.float()
                self._cache = (x, x._version, self.alpha._version,
                               _grid_values(xf / self._broadcast_scale(xf), self))
            flat = a.reshape(-1).astype(np.float64)
            power = float(flat @ flat) / max(flat.size, 1)
        self.stats = {"type": self.label, "signed": self.signed, "mse": mse, "scores": scores,
                      "sqnr_db": 10 * math.log10(power / mse) if mse > 0 and power > 0 else math.inf}
        if self.on_calibrated is not None:
            self.on_calibrated()

    def scale(self) -> torch.Tensor:
        """float32 scale(s) alpha / max_value: the canonical value that export writes."""
        return self.alpha.float().clamp_min(_TINY) / self.max_value

    def _ready(self, x: torch.Tensor) -> None:
        if not self.calibrated:
            if not self.calibrating:
                raise RuntimeError(f"{self.owner} {self.role} quantizer is not calibrated; build the model "
                                   "with antq.quantize_model(model, calib_data, ...)")
            self.calibrate(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ready(x)
        return self._fake(x)

    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The grid value (integer units) of every element's code, as float64: the integer model's operand.

        The same float32 division and midpoint comparisons as the fake quantizer and
        :func:`antq.core.quantize.quantize_as`, so the codes are the ones export writes.
        """
        self._ready(x)
        if self.fmt is None:
            raise RuntimeError(f"{self.owner}: {self.spec.scheme} is a software-only codebook without "
                               "integer codes")
        c = self._cache
        if c is not None and c[0] is x and c[1] == x._version and c[2] == self.alpha._version:
            q = c[3]
        else:
            q = _grid_values(x.float() / self._broadcast_scale(x), self)
        # a weight's rounding is reused by every later forward until the weight or alpha changes;
        # an activation's only by the forward pass right after its calibration
        self._cache = (x, x._version, self.alpha._version, q) if self.role == "weight" else None
        return q.double()

    def _broadcast_scale(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale()
        if self.group == "tensor":
            return s.reshape(())
        if x.shape[0] != s.numel():
            raise ValueError(f"{self.owner} weight has {x.shape[0]} output channels, calibrated for "
                             f"{s.numel()}")
        return s.reshape((-1,) + (1,) * (x.dim() - 1))

    def _fake(self, x: torch.Tensor) -> torch.Tensor:
        if self.group in ("tensor", "channel"):
            return _FakeQuant.apply(x, self._broadcast_scale(x), self.grid.float(), self.mids.float())
        flat = x.reshape(-1)
        n = flat.numel()
        flat = F.pad(flat, (0, -n % self.block)).view(-1, self.block)
        out = _FakeQuant.apply(flat, self.scale().reshape(-1, 1), self.grid.float(), self.mids.float())
        return out.reshape(-1)[:n].view_as(x)

    def quantize_numpy(self, x: torch.Tensor, channel_axis: int | None) -> QuantizedTensor:
        """The codes this quantizer produces for ``x``, via :func:`antq.core.quantize.quantize_as`."""
        if self.fmt is None:
            raise ExportError(f"{self.owner}: {self.spec.scheme} is a software-only baseline; only ANT "
                              "formats export")
        s = self.scale().detach().cpu().numpy()
        a = x.detach().float().cpu().numpy()
        return quantize_as(a, self.fmt, s if channel_axis is not None else s[0], channel_axis)

    def extra_repr(self) -> str:
        if not self.calibrated:
            return f"{self.role}, {self.spec}, not calibrated"
        return f"{self.role}, {self.label}, alpha per {self.group}"


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d computing ``conv(Q_a(x), Q_w(W)) + b`` with ANT fake quantization."""

    def __init__(self, conv: nn.Conv2d, spec: LayerSpec, name: str = "") -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                         device=conv.weight.device, dtype=conv.weight.dtype)
        self.weight, self.bias = conv.weight, conv.bias
        _attach(self, spec, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _record_shape(self, x)
        with _native():
            if self.training or self.spec.baseline:
                return self._conv_forward(self.input_quant(x), self.weight_quant(self.weight), self.bias)
            a, w = _exact_operands(self, x)
            return _output(self, self._conv_forward(a, w, None), channel_dim=1)

    def to_float(self) -> nn.Conv2d:
        m = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                      self.dilation, self.groups, self.bias is not None, self.padding_mode,
                      device=self.weight.device, dtype=self.weight.dtype)
        return _copy_params(self, m)


class QuantLinear(nn.Linear):
    """nn.Linear computing ``Q_a(x) Q_w(W)^T + b`` with ANT fake quantization."""

    def __init__(self, linear: nn.Linear, spec: LayerSpec, name: str = "") -> None:
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.weight, self.bias = linear.weight, linear.bias
        _attach(self, spec, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _record_shape(self, x)
        with _native():
            if self.training or self.spec.baseline:
                return F.linear(self.input_quant(x), self.weight_quant(self.weight), self.bias)
            a, w = _exact_operands(self, x)
            return _output(self, F.linear(a, w), channel_dim=-1)

    def to_float(self) -> nn.Linear:
        m = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                      device=self.weight.device, dtype=self.weight.dtype)
        return _copy_params(self, m)


class Matmul(nn.Module):
    """``torch.matmul(a, b)`` as a module: what a quantized activation x activation GEMM turns back into
    in :meth:`QuantMatmul.to_float`."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class QuantMatmul(nn.Module):
    """``torch.matmul(a, b)`` of two activations (attention's Q.K^T, P.V) with ANT fake quantization.

    Quantization puts one in place of every traced matmul whose operands both come from the model's
    inputs. Each operand has an input quantizer (per tensor, signed if its calibration data is):
    ``input_quant`` for ``a`` and ``weight_quant`` for ``b`` (named so that the code reading a
    layer's two quantizers serves both kinds). Eval mode multiplies the integer grid values exactly
    in float64 and rescales with ``fl32(acc * (s_a * s_b))``, as the integer model's
    :class:`~antq.model.graph.MatmulLayer`.
    """

    def __init__(self, spec: LayerSpec, name: str = "") -> None:
        super().__init__()
        self.spec, self.layer_name = spec, name
        self.requant_link = None
        self.a_shape: tuple[int, ...] | None = None
        self.b_shape: tuple[int, ...] | None = None
        self.input_quant = Quantizer(spec, "input", f"{name} (operand a)")
        self.weight_quant = Quantizer(spec, "input", f"{name} (operand b)")

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.input_quant.calibrating:
            self.a_shape, self.b_shape = tuple(a.shape[1:]), tuple(b.shape[1:])
        with _native():
            if self.training or self.spec.baseline:
                return torch.matmul(self.input_quant(a), self.weight_quant(b))
            ia, ib = self.input_quant.integers(a), self.weight_quant.integers(b)
            _check_exact(self, a.shape[-1])
            acc = torch.matmul(ia, ib)
            out = _link_requant(self.requant_link, acc.shape[-1])
            if out is not None:
                sb = np.full(acc.shape[-1], _np32(self.weight_quant.scale())[0])
                p = requant_params(self.input_quant.fmt, _np32(self.input_quant.scale())[0],
                                   self.weight_quant.fmt, sb, a.shape[-1], None, out)
                if p is not None:  # the integer model's own function, as for Conv2d/Linear (_output)
                    ints = acc.reshape(-1, acc.shape[-1]).cpu().numpy().astype(np.int64)
                    return torch.from_numpy(requantized(ints, p, out)).reshape(acc.shape).to(acc.device)
            return (acc * (self.input_quant.scale().double() * self.weight_quant.scale().double())).float()

    def to_float(self) -> nn.Module:
        return Matmul()

    def extra_repr(self) -> str:
        return f"{self.layer_name}, {self.spec}"


QuantLayer = QuantConv2d | QuantLinear | QuantMatmul
QUANT_LAYERS = (QuantConv2d, QuantLinear, QuantMatmul)


def _attach(m: QuantLayer, spec: LayerSpec, name: str) -> None:
    m.spec, m.layer_name, m.in_shape = spec, name, None
    m.requant_link = None
    """(the consumer's input Quantizer, folded act) if eval mode requantizes this layer's output
    (:func:`_link_requant` for the form with several consumers)."""
    m.weight_quant = Quantizer(spec, "weight", name)
    m.input_quant = Quantizer(spec, "input", name)


def _exact_operands(m: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-valued float64 activations and weights; their conv/matmul in float64 is exact.

    Every partial sum is an integer of magnitude at most K * max|a| * max|w|; below 2^53 float64
    holds all of them exactly, whatever the summation order, so the result is the integer GEMM.
    """
    a, w = m.input_quant.integers(x), m.weight_quant.integers(m.weight)
    _check_exact(m, m.weight[0].numel())
    return a, w


def _check_exact(m: QuantLayer, k: int) -> None:
    bound = k * float(m.input_quant.grid.abs().max()) * float(m.weight_quant.grid.abs().max())
    if bound >= 2.0**53:
        raise OverflowError(f"{m.layer_name}: {m.input_quant.label} x {m.weight_quant.label} with K={k} can "
                            f"reach {bound:.3g}, beyond the 2^53 that float64 (and the int64 reference) "
                            "accumulate exactly")


def _rescale(m: QuantLayer, acc: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """float32 output from exact float64 accumulators: the operations of :func:`antq.model.graph.rescale`."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    scale = m.input_quant.scale().double() * m.weight_quant.scale().double()
    y = acc * scale.reshape(shape)
    if m.bias is not None:
        y = y + m.bias.float().double().reshape(shape)
    return y.float()


def _np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().reshape(-1)


def _output(m: QuantConv2d | QuantLinear, acc: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """The eval-mode output: the integer epilogue's values if ``m.requant_link`` is set (and the
    consumer is calibrated), computed by the integer model's own functions, else :func:`_rescale`."""
    out = _link_requant(m.requant_link, acc.shape[channel_dim])
    if out is not None:
        p = requant_params(m.input_quant.fmt, _np32(m.input_quant.scale())[0], m.weight_quant.fmt,
                           _np32(m.weight_quant.scale()), m.weight[0].numel(),
                           None if m.bias is None else _np32(m.bias), out)
        if p is not None:
            rows = acc.movedim(channel_dim, -1)
            ints = rows.reshape(-1, rows.shape[-1]).cpu().numpy().astype(np.int64)
            y = torch.from_numpy(requantized(ints, p, out)).reshape(rows.shape)
            return y.movedim(-1, channel_dim).to(acc.device)
    return _rescale(m, acc, channel_dim)


def _link_requant(link: Any, n: int) -> Requant | None:
    """The :class:`~antq.model.graph.Requant` of a ``requant_link`` for ``n`` output columns, as the
    export builds it, or None (no link, or a consumer not calibrated or no longer of one format).
    A link is ``(quantizer, act)``, or ``(((quantizer, columns), ...), act)`` for consumers that
    each read their own columns (one scale per column; columns nobody reads take the first's)."""
    if link is None:
        return None
    quants, act = link
    if not isinstance(quants, tuple):
        return Requant(quants.fmt, _np32(quants.scale())[0], act) if quants.calibrated else None
    if not all(q.calibrated for q, _ in quants) or len({q.fmt for q, _ in quants}) != 1:
        return None
    scale = np.full(n, _np32(quants[0][0].scale())[0], np.float32)
    for q, cols in quants:
        scale[list(cols)] = _np32(q.scale())[0]
    return Requant(quants[0][0].fmt, tuple(scale), act)


def _record_shape(m: QuantLayer, x: torch.Tensor) -> None:
    if m.input_quant.calibrating:
        m.in_shape = tuple(x.shape[1:])


def _copy_params(src: QuantLayer, dst: nn.Module) -> nn.Module:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)
    return dst


def _set_spec(m: QuantLayer, spec: LayerSpec) -> None:
    dev = m.input_quant.alpha.device
    if isinstance(m, QuantMatmul):
        m.spec = spec
        m.input_quant = Quantizer(spec, "input", f"{m.layer_name} (operand a)")
        m.weight_quant = Quantizer(spec, "input", f"{m.layer_name} (operand b)")
    else:
        _attach(m, spec, m.layer_name)
    m.weight_quant.to(dev)
    m.input_quant.to(dev)


def _is_quantizable(name: str, m: nn.Module, parents: dict[str, nn.Module]) -> bool:
    parent = parents.get(name.rpartition(".")[0])
    # nn.MultiheadAttention uses its out_proj weight directly, never calling the Linear module;
    # quantize_model replaces it by antq.model.attention.MultiheadAttention first.
    return isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(parent, nn.MultiheadAttention)


_ROUTED = routed()


def _to_numpy(v: Any, fn: Any) -> Any:
    if isinstance(v, torch.Tensor):
        if v.is_floating_point() and v.dtype != torch.float32:
            raise TypeError(f"{getattr(fn, '__name__', fn)}: the eval-mode forward computes in float32, as "
                            f"the integer model does; got a {v.dtype} tensor")
        return v.detach().cpu().numpy()
    if isinstance(v, (list, tuple)):
        return type(v)(_to_numpy(x, fn) for x in v)
    return v


def _device(args: Sequence[Any]) -> torch.device:
    return next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))


_NATIVE = threading.local()


@contextlib.contextmanager
def _native() -> Iterator[None]:
    """antq's own torch code inside a quantized layer (calibration, GEMMs) is not routed."""
    _NATIVE.depth = getattr(_NATIVE, "depth", 0) + 1
    try:
        yield
    finally:
        _NATIVE.depth -= 1


class HostOps(torch.overrides.TorchFunctionMode):
    """Routes the torch calls of :data:`antq.model.hostops.ROUNDED_OPS` to antq's numpy definitions.

    Everything else (the exact float32 ops, the quantized layers' float64 GEMMs) runs in torch;
    those give the same bits in torch and numpy by IEEE 754, so the eval-mode torch model then
    computes exactly what the exported integer model computes.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(_NATIVE, "depth", 0):
            return func(*args, **kwargs)
        op = _ROUTED.get(func)
        if func is F.batch_norm:
            if kwargs.get("training", args[5] if len(args) > 5 else False):
                return func(*args, **kwargs)
            op, args, kwargs = "batch_norm", _batch_norm_args(*args, **kwargs), {}
        if op is None:
            return func(*args, **kwargs)
        out = HOST_OPS[op](*_to_numpy(args, func), **{k: _to_numpy(v, func) for k, v in kwargs.items()})
        return torch.from_numpy(np.ascontiguousarray(out)).to(_device(args))


def _batch_norm_args(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                     eps=1e-5) -> tuple:
    """F.batch_norm's arguments in the order of the host op (x, mean, var, weight, bias, eps)."""
    ones = torch.ones_like(running_mean)
    return (x, running_mean, running_var, ones if weight is None else weight,
            ones * 0 if bias is None else bias, eps)

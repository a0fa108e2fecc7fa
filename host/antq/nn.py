"""ANT for PyTorch models: fake-quant Conv2d/Linear, calibration, QAT, and export to the integer model.

``antq.quantize_model(model, calib_data, config="ip-f", bits=4)`` returns a :class:`QuantModel`, a
fake-quantized copy of ``model`` (the original is untouched). First every BatchNorm that follows a
Conv2d (or a Linear with 2-D output) is folded into that layer (:func:`fold_batchnorm`), as
deployment flows do. Then every ``nn.Conv2d`` and ``nn.Linear`` becomes a :class:`QuantConv2d` /
:class:`QuantLinear` with two :class:`Quantizer` s:

* a signed weight quantizer with one clip value per output channel;
* an input-activation quantizer with one clip value per tensor, unsigned unless the calibration
  data has a negative value.

Each quantizer calibrates once, on the calibration data flowing through the already-quantized
layers before it (as ANT does on its first forward pass): :func:`antq.quantize.quantize_tensor`
picks the type from the config's candidates and the clip value alpha by MSE. Then the type, the
signedness and the grid are frozen; alpha stays a learnable parameter for QAT.

Both modes round exactly like :func:`antq.quantize.quantize_as` (float32 ``u = x / scale``,
nearest grid point, ties up). **Train mode** returns ``q * scale`` and conv/matmul in float32, with
ANT's straight-through estimator: ``dy/dx = 1`` and ``dy/dscale = q - u`` per element, so
``dy/dalpha = (q - u) / max_value``. **Eval mode** computes what the exported integer model
computes: the exact integer GEMM of the codes (float64 on integer values), rescaled with
:func:`antq.qmodel.rescale`'s operations, and antq's definitions of the host ops whose float32
result depends on the implementation (:data:`antq.qmodel.ROUNDED_OPS`). So eval-mode outputs
equal the integer model's, and the accelerator's, bit for bit (docs/contracts.md §11).

Configs (the paper's names): ``int``, ``ip`` (int, PoT), ``ip-f`` (int, PoT, flint: ANT),
``fip-f`` (float, int, PoT, flint), ``ant4-8`` (``ip-f`` at 4 bits with int8 first and last
layers, or the given ``int8_layers``), plus the software-only baselines ``nf4``, ``fp4`` and
``int4-pc`` (:mod:`antq.baselines`) on the same code path (float fake-quant in both modes).

:meth:`QuantModel.export` traces the model with torch.fx and returns a
:class:`antq.qmodel.QuantizedModel`; ``antq.save`` exports on save.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import operator
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.fx.passes.shape_prop
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import container, formats, quantize
from .baselines import BASELINES
from .formats import Format
from .qmodel import HOST_OPS, ROUNDED_OPS, TORCH_TAG, GemmLayer, Node, QuantizedModel
from .quantize import QuantizedTensor, quantize_as

CANDIDATES: dict[str, tuple[str, ...]] = {
    "int": ("int",),
    "ip": ("int", "pot"),
    "ip-f": ("int", "pot", "flint"),
    "fip-f": ("float", "int", "pot", "flint"),
}
"""Candidate types of each ANT config (evaluated in ANT's order int, flint, pot, float)."""
ANT48 = "ant4-8"
CONFIGS: tuple[str, ...] = (*CANDIDATES, ANT48, *BASELINES)
_TINY = 1e-30


class ExportError(ValueError):
    """The quantized torch model cannot be turned into an integer :class:`QuantizedModel`."""


@dataclass(frozen=True)
class LayerSpec:
    """How one layer is quantized: an ANT candidate set (or a baseline) and a bit width."""

    scheme: str
    bits: int

    @property
    def baseline(self) -> bool:
        return self.scheme in BASELINES

    def __str__(self) -> str:
        return self.scheme if self.baseline else f"{self.scheme}/{self.bits}"


INT8 = LayerSpec("int", 8)


def _check_bits(bits: Any, what: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
            formats.MIN_BITS <= bits <= formats.MAX_BITS):
        raise ValueError(f"{what} must be an int from {formats.MIN_BITS} to {formats.MAX_BITS}, got {bits!r}")
    return int(bits)


def _check_config(config: Any) -> str:
    if not isinstance(config, str) or config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}")
    return config


def _layer_name(ref: str | int, names: Sequence[str]) -> str:
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if not -len(names) <= ref < len(names):
            raise ValueError(f"layer index {ref} out of range: the model has {len(names)} quantizable layers")
        return names[ref]
    if ref not in names:
        raise ValueError(f"no quantizable layer named {ref!r}; the layers are {', '.join(names)}")
    return ref


def _override_spec(base: LayerSpec, value: Any, name: str) -> LayerSpec:
    if isinstance(value, str):
        if value == "int8":
            return INT8
        return _base_spec(value, 4 if _check_config(value) in BASELINES or value == ANT48 else base.bits)
    if isinstance(value, dict):
        unknown = set(value) - {"config", "bits"}
        if unknown:
            raise ValueError(f"override for {name}: unknown keys {sorted(unknown)}; use 'config' and 'bits'")
        return _base_spec(value.get("config", base.scheme), value.get("bits", base.bits))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _base_spec(base.scheme, value)
    raise ValueError(f"override for {name} must be a config name, 'int8', a bit width or a dict, got "
                     f"{value!r}")


def _base_spec(config: str, bits: Any) -> LayerSpec:
    config, bits = _check_config(config), _check_bits(bits)
    if config == ANT48:
        if bits != 4:
            raise ValueError("ant4-8 is 4-bit ip-f with int8 layers; for another width use config='ip-f' "
                             "with int8_layers=[...]")
        return LayerSpec("ip-f", 4)
    if config in BASELINES and bits != 4:
        raise ValueError(f"{config} is a 4-bit codebook; bits must be 4, got {bits}")
    return LayerSpec(config, bits)


def layer_specs(names: Sequence[str], config: str = "ip-f", bits: int = 4,
                overrides: dict[str, Any] | None = None,
                int8_layers: Sequence[str | int] | None = None) -> dict[str, LayerSpec]:
    """The :class:`LayerSpec` of every layer for a config, int8 list and per-layer overrides.

    ``int8_layers`` names layers (or indices in quantizable-layer order) that use int8; for
    ``ant4-8`` it defaults to the first and last layer. ``overrides`` maps a layer name to a config
    name, ``"int8"``, a bit width, or ``{"config": ..., "bits": ...}``.
    """
    base = _base_spec(config, bits)
    if config == ANT48 and int8_layers is None:
        int8_layers = [0, -1]
    specs = {n: base for n in names}
    for ref in int8_layers or []:
        specs[_layer_name(ref, names)] = INT8
    for ref, value in (overrides or {}).items():
        name = _layer_name(ref, names)
        specs[name] = _override_spec(specs[name], value, name)
    return specs


# ------------------------------------------------------------------------------------------------
# Fake quantization

def _grid_index(u: torch.Tensor, mids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest grid point: the number of midpoints <= u (``bucketize(right=True)``).

    For the short grids of 2-5 bits, counting comparisons in uint8 is ~3x faster than bucketize's
    binary search on CPU, and exactly equal to it.
    """
    if len(mids) > 32:
        return torch.bucketize(u, mids, right=True)
    idx = torch.zeros(u.shape, dtype=torch.uint8, device=u.device)
    for m in mids:
        idx.add_(u >= m)
    return idx.long()


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
        self.fmt, self.stats = None, {}

    def calibrate(self, x: torch.Tensor) -> None:
        """Choose signedness, type and alpha for ``x`` (by MSE for ANT, absmax for baselines), then freeze."""
        a = x.detach().float().cpu().numpy()
        where = f"{self.owner} {self.role}".strip()
        try:
            if self.spec.baseline:
                grid, alpha, self.group, self.signed = BASELINES[self.spec.scheme].fit(a, self.role)
                self.block = BASELINES[self.spec.scheme].block or 0
                self.fmt, max_value, scores = None, float(np.abs(grid).max()), {}
            else:
                q = quantize.quantize_tensor(
                    a, self.spec.bits, CANDIDATES[self.spec.scheme],
                    channel_axis=0 if self.role == "weight" else None,
                    signed=True if self.role == "weight" else None)
                sel = q.selection
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
            err = (self._fake(x.float()) - x.float()).double()
            mse = float(err.pow(2).mean())
            power = float(x.double().pow(2).mean())
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
        :func:`antq.quantize.quantize_as`, so the codes are the ones export writes.
        """
        self._ready(x)
        if self.fmt is None:
            raise RuntimeError(f"{self.owner}: {self.spec.scheme} is a software-only codebook without "
                               "integer codes")
        u = x.float() / self._broadcast_scale(x)
        return self.grid[_grid_index(u, self.mids)].double()

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
        """The codes this quantizer produces for ``x``, via :func:`antq.quantize.quantize_as`."""
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
            return _rescale(self, self._conv_forward(a, w, None), channel_dim=1)

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
            return _rescale(self, F.linear(a, w), channel_dim=-1)

    def to_float(self) -> nn.Linear:
        m = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                      device=self.weight.device, dtype=self.weight.dtype)
        return _copy_params(self, m)


QuantLayer = QuantConv2d | QuantLinear


def _attach(m: QuantLayer, spec: LayerSpec, name: str) -> None:
    m.spec, m.layer_name, m.in_shape = spec, name, None
    m.weight_quant = Quantizer(spec, "weight", name)
    m.input_quant = Quantizer(spec, "input", name)


def _exact_operands(m: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-valued float64 activations and weights; their conv/matmul in float64 is exact.

    Every partial sum is an integer of magnitude at most K * max|a| * max|w|; below 2^53 float64
    holds all of them exactly, whatever the summation order, so the result is the integer GEMM.
    """
    a, w = m.input_quant.integers(x), m.weight_quant.integers(m.weight)
    k = m.weight[0].numel()
    bound = k * float(m.input_quant.grid.abs().max()) * float(m.weight_quant.grid.abs().max())
    if bound >= 2.0**53:
        raise OverflowError(f"{m.layer_name}: {m.input_quant.label} x {m.weight_quant.label} with K={k} can "
                            f"reach {bound:.3g}, beyond the 2^53 that float64 (and the int64 reference) "
                            "accumulate exactly")
    return a, w


def _rescale(m: QuantLayer, acc: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """float32 output from exact float64 accumulators: the operations of :func:`antq.qmodel.rescale`."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    scale = m.input_quant.scale().double() * m.weight_quant.scale().double()
    y = acc * scale.reshape(shape)
    if m.bias is not None:
        y = y + m.bias.float().double().reshape(shape)
    return y.float()


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
    dev = m.weight.device
    _attach(m, spec, m.layer_name)
    m.weight_quant.to(dev)
    m.input_quant.to(dev)


def _is_quantizable(name: str, m: nn.Module, parents: dict[str, nn.Module]) -> bool:
    parent = parents.get(name.rpartition(".")[0])
    # nn.MultiheadAttention uses its out_proj weight directly, never calling the Linear module.
    return isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(parent, nn.MultiheadAttention)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """Fold every BatchNorm that directly follows a Conv2d (or a Linear with 2-D output) into it, in place.

    The layer's weight becomes ``W * f`` and its bias ``beta + (b - mean) * f`` with
    ``f = gamma / sqrt(var + eps)`` (computed in float64, stored in the layer's dtype); the BatchNorm
    becomes ``nn.Identity``. This is the eval-mode BatchNorm folded as deployment flows do: done
    before calibration, the quantizers calibrate on the folded weights, so the scales they choose
    are the ones the integer model uses, and a negative ``gamma`` is just a negative weight.
    ``example`` (a batch of inputs) gives the shapes. A model torch.fx cannot trace, a layer with
    another user than the BatchNorm, or a module called twice is left unfolded. Returns
    ``{batchnorm name: layer name}``.
    """
    try:
        gm = torch.fx.symbolic_trace(model)
        torch.fx.passes.shape_prop.ShapeProp(gm).propagate(example)
    except Exception:  # untraceable or shape-dependent models keep their BatchNorms as host ops
        return {}
    mods = dict(model.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    folded: dict[str, str] = {}
    for node in gm.graph.nodes:
        bn = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
            continue
        src = node.args[0] if node.args else None
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        layer = mods.get(src.target)
        if not (isinstance(layer, (nn.Conv2d, nn.Linear)) and _is_quantizable(src.target, layer, mods)):
            continue
        out_shape = getattr(src.meta.get("tensor_meta"), "shape", None)
        if calls[node.target] != 1 or calls[src.target] != 1 or bn.num_features != layer.weight.shape[0] \
                or out_shape is None or (isinstance(layer, nn.Linear) and len(out_shape) != 2):
            continue
        _fold_into(layer, bn)
        parent_name, _, attr = node.target.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, nn.Identity())
        folded[node.target] = src.target
    return folded


def _fold_into(layer: nn.Conv2d | nn.Linear, bn: nn.modules.batchnorm._BatchNorm) -> None:
    with torch.no_grad():
        mean, var = bn.running_mean.double(), bn.running_var.double()
        gamma = bn.weight.double() if bn.affine else torch.ones_like(mean)
        beta = bn.bias.double() if bn.affine else torch.zeros_like(mean)
        f = gamma / torch.sqrt(var + bn.eps)
        w = layer.weight
        w.copy_((w.double() * f.reshape((-1,) + (1,) * (w.dim() - 1))).to(w.dtype))
        b = beta + ((layer.bias.double() if layer.bias is not None else 0.0) - mean) * f
        if layer.bias is None:
            layer.bias = nn.Parameter(b.to(w.dtype))
        else:
            layer.bias.copy_(b.to(w.dtype))


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of the nn.Conv2d / nn.Linear modules that quantize_model wraps, in module order."""
    mods = dict(model.named_modules())
    return [n for n, m in mods.items() if n and _is_quantizable(n, m, mods)]


# ------------------------------------------------------------------------------------------------
# The quantized model

class QuantModel(nn.Module):
    """A fake-quantized copy of a model. ``forward`` is fake-quant; ``export`` gives the integer model.

    Attributes: ``model`` (the wrapped copy), ``config``, ``bits``, ``dataset`` (the name of the
    dataset it was trained on, if known), ``input_shape`` (one calibration sample's shape) and
    ``promoted`` (layers the automatic int8 policy chose).
    """

    def __init__(self, model: nn.Module, specs: dict[str, LayerSpec], *, config: str, bits: int,
                 dataset: str | None = None, name: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.config, self.bits, self.dataset, self.model_name = config, bits, dataset, name
        self.input_shape: tuple[int, ...] | None = None
        self.promoted: list[str] = []
        self.folded: dict[str, str] = {}
        for lname, spec in specs.items():
            parent_name, _, attr = lname.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            old = getattr(parent, attr)
            wrapper = QuantConv2d if isinstance(old, nn.Conv2d) else QuantLinear
            new = wrapper(old, spec, lname)
            setattr(parent, attr, new)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Train mode: fake quantization with ANT's STE. Eval mode: the integer model's arithmetic.

        In eval mode every quantized layer computes its exact integer GEMM and rescales it as the
        exported model does, and the host ops whose float32 result depends on the implementation
        (:data:`antq.qmodel.ROUNDED_OPS`) run antq's own definitions, so the outputs equal
        ``self.export().run(x)`` and the overlay's bit for bit. No gradients flow in eval mode.
        """
        if self.training:
            return self.model(*args, **kwargs)
        for t in [*args, *kwargs.values()]:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float32:
                raise TypeError(f"the eval-mode forward computes in float32, as the integer model does; "
                                f"got a {t.dtype} input (pass float32, or use train mode)")
        with torch.no_grad(), _HostOps():
            return self.model(*args, **kwargs)

    @property
    def layers(self) -> dict[str, QuantLayer]:
        """The quantized layers by name (relative to ``model``), in module order."""
        return {n: m for n, m in self.model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))}

    def quantizers(self) -> Iterator[Quantizer]:
        for m in self.layers.values():
            yield m.input_quant
            yield m.weight_quant

    def alphas(self) -> Iterator[nn.Parameter]:
        """The learnable clip values (useful for a separate learning rate in QAT)."""
        for q in self.quantizers():
            yield q.alpha

    def calibrate(self, x: torch.Tensor, progress: bool = True) -> None:
        """Recalibrate every quantizer on the batch ``x`` in one eval-mode forward pass."""
        qs = list(self.quantizers())
        for q in qs:
            q.reset()
        self.input_shape = tuple(x.shape[1:])
        self.eval()
        with tqdm(total=len(qs), desc="calibrate", unit="tensor", disable=not progress, leave=False) as bar:
            for q in qs:
                q.calibrating, q.on_calibrated = True, bar.update
            try:
                self(x)
            except RuntimeError as e:
                raise ValueError(
                    f"calibration data of shape {tuple(x.shape)} does not fit the model: {e}") from e
            finally:
                for q in qs:
                    q.calibrating, q.on_calibrated = False, None
        missing = [n for n, m in self.layers.items()
                   if not (m.input_quant.calibrated and m.weight_quant.calibrated)]
        if missing:
            raise ValueError(f"layers {missing} were not called during calibration; antq quantizes the "
                             "nn.Conv2d / nn.Linear modules that the forward pass calls")

    def promote_int8(self, n: int, x: torch.Tensor, progress: bool = True) -> list[str]:
        """ANT's automatic policy: the ``n`` layers with the highest 4-bit MSE (weight + input) become
        int8, then every quantizer is recalibrated on ``x``. Returns the promoted layer names."""
        eligible = {name: m for name, m in self.layers.items() if m.spec.bits < 8 and not m.spec.baseline}
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= len(eligible):
            raise ValueError(f"auto_int8 must be an int from 0 to {len(eligible)} (the layers below 8 "
                             f"bits), got {n!r}")
        score = {name: m.weight_quant.stats["mse"] + m.input_quant.stats["mse"]
                 for name, m in eligible.items()}
        top = sorted(eligible, key=lambda k: -score[k])[:n]
        for name in top:
            _set_spec(eligible[name], INT8)
        self.calibrate(x, progress)
        self.promoted = top
        return top

    def summary(self) -> list[dict[str, Any]]:
        """Per layer: its spec, and for weight and input the chosen type, MSE and SQNR."""
        rows = []
        for name, m in self.layers.items():
            w, a = m.weight_quant.stats, m.input_quant.stats
            rows.append({"layer": name, "op": "conv2d" if isinstance(m, QuantConv2d) else "linear",
                         "spec": str(m.spec), "weight": dict(w), "input": dict(a)})
        return rows

    def to_float(self) -> nn.Module:
        """An fp32 copy of the model with plain Conv2d/Linear layers holding the current weights."""
        m = copy.deepcopy(self.model)
        for name in [n for n, mod in m.named_modules() if isinstance(mod, (QuantConv2d, QuantLinear))]:
            parent_name, _, attr = name.rpartition(".")
            parent = m.get_submodule(parent_name) if parent_name else m
            setattr(parent, attr, getattr(parent, attr).to_float())
        return m

    def export(self) -> QuantizedModel:
        """The integer model: codes, per-channel scales, bias, activation formats (see the module doc)."""
        return export(self)

    def __antq_state__(self) -> dict:
        return self.export().__antq_state__()


container.register(TORCH_TAG, QuantModel, QuantizedModel.from_state)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def calibration_tensor(calib_data: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One tensor from a tensor/array or an iterable of batches (a batch may be an (x, y) pair)."""
    def as_tensor(b: Any, i: int) -> torch.Tensor:
        if isinstance(b, (tuple, list)) and b and not isinstance(b[0], (int, float)):
            b = b[0]
        if isinstance(b, np.ndarray):
            if b.dtype.kind not in "fiu" or b.dtype == np.bool_:
                raise TypeError(f"calibration batch {i} has dtype {b.dtype}; expected real numbers")
            b = torch.from_numpy(np.ascontiguousarray(b))
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"calibration batch {i} is a {type(b).__name__}; expected a tensor or a "
                            "numpy array")
        if not (b.is_floating_point() or b.dtype in _INT_DTYPES):
            raise TypeError(f"calibration batch {i} has dtype {b.dtype}; expected real numbers")
        return b

    if isinstance(calib_data, (torch.Tensor, np.ndarray)):
        parts = [as_tensor(calib_data, 0)]
    elif isinstance(calib_data, Iterable):
        parts = [as_tensor(b, i) for i, b in enumerate(calib_data)]
    else:
        raise TypeError("calib_data must be a tensor, an array or an iterable of batches, got "
                        f"{type(calib_data).__name__}")
    if not parts:
        raise ValueError("calib_data is empty; give at least one batch")
    for i, p in enumerate(parts):
        if p.dim() < 2:
            raise ValueError(f"calibration batch {i} has shape {tuple(p.shape)}; expected (batch, "
                             "...features)")
        if p.shape[1:] != parts[0].shape[1:]:
            raise ValueError(f"calibration batch {i} has per-sample shape {tuple(p.shape[1:])}, but batch 0 "
                             f"has {tuple(parts[0].shape[1:])}")
        if p.shape[0] == 0:
            raise ValueError(f"calibration batch {i} is empty")
    x = torch.cat(parts).to(dtype)
    if not torch.isfinite(x).all():
        raise ValueError(f"calibration data contains {int((~torch.isfinite(x)).sum())} NaN/Inf values")
    return x


def quantize_model(model: nn.Module, calib_data: Any, config: str = "ip-f", bits: int = 4, *,
                   overrides: dict[str, Any] | None = None, int8_layers: Sequence[str | int] | None = None,
                   auto_int8: int = 0, dataset: str | None = None, progress: bool = True) -> QuantModel:
    """A fake-quantized copy of ``model`` (which is left untouched), calibrated on ``calib_data``.

    ``calib_data`` is a tensor or an iterable of batches (tensors, arrays or (x, y) pairs); all of
    it goes through the model once. ``config`` is one of :data:`CONFIGS`, ``bits`` 2..8.
    ``int8_layers`` and ``overrides`` are described in :func:`layer_specs`. ``auto_int8=n``
    promotes the n layers with the highest 4-bit MSE to int8 (ANT's policy) and recalibrates.
    ``dataset`` names the training dataset (default: ``model.dataset_name`` if set), so that
    ``antq eval`` can find the held-out split.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if any(isinstance(m, (QuantConv2d, QuantLinear)) for m in model.modules()):
        raise TypeError("model is already quantized; quantize its fp32 original (or qmodel.to_float())")
    names = quantizable_layers(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no quantizable layers (nn.Conv2d or nn.Linear)")
    specs = layer_specs(names, config, bits, overrides, int8_layers)
    for name in names:
        for pname, p in model.get_submodule(name).named_parameters(recurse=False):
            if not torch.isfinite(p).all():
                bad = int((~torch.isfinite(p)).sum())
                raise ValueError(f"layer {name}: {pname} has {bad} NaN/Inf values")
    params = [p for p in model.parameters() if p.is_floating_point()]
    x = calibration_tensor(calib_data, params[0].dtype if params else torch.float32)
    if params:
        x = x.to(params[0].device)
    work = copy.deepcopy(model).eval()
    folded = fold_batchnorm(work, x[:2])
    qm = QuantModel(work, specs, config=config, bits=bits,
                    dataset=dataset if dataset is not None else getattr(model, "dataset_name", None),
                    name=type(model).__name__)
    qm.folded = folded
    qm.calibrate(x, progress)
    if auto_int8:
        qm.promote_int8(auto_int8, x, progress)
    return qm


def fine_tune(qmodel: QuantModel, loader: Iterable, epochs: int = 1, lr: float = 1e-4, *,
              max_steps: int | None = None, loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
              progress: bool = True) -> list[float]:
    """Quantization-aware training: Adam on weights, biases and clip values through the STE.

    ``loader`` yields (x, y) batches and must be re-iterable (a DataLoader or a list) for more
    than one epoch. BatchNorm statistics stay frozen (BN in eval mode), so the trained model folds
    exactly as it computes. Returns the loss of every step.
    """
    if not isinstance(qmodel, QuantModel):
        raise TypeError("fine_tune needs the QuantModel returned by antq.quantize_model")
    if not all(q.calibrated for q in qmodel.quantizers()):
        raise ValueError("calibrate the model (antq.quantize_model) before fine-tuning")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    opt = torch.optim.Adam([p for p in qmodel.parameters() if p.requires_grad], lr=lr)
    qmodel.train()
    for m in qmodel.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    losses: list[float] = []
    total = epochs * len(loader) if hasattr(loader, "__len__") else None
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    try:
        with tqdm(total=total, desc="QAT", unit="step", disable=not progress, leave=False) as bar:
            for epoch in range(epochs):
                steps_before = len(losses)
                for batch in loader:
                    if max_steps is not None and len(losses) >= max_steps:
                        return losses
                    xb, yb = batch[0], batch[1]
                    opt.zero_grad()
                    loss = loss_fn(qmodel(xb), yb)
                    if not torch.isfinite(loss):
                        raise ValueError(f"QAT loss became {loss.item()} at step {len(losses)}; lower the lr")
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    bar.update()
                if len(losses) == steps_before:
                    raise ValueError(f"loader yielded no batches in epoch {epoch + 1}; a generator can be "
                                     "iterated once only, so pass a DataLoader or a list")
    finally:
        qmodel.eval()
    return losses


# ------------------------------------------------------------------------------------------------
# Export: torch.fx graph -> QuantizedModel

_FUNCTIONS: dict[Any, str] = {
    operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
    operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
    operator.neg: "neg", operator.matmul: "matmul", torch.matmul: "matmul", operator.getitem: "getitem",
    getattr: "getattr", torch.relu: "relu", F.relu: "relu", F.gelu: "gelu", torch.tanh: "tanh",
    torch.sigmoid: "sigmoid", torch.flatten: "flatten", torch.softmax: "softmax", F.softmax: "softmax",
    F.log_softmax: "log_softmax", F.layer_norm: "layer_norm", F.max_pool2d: "max_pool2d",
    F.avg_pool2d: "avg_pool2d", F.adaptive_avg_pool2d: "adaptive_avg_pool2d", torch.cat: "cat",
    torch.mean: "mean", torch.sum: "sum", torch.transpose: "transpose", torch.permute: "permute",
    torch.reshape: "reshape",
}
_METHODS: dict[str, str] = {
    "view": "reshape", "reshape": "reshape", "flatten": "flatten", "transpose": "transpose",
    "permute": "permute", "contiguous": "identity", "mean": "mean", "sum": "sum", "softmax": "softmax",
    "size": "size", "relu": "relu", "unsqueeze": "unsqueeze", "squeeze": "squeeze", "add": "add",
    "sub": "sub", "mul": "mul", "div": "div", "matmul": "matmul", "neg": "neg", "tanh": "tanh",
    "sigmoid": "sigmoid",
}




def _routed() -> dict[Any, str]:
    """torch callables whose host op is in ROUNDED_OPS -> that op (the functions, the Tensor methods)."""
    table = {f: op for f, op in _FUNCTIONS.items() if op in ROUNDED_OPS}
    table.update({getattr(torch.Tensor, m): op for m, op in _METHODS.items() if op in ROUNDED_OPS})
    table[torch.Tensor.__matmul__] = "matmul"
    return table


_ROUTED = _routed()


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


class _HostOps(torch.overrides.TorchFunctionMode):
    """Routes the torch calls of :data:`antq.qmodel.ROUNDED_OPS` to antq's numpy definitions.

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


def _arr(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().float().cpu().numpy()


def _module_node(name: str, m: nn.Module, args: list) -> Node:
    """A host op for a non-GEMM module, with its parameters as float32 arrays."""
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if m.running_mean is None:
            raise ExportError(f"{name}: BatchNorm without running statistics cannot be exported")
        ones = torch.ones_like(m.running_mean)
        return Node(name, "batch_norm", args, {
            "mean": _arr(m.running_mean), "var": _arr(m.running_var), "eps": float(m.eps),
            "weight": _arr(m.weight if m.affine else ones), "bias": _arr(m.bias if m.affine else ones * 0)})
    if isinstance(m, nn.LayerNorm):
        return Node(name, "layer_norm", args, {"normalized_shape": list(m.normalized_shape),
                                               "eps": float(m.eps), "weight": _arr(m.weight),
                                               "bias": _arr(m.bias)})
    simple = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "identity",
              nn.Dropout: "identity", nn.Dropout2d: "identity", nn.Dropout1d: "identity"}
    if type(m) in simple:
        return Node(name, simple[type(m)], args, {})
    if isinstance(m, nn.GELU):
        return Node(name, "gelu", args, {"approximate": m.approximate})
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return Node(name, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", args, {"dim": m.dim})
    if isinstance(m, nn.Flatten):
        return Node(name, "flatten", args, {"start_dim": m.start_dim, "end_dim": m.end_dim})
    if isinstance(m, nn.MaxPool2d):
        return Node(name, "max_pool2d", args, {
            "kernel_size": _enc(m.kernel_size), "stride": _enc(m.stride), "padding": _enc(m.padding),
            "dilation": _enc(m.dilation), "ceil_mode": m.ceil_mode, "return_indices": m.return_indices})
    if isinstance(m, nn.AvgPool2d):
        return Node(name, "avg_pool2d", args, {
            "kernel_size": _enc(m.kernel_size), "stride": _enc(m.stride), "padding": _enc(m.padding),
            "ceil_mode": m.ceil_mode, "count_include_pad": m.count_include_pad,
            "divisor_override": m.divisor_override})
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size
        if size is None or (isinstance(size, tuple) and None in size):
            raise ExportError(f"{name}: AdaptiveAvgPool2d with a None output size is not supported")
        return Node(name, "adaptive_avg_pool2d", args, {"output_size": _enc(size)})
    raise ExportError(f"{name}: {type(m).__name__} is not supported by the host executor (supported: "
                      "Conv2d, Linear, BatchNorm, LayerNorm, ReLU, GELU, Tanh, Sigmoid, Softmax, Flatten, "
                      "Max/Avg/AdaptiveAvgPool2d, Dropout, Identity)")


def _enc(a: Any, where: str = "") -> Any:
    """Graph argument -> the JSON-like form QuantizedModel stores."""
    if isinstance(a, torch.fx.Node):
        return {"ref": a.name}
    if isinstance(a, slice):
        return {"slice": [_enc(v, where) for v in (a.start, a.stop, a.step)]}
    if a is Ellipsis:
        return {"ellipsis": True}
    if isinstance(a, (tuple, list, torch.Size)):
        return [_enc(v, where) for v in a]
    if isinstance(a, dict):
        return {k: _enc(v, where) for k, v in a.items()}
    if a is None or isinstance(a, (bool, int, float, str)):
        return a
    raise ExportError(f"{where}: cannot export the argument {a!r} ({type(a).__name__})")


def _conv_geometry(name: str, m: QuantConv2d) -> dict[str, tuple[int, int]]:
    if m.groups != 1:
        raise ExportError(f"{name}: grouped convolution (groups={m.groups}) is not supported by the "
                          "GEMM export")
    if m.padding_mode != "zeros":
        raise ExportError(f"{name}: padding_mode {m.padding_mode!r} is not supported (only 'zeros')")
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        else:  # "same": symmetric only when every dilated kernel extent is odd
            total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
            if any(t % 2 for t in total):
                raise ExportError(f"{name}: padding='same' with an even kernel extent is asymmetric; "
                                  "not supported")
            pad = tuple(t // 2 for t in total)
    return {"kernel": tuple(m.kernel_size), "stride": tuple(m.stride), "padding": tuple(pad),
            "dilation": tuple(m.dilation)}


def _gemm_layer(name: str, m: QuantLayer) -> GemmLayer:
    if m.spec.baseline:
        raise ExportError(f"{name}: {m.spec.scheme} is a software-only baseline; only ANT configs export")
    if m.in_shape is None:
        raise ExportError(f"{name}: no input shape recorded; calibrate the model first")
    q = m.weight_quant.quantize_numpy(m.weight, channel_axis=0)
    n = q.shape[0]
    weight = QuantizedTensor(q.codes.reshape(n, -1), kind=q.kind, bits=q.bits, signed=q.signed,
                             scale=q.scale, channel_axis=0)
    geo = _conv_geometry(name, m) if isinstance(m, QuantConv2d) else {}
    return GemmLayer(name=name, op="conv2d" if isinstance(m, QuantConv2d) else "linear", weight=weight,
                     bias=_arr(m.bias), act_fmt=m.input_quant.fmt,
                     act_scale=m.input_quant.scale().detach().cpu().numpy()[0], in_shape=m.in_shape, **geo)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (QuantConv2d, QuantLinear)) or super().is_leaf_module(m, qualname)


def _check_host_call(node: Node) -> None:
    """Bind the args to the host op's signature now, so a bad call fails at export, not at run."""
    sig = inspect.signature(HOST_OPS[node.op])
    try:
        sig.bind(*node.args, **node.kwargs)
    except TypeError as e:
        raise ExportError(f"{node.name}: host op {node.op} cannot take these arguments: {e}") from e


def _rename_refs(a: Any, alias: dict[str, str]) -> Any:
    if isinstance(a, dict):
        if "ref" in a:
            return {"ref": alias.get(a["ref"], a["ref"])}
        return {k: _rename_refs(v, alias) for k, v in a.items()}
    if isinstance(a, list):
        return [_rename_refs(v, alias) for v in a]
    return a


def _drop_identities(nodes: list[Node]) -> list[Node]:
    """Remove identity nodes (Dropout, nn.Identity, folded BatchNorms) by pointing their users at
    their input: they compute nothing, and the traces and latency tables read better without them."""
    alias: dict[str, str] = {}
    out = []
    for n in nodes:
        n.args, n.kwargs = _rename_refs(n.args, alias), _rename_refs(n.kwargs, alias)
        if n.op == "identity" and len(n.args) == 1 and not n.kwargs and isinstance(n.args[0], dict) \
                and "ref" in n.args[0]:
            alias[n.name] = n.args[0]["ref"]
            continue
        out.append(n)
    return out


def export(qm: QuantModel) -> QuantizedModel:
    """Trace ``qm`` with torch.fx and build the integer :class:`~antq.qmodel.QuantizedModel`."""
    if qm.input_shape is None:
        raise ExportError("the model is not calibrated")
    try:
        graph = _Tracer().trace(qm.model)
    except Exception as e:  # torch.fx raises many kinds of errors on dynamic control flow
        raise ExportError(f"torch.fx cannot trace {type(qm.model).__name__} ({type(e).__name__}: {e}); the "
                          "host executor needs a static graph") from e
    nodes: list[Node] = []
    for fx in graph.nodes:
        where = f"{fx.name} ({fx.op} {fx.target})"
        args = _enc(list(fx.args), where)
        kwargs = _enc(dict(fx.kwargs), where)
        if fx.op == "placeholder":
            if any(n.op == "input" for n in nodes):
                raise ExportError(f"{where}: the model takes more than one input; antq models take "
                                  "one tensor")
            node = Node(fx.name, "input")
        elif fx.op == "output":
            node = Node("output", "output", args)
        elif fx.op == "get_attr":
            value = qm.model.get_parameter(fx.target) if fx.target in dict(qm.model.named_parameters()) \
                else qm.model.get_buffer(fx.target)
            node = Node(fx.name, "constant", [], {"value": _arr(value)})
        elif fx.op == "call_module":
            m = qm.model.get_submodule(fx.target)
            if isinstance(m, (QuantConv2d, QuantLinear)):
                node = Node(fx.name, "gemm", args, {}, _gemm_layer(fx.target, m))
            else:
                node = _module_node(fx.target, m, args)
                node.name = fx.name
        elif fx.op == "call_function":
            if fx.target not in _FUNCTIONS:
                raise ExportError(f"{where}: function {getattr(fx.target, '__name__', fx.target)} is not "
                                  "supported by the host executor")
            node = Node(fx.name, _FUNCTIONS[fx.target], args, kwargs)
        elif fx.op == "call_method":
            if fx.target not in _METHODS:
                raise ExportError(f"{where}: tensor method .{fx.target}() is not supported by the host "
                                  "executor")
            node = Node(fx.name, _METHODS[fx.target], args, kwargs)
        else:
            raise ExportError(f"{where}: unsupported graph node")
        if node.op in HOST_OPS:
            _check_host_call(node)
        nodes.append(node)
    return QuantizedModel(_drop_identities(nodes), qm.input_shape, name=qm.model_name, dataset=qm.dataset,
                          config=qm.config, bits=qm.bits)

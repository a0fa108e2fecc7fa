"""``quantize_model``: a fake-quantized, calibrated copy of a PyTorch model, and QAT with ``fine_tune``.

``antq.quantize_model(model, calib_data, config="ip-f", bits=4)`` returns a
:class:`FakeQuantModel`, a fake-quantized copy of ``model`` (the original is untouched). First every
BatchNorm that follows a Conv2d (or a Linear with 2-D output) is folded into that layer
(:func:`fold_batchnorm`), as deployment flows do. Then every ``nn.Conv2d`` and ``nn.Linear``
becomes a :class:`~antq.model.fakequant.QuantConv2d` / ``QuantLinear``, and each quantizer
calibrates once, on the calibration data flowing through the already-quantized layers before it
(as ANT does on its first forward pass): :func:`antq.core.quantize.quantize_tensor` picks the
type from the config's candidates (:mod:`antq.model.configs`) and the clip value alpha by MSE.

:meth:`FakeQuantModel.export` gives the :class:`antq.model.graph.IntegerModel`
(:mod:`antq.model.export`); ``antq.save`` exports on save.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.fx.passes.shape_prop
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..core import container
from .configs import INT8, LayerSpec, layer_specs
from .export import export
from .fakequant import HostOps, QuantConv2d, Quantizer, QuantLayer, QuantLinear, _is_quantizable, _set_spec
from .graph import TORCH_TAG, IntegerModel


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


class FakeQuantModel(nn.Module):
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
        (:data:`antq.model.hostops.ROUNDED_OPS`) run antq's own definitions, so the outputs equal
        ``self.export().run(x)`` and the overlay's bit for bit. No gradients flow in eval mode.
        """
        if self.training:
            return self.model(*args, **kwargs)
        for t in [*args, *kwargs.values()]:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float32:
                raise TypeError(f"the eval-mode forward computes in float32, as the integer model does; "
                                f"got a {t.dtype} input (pass float32, or use train mode)")
        with torch.no_grad(), HostOps():
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

    def export(self) -> IntegerModel:
        """The integer model: codes, per-channel scales, bias, activation formats (see the module doc)."""
        return export(self)

    def __antq_state__(self) -> dict:
        return self.export().__antq_state__()


container.register(TORCH_TAG, FakeQuantModel, IntegerModel.from_state)


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
        big = float(p.abs().max()) if p.is_floating_point() else 0.0
        if math.isfinite(big) and big > torch.finfo(dtype).max:
            raise ValueError(f"calibration batch {i} ({p.dtype}) has values up to {big:.3g}, which overflow "
                             f"{dtype} to Inf; scale the data down")
    x = torch.cat(parts).to(dtype)
    if not torch.isfinite(x).all():
        raise ValueError(f"calibration data contains {int((~torch.isfinite(x)).sum())} NaN/Inf values")
    return x


def quantize_model(model: nn.Module, calib_data: Any, config: str = "ip-f", bits: int = 4, *,
                   overrides: dict[str, Any] | None = None, int8_layers: Sequence[str | int] | None = None,
                   auto_int8: int = 0, dataset: str | None = None, progress: bool = True) -> FakeQuantModel:
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
    qm = FakeQuantModel(work, specs, config=config, bits=bits,
                    dataset=dataset if dataset is not None else getattr(model, "dataset_name", None),
                    name=type(model).__name__)
    qm.folded = folded
    qm.calibrate(x, progress)
    if auto_int8:
        qm.promote_int8(auto_int8, x, progress)
    return qm


def fine_tune(qmodel: FakeQuantModel, loader: Iterable, epochs: int = 1, lr: float = 1e-4, *,
              max_steps: int | None = None, loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
              progress: bool = True) -> list[float]:
    """Quantization-aware training: Adam on weights, biases and clip values through the STE.

    ``loader`` yields (x, y) batches and must be re-iterable (a DataLoader or a list) for more
    than one epoch. BatchNorm statistics stay frozen (BN in eval mode), so the trained model folds
    exactly as it computes. Returns the loss of every step.
    """
    if not isinstance(qmodel, FakeQuantModel):
        raise TypeError("fine_tune needs the FakeQuantModel returned by antq.quantize_model")
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

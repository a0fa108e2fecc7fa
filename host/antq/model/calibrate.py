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
from .attention import replace_attention
from .configs import INT8, LayerSpec, _base_spec, check_target, layer_specs
from .export import export, link
from .fakequant import (
    QUANT_LAYERS,
    HostOps,
    Matmul,
    QuantConv2d,
    Quantizer,
    QuantLayer,
    QuantLinear,
    QuantMatmul,
    _is_quantizable,
    _set_spec,
)
from .graph import TORCH_TAG, IntegerModel
from .hostops import SHAPE_OPS
from .torchops import MATMULS, host_op
from .tracing import trace


def fold_batchnorm(model: nn.Module, example: torch.Tensor | Inputs) -> dict[str, str]:
    """Fold every BatchNorm that directly follows a Conv2d (or a Linear with 2-D output) into it, in place.

    The layer's weight becomes ``W * f`` and its bias ``beta + (b - mean) * f`` with
    ``f = gamma / sqrt(var + eps)`` (computed in float64, stored in the layer's dtype); the BatchNorm
    becomes ``nn.Identity``. This is the eval-mode BatchNorm folded as deployment flows do: done
    before calibration, the quantizers calibrate on the folded weights, so the scales they choose
    are the ones the integer model uses, and a negative ``gamma`` is just a negative weight.
    ``example`` (a batch of inputs, or :class:`Inputs`) gives the shapes. A model torch.fx cannot
    trace, a layer with another user than the BatchNorm, or a module called twice is left unfolded.
    Returns ``{batchnorm name: layer name}``.
    """
    example = example if isinstance(example, Inputs) else Inputs((example,), {})
    try:
        gm = torch.fx.symbolic_trace(model)
        torch.fx.passes.shape_prop.ShapeProp(gm).propagate(*example.args, *example.kwargs.values())
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
    """Names of the nn.Conv2d / nn.Linear (and traced matmul) modules that quantize_model wraps: in
    execution order for a traced model (a GraphModule), else in module order."""
    mods = dict(model.named_modules())
    if isinstance(model, torch.fx.GraphModule):
        order = [n.target for n in model.graph.nodes if n.op == "call_module"]
        return [t for t in dict.fromkeys(order)
                if _is_quantizable(t, mods[t], mods) or isinstance(mods[t], Matmul)]
    return [n for n, m in mods.items() if n and _is_quantizable(n, m, mods)]


def _activation_nodes(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """Nodes whose value is computed from the model's inputs (shape queries give static ints)."""
    data: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            data.add(node)
        elif node.op in ("call_function", "call_method", "call_module"):
            op = host_op(node.op, node.target) if node.op != "call_module" else None
            if op not in SHAPE_OPS and any(a in data for a in node.all_input_nodes):
                data.add(node)
    return data


def quantize_matmuls(gm: torch.fx.GraphModule) -> list[str]:
    """Turn every traced matmul of two activations into a :class:`~antq.model.fakequant.Matmul` module (in
    place), named ``<module scope>.matmul<i>``, so that quantization wraps it like a Linear. Returns
    the new module names."""
    data = _activation_nodes(gm.graph)
    taken = {n for n, _ in gm.named_modules()}
    per_scope: Counter[str] = Counter()
    names = []
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method") or host_op(node.op, node.target) not in MATMULS:
            continue
        a, b = (list(node.args) + [node.kwargs.get("other")])[:2]
        if node.op == "call_function" and "input" in node.kwargs:
            a, b = node.kwargs["input"], node.kwargs["other"]
        if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node) and a in data and b in data):
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        scope = ""
        if stack:  # {qualified name: type} or {key: (qualified name, type)}, innermost last
            key, val = stack[-1]
            scope = val[0] if isinstance(val, tuple) else key
        scope = scope if isinstance(scope, str) and scope in taken else ""
        while True:
            name = f"{scope + '.' if scope else ''}matmul{per_scope[scope]}"
            per_scope[scope] += 1
            if name not in taken:
                break
        gm.add_submodule(name, Matmul())
        taken.add(name)
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, (a, b))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        names.append(name)
    gm.graph.lint()
    gm.recompile()
    return names


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
        self.example: Inputs | None = None
        """The first calibration samples: export traces and checks the integer model on them."""
        self.promoted: list[str] = []
        self.folded: dict[str, str] = {}
        self.replaced_attention: list[str] = []
        for lname, spec in specs.items():
            parent_name, _, attr = lname.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            old = getattr(parent, attr)
            if isinstance(old, Matmul):
                new = QuantMatmul(spec, lname)
            else:
                new = (QuantConv2d if isinstance(old, nn.Conv2d) else QuantLinear)(old, spec, lname)
            setattr(parent, attr, new)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one sample of the first input (None before calibration)."""
        return None if self.example is None else tuple(self.example.tensors()[0].shape[1:])

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
        return {n: m for n, m in self.model.named_modules() if isinstance(m, QUANT_LAYERS)}

    def quantizers(self) -> Iterator[Quantizer]:
        for m in self.layers.values():
            yield m.input_quant
            yield m.weight_quant

    def alphas(self) -> Iterator[nn.Parameter]:
        """The learnable clip values (useful for a separate learning rate in QAT)."""
        for q in self.quantizers():
            yield q.alpha

    def calibrate(self, x: Any, progress: bool = True) -> None:
        """Recalibrate every quantizer on the batch ``x`` (a tensor or :class:`Inputs`) in one eval-mode
        forward pass."""
        x = x if isinstance(x, Inputs) else calibration_inputs(x)
        qs = list(self.quantizers())
        for q in qs:
            q.reset()
        self.example = x.head(2)
        self.eval()
        with tqdm(total=len(qs), desc="calibrate", unit="tensor", disable=not progress, leave=False) as bar:
            for q in qs:
                q.calibrating, q.on_calibrated = True, bar.update
            try:
                self(*x.args, **x.kwargs)
            except (RuntimeError, TypeError, IndexError) as e:
                raise ValueError(f"calibration data of {x.describe()} does not fit the model: {e}") from e
            finally:
                for q in qs:
                    q.calibrating, q.on_calibrated = False, None
        missing = [n for n, m in self.layers.items()
                   if not (m.input_quant.calibrated and m.weight_quant.calibrated)]
        if missing:
            raise ValueError(f"layers {missing} were not called during calibration; antq quantizes the "
                             "nn.Conv2d / nn.Linear modules that the forward pass calls")
        link(self)  # eval mode requantizes the outputs the export's fusion plan chains

    def promote_int8(self, n: int, x: Any, progress: bool = True) -> list[str]:
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
            op = "conv2d" if isinstance(m, QuantConv2d) else \
                "matmul" if isinstance(m, QuantMatmul) else "linear"
            rows.append({"layer": name, "op": op,
                         "spec": str(m.spec), "weight": dict(w), "input": dict(a)})
        return rows

    def to_float(self) -> nn.Module:
        """An fp32 copy of the model with plain Conv2d/Linear layers holding the current weights."""
        m = copy.deepcopy(self.model)
        for name in [n for n, mod in m.named_modules() if isinstance(mod, QUANT_LAYERS)]:
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


_INT_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class Inputs:
    """A batch of model inputs: positional ``args`` and keyword ``kwargs`` tensors, batch first.

    Only the floating-point tensors are activations (they are cast to the model's dtype and
    checked for NaN); integer and bool tensors (token ids, attention masks) are passed as they are.
    """

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self.args, self.kwargs = tuple(args), dict(kwargs)

    def tensors(self) -> list[torch.Tensor]:
        return [*self.args, *self.kwargs.values()]

    def __len__(self) -> int:
        return len(self.tensors()[0])

    def head(self, n: int) -> Inputs:
        """The first ``n`` samples."""
        return Inputs(tuple(t[:n] for t in self.args), {k: t[:n] for k, t in self.kwargs.items()})

    def repeat_first(self, n: int) -> Inputs:
        """``n`` copies of the first sample, as one batch."""
        return Inputs(tuple(t[:1].expand(n, *t.shape[1:]).contiguous() for t in self.args),
                      {k: t[:1].expand(n, *t.shape[1:]).contiguous() for k, t in self.kwargs.items()})

    def describe(self) -> str:
        def one(t: torch.Tensor) -> str:
            dtype = "" if t.is_floating_point() else f" {str(t.dtype).removeprefix('torch.')}"
            return f"{tuple(t.shape)}{dtype}"

        parts = [one(t) for t in self.args] + [f"{k}={one(t)}" for k, t in self.kwargs.items()]
        return "shape " + ", ".join(parts)


def _as_input_tensor(b: Any, where: str) -> torch.Tensor:
    if isinstance(b, np.ndarray):
        if b.dtype.kind not in "fiub":
            raise TypeError(f"{where} has dtype {b.dtype}; expected real numbers, integers or bools")
        b = torch.from_numpy(np.ascontiguousarray(b))
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"{where} is a {type(b).__name__}; expected a tensor or a numpy array")
    if not (b.is_floating_point() or b.dtype in _INT_DTYPES):
        raise TypeError(f"{where} has dtype {b.dtype}; expected real numbers, integers or bools")
    if b.dim() < 2:
        raise ValueError(f"{where} has shape {tuple(b.shape)}; expected (batch, ...features)")
    if b.shape[0] == 0:
        raise ValueError(f"{where} is empty")
    return b


def _batch_inputs(b: Any, i: int) -> Inputs:
    """One calibration batch: a tensor/array, a dict of keyword inputs, or an (inputs, target) pair
    whose inputs are a tensor, a dict or a tuple of positional tensors."""
    if isinstance(b, (tuple, list)) and b and not isinstance(b[0], (int, float)):
        b = b[0]
    if isinstance(b, dict):
        return Inputs((), {k: _as_input_tensor(v, f"calibration batch {i} input {k!r}")
                           for k, v in b.items()})
    if isinstance(b, (tuple, list)):
        return Inputs(tuple(_as_input_tensor(v, f"calibration batch {i} input {j}") for j, v in enumerate(b)),
                      {})
    return Inputs((_as_input_tensor(b, f"calibration batch {i}"),), {})


def calibration_inputs(calib_data: Any, dtype: torch.dtype = torch.float32,
                       device: torch.device | None = None) -> Inputs:
    """All calibration batches as one :class:`Inputs`.

    ``calib_data`` is a tensor or array (one batch of the model's one input), a dict of keyword
    inputs (one batch), or an iterable of batches, each a tensor/array, a dict, or an
    ``(inputs, target)`` pair whose inputs are a tensor, a dict or a tuple of positional tensors.
    Floating-point tensors are cast to ``dtype``; integer and bool tensors keep their dtype.
    """
    if isinstance(calib_data, (torch.Tensor, np.ndarray, dict)):
        parts = [_batch_inputs(calib_data, 0)]
    elif isinstance(calib_data, Iterable):
        parts = [_batch_inputs(b, i) for i, b in enumerate(calib_data)]
    else:
        raise TypeError("calib_data must be a tensor, an array, a dict of inputs or an iterable of batches, "
                        f"got {type(calib_data).__name__}")
    if not parts:
        raise ValueError("calib_data is empty; give at least one batch")
    first = parts[0]
    for i, p in enumerate(parts):
        if len(p.args) != len(first.args) or set(p.kwargs) != set(first.kwargs):
            raise ValueError(f"calibration batch {i} has other inputs than batch 0")
        for a, b in zip(p.tensors(), [*first.args, *(first.kwargs[k] for k in p.kwargs)], strict=True):
            if a.shape[1:] != b.shape[1:] or a.is_floating_point() != b.is_floating_point():
                raise ValueError(f"calibration batch {i} has per-sample shape {tuple(a.shape[1:])}, but "
                                 f"batch "
                                 f"0 has {tuple(b.shape[1:])}")
        if len({len(t) for t in p.tensors()}) != 1:
            raise ValueError(f"calibration batch {i} has inputs of different batch sizes")

    def cat(ts: list[torch.Tensor]) -> torch.Tensor:
        t = torch.cat(ts)
        if t.is_floating_point():
            big = float(t.abs().max())
            if math.isfinite(big) and big > torch.finfo(dtype).max:
                raise ValueError(f"calibration data ({t.dtype}) has values up to {big:.3g}, which overflow "
                                 f"{dtype} to Inf; scale the data down")
            t = t.to(dtype)
            if not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"calibration data contains {bad} NaN/Inf values")
        return t if device is None else t.to(device)

    return Inputs(tuple(cat([p.args[j] for p in parts]) for j in range(len(first.args))),
                  {k: cat([p.kwargs[k] for p in parts]) for k in first.kwargs})


def calibration_tensor(calib_data: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The calibration data of a one-input model as one tensor (see :func:`calibration_inputs`)."""
    x = calibration_inputs(calib_data, dtype)
    if x.kwargs or len(x.args) != 1:
        raise ValueError(f"expected one input tensor, got {x.describe()}")
    return x.args[0]


def prepare(model: nn.Module, x: Inputs, act_gemms: bool = True
            ) -> tuple[nn.Module, dict[str, str], list[str]]:
    """The fp32 model quantize_model wraps: a copy with nn.MultiheadAttention rebuilt from Linear layers,
    BatchNorms folded, and (with ``act_gemms``, if it traces) every activation x activation matmul a
    ``Matmul`` module (then it is a GraphModule). Returns (model, folded BatchNorms, replaced attention
    modules)."""
    work = copy.deepcopy(model).eval()
    replaced = replace_attention(work)
    folded = fold_batchnorm(work, x.head(2))
    if not act_gemms:
        return work, folded, replaced
    try:
        gm = trace(work, x.head(2).args, x.head(2).kwargs)
    except Exception:  # untraceable: the plain module (export will say why it cannot trace)
        return work, folded, replaced
    if quantize_matmuls(gm):
        return gm, folded, replaced
    return work, folded, replaced


def quantize_model(model: nn.Module, calib_data: Any, config: str = "ip-f", bits: int = 4, *,
                   overrides: dict[str, Any] | None = None, int8_layers: Sequence[str | int] | None = None,
                   auto_int8: int = 0, dataset: str | None = None, target: str | None = None,
                   act_gemms: bool = True, progress: bool = True) -> FakeQuantModel:
    """A fake-quantized copy of ``model`` (which is left untouched), calibrated on ``calib_data``.

    ``calib_data`` is whatever the model takes (see :func:`calibration_inputs`: a tensor, a dict of
    keyword inputs such as token ids and attention masks, or an iterable of batches or (inputs,
    target) pairs); all of it goes through the model once. ``config`` is one of :data:`CONFIGS`,
    ``bits`` 2..8. ``target="overlay"`` refuses, before calibrating, any layer whose candidate
    formats the accelerator cannot decode (:func:`antq.model.configs.check_target`).
    ``act_gemms`` (default) also quantizes every matmul of two activations (attention's Q.K^T and
    P.V), so that every GEMM runs on the accelerator; ``False`` leaves them float host ops.
    ``int8_layers`` and ``overrides`` are described in :func:`layer_specs`. ``auto_int8=n``
    promotes the n layers with the highest 4-bit MSE to int8 (ANT's policy) and recalibrates.
    ``dataset`` names the training dataset (default: ``model.dataset_name`` if set), so that
    ``antq eval`` can find the held-out split.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if any(isinstance(m, (QuantConv2d, QuantLinear)) for m in model.modules()):
        raise TypeError("model is already quantized; quantize its fp32 original (or qmodel.to_float())")
    _base_spec(config, bits)  # an unknown config or width fails before any work
    params = [p for p in model.parameters() if p.is_floating_point()]
    x = calibration_inputs(calib_data, params[0].dtype if params else torch.float32,
                           params[0].device if params else None)
    work, folded, replaced = prepare(model, x, act_gemms)
    names = quantizable_layers(work)
    if not names:
        raise ValueError(f"{type(model).__name__} has no quantizable layers (nn.Conv2d, nn.Linear or "
                         "activation x activation matmuls)")
    specs = layer_specs(names, config, bits, overrides, int8_layers)
    if target is not None:
        check_target(specs, target)
    for name in names:
        for pname, p in work.get_submodule(name).named_parameters(recurse=False):
            if not torch.isfinite(p).all():
                bad = int((~torch.isfinite(p)).sum())
                raise ValueError(f"layer {name}: {pname} has {bad} NaN/Inf values")
    qm = FakeQuantModel(work, specs, config=config, bits=bits,
                        dataset=dataset if dataset is not None else getattr(model, "dataset_name", None),
                        name=type(model).__name__)
    qm.folded, qm.replaced_attention = folded, replaced
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

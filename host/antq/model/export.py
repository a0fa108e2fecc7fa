"""Export: the calibrated fake-quant torch model -> the integer model (``antq.model.graph.IntegerModel``).

:func:`export` traces the model with torch.fx (quantized layers as leaves); every quantized layer
becomes a :class:`~antq.model.graph.GemmLayer` (codes, per-channel scales, bias, the frozen input
format and scale) and every other call a host op (:mod:`antq.model.torchops`). Anything the host
executor cannot run is refused here, with the layer's name, rather than at run time.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from ..core.quantize import QuantizedTensor
from .fakequant import ExportError, QuantConv2d, QuantLayer, QuantLinear
from .graph import GemmLayer, IntegerModel, Node
from .hostops import HOST_OPS
from .torchops import FUNCTIONS, METHODS


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
    """Graph argument -> the JSON-like form IntegerModel stores."""
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


def export(qm: nn.Module) -> IntegerModel:
    """Trace a calibrated :class:`~antq.model.calibrate.FakeQuantModel` with torch.fx and build the
    integer :class:`~antq.model.graph.IntegerModel`."""
    if getattr(qm, "input_shape", None) is None:
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
            if fx.target not in FUNCTIONS:
                raise ExportError(f"{where}: function {getattr(fx.target, '__name__', fx.target)} is not "
                                  "supported by the host executor")
            node = Node(fx.name, FUNCTIONS[fx.target], args, kwargs)
        elif fx.op == "call_method":
            if fx.target not in METHODS:
                raise ExportError(f"{where}: tensor method .{fx.target}() is not supported by the host "
                                  "executor")
            node = Node(fx.name, METHODS[fx.target], args, kwargs)
        else:
            raise ExportError(f"{where}: unsupported graph node")
        if node.op in HOST_OPS:
            _check_host_call(node)
        nodes.append(node)
    return IntegerModel(_drop_identities(nodes), qm.input_shape, name=qm.model_name, dataset=qm.dataset,
                          config=qm.config, bits=qm.bits)

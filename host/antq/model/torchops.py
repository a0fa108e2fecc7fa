"""torch callables -> the integer model's host ops (:mod:`antq.model.hostops`): one table for both uses.

Export maps every traced call (a function, or a Tensor method by name) to its host op; in eval
mode the fake-quant model routes the calls whose host op is in ``ROUNDED_OPS`` to the numpy
definition (:func:`routed`), so both compute the same bits.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F

from .hostops import ROUNDED_OPS

FUNCTIONS: dict[Any, str] = {
    operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
    operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
    operator.floordiv: "floordiv", operator.neg: "neg", operator.matmul: "matmul", torch.matmul: "matmul",
    torch.bmm: "matmul", operator.getitem: "getitem", getattr: "getattr",
    operator.eq: "eq", torch.eq: "eq", operator.ne: "ne", torch.ne: "ne", operator.lt: "lt", torch.lt: "lt",
    operator.le: "le", torch.le: "le", operator.gt: "gt", torch.gt: "gt", operator.ge: "ge", torch.ge: "ge",
    torch.logical_not: "logical_not", operator.invert: "logical_not", torch.maximum: "maximum",
    torch.minimum: "minimum", torch.clamp: "clamp", torch.where: "where", torch.masked_fill: "masked_fill",
    torch.abs: "abs", torch.exp: "exp", torch.sqrt: "sqrt",
    torch.relu: "relu", F.relu: "relu", F.relu6: "relu6", F.hardtanh: "hardtanh", F.gelu: "gelu",
    torch.tanh: "tanh", torch.sigmoid: "sigmoid", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
    F.silu: "silu", F.leaky_relu: "leaky_relu", F.dropout: "dropout", F.embedding: "embedding",
    torch.flatten: "flatten", torch.softmax: "softmax", F.softmax: "softmax", F.log_softmax: "log_softmax",
    F.layer_norm: "layer_norm", F.normalize: "normalize", F.max_pool2d: "max_pool2d",
    F.avg_pool2d: "avg_pool2d", F.adaptive_avg_pool2d: "adaptive_avg_pool2d", torch.cat: "cat",
    torch.mean: "mean", torch.sum: "sum", torch.transpose: "transpose", torch.permute: "permute",
    torch.reshape: "reshape", torch.unsqueeze: "unsqueeze", torch.squeeze: "squeeze", torch.chunk: "chunk",
    torch.split: "split",
}
METHODS: dict[str, str] = {
    "view": "reshape", "reshape": "reshape", "flatten": "flatten", "transpose": "transpose",
    "permute": "permute", "contiguous": "identity", "clone": "identity", "detach": "identity",
    "mean": "mean", "sum": "sum", "softmax": "softmax", "size": "size", "dim": "dim", "relu": "relu",
    "unsqueeze": "unsqueeze", "squeeze": "squeeze", "expand": "expand", "chunk": "chunk", "split": "split",
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "matmul": "matmul", "bmm": "matmul",
    "neg": "neg", "abs": "abs", "exp": "exp", "sqrt": "sqrt", "tanh": "tanh", "sigmoid": "sigmoid",
    "eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "clamp": "clamp",
    "masked_fill": "masked_fill", "to": "to", "float": "float", "long": "long", "int": "int", "bool": "bool",
}
MATMULS: frozenset[str] = frozenset({"matmul"})
"""Host ops that multiply two tensors: a call whose operands are both activations becomes a quantized
activation x activation GEMM (:class:`antq.model.fakequant.QuantMatmul`) at quantization time."""


def routed() -> dict[Any, str]:
    """torch callables whose host op is in ROUNDED_OPS -> that op (the functions, the Tensor methods)."""
    table = {f: op for f, op in FUNCTIONS.items() if op in ROUNDED_OPS}
    table.update({getattr(torch.Tensor, m): op for m, op in METHODS.items() if op in ROUNDED_OPS})
    table[torch.Tensor.__matmul__] = "matmul"
    return table


def host_op(fx_op: str, target: Any) -> str | None:
    """The host op of a traced ``call_function`` / ``call_method`` node, or None if there is none."""
    if fx_op == "call_method":
        return METHODS.get(target)
    try:
        return FUNCTIONS.get(target)
    except TypeError:  # an unhashable target
        return None

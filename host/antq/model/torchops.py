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
    operator.neg: "neg", operator.matmul: "matmul", torch.matmul: "matmul", operator.getitem: "getitem",
    getattr: "getattr", torch.relu: "relu", F.relu: "relu", F.gelu: "gelu", torch.tanh: "tanh",
    torch.sigmoid: "sigmoid", torch.flatten: "flatten", torch.softmax: "softmax", F.softmax: "softmax",
    F.log_softmax: "log_softmax", F.layer_norm: "layer_norm", F.max_pool2d: "max_pool2d",
    F.avg_pool2d: "avg_pool2d", F.adaptive_avg_pool2d: "adaptive_avg_pool2d", torch.cat: "cat",
    torch.mean: "mean", torch.sum: "sum", torch.transpose: "transpose", torch.permute: "permute",
    torch.reshape: "reshape",
}
METHODS: dict[str, str] = {
    "view": "reshape", "reshape": "reshape", "flatten": "flatten", "transpose": "transpose",
    "permute": "permute", "contiguous": "identity", "mean": "mean", "sum": "sum", "softmax": "softmax",
    "size": "size", "relu": "relu", "unsqueeze": "unsqueeze", "squeeze": "squeeze", "add": "add",
    "sub": "sub", "mul": "mul", "div": "div", "matmul": "matmul", "neg": "neg", "tanh": "tanh",
    "sigmoid": "sigmoid",
}


def routed() -> dict[Any, str]:
    """torch callables whose host op is in ROUNDED_OPS -> that op (the functions, the Tensor methods)."""
    table = {f: op for f, op in FUNCTIONS.items() if op in ROUNDED_OPS}
    table.update({getattr(torch.Tensor, m): op for m, op in METHODS.items() if op in ROUNDED_OPS})
    table[torch.Tensor.__matmul__] = "matmul"
    return table

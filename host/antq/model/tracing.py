"""Tracing a model into a torch.fx graph: plain torch.fx, or Hugging Face's tracer for transformers models.

Quantization traces a model to find its activation x activation matmuls, and export traces the
quantized model to build the integer graph; both use :func:`trace`. Quantized layers are leaves.
Plain ``torch.fx`` cannot trace stock Hugging Face models (shape-dependent slicing of buffers,
branches on optional inputs), so a model that holds a ``transformers`` ``PreTrainedModel`` is traced
with ``transformers.utils.fx.HFTracer``, which runs the example inputs' shapes along.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch
import torch.fx
from torch import nn

from .fakequant import QUANT_LAYERS, Matmul


def _is_leaf(m: nn.Module) -> bool:
    return isinstance(m, (*QUANT_LAYERS, Matmul))


class _Tracer(torch.fx.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.proxy_buffer_attributes = True  # buffers sliced by a traced size stay in the graph

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _is_leaf(m) or super().is_leaf_module(m, qualname)


def holds_transformers_model(model: nn.Module) -> bool:
    """True if ``model`` is or holds a Hugging Face ``PreTrainedModel`` (transformers is not imported)."""
    tf = sys.modules.get("transformers")
    return tf is not None and any(isinstance(m, tf.PreTrainedModel) for m in model.modules())


def _hf_tracer() -> torch.fx.Tracer:
    from transformers.utils.fx import HFTracer

    class Tracer(HFTracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return _is_leaf(m) or super().is_leaf_module(m, qualname)

    return Tracer()


def input_names(model: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The example inputs by the name of the forward parameter they bind to."""
    sig = inspect.signature(model.forward)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"the inputs do not fit {type(model).__name__}.forward{sig}: {e}") from e
    return dict(bound.arguments)


def trace(model: nn.Module, args: tuple, kwargs: dict) -> torch.fx.GraphModule:
    """A GraphModule of ``model`` called on example inputs ``args``/``kwargs``; every forward parameter
    not given is fixed at its default value."""
    given = input_names(model, args, kwargs)
    sig = inspect.signature(model.forward)
    concrete = {n: p.default for n, p in sig.parameters.items()
                if n not in given and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if holds_transformers_model(model):
        tracer = _hf_tracer()
        graph = tracer.trace(model, concrete_args=concrete, dummy_inputs=given)
    else:
        tracer = _Tracer()
        graph = tracer.trace(model, concrete_args=concrete or None)
    for node in list(graph.nodes):  # torch.fx's checks that the fixed parameters are what they were
        if node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert_is_none":
            graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "placeholder" and node.target in concrete and not node.users:
            graph.erase_node(node)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)

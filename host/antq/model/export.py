"""Export: the calibrated fake-quant torch model -> the integer model (``antq.model.graph.IntegerModel``).

:func:`export` takes the model's torch.fx graph (:mod:`antq.model.tracing`; quantized layers are
leaves): every Conv2d/Linear becomes a :class:`~antq.model.graph.GemmLayer` (codes, per-channel
scales, bias, the frozen input format and scale), every quantized activation x activation matmul a
:class:`~antq.model.graph.MatmulLayer`, and every other call a host op (:mod:`antq.model.torchops`).

Shape arithmetic is constant-folded: the graph is run on one and on two copies of the first
calibration sample, and every node that does not depend on the input data (sizes, sequence
lengths, sliced buffers, masks built from them) and gives the same value in both runs becomes a
constant; what depends on the batch size stays a host op. Then the integer model is run on the
example and must give the fake-quant model's bits: anything the host executor cannot run, or
computes differently, is refused here with the node's name, not at run time.

Before that, :func:`fusion_plan` finds every GEMM layer whose output reaches the next GEMM layer
only through ops that keep grid values (a ReLU right after it, which the epilogue's clamp
absorbs, then max pooling, flatten, reshapes): that layer's output becomes the integer
epilogue's codes in the next layer's activation format (a :class:`~antq.model.graph.Requant`,
docs/contracts.md section 13), which a runtime may leave on the device. The same plan is set on
the fake-quant model's layers (:func:`link`), so both compute it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from ..core import regmap
from ..core.quantize import QuantizedTensor
from .fakequant import ExportError, HostOps, QuantConv2d, QuantLayer, QuantLinear, QuantMatmul
from .graph import GemmLayer, IntegerModel, MatmulLayer, Node, Requant, _refs, requant_params, value_users
from .hostops import DTYPES, HOST_OPS, LAYOUT_OPS, SHAPE_OPS
from .torchops import host_op
from .tracing import trace


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
    simple = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
              nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu",
              nn.Identity: "identity",
              nn.Dropout: "identity", nn.Dropout2d: "identity", nn.Dropout1d: "identity"}
    if type(m) in simple:
        return Node(name, simple[type(m)], args, {})
    if isinstance(m, nn.Hardtanh):
        return Node(name, "hardtanh", args, {"min_val": float(m.min_val), "max_val": float(m.max_val)})
    if isinstance(m, nn.LeakyReLU):
        return Node(name, "leaky_relu", args, {"negative_slope": float(m.negative_slope)})
    if isinstance(m, nn.Embedding):
        if m.max_norm is not None:
            raise ExportError(f"{name}: Embedding with max_norm renormalizes its weights in the forward "
                              f"pass; "
                              "not supported")
        return Node(name, "embedding", args, {"weight": _arr(m.weight)})
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
                      "Conv2d, Linear, MultiheadAttention, Embedding, BatchNorm, LayerNorm, ReLU, ReLU6, "
                      "Hardtanh, Hardswish, Hardsigmoid, SiLU, LeakyReLU, GELU, Tanh, Sigmoid, Softmax, "
                      "Flatten, Max/Avg/AdaptiveAvgPool2d, Dropout, Identity)")


def _enc(a: Any, where: str = "") -> Any:
    """Graph argument -> the JSON-like form IntegerModel stores (nodes become refs)."""
    if isinstance(a, torch.fx.Node):
        return {"ref": a.name}
    if isinstance(a, slice):
        return {"slice": [_enc(v, where) for v in (a.start, a.stop, a.step)]}
    if a is Ellipsis:
        return {"ellipsis": True}
    if isinstance(a, torch.dtype):
        name = str(a).removeprefix("torch.")
        if name not in DTYPES:
            raise ExportError(f"{where}: dtype {name} is not a host dtype (the integer model computes in "
                              f"float32; supported: {', '.join(DTYPES)})")
        return {"dtype": name}
    if isinstance(a, torch.device):
        return str(a.type)
    if isinstance(a, (tuple, list, torch.Size)):
        return [_enc(v, where) for v in a]
    if isinstance(a, dict):
        return {k: _enc(v, where) for k, v in a.items()}
    if a is None or isinstance(a, (bool, int, float, str)):
        return a
    raise ExportError(f"{where}: cannot export the argument {a!r} ({type(a).__name__})")


def _conv_geometry(name: str, m: QuantConv2d) -> dict[str, tuple[int, int]]:
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
            "dilation": tuple(m.dilation), "groups": m.groups}


def _matmul_layer(name: str, m: QuantMatmul) -> MatmulLayer:
    if m.spec.baseline:
        raise ExportError(f"{name}: {m.spec.scheme} is a software-only baseline; only ANT configs export")
    if m.a_shape is None:
        raise ExportError(f"{name}: no operand shapes recorded; calibrate the model first")
    return MatmulLayer(name, m.input_quant.fmt, m.input_quant.scale().detach().cpu().numpy()[0],
                       m.weight_quant.fmt, m.weight_quant.scale().detach().cpu().numpy()[0], m.a_shape,
                       m.b_shape)


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


class _Recorder(torch.fx.Interpreter):
    """Runs the graph and keeps every node's value."""

    def run_node(self, n: torch.fx.Node) -> Any:
        v = super().run_node(n)
        self.values[n] = v
        return v


def _values(gm: torch.fx.GraphModule, args: tuple, kwargs: dict) -> dict[torch.fx.Node, Any]:
    rec = _Recorder(gm)
    rec.values = {}
    names = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    bound = inspect.signature(gm.forward).bind(*args, **kwargs).arguments
    with torch.no_grad(), HostOps():
        rec.run(*(bound[n] for n in names))
    return rec.values


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
            and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _static(gm: torch.fx.GraphModule, one: dict, two: dict) -> dict[torch.fx.Node, Any]:
    """Nodes to fold -> their value: not computed from the input data (shape queries give sizes),
    not depending on the batch size (the same value for batches of one and two, and no input of
    such a dependence except through indexing), and not a model output."""
    data: set[torch.fx.Node] = set()
    batch: set[torch.fx.Node] = set()
    static: dict[torch.fx.Node, Any] = {}
    for n in gm.graph.nodes:
        ins = n.all_input_nodes
        if n.op == "placeholder" or n.op == "call_module" or (
                n.op in ("call_function", "call_method") and host_op(n.op, n.target) not in SHAPE_OPS
                and any(a in data for a in ins)):
            data.add(n)
            continue
        if n.op == "output":
            continue
        indexing = n.op == "call_function" and host_op(n.op, n.target) == "getitem"
        if not _same(one.get(n), two.get(n)) or (not indexing and any(a in batch for a in ins)):
            batch.add(n)
            continue
        static[n] = two[n]
    return static


class _Builder:
    """Turns graph nodes into integer-model nodes, inlining folded values and making constants of
    folded tensors."""

    def __init__(self, static: dict[torch.fx.Node, Any]) -> None:
        self.static, self.nodes, self.consts = static, [], {}

    def arg(self, a: Any, where: str) -> Any:
        if isinstance(a, torch.fx.Node) and a in self.static:
            return self.value(a, self.static[a], where)
        if isinstance(a, (tuple, list)):
            return [self.arg(v, where) for v in a]
        if isinstance(a, dict):
            return {k: self.arg(v, where) for k, v in a.items()}
        if isinstance(a, slice):
            return {"slice": [self.arg(v, where) for v in (a.start, a.stop, a.step)]}
        return _enc(a, where)

    def value(self, node: torch.fx.Node, v: Any, where: str) -> Any:
        if isinstance(v, torch.Tensor):
            if node.name not in self.consts:
                arr = v.detach().cpu().numpy()
                if arr.dtype.name not in DTYPES:
                    raise ExportError(f"{where}: {node.name} is a {arr.dtype} tensor; the integer model "
                                      f"computes in float32 (host dtypes: {', '.join(DTYPES)})")
                self.nodes.append(Node(node.name, "constant", [], {"value": np.array(arr)}))
                self.consts[node.name] = {"ref": node.name}
            return self.consts[node.name]
        if isinstance(v, (tuple, list, torch.Size)):
            return [self.value(node, x, where) for x in v]
        return _enc(v, f"{where} (the folded value of {node.name})")


def _used(nodes: list[Node]) -> list[Node]:
    """The nodes the output depends on (dead code, such as shape checks, is dropped)."""
    from .graph import _refs

    need = {"output"}
    keep = []
    for n in reversed(nodes):
        if n.name in need or n.op == "input":
            need.update(_refs([n.args, n.kwargs]))
            keep.append(n)
    return keep[::-1]


def _graph(qm: nn.Module) -> tuple[list[Node], Any, Any, dict[str, Any]]:
    """(integer-model nodes without fusion, the two-sample example, the fake-quant output on it,
    each node's value on one sample by name)."""
    if getattr(qm, "example", None) is None:
        raise ExportError("the model is not calibrated")
    ex = qm.example
    try:
        gm = qm.model if isinstance(qm.model, torch.fx.GraphModule) else trace(qm.model, ex.args, ex.kwargs)
    except Exception as e:  # torch.fx raises many kinds of errors on dynamic control flow
        raise ExportError(f"torch.fx cannot trace {type(qm.model).__name__} ({type(e).__name__}: {e}); the "
                          "host executor needs a static graph") from e
    one, two = ex.repeat_first(1), ex.repeat_first(2)
    try:
        v1, v2 = _values(gm, one.args, one.kwargs), _values(gm, two.args, two.kwargs)
    except Exception as e:
        raise ExportError(f"the traced graph of {type(qm.model).__name__} does not run: {e}") from e
    b = _Builder(_static(gm, v1, v2))
    mods = dict(gm.named_modules())
    for fx in gm.graph.nodes:
        if fx in b.static:
            continue
        where = f"{fx.name} ({fx.op} {getattr(fx.target, '__name__', fx.target)})"
        args, kwargs = b.arg(list(fx.args), where), b.arg(dict(fx.kwargs), where)
        if fx.op == "placeholder":
            t = v2[fx]
            if not isinstance(t, torch.Tensor):
                raise ExportError(f"{where}: model inputs must be tensors, got {type(t).__name__}")
            dtype = str(t.dtype).removeprefix("torch.")
            if dtype not in DTYPES:
                raise ExportError(f"{where}: an input of dtype {dtype}; the integer model takes float32 and "
                                  f"integer inputs ({', '.join(DTYPES)})")
            node = Node(fx.name, "input", [], {"shape": list(t.shape[1:]), "dtype": dtype})
        elif fx.op == "output":
            node = Node("output", "output", args)
        elif fx.op == "get_attr":
            raise ExportError(f"{where}: a parameter computed from the input data")  # cannot happen: static
        elif fx.op == "call_module":
            m = mods[fx.target]
            if isinstance(m, QuantMatmul):
                node = Node(fx.name, "act_gemm", args, {}, _matmul_layer(fx.target, m))
            elif isinstance(m, (QuantConv2d, QuantLinear)):
                node = Node(fx.name, "gemm", args, {}, _gemm_layer(fx.target, m))
            else:
                node = _module_node(fx.target, m, args)
                node.name = fx.name
        elif fx.op in ("call_function", "call_method"):
            op = host_op(fx.op, fx.target)
            if op is None:
                what = f"tensor method .{fx.target}()" if fx.op == "call_method" else \
                    f"function {getattr(fx.target, '__name__', fx.target)}"
                raise ExportError(f"{where}: {what} is not supported by the host executor")
            node = Node(fx.name, op, args, kwargs)
        else:
            raise ExportError(f"{where}: unsupported graph node")
        if node.op in HOST_OPS:
            _check_host_call(node)
        b.nodes.append(node)
    one_values = {fx.name: v for fx, v in v1.items()}
    return _used(_drop_identities(b.nodes)), two, v2[next(n for n in gm.graph.nodes if n.op == "output")], \
        one_values


GRID_OPS = frozenset({"max_pool2d", "flatten", "reshape", "permute", "transpose", "squeeze", "unsqueeze"})
"""Host ops that map a tensor of grid values (times one scale) to grid values: a requantized
output may pass through them to the next GEMM layer and be requantized to the same codes."""


Reader = tuple[str, str, tuple[int, ...] | None]
"""One consumer of a requantized output: (its layer's name, the quantizer of the operand it reads,
``"input_quant"`` or ``"weight_quant"``, the output columns it reads or None for all)."""

Plan = dict[str, tuple[Requant, str | None, tuple[Reader, ...]]]
"""Producer gemm node name -> (its :class:`Requant`, the name of a ReLU node it absorbs or None,
the consumers whose quantizers the fake-quant link points at)."""


def fusion_plan(nodes: list[Node], one: dict[str, Any] | None = None) -> Plan:
    """The producers whose output the integer epilogue requantizes (:data:`Plan`).

    A Conv2d/Linear layer (one group, accelerator formats) or an activation x activation GEMM
    (attention's P.V, whose output reaches the output projection through a transpose and a
    reshape) qualifies if its output has one user,
    optionally a ReLU (folded into the epilogue's clamp), then a chain of one-user :data:`GRID_OPS`
    taking it as their first argument, ending at a GEMM layer whose activation format the
    epilogue writes, and if :func:`~antq.model.graph.requant_params` can represent its scales.
    Failing that, a Conv2d/Linear layer whose output reaches only GEMM operands, through ops that
    only move elements (:data:`~antq.model.hostops.LAYOUT_OPS`), each operand reading its own
    output columns, all in one format the epilogue writes, qualifies with one scale per column
    (:func:`_column_readers`; ``one`` holds each node's value on one sample, for the shapes).
    Ops that read only a shape (:data:`~antq.model.hostops.SHAPE_OPS`) do not count as users."""
    users = value_users(nodes)

    def only_first(n: Node, r: str) -> bool:
        return bool(n.args) and n.args[0] == {"ref": r} and r not in _refs([n.args[1:], n.kwargs])

    plan: Plan = {}
    for p in nodes:
        layer = p.layer
        if p.op not in ("gemm", "act_gemm") or getattr(layer, "groups", 1) != 1 or not layer.hardware:
            continue
        cur, act, relu = p.name, "none", None
        target = None
        while len(users.get(cur, [])) == 1:
            u = users[cur][0]
            if u.op == "gemm":
                target = u.layer if only_first(u, cur) else None
                break
            if u.op == "relu" and cur == p.name and only_first(u, cur) and len(u.args) == 1:
                act, relu = "relu", u.name
            elif not (u.op in GRID_OPS and only_first(u, cur) and not u.kwargs.get("return_indices")):
                break
            cur = u.name
        if p.op == "act_gemm":
            a_scale, w_scale, bias = layer.a_scale, np.full(layer.n, layer.b_scale), None
        else:
            a_scale, w_scale, bias = layer.act_scale, layer.weight.scale, layer.bias
        if target is not None and target.hardware and regmap.supported(target.act_fmt):
            out = Requant(target.act_fmt, target.act_scale, act, target.name)
            readers: tuple[Reader, ...] = ((target.name, "input_quant", None),)
        elif p.op == "gemm" and one is not None and (found := _column_readers(p, nodes, one)) is not None:
            out, readers = found
            relu = None
        else:
            continue  # the epilogue writes 4-bit ANT formats and int8 only
        if requant_params(layer.act_fmt, a_scale, layer.w_fmt, w_scale, layer.k, bias, out) is not None:
            plan[p.name] = (out, relu, readers)
    return plan


def _resolve(a: Any, vals: dict[str, np.ndarray], one: dict[str, Any]) -> Any:
    """Node arguments with refs replaced: by the index arrays in ``vals``, or by the one-sample
    value of a shape computation; KeyError for a ref to any other tensor."""
    if isinstance(a, dict):
        if "ref" in a:
            if a["ref"] in vals:
                return vals[a["ref"]]
            v = one[a["ref"]]
            if isinstance(v, torch.Tensor):
                raise KeyError(a["ref"])
            return v
        return {k: _resolve(v, vals, one) for k, v in a.items()}
    if isinstance(a, list):
        return [_resolve(v, vals, one) for v in a]
    return a


def _column_readers(p: Node, nodes: list[Node], one: dict[str, Any]
                    ) -> tuple[Requant, tuple[Reader, ...]] | None:
    """The :class:`Requant` with one scale per output column, and its readers, of a GEMM layer
    whose output reaches only GEMM operands through :data:`~antq.model.hostops.LAYOUT_OPS`; None
    otherwise. Each op is applied to the output columns' numbers (an int64 array of the output's
    one-sample shape), so each operand's array says which columns it reads."""
    y = one.get(p.name)
    if not isinstance(y, torch.Tensor) or y.dim() < 2:
        return None
    shape, axis = tuple(y.shape), 1 if p.layer.op == "conv2d" else y.dim() - 1
    cols = np.arange(shape[axis]).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    vals: dict[str, np.ndarray] = {p.name: np.broadcast_to(cols, shape).copy()}
    reads: list[tuple[Node, int, np.ndarray]] = []
    for n in nodes[nodes.index(p) + 1:]:
        refs = [r for r in _refs([n.args, n.kwargs]) if r in vals]
        if not refs or n.op in SHAPE_OPS:
            continue
        if n.op in ("gemm", "act_gemm"):  # operands: direct arguments only
            slots = [i for i, a in enumerate(n.args) if isinstance(a, dict) and a.get("ref") in vals]
            if len(slots) != len(refs) or (n.op == "gemm" and slots != [0]):
                return None
            reads += [(n, i, vals[n.args[i]["ref"]]) for i in slots]
            continue
        if n.op not in LAYOUT_OPS or n.args[:1] != [{"ref": refs[0]}] or len(refs) != 1:
            return None
        try:
            args, kwargs = _resolve(n.args[1:], vals, one), _resolve(n.kwargs, vals, one)
            v = HOST_OPS[n.op](vals[refs[0]], *args, **kwargs)
        except Exception:  # an op this analysis cannot follow: no per-column plan
            return None
        if not isinstance(v, np.ndarray) or v.dtype != np.int64:
            return None
        vals[n.name] = v
    if not reads:
        return None
    fmt, scale = None, np.zeros(shape[axis], np.float32)
    seen = np.zeros(shape[axis], bool)
    readers = []
    for n, i, c in reads:
        layer = n.layer
        if not layer.hardware or (n.op == "gemm" and getattr(layer, "groups", 1) != 1):
            return None
        if n.op == "gemm":
            f, s = layer.act_fmt, layer.act_scale
        else:
            f, s = (layer.a_fmt, layer.a_scale) if i == 0 else (layer.b_fmt, layer.b_scale)
        used = np.unique(c)
        if fmt is None:
            fmt, scale[:] = f, s
        if f != fmt or not regmap.supported(f) or seen[used].any():
            return None  # one format per call; a column read twice would need two scales
        seen[used], scale[used] = True, s
        readers.append((layer.name, "input_quant" if i == 0 else "weight_quant", tuple(int(v) for v in used)))
    return Requant(fmt, tuple(scale), "none", ", ".join(dict.fromkeys(r[0] for r in readers))), tuple(readers)


def _fuse(nodes: list[Node], plan: Plan) -> list[Node]:
    """The nodes with each planned layer's Requant set and its absorbed ReLU removed."""
    alias = {relu: name for name, (_, relu, _) in plan.items() if relu is not None}
    out = []
    for n in nodes:
        if n.name in alias:
            continue
        n.args, n.kwargs = _rename_refs(n.args, alias), _rename_refs(n.kwargs, alias)
        if n.name in plan and n.op == "act_gemm":
            layer = n.layer
            n.layer = MatmulLayer(layer.name, layer.a_fmt, layer.a_scale, layer.b_fmt, layer.b_scale,
                                  layer.a_shape, layer.b_shape, out=plan[n.name][0])
        elif n.name in plan:
            layer = n.layer
            n.layer = GemmLayer(name=layer.name, op=layer.op, weight=layer.weight, bias=layer.bias,
                                act_fmt=layer.act_fmt, act_scale=layer.act_scale, in_shape=layer.in_shape,
                                kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                                dilation=layer.dilation, groups=layer.groups, out=plan[n.name][0])
        out.append(n)
    return out


def _set_links(qm: nn.Module, nodes: list[Node], plan: Plan) -> bool:
    """Point each planned fake-quant layer at its consumers' operand quantizers (and unlink the
    rest); True if anything changed. A link is ``(quantizer, act)`` for one consumer reading every
    column, else ``(((quantizer, columns), ...), act)``."""
    mods = dict(qm.model.named_modules())
    layer_of = {n.name: n.layer.name for n in nodes if n.layer is not None}
    want = {}
    for p, (out, _, readers) in plan.items():
        quants = tuple((getattr(mods[name], which), cols) for name, which, cols in readers)
        want[layer_of[p]] = (quants[0][0] if len(quants) == 1 and quants[0][1] is None else quants, out.act)
    changed = False
    for name, m in mods.items():
        if isinstance(m, (QuantConv2d, QuantLinear, QuantMatmul)):
            link = want.get(name)
            if link != m.requant_link:
                m.requant_link, changed = link, True
    return changed


def link(qm: nn.Module) -> None:
    """Set the fusion plan on a calibrated fake-quant model's layers (calibration calls it), so its
    eval mode requantizes the same outputs with the integer epilogue as the exported model. A model
    that cannot be exported gets no links (export then says why)."""
    for m in qm.model.modules():
        if isinstance(m, (QuantConv2d, QuantLinear, QuantMatmul)):
            m.requant_link = None
    try:
        nodes, _, _, one = _graph(qm)
    except ExportError:
        return
    _set_links(qm, nodes, fusion_plan(nodes, one))


def export(qm: nn.Module) -> IntegerModel:
    """Build the integer :class:`~antq.model.graph.IntegerModel` of a calibrated
    :class:`~antq.model.calibrate.FakeQuantModel` (see the module docstring)."""
    nodes, two, expected, one = _graph(qm)
    plan = fusion_plan(nodes, one)
    if _set_links(qm, nodes, plan):  # the fake-quant output on the example changes with the links
        nodes, two, expected, _ = _graph(qm)
    model = IntegerModel(_fuse(nodes, plan), name=qm.model_name, dataset=qm.dataset, config=qm.config,
                         bits=qm.bits)
    _verify(model, two, expected)
    return model


def _numpy(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, (tuple, list)):
        return [_numpy(x) for x in v]
    if isinstance(v, dict):
        return {k: _numpy(x) for k, x in v.items()}
    return v


def _flat(v: Any) -> list:
    if isinstance(v, dict):
        return [x for k in sorted(v) for x in _flat(v[k])]
    if isinstance(v, (tuple, list)):
        return [x for item in v for x in _flat(item)]
    return [v]


def _verify(model: IntegerModel, example: Any, expected: Any) -> None:
    """The integer model must run on the example and give the fake-quant model's bits."""
    feed = {i.name: t.detach().cpu().numpy()
            for i, t in zip(model.inputs, [*example.args, *example.kwargs.values()], strict=True)}
    try:
        got = model.run(feed)
    except (ValueError, TypeError, IndexError, OverflowError) as e:
        raise ExportError(f"the exported model cannot run on the host: {e}") from e
    want = _flat(_numpy(expected))
    have = _flat(got)
    same = len(want) == len(have) and all(
        np.array_equal(np.asarray(w), np.asarray(h)) for w, h in zip(want, have, strict=True))
    if not same:
        raise ExportError("the exported integer model does not give the fake-quant model's outputs bit for "
                          "bit on "
                          "the calibration example (a host op that antq computes differently from torch); "
                          "please report it")

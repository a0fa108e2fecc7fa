"""The integer model's host ops: numpy versions of the torch functions a traced model calls.

Every value between ops is float32, as in the torch model. Two kinds of op keep the fake-quant
torch model and the integer model equal bit for bit (docs/contracts.md §11):

* exact ops (data movement and gathers, max/min/clamp, ReLU/ReLU6/hardtanh, comparisons, casts,
  ``where``/``masked_fill``, and one IEEE float32 operation per element: add, sub, mul, div, neg)
  give the same bits in torch and numpy, so the torch model runs its own;
* :data:`ROUNDED_OPS` (reductions, transcendentals, float matmuls, normalisations), whose float32
  result depends on the implementation, are defined here: float64 inside, rounded to float32
  once, reductions over a contiguous last axis so that a row's result does not depend on the
  batch. In eval mode the fake-quant torch model calls these very functions
  (:mod:`antq.model.fakequant` routes them).

numpy (and scipy's erf) only: this runs on the board.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


def _f64(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted({int(d) % ndim for d in dims})) if dims else tuple(range(ndim))


def _reduce(x: np.ndarray, dims: tuple[int, ...], fn: Callable[[np.ndarray], np.ndarray],
            keepdim: bool) -> np.ndarray:
    """``fn`` over the last axis of ``x`` with ``dims`` moved to the end and flattened (float64)."""
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = _f64(np.transpose(x, rest + list(dims)))
    out = fn(moved.reshape(moved.shape[:len(rest)] + (-1,)))
    if keepdim:
        out = out.reshape([1 if d in dims else x.shape[d] for d in range(x.ndim)])
    return out


def _rowwise(x: np.ndarray, dim: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` on rows along ``dim`` (moved last, contiguous float64), moved back, rounded to float32."""
    d = int(dim) % x.ndim
    return np.moveaxis(fn(_f64(np.moveaxis(x, d, -1))), -1, d).astype(F32)


def _shape_args(shape: tuple) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else tuple(shape)


def _unsupported(op: str, **kw: Any) -> None:
    bad = {k: v for k, v in kw.items() if v}
    if bad:
        raise ValueError(f"host op {op}: unsupported arguments {bad}")


def _batch_norm(x, mean, var, weight, bias, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = 1.0 / np.sqrt(_f64(var) + eps)
    y = (_f64(x) - _f64(mean).reshape(shape)) * (inv * _f64(weight)).reshape(shape)
    return (y + _f64(bias).reshape(shape)).astype(F32)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(x.ndim - len(_shape_args(tuple(normalized_shape))), x.ndim))
    n = int(np.prod([x.shape[d] for d in dims]))
    mu = _reduce(x, dims, lambda r: r.sum(axis=-1) / n, keepdim=True)
    dev = _f64(x) - mu
    var = _reduce(dev, dims, lambda r: (r * r).sum(axis=-1) / n, keepdim=True)
    y = dev / np.sqrt(var + eps)
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    return y.astype(F32)


def _gelu(x, approximate="none"):
    v = _f64(x)
    if approximate == "tanh":
        return (0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))).astype(F32)
    if approximate != "none":
        raise ValueError(f"host op gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    from scipy.special import erf

    return (0.5 * v * (1 + erf(v / math.sqrt(2)))).astype(F32)


def _softmax_rows(r: np.ndarray) -> np.ndarray:
    e = np.exp(r - r.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax_rows(r: np.ndarray) -> np.ndarray:
    z = r - r.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _softmax(x, dim=None, _stacklevel=3, dtype=None):
    _unsupported("softmax", dtype=dtype)
    if dim is None:
        raise ValueError("host op softmax needs an explicit dim")
    return _rowwise(x, dim, _softmax_rows)


def _log_softmax(x, dim=None, _stacklevel=3, dtype=None):
    _unsupported("log_softmax", dtype=dtype)
    if dim is None:
        raise ValueError("host op log_softmax needs an explicit dim")
    return _rowwise(x, dim, _log_softmax_rows)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a pooling window as torch computes it (``ceil_mode`` included)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left pad
        out -= 1
    return out


def _pool_padded(x, kernel_size, stride, padding, dilation, fill, ceil_mode):
    """(x padded with ``fill``, (kh, kw), (sh, sw), (dh, dw), (OH, OW)) of a pooling window. With
    ``ceil_mode`` the last windows may run past the right/bottom padding, so more is padded there."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(kernel_size if stride is None or stride == [] or stride == () else stride)
    h, w = x.shape[-2:]
    oh, ow = _pool_out(h, kh, sh, ph, dh, ceil_mode), _pool_out(w, kw, sw, pw, dw, ceil_mode)
    eh = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    ew = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    if ph or pw or eh or ew:
        x = np.pad(x, ((0, 0),) * (x.ndim - 2) + ((ph, ph + eh), (pw, pw + ew)), constant_values=fill)
    return x, (kh, kw), (sh, sw), (dh, dw), (oh, ow)


def _pool_windows(x, kernel_size, stride, padding, dilation, fill, ceil_mode=False):
    """(..., OH, OW, kh*kw) windows (a contiguous copy: the pooled axis is last); padded positions
    hold ``fill``."""
    p, (kh, kw), (sh, sw), (dh, dw), (oh, ow) = _pool_padded(x, kernel_size, stride, padding, dilation, fill,
                                                             ceil_mode)
    win = sliding_window_view(p, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(-2, -1))
    win = win[..., ::sh, ::sw, ::dh, ::dw][..., :oh, :ow, :, :]
    return np.ascontiguousarray(win).reshape(win.shape[:-2] + (-1,))


def _max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch's max pooling, bit for bit: window positions in row-major order, each kept unless a later
    one is larger or NaN (``np.maximum(later, kept)`` returns ``kept`` on ties, so of +0 and -0 the
    first stays, as in torch). One elementwise maximum per window position on strided views: no
    window copy, and 30x faster than a reduction over tiny windows."""
    _unsupported("max_pool2d", return_indices=return_indices)
    p, (kh, kw), (sh, sw), (dh, dw), (oh, ow) = _pool_padded(x, kernel_size, stride, padding, dilation,
                                                             -np.inf, ceil_mode)
    out = None
    for i in range(kh):
        for j in range(kw):
            v = p[..., i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            out = np.array(v) if out is None else np.maximum(v, out)
    return out


def _avg_divisors(size: int, k: int, s: int, p: int, out: int, include_pad: bool) -> np.ndarray:
    """Per output position, the element count torch divides an average-pool window by."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float64)


def _avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    win = _pool_windows(_f64(x), kernel_size, stride, padding, 1, 0.0, ceil_mode)
    total = win.sum(axis=-1)
    if divisor_override:
        return (total / float(divisor_override)).astype(F32)
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(kernel_size if stride is None or stride == [] or stride == () else stride)
    oh, ow = total.shape[-2:]
    div = np.outer(_avg_divisors(x.shape[-2], kh, sh, ph, oh, count_include_pad),
                   _avg_divisors(x.shape[-1], kw, sw, pw, ow, count_include_pad))
    return (total / div).astype(F32)


def _adaptive_avg_pool2d(x, output_size):
    oh, ow = _pair(output_size)
    h, w = x.shape[-2:]
    v = _f64(x)
    out = np.empty(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            cell = np.ascontiguousarray(v[..., h0:h1, w0:w1]).reshape(v.shape[:-2] + (-1,))
            out[..., i, j] = cell.sum(axis=-1) / cell.shape[-1]
    return out.astype(F32)


def _flatten(x, start_dim=0, end_dim=-1):
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def _reshape(x, *shape):
    return x.reshape(_shape_args(shape))


def _permute(x, *dims):
    return x.transpose(_shape_args(dims))


def _mean(x, dim=None, keepdim=False, dtype=None):
    _unsupported("mean", dtype=dtype)
    dims = _dims(dim, x.ndim)
    n = int(np.prod([x.shape[d] for d in dims]))
    return np.asarray(_reduce(x, dims, lambda r: r.sum(axis=-1) / n, keepdim)).astype(F32)


def _sum(x, dim=None, keepdim=False, dtype=None):
    _unsupported("sum", dtype=dtype)
    return np.asarray(_reduce(x, _dims(dim, x.ndim), lambda r: r.sum(axis=-1), keepdim)).astype(F32)


def _matmul(a, b):
    return np.matmul(_f64(a), _f64(b)).astype(F32)


def _size(x, dim=None):
    return tuple(x.shape) if dim is None else x.shape[dim]


def _getattr(x, name):
    if name == "shape":
        return tuple(x.shape)
    if name == "ndim":
        return x.ndim
    raise ValueError(f"host op getattr: unsupported attribute {name!r}")


def _getitem(x, idx):
    return x[tuple(idx) if isinstance(idx, list) else idx]


def _squeeze(x, dim=None):
    if dim is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=dim) if x.shape[dim] == 1 else x


def _cat(tensors, dim=0):
    return np.concatenate(tensors, axis=dim)


DTYPES = ("float32", "int64", "int32", "int16", "int8", "uint8", "bool")
"""The dtypes a host value may have: float32 for every real value, integers and bool for token ids,
masks and indices (the integer model computes in float32, as the eval-mode torch model does)."""


def _dtype(d: Any) -> np.dtype:
    name = str(d)
    if name not in DTYPES:
        raise ValueError(f"dtype {name} is not a host dtype (the integer model computes in float32; "
                         f"supported: {', '.join(DTYPES)})")
    return np.dtype(name)


def _to(x, *args, dtype=None, non_blocking=False, copy=False, memory_format=None):
    """``Tensor.to``: a cast to a host dtype; a device argument ("cpu") changes nothing."""
    for a in args:
        if isinstance(a, np.dtype):
            dtype = a
        elif isinstance(a, np.ndarray):
            dtype = a.dtype
        elif a not in ("cpu", None):
            raise ValueError(f"host op to: unsupported argument {a!r}")
    return x if dtype is None else np.asarray(x).astype(_dtype(dtype))


def _embedding(ids, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
               sparse=False):
    _unsupported("embedding", max_norm=max_norm)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"host op embedding: indices must be integers, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= len(weight)):
        raise ValueError(f"host op embedding: index out of range 0..{len(weight) - 1} "
                         f"(got {ids.min()}..{ids.max()})")
    return np.asarray(weight, F32)[ids]


def _expand(x, *sizes):
    shape = _shape_args(sizes)
    lead = len(shape) - x.ndim
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return np.broadcast_to(x, full)


def _masked_fill(x, mask, value):
    return np.where(mask, np.asarray(value, x.dtype), x)


def _clamp(x, min=None, max=None):  # noqa: A002 (torch's argument names)
    if min is not None:
        x = np.maximum(x, np.asarray(min, x.dtype))
    if max is not None:
        x = np.minimum(x, np.asarray(max, x.dtype))
    return x


def _hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    return np.minimum(np.maximum(x, F32(min_val)), F32(max_val))


def _hardswish(x, inplace=False):
    v = _f64(x)
    return (v * np.clip(v + 3.0, 0.0, 6.0) / 6.0).astype(F32)


def _hardsigmoid(x, inplace=False):
    return (np.clip(_f64(x) + 3.0, 0.0, 6.0) / 6.0).astype(F32)


def _silu(x, inplace=False):
    v = _f64(x)
    return (v / (1.0 + np.exp(-v))).astype(F32)


def _leaky_relu(x, negative_slope=0.01, inplace=False):
    v = _f64(x)
    return np.where(v > 0, v, v * float(negative_slope)).astype(F32)


def _normalize(x, p=2.0, dim=1, eps=1e-12, out=None):
    _unsupported("normalize", out=out)
    if p != 2:
        raise ValueError(f"host op normalize: only p=2 is supported, got p={p}")
    return _rowwise(x, dim, lambda r: r / np.maximum(np.sqrt((r * r).sum(axis=-1, keepdims=True)), eps))


def _chunk(x, chunks, dim=0):
    size = -(-x.shape[dim] // chunks)
    return tuple(np.split(x, range(size, x.shape[dim], size), axis=dim))


def _split(x, split_size_or_sections, dim=0):
    n = x.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        cuts = list(range(int(split_size_or_sections), n, int(split_size_or_sections)))
    else:
        cuts = list(np.cumsum(split_size_or_sections)[:-1])
    return tuple(np.split(x, cuts, axis=dim))


def _add(a, b, alpha=None):
    _unsupported("add", alpha=alpha)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):  # shape arithmetic: concatenation
        return tuple(a) + tuple(b)
    return np.add(a, b)


def _binary(fn):
    def op(a, b, alpha=None):
        _unsupported(fn.__name__, alpha=alpha)
        return fn(a, b)
    return op


HOST_OPS: dict[str, Callable[..., Any]] = {
    "identity": lambda x: x,
    "relu": lambda x, inplace=False: np.maximum(x, F32(0)),
    "hardtanh": _hardtanh,
    "relu6": lambda x, inplace=False: _hardtanh(x, 0.0, 6.0),
    "gelu": _gelu,
    "tanh": lambda x: np.tanh(_f64(x)).astype(F32),
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-_f64(x)))).astype(F32),
    "hardswish": _hardswish,
    "hardsigmoid": _hardsigmoid,
    "silu": _silu,
    "leaky_relu": _leaky_relu,
    "exp": lambda x: np.exp(_f64(x)).astype(F32),
    "sqrt": lambda x: np.sqrt(_f64(x)).astype(F32),
    "neg": lambda x: -x,
    "abs": np.abs,
    "add": _add,
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.true_divide),
    "floordiv": _binary(np.floor_divide),
    "eq": _binary(np.equal),
    "ne": _binary(np.not_equal),
    "lt": _binary(np.less),
    "le": _binary(np.less_equal),
    "gt": _binary(np.greater),
    "ge": _binary(np.greater_equal),
    "logical_not": np.logical_not,
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "clamp": _clamp,
    "where": lambda cond, a, b: np.where(cond, a, b),
    "masked_fill": _masked_fill,
    "to": _to,
    "float": lambda x: np.asarray(x).astype(F32),
    "long": lambda x: np.asarray(x).astype(np.int64),
    "int": lambda x: np.asarray(x).astype(np.int32),
    "bool": lambda x: np.asarray(x).astype(bool),
    "dropout": lambda x, p=0.5, training=False, inplace=False: x,
    "matmul": _matmul,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "normalize": _normalize,
    "embedding": _embedding,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
    "unsqueeze": lambda x, dim: np.expand_dims(x, dim % (x.ndim + 1)),
    "squeeze": _squeeze,
    "expand": _expand,
    "chunk": _chunk,
    "split": _split,
    "mean": _mean,
    "sum": _sum,
    "size": _size,
    "dim": lambda x: x.ndim,
    "getattr": _getattr,
    "getitem": _getitem,
    "cat": _cat,
}
"""Host op name -> numpy implementation with the torch function's signature (float32 in and out)."""

LAYOUT_OPS: frozenset[str] = frozenset({
    "identity", "dropout", "flatten", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "expand",
    "getitem",
})
"""Host ops that only move, select or repeat their first argument's elements. Applied to an array of
element indices they say where each output element comes from, so a runtime can apply them to the
indices of a value it keeps on the device (:meth:`antq.model.graph.DeviceValue.relayout`) and
fetch nothing."""

SHAPE_OPS: frozenset[str] = frozenset({"size", "dim", "getattr"})
"""Host ops that read only their first argument's shape (``getattr`` takes ``shape`` and ``ndim``
only): a runtime answers them from a device value's indices (:meth:`antq.model.graph.DeviceValue.
shaped`) and fetches nothing, and they do not count as users of a value the export requantizes."""

ROUNDED_OPS: frozenset[str] = frozenset({
    "gelu", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "leaky_relu", "exp", "sqrt", "matmul",
    "softmax", "log_softmax", "batch_norm", "layer_norm", "normalize", "avg_pool2d", "adaptive_avg_pool2d",
    "mean", "sum",
})
"""Host ops defined here in float64 with one final rounding to float32. Their float32 result would
depend on the implementation, so the fake-quant torch model calls these functions in eval mode
(:mod:`antq.model.fakequant`); every other host op is exact (bit-identical in torch and numpy float32)."""

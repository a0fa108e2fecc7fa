"""The integer model's host ops: numpy versions of the torch functions a traced model calls.

Every value between ops is float32, as in the torch model. Two kinds of op keep the fake-quant
torch model and the integer model equal bit for bit (docs/contracts.md §11):

* exact ops (data movement, max, and one IEEE float32 operation per element: add, sub, mul,
  div, neg, relu) give the same bits in torch and numpy, so the torch model runs its own;
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


def _pool_windows(x, kernel_size, stride, padding, dilation, fill):
    """(..., OH, OW, kh*kw) windows (a contiguous copy: the pooled axis is last)."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(kernel_size if stride is None or stride == [] or stride == () else stride)
    p = np.pad(x, ((0, 0),) * (x.ndim - 2) + ((ph, ph), (pw, pw)), constant_values=fill)
    win = sliding_window_view(p, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(-2, -1))
    win = win[..., ::sh, ::sw, ::dh, ::dw]
    return np.ascontiguousarray(win).reshape(win.shape[:-2] + (-1,))


def _max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _unsupported("max_pool2d", ceil_mode=ceil_mode, return_indices=return_indices)
    return _pool_windows(x, kernel_size, stride, padding, dilation, -np.inf).max(axis=-1)


def _avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    _unsupported("avg_pool2d", ceil_mode=ceil_mode, divisor_override=divisor_override)
    win = _pool_windows(_f64(x), kernel_size, stride, padding, 1, 0.0)
    if count_include_pad or _pair(padding) == (0, 0):
        return (win.sum(axis=-1) / win.shape[-1]).astype(F32)
    ones = _pool_windows(np.ones((1,) * (x.ndim - 2) + x.shape[-2:]), kernel_size, stride, padding, 1, 0.0)
    return (win.sum(axis=-1) / ones.sum(axis=-1)).astype(F32)


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


def _binary(fn):
    def op(a, b, alpha=None):
        _unsupported(fn.__name__, alpha=alpha)
        return fn(a, b)
    return op


HOST_OPS: dict[str, Callable[..., Any]] = {
    "identity": lambda x: x,
    "relu": lambda x, inplace=False: np.maximum(x, F32(0)),
    "gelu": _gelu,
    "tanh": lambda x: np.tanh(_f64(x)).astype(F32),
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-_f64(x)))).astype(F32),
    "neg": lambda x: -x,
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.true_divide),
    "matmul": _matmul,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
    "unsqueeze": lambda x, dim: np.expand_dims(x, dim % (x.ndim + 1)),
    "squeeze": _squeeze,
    "mean": _mean,
    "sum": _sum,
    "size": _size,
    "getattr": _getattr,
    "getitem": _getitem,
    "cat": _cat,
}
"""Host op name -> numpy implementation with the torch function's signature (float32 in and out)."""

ROUNDED_OPS: frozenset[str] = frozenset({
    "gelu", "tanh", "sigmoid", "matmul", "softmax", "log_softmax", "batch_norm", "layer_norm",
    "avg_pool2d", "adaptive_avg_pool2d", "mean", "sum",
})
"""Host ops defined here in float64 with one final rounding to float32. Their float32 result would
depend on the implementation, so the fake-quant torch model calls these functions in eval mode
(:mod:`antq.model.fakequant`); every other host op is exact (bit-identical in torch and numpy float32)."""

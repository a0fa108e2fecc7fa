"""The host ops added for stock models, against torch: exact ops bit for bit, rounded ops to float32 accuracy.

Exact ops (gathers, comparisons, casts, clamps, ReLU6, masked fills, shape arithmetic) must give
torch's bits, because the eval-mode torch model runs torch's own; rounded ops (Hardswish, SiLU,
LeakyReLU, normalize, pooling averages, ...) are antq's definitions, which the torch model calls
in eval mode, so they only need to be the same function.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from antq.model.hostops import HOST_OPS, ROUNDED_OPS


@pytest.fixture
def x(rng):
    return (rng.standard_normal((3, 4, 9, 7)) * 4).astype(np.float32)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("op,fn", [
    ("relu6", F.relu6), ("hardtanh", lambda t: F.hardtanh(t, -2.0, 3.5)), ("abs", torch.abs),
    ("clamp", lambda t: torch.clamp(t, min=-1.5, max=2.0)), ("neg", torch.neg),
])
def test_exact_elementwise_ops_equal_torch(x, op, fn):
    assert op not in ROUNDED_OPS
    kw = {"hardtanh": {"min_val": -2.0, "max_val": 3.5}, "clamp": {"min": -1.5, "max": 2.0}}.get(op, {})
    assert np.array_equal(HOST_OPS[op](x, **kw), fn(_t(x)).numpy())


@pytest.mark.parametrize("op,fn", [
    ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid), ("silu", F.silu),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.1)), ("exp", lambda t: torch.exp(t / 4)),
    ("sqrt", lambda t: torch.sqrt(t.abs())), ("normalize", lambda t: F.normalize(t, dim=-1)),
])
def test_rounded_ops_are_the_torch_functions(x, op, fn):
    assert op in ROUNDED_OPS
    arg = {"exp": x / 4, "sqrt": np.abs(x)}.get(op, x)
    kw = {"leaky_relu": {"negative_slope": 0.1}, "normalize": {"dim": -1}}.get(op, {})
    np.testing.assert_allclose(HOST_OPS[op](arg, **kw), fn(_t(x)).numpy(), rtol=2e-6, atol=2e-6)


def test_comparisons_casts_masks_and_gathers(x, rng):
    t = _t(x)
    for op, fn in (("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt), ("le", torch.le), ("gt", torch.gt),
                   ("ge", torch.ge)):
        assert np.array_equal(HOST_OPS[op](x, np.float32(0.5)), fn(t, 0.5).numpy())
    assert np.array_equal(HOST_OPS["to"](x, np.dtype("int64")), t.to(torch.int64).numpy())  # truncation
    assert np.array_equal(HOST_OPS["float"](x.astype(np.int64)), t.long().float().numpy())
    mask = x > 1
    assert np.array_equal(HOST_OPS["masked_fill"](x, mask, float("-inf")),
                          t.masked_fill(_t(mask), float("-inf")))
    assert np.array_equal(HOST_OPS["where"](mask, x, np.float32(0)), torch.where(_t(mask), t, 0.0).numpy())
    w = rng.standard_normal((11, 5)).astype(np.float32)
    ids = rng.integers(0, 11, (3, 6))
    assert np.array_equal(HOST_OPS["embedding"](ids, w), F.embedding(_t(ids), _t(w)).numpy())
    with pytest.raises(ValueError, match="index out of range"):
        HOST_OPS["embedding"](ids + 11, w)
    cls = rng.standard_normal((1, 1, 5)).astype(np.float32)
    assert np.array_equal(HOST_OPS["expand"](cls, 4, -1, -1), _t(cls).expand(4, -1, -1).numpy())
    assert [a.shape for a in HOST_OPS["chunk"](x, 3, dim=3)] == [c.shape for c in t.chunk(3, dim=3)]
    assert [a.shape for a in HOST_OPS["split"](x, [2, 5], dim=3)] == [c.shape for c in t.split([2, 5], dim=3)]
    assert HOST_OPS["add"]((3, 4), [32]) == (3, 4, 32)  # shape arithmetic: tuples concatenate
    assert HOST_OPS["dim"](x) == 4


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 3, 1)])
def test_pooling_with_ceil_mode(x, kernel, stride, padding):
    t = _t(x)
    want = F.max_pool2d(t, kernel, stride, padding, ceil_mode=True).numpy()
    assert np.array_equal(HOST_OPS["max_pool2d"](x, kernel, stride, padding, ceil_mode=True), want)
    for include_pad in (True, False):
        want = F.avg_pool2d(t, kernel, stride, padding, ceil_mode=True, count_include_pad=include_pad).numpy()
        got = HOST_OPS["avg_pool2d"](x, kernel, stride, padding, ceil_mode=True,
                                     count_include_pad=include_pad)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    got = HOST_OPS["avg_pool2d"](x, kernel, stride, padding, divisor_override=5)
    np.testing.assert_allclose(got, F.avg_pool2d(t, kernel, stride, padding, divisor_override=5).numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_max_pool_gives_torchs_bits_with_signed_zeros_nan_and_inf(seed):
    """Max pooling is an exact op, so the torch model runs torch's own: ties of +0 and -0 must keep
    the same one (the first in the window), NaN must win, for every geometry."""
    rng = np.random.default_rng(seed)
    vals = np.array([-0.0, 0.0, 1.0, -1.0, 2.0, np.nan, -np.inf], np.float32)
    for _ in range(60):
        shape = (2, 3, int(rng.integers(3, 12)), int(rng.integers(3, 12)))
        x = rng.choice(vals, size=shape, p=[.25, .25, .2, .15, .1, .02, .03]).astype(np.float32)
        k, s, d = (int(v) for v in rng.integers(1, 4, 3))
        p, ceil = int(rng.integers(0, k // 2 + 1)), bool(rng.integers(0, 2))
        try:
            want = F.max_pool2d(_t(x), k, s, p, min(d, 2), ceil_mode=ceil).numpy()
        except RuntimeError:  # a geometry torch refuses (output would be empty)
            continue
        got = HOST_OPS["max_pool2d"](x, k, s, p, min(d, 2), ceil)
        assert got.tobytes() == want.tobytes(), (shape, k, s, p, d, ceil)

"""MatmulLayer: several heads per IP call (side by side along K, block-diagonal B) give exactly
the per-head GEMMs, with and without the integer epilogue."""

import numpy as np
import pytest
from antq.core import epilogue, formats, reference
from antq.core.quantize import quantize_as
from antq.model.graph import MatmulLayer, Requant

FMTS = [formats.get("int", 4, True), formats.get("flint", 4, True), formats.get("float", 4, True),
        formats.get("pot", 4, True), formats.get("int", 8, True), formats.get("int", 4, False)]


def _layer(fa, fb, heads=4, m=8, k=12, n=8, out=None):
    return MatmulLayer("mm", fa, np.float32(0.05), fb, np.float32(0.03), (heads, m, k), (heads, k, n),
                       out=out)


def _operands(layer, batch, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.1 * layer.a_fmt.max_abs, (batch, *layer.a_shape)).astype(np.float32)
    b = rng.normal(0, 0.05 * layer.b_fmt.max_abs, (batch, *layer.b_shape)).astype(np.float32)
    return a, b


def _per_head(layer, a, b):
    """The per-head accumulators the old one-call-per-head path computed."""
    qa = quantize_as(a, layer.a_fmt, layer.a_scale).codes.reshape(-1, *layer.a_shape[-2:])
    qb = quantize_as(b, layer.b_fmt, layer.b_scale).codes.reshape(-1, *layer.b_shape[-2:])
    va, vb = layer.a_fmt.values[qa].astype(np.int64), layer.b_fmt.values[qb].astype(np.int64)
    return np.einsum("lmk,lkn->lmn", va, vb)


class _Counting:
    def __init__(self):
        self.shapes = []

    def __call__(self, a, w):
        self.shapes.append((a.shape, w.shape))
        return reference.gemm(a, w)


@pytest.mark.parametrize("fb", FMTS, ids=lambda f: f.name)
@pytest.mark.parametrize("fa", FMTS[:3] + FMTS[4:5], ids=lambda f: f.name)
def test_merged_heads_equal_per_head(fa, fb):
    layer = _layer(fa, fb)
    assert layer.heads_per_call == 4  # small heads: one call is cheaper than four
    a, b = _operands(layer, 3)
    g = _Counting()
    y, acc = layer.forward(a, b, g)
    assert len(g.shapes) == layer.calls(3) == 3
    assert g.shapes[0] == ((8, 4 * 12), (4 * 8, 4 * 12))
    assert acc.shape == (3 * 4, 8, 8)
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))
    assert y.shape == (3, 4, 8, 8)


def test_block_diagonal_b_is_zero_off_the_diagonal():
    layer = _layer(formats.get("int", 4, True), formats.get("pot", 4, True), heads=3)
    a, b = _operands(layer, 2, seed=1)
    qa = quantize_as(a, layer.a_fmt, layer.a_scale).codes.reshape(-1, 8, 12)
    qb = quantize_as(b, layer.b_fmt, layer.b_scale).codes.reshape(-1, 12, 8)
    (ta, tb), _ = layer._pairs(qa, qb)
    vb = layer.b_fmt.values[np.asarray(tb.codes)]
    for h in range(3):
        np.testing.assert_array_equal(np.asarray(ta.codes)[:, h * 12:(h + 1) * 12], qa[h])
        for j in range(3):
            block = vb[h * 8:(h + 1) * 8, j * 12:(j + 1) * 12]
            want = layer.b_fmt.values[qb[h].T] if h == j else 0
            np.testing.assert_array_equal(block, want)


def test_big_heads_stay_one_per_call():
    # MiniLM-sized attention (T=128, head_dim 32): merging would multiply the array's work by 12
    layer = _layer(formats.get("int", 4, True), formats.get("int", 4, True), heads=12, m=128, k=32, n=128)
    assert layer.heads_per_call == 1 and layer.calls(2) == 24
    a, b = _operands(layer, 1)
    g = _Counting()
    _, acc = layer.forward(a, b, g)
    assert g.shapes == [((128, 32), (128, 32))] * 12
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))


def test_no_leading_dim_is_one_call_per_sample():
    f = formats.get("int", 4, True)
    layer = MatmulLayer("mm", f, np.float32(0.1), f, np.float32(0.1), (8, 12), (12, 8))
    assert layer.heads_per_call == 1 and layer.calls(5) == 5


@pytest.mark.parametrize("fmt", [formats.get("flint", 4, True), formats.get("int", 4, False),
                                 formats.get("int", 8, True)], ids=lambda f: f.name)
def test_merged_epilogue_equals_per_head_epilogue(fmt):
    f4 = formats.get("int", 4, True)
    layer = _layer(f4, formats.get("float", 4, True), out=Requant(fmt, np.float32(0.02), "none", "next"))
    assert layer.heads_per_call == 4 and layer.call_epilogue is not layer.epilogue
    assert layer.call_epilogue.channels == 4 * layer.epilogue.channels
    assert layer.call_epilogue.acc_max >= epilogue.acc_bound(layer.a_fmt, layer.b_fmt, 4 * layer.k)
    a, b = _operands(layer, 2, seed=3)
    seen = []

    def requantize(ta, tb, p):  # what the runtime's act_requantize does, on the host
        seen.append(p)
        return epilogue.apply(reference.gemm(ta, tb), p)

    y_dev, acc_dev = layer.forward(a, b, reference.gemm, requantize=requantize)
    y_host, acc = layer.forward(a, b, reference.gemm)
    assert acc_dev is None and seen == [layer.call_epilogue] * 2
    want = epilogue.dequantized(epilogue.apply(_per_head(layer, a, b).reshape(-1, layer.n), layer.epilogue),
                                fmt, layer.out.scale).reshape(y_host.shape)
    np.testing.assert_array_equal(y_host, want)
    np.testing.assert_array_equal(y_dev, want)


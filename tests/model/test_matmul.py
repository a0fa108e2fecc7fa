"""MatmulLayer: several products per IP call (S samples stacked block-diagonally along M and K,
g heads side by side along K with B block-diagonal) give exactly the per-head GEMMs, with and
without the integer epilogue, and their output blocks tile the attention projection's operand."""

import numpy as np
import pytest
from antq.core import arch, epilogue, formats, reference
from antq.core.quantize import quantize_as
from antq.model.graph import MatmulLayer, Requant, _call_cost

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
@pytest.mark.parametrize("batch", [1, 5])
def test_stacked_calls_equal_per_head(fa, fb, batch):
    layer = _layer(fa, fb)
    s, g = layer.samples_per_call, layer.heads_per_call
    assert s * g > 1  # small products: one call takes several
    a, b = _operands(layer, batch)
    counting = _Counting()
    y, acc = layer.forward(a, b, counting)
    assert len(counting.shapes) == layer.calls(batch) == -(-batch // s) * (4 // g)
    k = s * g * 12  # every call has the same K, the last one of an odd batch too
    for i, (sa, sb) in enumerate(counting.shapes):
        rows = min(s, batch - i // (4 // g) * s) * 8
        assert sa == (rows, k) and sb == (g * 8, k)
    assert acc.shape == (batch * 4, 8, 8)
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))
    assert y.shape == (batch, 4, 8, 8)


def test_the_plan_is_the_cheapest_modelled_one():
    layer = _layer(formats.get("int", 4, True), formats.get("int", 4, True))
    s, g = layer.samples_per_call, layer.heads_per_call
    assert s * 8 == arch.DEFAULT.rows  # two 8-token samples fill the array's 16 rows

    def cost(s, g):  # modelled cycles per sample
        return 4 // g * _call_cost(s * 8, g * 8, s * g * 12) / s

    assert all(cost(s, g) <= cost(s2, g2) for s2 in range(1, 17) for g2 in (1, 2, 4))
    assert cost(s, g) < cost(1, 1)


def test_calls_are_block_diagonal_with_the_code_of_0():
    layer = _layer(formats.get("int", 4, True), formats.get("pot", 4, True), heads=3)
    layer.samples_per_call, layer.heads_per_call = 2, 3
    a, b = _operands(layer, 3, seed=1)
    qa = quantize_as(a, layer.a_fmt, layer.a_scale).codes
    qb = quantize_as(b, layer.b_fmt, layer.b_scale).codes
    calls = layer.calls_of(qa, qb)
    assert [(r, c) for _, _, r, c in calls] == [((0, 16), (0, 24)), ((16, 24), (0, 24))]
    for i, (ta, tb, _, _) in enumerate(calls):
        va, vb = layer.a_fmt.values[np.asarray(ta.codes)], layer.b_fmt.values[np.asarray(tb.codes)]
        for s in range(2):
            for h in range(3):
                cols = slice((s * 3 + h) * 12, (s * 3 + h + 1) * 12)
                p = 2 * i + s
                for s2 in range(va.shape[0] // 8):  # a: sample s2's rows hold only sample s2's q
                    want = layer.a_fmt.values[qa[p, h]] if s2 == s else 0
                    np.testing.assert_array_equal(va[s2 * 8:(s2 + 1) * 8, cols], want)
                for h2 in range(3):  # b: head h2's rows hold only head h2's k (zero past the batch)
                    want = layer.b_fmt.values[qb[p, h].T] if h2 == h and p < 3 else 0
                    np.testing.assert_array_equal(vb[h2 * 8:(h2 + 1) * 8, cols], want)


def test_big_heads_stay_one_per_call():
    # MiniLM-sized attention (T=128, head_dim 32): merging would multiply the array's work
    layer = _layer(formats.get("int", 4, True), formats.get("int", 4, True), heads=12, m=128, k=32, n=128)
    assert (layer.samples_per_call, layer.heads_per_call) == (1, 1) and layer.calls(2) == 24
    a, b = _operands(layer, 1)
    g = _Counting()
    _, acc = layer.forward(a, b, g)
    assert g.shapes == [((128, 32), (128, 32))] * 12
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))


def test_no_leading_dim_stacks_samples():
    f = formats.get("int", 4, True)
    layer = MatmulLayer("mm", f, np.float32(0.1), f, np.float32(0.1), (8, 12), (12, 8))
    assert layer.heads == 1 and layer.heads_per_call == 1
    s = layer.samples_per_call
    assert s > 1 and layer.calls(5) == -(-5 // s)
    a, b = _operands(layer, 5)
    _, acc = layer.forward(a, b, reference.gemm)
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))


def test_output_index_is_the_projection_operand():
    """The calls' output matrix (P*M, H*N) is ``y.transpose(1, 2).reshape(B*M, H*N)`` as it is:
    what attention's output projection multiplies, so it can stay on the device."""
    layer = _layer(formats.get("int", 4, False), formats.get("int", 4, True))
    idx = layer.output_index(3)
    assert idx.shape == (3, 4, 8, 8)
    assert np.array_equal(idx.transpose(0, 2, 1, 3).reshape(24, 32), np.arange(24 * 32).reshape(24, 32))


def test_gemm_calls_runs_every_call_at_once():
    layer = _layer(formats.get("int", 4, True), formats.get("flint", 4, True))
    a, b = _operands(layer, 3, seed=2)
    seen = []

    def gemm_calls(lay, calls):
        seen.append((lay, len(calls)))
        return [reference.gemm(ta, tb) for ta, tb, _, _ in calls]

    _, acc = layer.forward(a, b, None, gemm_calls=gemm_calls)
    assert seen == [(layer, layer.calls(3))]
    np.testing.assert_array_equal(acc, _per_head(layer, a, b))


@pytest.mark.parametrize("fmt", [formats.get("flint", 4, True), formats.get("int", 4, False),
                                 formats.get("int", 8, True)], ids=lambda f: f.name)
def test_merged_epilogue_equals_per_head_epilogue(fmt):
    f4 = formats.get("int", 4, True)
    layer = _layer(f4, formats.get("float", 4, True), out=Requant(fmt, np.float32(0.02), "none", "next"))
    s, g = layer.samples_per_call, layer.heads_per_call
    assert s * g > 1 and layer.call_epilogue is not layer.epilogue
    assert layer.call_epilogue.channels == g * layer.epilogue.channels
    assert layer.call_epilogue.acc_max >= epilogue.acc_bound(layer.a_fmt, layer.b_fmt, s * g * layer.k)
    a, b = _operands(layer, 3, seed=3)

    def requantize(lay, calls, shape, index, batch):  # what the runtime's act_requantize does, on the host
        codes = np.empty(shape, np.int64)
        for ta, tb, (r0, r1), (c0, c1) in calls:
            codes[r0:r1, c0:c1] = epilogue.apply(reference.gemm(ta, tb), lay.call_epilogue)
        assert batch == 3 and len(calls) == lay.calls(3)
        return epilogue.dequantized(codes, fmt, lay.out.scale).reshape(-1)[index]

    y_dev, acc_dev = layer.forward(a, b, reference.gemm, requantize=requantize)
    y_host, acc = layer.forward(a, b, reference.gemm)
    assert acc_dev is None
    want = epilogue.dequantized(epilogue.apply(_per_head(layer, a, b).reshape(-1, layer.n), layer.epilogue),
                                fmt, layer.out.scale).reshape(y_host.shape)
    np.testing.assert_array_equal(y_host, want)
    np.testing.assert_array_equal(y_dev, want)

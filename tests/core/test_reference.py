"""Bit-exact reference GEMM, accumulator bound, float wrapper, golden vectors."""

import antq
import numpy as np
import pytest
import torch
from antq.core import arch, formats, golden, pack, reference, regmap
from helpers import GOLDEN


def _rand_q(rng, fmt, shape, scale=1.0, axis=None):
    codes = rng.integers(0, fmt.ncodes, shape)
    return antq.QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed,
                                scale=scale, channel_axis=axis)


@pytest.mark.parametrize("fa", regmap.array_formats(), ids=str)
@pytest.mark.parametrize("fw", regmap.array_formats(), ids=str)
def test_gemm_matches_python_int_sum(fa, fw):
    rng = np.random.default_rng([ord(c) for c in fa.name + "x" + fw.name])  # not hash(): PYTHONHASHSEED
    a, w = _rand_q(rng, fa, (3, 11)), _rand_q(rng, fw, (4, 11))
    y = reference.gemm(a, w)
    assert y.dtype == np.int64
    for m in range(3):
        for n in range(4):
            exp = sum(
                int(fa.sign[a.codes[m, k]] * fw.sign[w.codes[n, k]])
                * ((int(fa.mantissa[a.codes[m, k]]) * int(fw.mantissa[w.codes[n, k]]))
                   << int(fa.shift[a.codes[m, k]] + fw.shift[w.codes[n, k]]))
                for k in range(11))
            assert y[m, n] == exp


def test_gemm_int64_path_for_wide_formats():
    rng = np.random.default_rng(0)
    f = formats.get("pot", 6, False)  # values up to 2^62: BLAS would not be exact
    a = _rand_q(rng, f, (2, 3))
    a.codes[:] = rng.integers(0, 4, a.shape)  # keep the products within int64
    w = _rand_q(rng, formats.get("int", 4, True), (2, 3))
    assert np.array_equal(reference.gemm(a, w), a.values() @ w.values().T)
    big = antq.QuantizedTensor(np.full((1, 3), 63), kind="pot", bits=6, signed=False)  # 2^62
    with pytest.raises(OverflowError, match="beyond int64"):
        reference.gemm(big, antq.QuantizedTensor(np.full((1, 3), 3), kind="int", bits=4, signed=True))
    huge = antq.QuantizedTensor(np.full((1, 2), 255), kind="pot", bits=8, signed=False)
    with pytest.raises(OverflowError, match="values up to"):
        reference.gemm(huge, huge)


def test_accumulator_bound():
    pu, ps = formats.get("pot", 4, False), formats.get("pot", 4, True)
    assert arch.max_k(pu, ps) == 2047  # 2047 * 2^14 * 2^6 < 2^31 <= 2048 * 2^20
    assert arch.max_k(pu, ps) * pu.max_abs * ps.max_abs <= 2**31 - 1
    assert (arch.max_k(pu, ps) + 1) * pu.max_abs * ps.max_abs > 2**31 - 1
    i8 = formats.get("int", 8, True)
    assert arch.max_k(i8, i8) == (2**31 - 1) // ((128 + 15) ** 2)
    rng = np.random.default_rng(0)
    reference.check_accumulator(_rand_q(rng, pu, (1, 2047)), _rand_q(rng, ps, (1, 2047)))
    with pytest.raises(OverflowError, match="split K into jobs of at most 2047"):
        reference.check_accumulator(_rand_q(rng, pu, (1, 2048)), _rand_q(rng, ps, (1, 2048)))
    with pytest.raises(ValueError, match="int8 nibbles only"):
        arch.max_k(formats.get("pot", 8, True), ps)


def test_nibble_decomposition_reproduces_int8():
    """int8 = hi * 16 + lo with hi a signed (or unsigned) int4 and lo an unsigned int4."""
    for signed in (False, True):
        f8 = formats.get("int", 8, signed)
        codes = np.arange(256)
        hi_f = formats.get("int", 4, signed)
        lo = formats.get("int", 4, False).values[codes & 0xF]
        hi = hi_f.values[codes >> 4]
        assert np.array_equal(hi * 16 + lo, f8.values)


def test_float_wrapper_equals_fake_quant_matmul():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((13, 40)), 0).astype(np.float32)
    wf = rng.laplace(size=(7, 40)).astype(np.float32)
    a = antq.quantize_tensor(x)
    w = antq.quantize_tensor(wf, channel_axis=0, signed=True)
    ref = torch.from_numpy(a.dequantize()) @ torch.from_numpy(w.dequantize()).T
    out = reference.gemm_float(a, w)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    np.testing.assert_allclose(out, x @ wf.T, rtol=0.5, atol=0.5 * float(np.abs(x @ wf.T).max()))


@pytest.mark.parametrize(
    "a_shape, w_shape, match",
    [((2, 3), (2, 4), "K mismatch"), ((2, 3, 1), (2, 3), "must be 2-D"), ((3,), (2, 3), "must be 2-D")],
)
def test_gemm_shape_errors(a_shape, w_shape, match):
    f = formats.get("int", 4, True)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        reference.gemm(_rand_q(rng, f, a_shape), _rand_q(rng, f, w_shape))


def test_gemm_type_errors():
    f = formats.get("int", 4, True)
    q = _rand_q(np.random.default_rng(0), f, (2, 2))
    with pytest.raises(TypeError, match="must be a QuantizedTensor"):
        reference.gemm(np.ones((2, 2)), q)
    with pytest.raises(ValueError, match="along axis 0"):
        reference.gemm_float(q, antq.QuantizedTensor(q.codes, kind="int", bits=4, signed=True,
                                                     scale=np.ones(2), channel_axis=1))


def test_golden_file_is_current_and_correct(tmp_path):
    fresh = golden.write(tmp_path / "gemm.txt")
    assert fresh.read_text() == GOLDEN.read_text(), "run `make golden`"
    cfg, cases = golden.read(GOLDEN)
    assert cfg == arch.DEFAULT
    pairs = {(c.a.fmt, c.w.fmt) for c in cases}
    hw = regmap.array_formats()
    assert all((fa, fw) in pairs for fa in hw for fw in hw)  # every 4-bit type pair
    assert any(c.a.bits == 8 and c.w.bits == 8 for c in cases)
    extremes = [c for c in cases if c.name.startswith("extreme_pot")]
    assert extremes and int(np.abs(extremes[0].y).max()) > 2**31 - 2**21
    for c in cases:
        assert np.array_equal(reference.gemm(c.a, c.w), c.y), c.name
        assert np.array_equal(pack.unpack(c.packed_a, c.a.bits, c.a.shape, pack.accelerator_layout("a", cfg)),
                              c.a.codes)
        assert np.array_equal(pack.unpack(c.packed_w, c.w.bits, c.w.shape, pack.accelerator_layout("w", cfg)),
                              c.w.codes)
        assert c.a.shape[1] <= arch.max_k(c.a.fmt, c.w.fmt)

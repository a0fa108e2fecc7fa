"""Quantizer: rounding rule, clip search, type selection, and the vectorized search's exactness."""

import antq
import numpy as np
import pytest
import torch
from antq.core import formats, quantize, regmap
from antq.core.formats import FormatError
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def test_nearest_rounding_ties_go_up_and_clip_to_ends():
    f = formats.get("int", 4, True)  # grid -8..7
    x = np.array([0.5, -0.5, 1.49, 1.5, 2.5, -2.5, 7.6, 100.0, -8.4, -100.0], np.float32)
    q = quantize.quantize_as(x, f, 1.0)
    assert list(q.values()) == [1, 0, 1, 2, 3, -2, 7, 7, -8, -8]
    g = formats.get("flint", 4, False)  # ..., 7, 8, 10, 12, 14, 16, 24, 32, 64
    q = quantize.quantize_as(np.array([7.5, 9.0, 20.0, 48.0, 47.9, 1e9], np.float32), g, 1.0)
    assert list(q.values()) == [8, 10, 24, 64, 32, 64]


def test_rounding_matches_torch_bucketize():
    """The float32 rounding rule gives identical codes in torch (used by fake-quant layers)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000).astype(np.float32) * 3
    for fmt in regmap.array_formats():
        scale = np.float32(0.37)
        q = quantize.quantize_as(x, fmt, scale)
        mids = torch.tensor((fmt.grid[:-1] + fmt.grid[1:]) / 2, dtype=torch.float32)
        idx = torch.bucketize(torch.from_numpy(x) / scale, mids, right=True).numpy()
        assert np.array_equal(fmt.grid[idx], q.values())


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("axis", [None, 0])
def test_vectorized_search_equals_loop(signed, axis):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((24, 200)) * rng.uniform(0.1, 3, (24, 1))
    x[:, :3] *= 6
    if not signed:
        x = np.abs(x)
    fmts, _ = quantize._candidate_formats(quantize.DEFAULT_CANDIDATES, 4, signed)
    x2d = quantize._to_2d(x, axis)
    r = quantize.ratios_for(4)
    fast, slow = quantize.search(x2d, fmts, r), quantize.search_loop(x2d, fmts, r)
    for f in fmts:
        np.testing.assert_allclose(fast[f][0], slow[f][0], rtol=1e-9)
        assert np.array_equal(fast[f][1], slow[f][1])


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 40)),
                  elements=st.floats(-1e3, 1e3, allow_subnormal=False)))
def test_hypothesis_search_matches_loop(x):
    fmts, _ = quantize._candidate_formats(quantize.DEFAULT_CANDIDATES, 4, True)
    r = quantize.ratios_for(4)
    fast, slow = quantize.search(x, fmts, r), quantize.search_loop(x, fmts, r)
    for f in fmts:
        np.testing.assert_allclose(fast[f][0], slow[f][0], rtol=1e-6, atol=1e-9 * (1 + np.abs(x).max() ** 2))


def test_type_selection_follows_the_data():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0, 1, 20000)
    assert antq.quantize_tensor(uniform).kind == "int"
    lognormal = np.exp(rng.standard_normal(20000) * 2.5)  # huge dynamic range -> PoT (of IP-F)
    assert antq.quantize_tensor(lognormal, candidates=("int", "pot", "flint")).kind == "pot"
    gauss = rng.standard_normal((32, 512))  # light tails: int4 wins
    assert antq.quantize_tensor(gauss, channel_axis=0).kind == "int"
    laplace = rng.laplace(size=(32, 512))  # heavy-tailed, like trained weights -> flint
    q = antq.quantize_tensor(laplace, channel_axis=0)
    assert q.kind == "flint" and q.signed
    s = q.selection
    assert s.scores["flint"] < s.scores["int"] and list(s.scores) == ["int", "flint", "pot", "float"]
    assert s.ratio.shape == (32,) and np.all((s.ratio >= quantize.WIDE_LOW) & (s.ratio < 1.5))


def test_first_minimum_wins_in_ant_order():
    # signed float4 == PoT4, so their scores tie and PoT (evaluated first) must win
    x = np.exp(np.random.default_rng(3).standard_normal(5000) * 3) * np.sign(
        np.random.default_rng(4).standard_normal(5000))
    q = antq.quantize_tensor(x, candidates=("float", "pot"))
    assert q.selection.scores["pot"] == q.selection.scores["float"] and q.kind == "pot"


def test_signedness_from_data_and_int_only_above_6_bits():
    x = np.linspace(0, 1, 100)
    assert not antq.quantize_tensor(x).signed
    assert antq.quantize_tensor(x - 0.01).signed
    q8 = antq.quantize_tensor(np.random.default_rng(0).standard_normal(1000), bits=8)
    assert q8.kind == "int" and list(q8.selection.scores) == ["int"]
    r4, r8 = quantize.ratios_for(4), quantize.ratios_for(8)
    assert r4[0] == r8[0] == quantize.WIDE_LOW and np.all(np.diff(r4) > 0) and np.all(np.diff(r8) > 0)
    assert len(r4) == 30 + 75 and r4[30] == 0.75 and len(r8) == 30 + 55 and r8[30] == 0.95  # ANT's, and below


def test_the_wide_clip_search_reaches_outlier_activations():
    """An activation with a few outliers (max/rms about 26, within BERT's Linear inputs' 9-93) is clipped far
    below its maximum, which ANT's 0.75.. range cannot do; its MSE can only drop (a superset)."""
    x = np.random.default_rng(7).standard_normal(20000)
    x[:8] *= 20
    q = antq.quantize_tensor(x, 4, ("int",))
    narrow = antq.quantize_tensor(x, 4, ("int",), ratios=np.arange(75, 150) / 100)
    assert q.selection.ratio[0] < 0.2 and q.selection.mse < 0.2 * narrow.selection.mse


def test_per_channel_scales_and_dequantize_error():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((16, 3, 3, 3)) * np.arange(1, 17)[:, None, None, None]
    q = antq.quantize_tensor(torch.from_numpy(w).float(), channel_axis=0)
    assert q.scale.shape == (16,) and q.codes.shape == w.shape and q.codes.dtype == np.uint8
    d = q.dequantize()
    assert d.dtype == np.float32 and d.shape == w.shape
    rel = np.abs(d - w).max(axis=(1, 2, 3)) / np.abs(w).max(axis=(1, 2, 3))
    assert np.all(rel < 0.2)
    assert np.isclose(q.selection.mse, np.mean((d - w) ** 2), rtol=1e-5)
    assert q.selection.sqnr_db > 10


def test_zero_channel_is_exact():
    w = np.zeros((3, 10))
    w[1] = np.linspace(-1, 1, 10)
    q = antq.quantize_tensor(w, channel_axis=0)
    assert np.all(q.dequantize()[0] == 0) and np.all(q.dequantize()[2] == 0)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 200),  # magnitudes the quantizer takes: a tensor of only
                  # subnormals has a scale below float32's range and is refused (test_bad_input.py)
                  elements=st.floats(-50, 50, width=32).filter(lambda v: v == 0 or abs(v) >= 1e-30)),
       st.sampled_from(["int", "flint", "pot", "float"]))
def test_requantizing_dequantized_is_identity(x, kind):
    q = antq.quantize_tensor(x, candidates=(kind,), signed=True)
    again = quantize.quantize_as(q.dequantize(), q.fmt, q.scale)
    assert np.array_equal(q.values(), again.values())


def test_quantized_tensor_validates_raw_codes():
    with pytest.raises(FormatError, match="code out of range"):
        antq.QuantizedTensor(np.array([0, 16]), kind="int", bits=4, signed=True)
    with pytest.raises(ValueError, match="per-channel scale must have shape"):
        antq.QuantizedTensor(np.zeros((3, 2), int), kind="int", bits=4, signed=True,
                             scale=np.ones(2), channel_axis=0)
    with pytest.raises(ValueError, match="finite and positive"):
        antq.QuantizedTensor(np.zeros(3, int), kind="int", bits=4, signed=True, scale=0.0)
    q = antq.QuantizedTensor(np.array([[8, 1]]), kind="flint", bits=4, signed=True, scale=0.5)
    assert list(q.dequantize()[0]) == [0.0, 0.5] and "flint4s" in repr(q)


def test_rows_share_the_checked_codes():
    codes = np.arange(24, dtype=np.uint8).reshape(6, 4) % 16
    q = quantize.QuantizedTensor(codes, kind="int", bits=4, signed=True, scale=0.5)
    r = q.rows(2, 5)
    assert r.fmt == q.fmt and r.shape == (3, 4) and r.scale == q.scale and r.channel_axis is None
    assert np.shares_memory(r.codes, q.codes) and np.array_equal(r.codes, q.codes[2:5])
    np.testing.assert_array_equal(r.dequantize(), q.dequantize()[2:5])
    with pytest.raises(ValueError, match="empty"):
        q.rows(4, 4)
    per_channel = quantize.QuantizedTensor(codes, kind="int", bits=4, signed=True, scale=np.ones(6),
                                           channel_axis=0)
    with pytest.raises(ValueError, match="per-tensor scale"):
        per_channel.rows(0, 2)

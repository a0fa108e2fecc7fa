"""The software-only comparison formats: their grids, and blockwise / per-channel absmax scaling."""

import numpy as np
import pytest
import torch
from antq.model.baselines import BASELINES, e2m1_values, nf4_values
from antq.model.configs import layer_specs
from antq.model.fakequant import Quantizer

# bitsandbytes' NF4 table (functional.py / the dequantize kernels), as published with QLoRA
NF4_BNB = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
           -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
           0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
           0.7229568362236023, 1.0]


def test_nf4_is_the_bitsandbytes_codebook():
    v = nf4_values()
    assert len(v) == 16 and np.array_equal(v, NF4_BNB)
    assert np.array_equal(BASELINES["nf4"].grid, v)


def test_fp4_is_e2m1():
    assert list(e2m1_values()) == [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6]


def test_int4_per_channel_is_symmetric():
    b = BASELINES["int4-pc"]
    assert list(b.grid) == list(range(-7, 8)) and list(b.grid_for(False)) == list(range(16))
    assert b.block is None


@pytest.mark.parametrize("name", ["nf4", "fp4"])
def test_blockwise_absmax_weights(name, rng):
    b = BASELINES[name]
    w = rng.standard_normal((10, 70)).astype(np.float32)  # 700 weights: 10 blocks of 64 and a partial one
    q = Quantizer(layer_specs(["l"], name)["l"], "weight", "l")
    q.calibrate(torch.from_numpy(w))
    assert q.group == "block" and q.block == 64 and q.alpha.shape == (11,)
    with torch.no_grad():
        y = q(torch.from_numpy(w)).numpy().ravel()
    flat = w.ravel()
    for i in range(11):
        blk, out = flat[64 * i:64 * (i + 1)], y[64 * i:64 * (i + 1)]
        absmax = np.abs(blk).max()
        np.testing.assert_allclose(q.alpha[i].item(), absmax, rtol=1e-7)
        scale = np.float32(absmax) / np.float32(np.abs(b.grid).max())
        units = out / scale
        assert np.allclose(units, b.grid[np.abs(units[:, None] - b.grid).argmin(1)], atol=1e-5)
        k = np.abs(blk).argmax()
        assert np.isclose(out[k], blk[k], rtol=1e-6)  # the absmax element is exact
        # nearest codebook value of each element
        exact = b.grid[np.abs(blk[:, None] / scale - b.grid).argmin(1)]
        np.testing.assert_allclose(units, exact, atol=1e-5)


def test_int4_pc_weights_and_unsigned_activations(rng):
    w = rng.standard_normal((6, 30)).astype(np.float32)
    q = Quantizer(layer_specs(["l"], "int4-pc")["l"], "weight", "l")
    q.calibrate(torch.from_numpy(w))
    assert q.group == "channel"
    s = np.abs(w).max(1) / 7
    with torch.no_grad():
        units = q(torch.from_numpy(w)).numpy() / s[:, None]
    np.testing.assert_allclose(units, np.clip(np.round(w / s[:, None]), -7, 7), atol=1e-4)
    a = Quantizer(layer_specs(["l"], "int4-pc")["l"], "input", "l")
    a.calibrate(torch.from_numpy(np.abs(w)))
    assert not a.signed and a.label == "int4-pcu" and a.grid.max() == 15
    nf = Quantizer(layer_specs(["l"], "nf4")["l"], "input", "l")
    nf.calibrate(torch.from_numpy(np.abs(w)))
    assert nf.group == "tensor" and not nf.signed and nf.grid.min() == -1  # NF4 has no unsigned variant

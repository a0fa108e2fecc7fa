"""quantize_model: wrapping, configs, calibration, frozen quantizers, STE gradients, QAT, bad input."""

import copy

import antq
import numpy as np
import pytest
import torch
from antq.core import formats, quantize
from antq.model import datasets, zoo
from antq.model.calibrate import fine_tune, quantize_model
from antq.model.configs import CANDIDATES, layer_specs
from antq.model.fakequant import QuantConv2d, Quantizer, QuantLinear, QuantMatmul
from torch import nn

CNN_LAYERS = ["features.0", "features.3", "features.7", "classifier.1", "classifier.4"]


def _inputs(model, x, names=CNN_LAYERS):
    """The float input each named layer receives on x (before any activation quantizer)."""
    seen = {}
    root = model.model if isinstance(model, antq.FakeQuantModel) else model
    hooks = [root.get_submodule(n).register_forward_pre_hook(
        lambda mod, inp, n=n: seen.__setitem__(n, inp[0].detach().clone())) for n in names]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_wraps_every_conv_and_linear_in_a_copy(cnn, digits):
    calib, xt, _ = digits
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    with torch.no_grad():
        before = cnn(torch.from_numpy(xt[:50]))
    qm = antq.quantize_model(cnn, calib, "ip-f", 4, progress=False)
    assert isinstance(qm, antq.FakeQuantModel)
    assert list(qm.layers) == CNN_LAYERS
    assert [type(m) for m in qm.layers.values()] == [QuantConv2d] * 3 + [QuantLinear] * 2
    # the original model is untouched: no wrappers, same parameters and buffers, same outputs
    assert not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in cnn.modules())
    assert all(torch.equal(state[k], v) for k, v in cnn.state_dict().items())
    with torch.no_grad():
        assert torch.equal(cnn(torch.from_numpy(xt[:50])), before)
        assert not torch.equal(qm(torch.from_numpy(xt[:50])), before)  # forward is fake-quant
    for m in qm.layers.values():
        assert m.weight_quant.alpha.shape == (m.weight.shape[0],)
        assert m.input_quant.alpha.shape == (1,)
        assert m.weight_quant.signed and m.weight_quant.group == "channel"
    # undo: plain layers with the same (BatchNorm-folded) weights compute the fp32 model again, up to
    # the float32 rounding of the folded weights
    back = qm.to_float()
    assert not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in back.modules())
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(xt[:50])).numpy(), before.numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_layer_specs_configs_int8_lists_and_overrides():
    names = ["a", "b", "c", "d"]
    s = layer_specs(names, "ant4-8")
    assert [str(s[n]) for n in names] == ["int/8", "ip-f/4", "ip-f/4", "int/8"]
    s = layer_specs(names, "ant4-8", int8_layers=["b"])
    assert [s[n].bits for n in names] == [4, 8, 4, 4]
    s = layer_specs(names, "fip-f", 3, overrides={"a": "int8", "b": 6, "c": {"config": "int", "bits": 2},
                                                   "d": "nf4"})
    assert [str(s[n]) for n in names] == ["int/8", "fip-f/6", "int/2", "nf4"]
    assert [str(v) for v in layer_specs(names, "int", 5).values()] == ["int/5"] * 4


@pytest.mark.parametrize("config", ["int", "ip", "ip-f", "fip-f"])
def test_weight_calibration_is_the_foundation_search(cnn, digits, config):
    qm = quantize_model(cnn, digits[0], config, 4, progress=False)
    for name, m in qm.layers.items():
        w = m.weight.detach().numpy()  # the BatchNorm-folded weight the quantizer calibrated on
        if name not in qm.folded.values():
            assert np.array_equal(w, cnn.get_submodule(name).weight.detach().numpy())
        ref = quantize.quantize_tensor(w, 4, CANDIDATES[config], channel_axis=0, signed=True)
        assert m.weight_quant.fmt == ref.fmt
        assert ref.fmt.kind in CANDIDATES[config]
        alpha = ref.selection.alpha.astype(np.float32)
        np.testing.assert_array_equal(m.weight_quant.alpha.detach().numpy(), alpha)


def test_activations_calibrate_on_the_quantized_upstream(cnn, transformer, digits):
    """Each input quantizer saw the output of the already-quantized layers before it (as in ANT)."""
    calib = digits[0]
    for model, signed in ((cnn, False), (transformer, True)):
        qm = quantize_model(model, calib, "ip-f", 4, progress=False)
        names = [n for n, m in qm.layers.items() if not isinstance(m, QuantMatmul)]  # the fp32 model's layers
        fp = _inputs(model, calib, names)
        # calibration ran before the export's fusion plan linked layers to their consumers (then
        # eval mode hands the next layer its own grid values, contracts §13): unlinked, the inputs
        # are the ones the quantizers calibrated on
        links = {n: m.requant_link for n, m in qm.layers.items()}
        assert any(links.values())
        for m in qm.layers.values():
            m.requant_link = None
        quantized = _inputs(qm, calib, names)
        for n, link in links.items():
            qm.layers[n].requant_link = link
        for name in names:
            m = qm.layers[name]
            ref = quantize.quantize_tensor(quantized[name].numpy(), 4, CANDIDATES["ip-f"])
            assert m.input_quant.fmt == ref.fmt
            alpha = ref.selection.alpha.astype(np.float32)
            np.testing.assert_array_equal(m.input_quant.alpha.detach().numpy(), alpha)
        later = names[1]
        assert not torch.equal(fp[later], quantized[later])  # upstream fake-quant was in effect
        # the CNN's inputs are images and ReLU outputs (unsigned), the transformer's are signed
        assert {qm.layers[n].input_quant.signed for n in names} == {signed}


def test_quantizers_are_frozen_after_calibration(cnn, digits):
    qm = quantize_model(cnn, digits[0], "ip-f", 4, progress=False)
    snap = [(q.fmt, q.alpha.detach().clone(), q.grid.clone()) for q in qm.quantizers()]
    with torch.no_grad():
        qm(torch.randn(64, 1, 8, 8) * 5)  # other data, negative and larger than the calibration range
    for q, (fmt, alpha, grid) in zip(qm.quantizers(), snap, strict=True):
        assert q.fmt == fmt and torch.equal(q.alpha, alpha) and torch.equal(q.grid, grid)
    q = qm.layers["features.0"].input_quant
    assert not q.signed
    y = q(torch.tensor([-3.0, 0.0, 1e6]))
    assert y[0] == 0 and y[1] == 0 and y[2] == q.scale().item() * q.fmt.max_value  # clipped to [0, alpha]


def test_uncalibrated_quantizer_refuses_to_run():
    q = Quantizer(layer_specs(["x"])["x"], "input", "x")
    with pytest.raises(RuntimeError, match="not calibrated"):
        q(torch.ones(3))


def test_forward_rounds_exactly_like_quantize_as(transformer, digits):
    qm = quantize_model(transformer, digits[0], "fip-f", 4, progress=False)
    names = [n for n, m in qm.layers.items() if not isinstance(m, QuantMatmul)]
    x = _inputs(qm, digits[0], names)
    for name in names:
        m = qm.layers[name]
        for q, t, axis in ((m.weight_quant, m.weight.detach(), 0), (m.input_quant, x[name], None)):
            ref = q.quantize_numpy(t, axis).dequantize()
            with torch.no_grad():
                assert np.array_equal(q(t).numpy(), ref)  # bit for bit


@pytest.mark.parametrize("role,scheme", [("weight", "fip-f"), ("input", "ip-f"), ("weight", "nf4"),
                                         ("weight", "int4-pc")])
def test_ste_gradients_checked_numerically(role, scheme, rng):
    """d out/dx = 1 and d out/d alpha = sum over the alpha's elements of (q - u) / max_value."""
    spec = layer_specs(["l"], scheme)["l"]
    x = rng.laplace(size=(6, 100)).astype(np.float32)
    q = Quantizer(spec, role, "l")
    q.calibrate(torch.from_numpy(x))
    xt = torch.from_numpy(x).requires_grad_()
    g = rng.standard_normal(x.shape).astype(np.float32)
    (q(xt) * torch.from_numpy(g)).sum().backward()
    assert np.array_equal(xt.grad.numpy(), g)
    # independent numpy computation of ANT's (q - u) gradient, group by group
    s = q.scale().detach().numpy()
    grid = q.grid.numpy().astype(np.float64)
    mids = ((grid[:-1] + grid[1:]) / 2).astype(np.float32)
    if q.group == "block":
        pad = -x.size % q.block  # 600 weights: 9 full blocks of 64 and one padded with zeros
        xs, gs = (np.concatenate([a.ravel(), np.zeros(pad, np.float32)]).reshape(-1, q.block) for a in (x, g))
    else:
        xs, gs = (x, g) if q.group == "channel" else (x.reshape(1, -1), g.reshape(1, -1))
    u = xs / s[:, None]
    qv = grid[np.searchsorted(mids, u, side="right")]
    expect = (gs.astype(np.float64) * (qv - u)).sum(axis=1) / q.max_value
    np.testing.assert_allclose(q.alpha.grad.numpy(), expect, rtol=2e-5, atol=1e-6)


def test_fine_tune_trains_weights_and_alpha_but_not_types(cnn):
    x, y = datasets.load_dataset("digits", "train")
    qm = quantize_model(cnn, torch.from_numpy(x[:256]), "ip-f", 4, progress=False)
    types = [q.fmt for q in qm.quantizers()]
    alphas = [q.alpha.detach().clone() for q in qm.quantizers()]
    w0 = qm.layers["features.3"].weight.detach().clone()
    assert isinstance(qm.model.features[1], nn.Identity)  # folded: QAT trains the folded weights
    loader = list(zoo.batches(x[:256], y[:256], 64, seed=0))
    losses = fine_tune(qm, loader, epochs=2, lr=1e-3, progress=False)
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert [q.fmt for q in qm.quantizers()] == types
    assert any(not torch.equal(q.alpha, a) for q, a in zip(qm.quantizers(), alphas, strict=True))
    assert not torch.equal(qm.layers["features.3"].weight, w0)
    assert not qm.training
    assert len(fine_tune(qm, loader, epochs=3, lr=1e-4, max_steps=5, progress=False)) == 5
    with pytest.raises(ValueError, match="iterated once"):
        fine_tune(qm, iter(loader), epochs=2, lr=1e-4, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fine_tune(qm, loader, lr=0.0, progress=False)


def test_fine_tune_keeps_unfolded_batchnorm_statistics_frozen():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))  # BN after ReLU
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    qm = quantize_model(net, x, "ip-f", 4, progress=False)
    assert qm.folded == {}
    mean = qm.model[2].running_mean.clone()
    fine_tune(qm, [(x, y)], epochs=2, lr=1e-3, progress=False)
    assert torch.equal(qm.model[2].running_mean, mean)


def test_auto_int8_promotes_the_highest_mse_layers(cnn, digits):
    plain = quantize_model(cnn, digits[0], "ip-f", 4, progress=False)
    score = {r["layer"]: r["weight"]["mse"] + r["input"]["mse"] for r in plain.summary()}
    qm = quantize_model(cnn, digits[0], "ip-f", 4, auto_int8=2, progress=False)
    assert set(qm.promoted) == set(sorted(score, key=score.get)[-2:])
    for name, m in qm.layers.items():
        assert (m.spec.bits == 8) == (name in qm.promoted)
        if name in qm.promoted:
            assert m.weight_quant.fmt == formats.get("int", 8, True) and m.input_quant.fmt.kind == "int"
    with pytest.raises(ValueError, match="auto_int8"):
        quantize_model(cnn, digits[0], "ip-f", 4, auto_int8=6, progress=False)


def test_ant4_8_runs_first_and_last_layer_in_int8(cnn, digits):
    qm = quantize_model(cnn, digits[0], "ant4-8", progress=False)
    fmts = [(m.input_quant.fmt.name, m.weight_quant.fmt.name) for m in qm.layers.values()]
    assert fmts[0] == ("int8u", "int8s") and fmts[-1] == ("int8u", "int8s")
    assert all(a.endswith("4u") and w.endswith("4s") for a, w in fmts[1:-1])


def test_calib_data_as_iterable_of_batches_or_pairs(cnn, digits):
    calib = digits[0]
    ref = quantize_model(cnn, calib, "ip-f", progress=False)
    for data in ([calib[:100], calib[100:]], [(calib[:128], None), (calib[128:], None)], calib.numpy()):
        qm = quantize_model(cnn, data, "ip-f", progress=False)
        pairs = zip(qm.quantizers(), ref.quantizers(), strict=True)
        assert all(torch.equal(a.alpha, b.alpha) for a, b in pairs)


class _NoLayers(nn.Module):
    def forward(self, x):
        return torch.relu(x)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"config": "int3"}, ValueError, "unknown config 'int3'.*ip-f"),
    ({"bits": 9}, ValueError, "bits must be an int from 2 to 8"),
    ({"bits": 1}, ValueError, "bits must be an int from 2 to 8"),
    ({"bits": "4"}, ValueError, "bits must be an int"),
    ({"config": "nf4", "bits": 3}, ValueError, "4-bit codebook"),
    ({"config": "ant4-8", "bits": 6}, ValueError, "int8_layers"),
    ({"overrides": {"features.99": "int8"}}, ValueError, "no quantizable layer named 'features.99'"),
    ({"overrides": {"features.0": "bogus"}}, ValueError, "unknown config 'bogus'"),
    ({"int8_layers": [7]}, ValueError, "layer index 7 out of range"),
])
def test_bad_configs_raise_clear_errors(cnn, digits, kwargs, err, match):
    with pytest.raises(err, match=match):
        quantize_model(cnn, digits[0], **{"progress": False, **kwargs})


def test_model_without_quantizable_layers():
    with pytest.raises(ValueError, match="no quantizable layers"):
        quantize_model(_NoLayers(), torch.ones(2, 3), progress=False)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        quantize_model(lambda x: x, torch.ones(2, 3), progress=False)


def test_calibration_data_of_the_wrong_shape(cnn, digits):
    with pytest.raises(ValueError, match=r"shape \(8, 3, 8, 8\) does not fit the model"):
        quantize_model(cnn, torch.ones(8, 3, 8, 8), progress=False)
    with pytest.raises(ValueError, match="batch 1 has per-sample shape"):
        quantize_model(cnn, [torch.ones(4, 1, 8, 8), torch.ones(4, 1, 6, 6)], progress=False)
    with pytest.raises(ValueError, match="expected \\(batch"):
        quantize_model(cnn, torch.ones(8), progress=False)
    with pytest.raises(ValueError, match="empty"):
        quantize_model(cnn, [], progress=False)
    with pytest.raises(TypeError, match="calib_data must be"):
        quantize_model(cnn, 3.0, progress=False)
    bad = digits[0].clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/Inf"):
        quantize_model(cnn, bad, progress=False)


def test_nan_weights_name_the_layer(cnn, digits):
    broken = copy.deepcopy(cnn)
    with torch.no_grad():
        broken.features[3].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer features.3: weight has 1 NaN/Inf"):
        quantize_model(broken, digits[0], progress=False)


def test_quantizing_twice_is_refused(cnn, digits):
    qm = quantize_model(cnn, digits[0], progress=False)
    with pytest.raises(TypeError, match="already quantized"):
        quantize_model(qm, digits[0], progress=False)


def test_layers_never_called_are_reported(digits):
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(64, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x.flatten(1))

    with pytest.raises(ValueError, match=r"\['spare'\] were not called during calibration"):
        quantize_model(Unused(), digits[0], progress=False)


@pytest.mark.parametrize("kind", ["int", "pot"])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_int_and_pot_grid_values_equal_the_midpoint_search(rng, kind, bits, signed):
    """The int and PoT shortcuts give the nearest grid point with ties up, as bucketize over the
    midpoints finds it, bit for bit (zeros +0): exact ties on both signs, values beyond the grid,
    beyond 2^23 and below the smallest power."""
    from antq.model.fakequant import _grid_values

    if kind == "pot" and bits > 6:
        bits = 6  # above 6 bits ANT uses int only, and PoT grids outgrow float32
    q = Quantizer(layer_specs(["l"], "ip" if kind == "pot" else "int", bits)["l"], "input", "l")
    q.fmt = formats.get(kind, bits, signed)  # the format under test, whatever calibration would pick
    q.grid = torch.tensor(q.fmt.grid, dtype=torch.float32)
    q.mids = (q.grid[:-1] + q.grid[1:]) / 2
    top = float(q.grid.abs().max())
    u = torch.from_numpy((rng.standard_normal(40000) * np.exp(rng.uniform(-4, np.log(2 * top), 40000)))
                         .astype(np.float32))
    u[:len(q.mids)] = q.mids  # exact ties go up
    u[len(q.mids):2 * len(q.mids)] = -q.mids
    u[-8:] = torch.tensor([2.0**23 + 1, -(2.0**24), 2.0**30, -0.5, 0.5, 0.0, -0.0, 1e-30])
    got, want = _grid_values(u, q), q.grid[torch.bucketize(u, q.mids, right=True)]
    assert torch.equal(got, want) and torch.equal(torch.signbit(got), torch.signbit(want))

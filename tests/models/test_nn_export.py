"""Export to the integer QuantizedModel: reload, identical outputs, BN folding, the gemm interface."""

import copy
import subprocess
import sys

import antq
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from antq import container, formats, models, reference
from antq.nn import ExportError, _fold_bn, quantize_model
from antq.qmodel import GemmLayer, QuantizedModel
from antq.quantize import QuantizedTensor
from torch import nn


def _torch_logits(qm, x, double=False):
    m = copy.deepcopy(qm).double() if double else qm
    return models.predict(lambda t: m(t.double() if double else t), x)


def _assert_same_outputs(out, ref, rtol):
    """Identical classes, and outputs equal up to float rounding.

    Two float implementations can differ in the last bit, and a value within one float32 ulp of a
    grid midpoint then rounds to the neighbouring code (measured: under 1e-6 of the requantized
    values move when perturbed by one ulp). So one sample in a hundred may differ by more.
    """
    assert np.array_equal(out.argmax(-1), ref.argmax(-1))
    close = np.all(np.abs(out - ref) <= rtol * (np.abs(ref) + np.abs(ref).max()), axis=-1)
    assert (~close).sum() <= max(1, len(ref) // 100), f"{(~close).sum()} samples differ beyond float rounding"


@pytest.mark.parametrize("name", ["cnn", "transformer"])
@pytest.mark.parametrize("config", ["ip-f", "ant4-8"])
def test_export_reload_and_identical_outputs(request, digits, tmp_path, name, config):
    model = request.getfixturevalue(name)
    calib, xt, yt = digits
    qm = quantize_model(model, calib, config, progress=False)
    path = antq.save(tmp_path / "m.antq", qm)  # saving the torch model exports it
    loaded = antq.load(path)
    assert isinstance(loaded, QuantizedModel) and loaded.dataset == "digits" and loaded.config == config
    out = loaded.run(xt)
    assert out.dtype == np.float32 and out.shape == (len(yt), 10)
    assert np.array_equal(out, qm.export().run(xt))  # reload changes nothing, bit for bit
    _assert_same_outputs(out, _torch_logits(qm, xt), rtol=1e-5)
    # against the same fake-quant model in float64 the difference left is the final float32 cast
    _assert_same_outputs(out, _torch_logits(qm, xt, double=True), rtol=1e-6)
    # the file holds integer codes only: 4-bit (and int8) weights, packed
    assert all(layer.w_fmt.bits in (4, 8) for layer in loaded.gemm_layers)
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert path.stat().st_size < 0.45 * fp32_bytes


def test_loading_needs_neither_torch_nor_fp32_weights(cnn, digits, tmp_path):
    calib, xt, _ = digits
    qm = quantize_model(cnn, calib, "ip-f", progress=False)
    path = antq.save(tmp_path / "m.antq", qm)
    np.save(tmp_path / "x.npy", xt[:20])
    np.save(tmp_path / "ref.npy", qm.export().run(xt[:20]))
    code = ("import sys, numpy as np, antq; m = antq.load(sys.argv[1]); "
            "assert np.array_equal(m.run(np.load(sys.argv[2])), np.load(sys.argv[3])); "
            "assert 'torch' not in sys.modules; print('ok')")
    args = [str(path), str(tmp_path / "x.npy"), str(tmp_path / "ref.npy")]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_batchnorm_is_folded_into_the_weight_scales(cnn, digits):
    calib, xt, _ = digits
    qm = quantize_model(cnn, calib, "ip-f", progress=False)
    ex = qm.export()
    assert "batch_norm" not in [n.op for n in ex.nodes]
    for layer in ex.gemm_layers[:3]:  # features.0, .3, .7, each followed by its BatchNorm
        conv = qm.layers[layer.name]
        bn = qm.model.features[int(layer.name.split(".")[1]) + 1]
        assert isinstance(bn, nn.BatchNorm2d)
        f = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy().astype(np.float64)
        # same codes as the unfolded quantizer, scale multiplied by the BN factor
        q = conv.weight_quant.quantize_numpy(conv.weight, 0)
        assert np.array_equal(layer.weight.codes, q.codes.reshape(layer.n, -1))
        np.testing.assert_allclose(layer.weight.scale, q.scale * f, rtol=1e-6)
    # layer by layer: the folded GEMM equals conv + BN of the fake-quant torch model on the same input
    x = torch.from_numpy(xt[:32])
    with torch.no_grad():
        conv_bn = qm.model.features[1](qm.layers["features.0"](x)).double().numpy()
    y, acc = ex.gemm_layers[0].forward(xt[:32].astype(np.float64), reference.gemm)
    np.testing.assert_allclose(y, conv_bn, rtol=1e-5, atol=1e-5)
    assert acc.dtype == np.int64


def _pot_conv_bn(gamma_sign):
    """Conv (weights exact powers of two, so PoT is chosen) followed by a BN with negative factors."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                      nn.Linear(256, 3))
    with torch.no_grad():
        w = torch.randint(-5, 1, m[0].weight.shape).float()
        m[0].weight.copy_(torch.where(torch.rand_like(w) < 0.5, -1.0, 1.0) * 2.0**w)
        m[1].weight.copy_(torch.tensor(gamma_sign) * torch.rand(4).add(0.5))
        m[1].running_mean.copy_(torch.randn(4) * 0.1)
        m[1].running_var.copy_(torch.rand(4) + 0.5)
    return m.eval()


def test_negative_and_zero_bn_factors_fold_exactly():
    m = _pot_conv_bn([-1.0, 1.0, -1.0, 0.0])
    x = torch.rand(64, 1, 8, 8)
    qm = quantize_model(m, x, "ip", progress=False)
    assert qm.layers["0"].weight_quant.fmt.kind == "pot"
    ex = qm.export()
    layer = ex.gemm_layers[0]
    assert np.all(layer.weight.codes[3] == 0) and layer.weight.scale[3] == 1  # gamma = 0: channel is its bias
    _assert_same_outputs(ex.run(x.numpy()), _torch_logits(qm, x.numpy(), double=True), rtol=1e-6)


def test_negative_bn_factor_on_int_minimum_is_refused():
    w = QuantizedTensor(np.array([[8, 1], [2, 3]], np.uint8), kind="int", bits=4, signed=True,
                        scale=np.array([0.1, 0.2], np.float32), channel_axis=0)  # code 8 is -8
    layer = GemmLayer("conv", "linear", w, None, formats.get("int", 4, False), 0.5, (2,))
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([-1.0, 1.0]))
    with pytest.raises(ExportError, match="negative BatchNorm factor.*int4s"):
        _fold_bn(layer, bn, "bn")
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -1.0]))  # the negated channel has no -8: fine
    _fold_bn(layer, bn, "bn")
    assert list(layer.weight.values()[1]) == [-2, -3]


class OpsNet(nn.Module):
    """Exercises the host executor: strided/dilated/'same' convs, standalone BN, pools, LayerNorm,
    softmax, cat, slicing, token Linear layers, reductions and elementwise ops."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 6, 3, padding="same", dilation=2, bias=False)
        self.ap = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(12, 10)
        self.norm = nn.LayerNorm(10)
        self.fc2 = nn.Linear(10, 4)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        h = self.bn(F.relu(self.c1(x)))                          # BN after ReLU stays a host op
        h = torch.sigmoid(self.c2(h)) * 2.0 - torch.tanh(h) / 3.0
        p = torch.cat([self.ap(h), F.avg_pool2d(h, 2) - F.max_pool2d(h, 3, stride=2, padding=1)], dim=1)
        t = self.norm(self.act(self.fc(p.flatten(2).transpose(1, 2))))  # (B, 4 tokens, 10)
        s = torch.softmax(t, dim=-1) * t.size(-1)
        y = self.fc2(s).sum(dim=1) + t[:, 0, :4].unsqueeze(1).squeeze(1)
        y = y - t.mean(dim=(1, 2), keepdim=True)[:, 0]
        return F.log_softmax(-y, dim=1)


def test_host_ops_match_torch():
    torch.manual_seed(0)
    net = OpsNet().eval()
    with torch.no_grad():
        net.bn.running_mean.normal_()
        net.bn.running_var.uniform_(0.5, 2)
    x = torch.rand(40, 1, 8, 8)
    qm = quantize_model(net, x, "ip-f", progress=False)
    ex = qm.export()
    assert [n.op for n in ex.nodes].count("batch_norm") == 1
    assert [g.name for g in ex.gemm_layers] == ["c1", "c2", "fc", "fc2"]
    assert ex.gemm_layers[1].padding == (2, 2) and ex.gemm_layers[0].stride == (2, 2)
    _assert_same_outputs(ex.run(x.numpy()), _torch_logits(qm, x.numpy(), double=True), rtol=1e-6)


def test_run_calls_gemm_with_the_documented_operands(transformer, digits):
    calib, xt, _ = digits
    ex = quantize_model(transformer, calib, "ip-f", progress=False).export()
    calls = []

    def my_gemm(a, w):  # an independent exact GEMM on the decoded values
        calls.append((a, w))
        return a.values().astype(np.int64) @ w.values().astype(np.int64).T

    out = ex.run(xt[:7], gemm=my_gemm)
    assert np.array_equal(out, ex.run(xt[:7]))
    assert len(calls) == len(ex.gemm_layers)
    for (a, w), layer in zip(calls, ex.gemm_layers, strict=True):
        assert w is layer.weight  # the same resident object on every call
        assert a.channel_axis is None and a.scale.shape == () and a.fmt == layer.act_fmt
        assert w.channel_axis == 0 and w.shape == (layer.n, layer.k)
        assert a.shape == (7 * layer.rows_per_sample, layer.k)
        assert layer.macs(7) == a.shape[0] * layer.n * layer.k
        assert layer.out_shape(7) == ((7, 8, layer.n) if layer.name != "head" else (7, layer.n))
    ex.run(xt[:3], gemm=my_gemm)
    assert calls[len(ex.gemm_layers)][1] is calls[0][1]
    assert ex.macs(1) == sum(g.macs(1) for g in ex.gemm_layers)


def test_trace_records_every_node_and_accumulators(cnn, digits):
    calib, xt, _ = digits
    ex = quantize_model(cnn, calib, "ant4-8", progress=False).export()
    out, records = ex.run(xt[:5], trace=True)
    assert np.array_equal(out, records[-1].output)
    gemm = [r for r in records if r.op == "gemm"]
    assert [r.name for r in gemm] == [g.name for g in ex.gemm_layers]
    for r, layer in zip(gemm, ex.gemm_layers, strict=True):
        assert r.acc.dtype == np.int64 and r.acc.shape == (5 * layer.rows_per_sample, layer.n)
        assert r.output.shape == layer.out_shape(5)
    assert {r.op for r in records} >= {"input", "relu", "max_pool2d", "flatten", "identity", "output"}


def test_accelerator_readiness_follows_the_hardware_formats(cnn, digits):
    calib = digits[0]
    assert quantize_model(cnn, calib, "ant4-8", progress=False).export().accelerator_ready
    assert quantize_model(cnn, calib, "int", 8, progress=False).export().accelerator_ready
    three = quantize_model(cnn, calib, "ip-f", 3, progress=False).export()
    assert not three.accelerator_ready and not any(g.hardware for g in three.gemm_layers)
    assert "NO" in three.summary()


def test_gemm_returning_garbage_is_caught(cnn, digits):
    ex = quantize_model(cnn, digits[0], progress=False).export()
    x = digits[1][:2]
    with pytest.raises(ValueError, match="layer features.0: gemm returned shape"):
        ex.run(x, gemm=lambda a, w: np.zeros((1, 1), np.int64))
    with pytest.raises(TypeError, match="integer numpy array"):
        ex.run(x, gemm=lambda a, w: reference.gemm(a, w).astype(np.float64))


def test_bad_run_inputs(cnn, digits):
    ex = quantize_model(cnn, digits[0], progress=False).export()
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 8, 8\)"):
        ex.run(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        ex.run(np.full((1, 1, 8, 8), np.nan, np.float32))
    with pytest.raises(TypeError, match="real numeric"):
        ex.run(np.zeros((1, 1, 8, 8), bool))


def test_baselines_and_unsupported_ops_do_not_export(cnn, digits, tmp_path):
    qm = quantize_model(cnn, digits[0], "nf4", progress=False)
    with pytest.raises(ExportError, match="software-only baseline"):
        antq.save(tmp_path / "b.antq", qm)
    assert not (tmp_path / "b.antq").exists()
    elu = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ELU(), nn.Linear(8, 2))
    with pytest.raises(ExportError, match="2: ELU is not supported"):
        quantize_model(elu, digits[0], progress=False).export()


def test_corrupt_or_mismatched_model_files(cnn, digits, tmp_path):
    ex = quantize_model(cnn, digits[0], progress=False).export()
    state = ex.__antq_state__()
    with pytest.raises(container.ContainerError, match="version 99"):
        QuantizedModel.from_state({**state, "version": 99})
    with pytest.raises(container.ContainerError, match="not a quantized model"):
        QuantizedModel.from_state({"nodes": []})
    with pytest.raises(container.ContainerError, match="malformed"):
        QuantizedModel.from_state({**state, "nodes": [{"name": "x"}]})
    path = antq.save(tmp_path / "m.antq", ex)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(container.ContainerError, match="checksum"):
        antq.load(path)

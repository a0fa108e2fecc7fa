"""Export to the integer IntegerModel: reload, identical outputs, BN folding, the gemm interface."""

import subprocess
import sys

import antq
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from antq.core import container, formats, reference, regmap
from antq.model import zoo
from antq.model.calibrate import fold_batchnorm, quantize_model
from antq.model.fakequant import ExportError
from antq.model.graph import IntegerModel
from torch import nn


def _torch_logits(qm, x):
    return zoo.predict(qm, x)


@pytest.mark.parametrize("name", ["cnn", "transformer"])
@pytest.mark.parametrize("config", ["ip-f", "ant4-8"])
def test_export_reload_and_identical_outputs(request, digits, tmp_path, name, config):
    model = request.getfixturevalue(name)
    calib, xt, yt = digits
    qm = quantize_model(model, calib, config, progress=False)
    path = antq.save(tmp_path / "m.antq", qm)  # saving the torch model exports it
    loaded = antq.load(path)
    assert isinstance(loaded, IntegerModel) and loaded.dataset == "digits" and loaded.config == config
    out = loaded.run(xt)
    assert out.dtype == np.float32 and out.shape == (len(yt), 10)
    assert np.array_equal(out, qm.export().run(xt))  # reload changes nothing, bit for bit
    assert np.array_equal(out, _torch_logits(qm, xt))  # the eval-mode torch model computes the same bits
    # the file holds integer codes only: 4-bit (and int8) weights, packed
    assert all(layer.w_fmt.bits in (4, 8) for layer in loaded.gemm_layers)
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert path.stat().st_size < 0.45 * fp32_bytes


def test_loading_needs_neither_torch_nor_fp32_weights(cnn, digits, tmp_path):
    calib, xt, _ = digits
    qm = quantize_model(cnn, calib, "ip-f", progress=False)
    path = antq.save(tmp_path / "m.antq", qm)
    np.save(tmp_path / "x.npy", xt[:20])
    np.save(tmp_path / "ref.npy", _torch_logits(qm, xt[:20]))
    code = ("import sys, numpy as np, antq; m = antq.load(sys.argv[1]); "
            "assert np.array_equal(m.run(np.load(sys.argv[2])), np.load(sys.argv[3])); "
            "assert 'torch' not in sys.modules; print('ok')")
    args = [str(path), str(tmp_path / "x.npy"), str(tmp_path / "ref.npy")]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_batchnorm_is_folded_before_calibration(cnn, digits):
    calib, xt, _ = digits
    qm = quantize_model(cnn, calib, "ip-f", progress=False)
    assert qm.folded == {"features.1": "features.0", "features.4": "features.3", "features.8": "features.7"}
    ex = qm.export()
    assert "batch_norm" not in [n.op for n in ex.nodes]
    for bn_name, conv_name in qm.folded.items():
        assert isinstance(qm.model.get_submodule(bn_name), nn.Identity)
        bn, conv = cnn.get_submodule(bn_name), cnn.get_submodule(conv_name)
        f = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)).detach()
        folded = qm.layers[conv_name]
        expect_w = (conv.weight.double() * f.reshape(-1, 1, 1, 1)).float()
        expect_b = (bn.bias.double() + (conv.bias.double() - bn.running_mean.double()) * f).float()
        assert torch.equal(folded.weight, expect_w) and torch.equal(folded.bias, expect_b)
        # the quantizer calibrated on the folded weights: its codes are the exported ones
        layer = next(g for g in ex.gemm_layers if g.name == conv_name)
        q = folded.weight_quant.quantize_numpy(folded.weight, 0)
        assert np.array_equal(layer.weight.codes, q.codes.reshape(layer.n, -1))
        assert np.array_equal(layer.weight.scale, q.scale)
    # folding is exact up to float32 rounding of the folded weights
    with torch.no_grad():
        np.testing.assert_allclose(qm.to_float()(torch.from_numpy(xt)).numpy(),
                                   cnn(torch.from_numpy(xt)).numpy(), rtol=1e-4, atol=1e-4)
    assert isinstance(cnn.features[1], nn.BatchNorm2d)  # the original keeps its BatchNorms


def _conv_bn(gamma, seed=0):
    """Conv followed by a BN with the given factors (negative, zero), then ReLU and a Linear head."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                      nn.Linear(256, 3))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor(gamma) * torch.rand(4).add(0.5))
        m[1].running_mean.copy_(torch.randn(4) * 0.1)
        m[1].running_var.copy_(torch.rand(4) + 0.5)
    return m.eval()


@pytest.mark.parametrize("config", ["int", "ip", "ip-f", "fip-f"])
def test_negative_and_zero_bn_factors_export_bit_exactly(config):
    """The export that failed with `cannot fold a negative BatchNorm factor into ... int4s` now goes
    through: the factor is folded into the float weights before the quantizer sees them."""
    m = _conv_bn([-1.0, 1.0, -1.0, 0.0])
    x = torch.rand(64, 1, 8, 8)
    qm = quantize_model(m, x, config, progress=False)
    assert qm.folded == {"1": "0"}
    layer = qm.export().gemm_layers[0]
    assert np.all(layer.weight.codes[3] == 0)  # gamma = 0: an all-zero channel, the bias carries it
    assert layer.weight.values()[[0, 2]].min() < 0 < layer.weight.values()[[0, 2]].max()
    assert np.array_equal(qm.export().run(x.numpy()), _torch_logits(qm, x.numpy()))


def test_fold_batchnorm_leaves_what_it_cannot_fold():
    class Shared(nn.Module):  # one conv feeding a BN and a skip path; a BN on a 3-D Linear output
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)
            self.fc, self.bn1 = nn.Linear(8, 8), nn.BatchNorm1d(2)

        def forward(self, x):
            h = self.conv(x)
            h = self.bn(h) + h
            return self.bn1(self.fc(h))  # (B, 2, 8, 8) -> BN1d over dim 1, not over fc's features

    m = Shared().eval()
    assert fold_batchnorm(m, torch.rand(2, 1, 8, 8)) == {}
    assert isinstance(m.bn, nn.BatchNorm2d) and isinstance(m.bn1, nn.BatchNorm1d)
    mlp = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU()).eval()
    assert fold_batchnorm(mlp, torch.rand(2, 4)) == {"1": "0"}


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
    assert np.array_equal(ex.run(x.numpy()), _torch_logits(qm, x.numpy()))


def test_run_calls_gemm_with_the_documented_operands(transformer, digits):
    calib, xt, _ = digits
    ex = quantize_model(transformer, calib, "ip-f", progress=False).export()
    calls, act_calls = [], []

    def exact(a, w):  # an independent exact GEMM on the decoded values
        return a.values().astype(np.int64) @ w.values().astype(np.int64).T

    def my_gemm(a, w):
        calls.append((a, w))
        return exact(a, w)

    def my_act_gemm(a, b):
        act_calls.append((a, b))
        return exact(a, b)

    out = ex.run(xt[:7], gemm=my_gemm, act_gemm=my_act_gemm)
    assert np.array_equal(out, ex.run(xt[:7]))
    assert len(calls) == len(ex.gemm_layers)
    for (a, w), layer in zip(calls, ex.gemm_layers, strict=True):
        assert w is layer.weight  # the same resident object on every call
        assert a.channel_axis is None and a.scale.shape == () and a.fmt == layer.act_fmt
        assert w.channel_axis == 0 and w.shape == (layer.n, layer.k)
        assert a.shape == (7 * layer.rows_per_sample, layer.k)
        assert layer.macs(7) == a.shape[0] * layer.n * layer.k
        assert layer.out_shape(7) == ((7, 8, layer.n) if layer.name != "head" else (7, layer.n))
    # Q.K^T and P.V: each call takes S samples (block-diagonal along M and K) and g of the 4 heads
    # (side by side along K, B block-diagonal), the code of 0 elsewhere; both operands per-tensor
    # activations made per call
    qk, pv = ex.matmul_layers
    assert [m.name for m in ex.matmul_layers] == ["attn.matmul0", "attn.matmul1"]
    assert qk.calls_per_sample == pv.calls_per_sample == 4
    assert len(act_calls) == qk.calls(7) + pv.calls(7) < 2 * 7
    layers = [qk] * qk.calls(7) + [pv] * pv.calls(7)
    for i, ((a, b), layer) in enumerate(zip(act_calls, layers, strict=True)):
        s, g = layer.samples_per_call, layer.heads_per_call
        first = i if layer is qk else i - qk.calls(7)
        rows = min(s, 7 - first // (4 // g) * s) * 8
        assert a.channel_axis is None and b.channel_axis is None
        assert (a.fmt, b.fmt) == (layer.a_fmt, layer.b_fmt)
        assert a.shape == (rows, s * g * layer.k) and b.shape == (g * layer.n, s * g * layer.k)
        va, vb = a.values(), b.values()
        blk = g * layer.k
        for j in range(rows // 8):  # sample j's rows are zero outside its own K block
            own = va[j * 8:(j + 1) * 8]
            assert not own[:, :j * blk].any() and not own[:, (j + 1) * blk:].any()
        for h in range(g):  # head h's rows of b are zero outside its K block of each sample
            cols = np.arange(s * g * layer.k).reshape(s, g, layer.k)
            other = np.delete(cols, h, axis=1).reshape(-1)
            assert not vb[h * layer.n:(h + 1) * layer.n][:, other].any()
    assert pv.a_fmt.signed is False  # softmax probabilities: the unsigned grids
    ex.run(xt[:3], gemm=my_gemm)
    assert calls[len(ex.gemm_layers)][1] is calls[0][1]
    assert ex.macs(1) == sum(g.macs(1) for g in ex.layers)


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
    assert {r.op for r in records} >= {"input", "max_pool2d", "flatten", "output"}
    # the ReLU after each chained layer is its epilogue's clamp now (docs/contracts.md section 13)
    assert "relu" not in {r.op for r in records}
    assert all(layer.out is not None and layer.out.act == "relu" for layer in ex.gemm_layers[:-1])
    assert "identity" not in {r.op for r in records}  # Dropout and the folded BatchNorms are dropped


def test_accelerator_readiness_follows_the_hardware_formats(cnn, digits):
    calib = digits[0]
    assert quantize_model(cnn, calib, "ant4-8", progress=False).export().accelerator_ready
    assert quantize_model(cnn, calib, "int", 8, progress=False).export().accelerator_ready
    three = quantize_model(cnn, calib, "ip-f", 3, progress=False).export()
    # one answer (antq.core.regmap.accepts): 3-bit ints run as int4, 3-bit PoT/flint/float do not
    for g in three.gemm_layers:
        assert g.hardware == (g.act_fmt.kind == g.w_fmt.kind == "int")
    assert three.accelerator_ready == all(g.hardware for g in three.gemm_layers)
    assert ("NO" in three.summary()) == (not three.accelerator_ready)
    assert quantize_model(cnn, calib, "int", 3, progress=False).export().accelerator_ready


def test_one_answer_to_what_the_accelerator_runs():
    """regmap.accepts is what GemmLayer.hardware, IntegerModel.summary and the Runtime all use; it
    used to say no for int4u x int8s while the runtime ran it."""
    f = formats.get
    assert regmap.accepts(f("int", 4, False), f("int", 8, True))
    assert regmap.accepts(f("int", 8, True), f("int", 8, False))
    assert regmap.accepts(f("int", 3, False), f("flint", 4, True))  # int3 runs as int4
    assert not regmap.accepts(f("pot", 3, False), f("int", 4, True))
    assert not regmap.accepts(f("flint", 6, True), f("int", 6, True))


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
    with pytest.raises(ValueError, match="model input contains 64 NaN and 0 Inf"):
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
        IntegerModel.from_state({**state, "version": 99})
    with pytest.raises(container.ContainerError, match="not a quantized model"):
        IntegerModel.from_state({"nodes": []})
    with pytest.raises(container.ContainerError, match="malformed"):
        IntegerModel.from_state({**state, "nodes": [{"name": "x"}]})
    path = antq.save(tmp_path / "m.antq", ex)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(container.ContainerError, match="checksum"):
        antq.load(path)


class TwoInputs(nn.Module):
    """Token ids (int64) and a float side input, positional: embedding, masks, casts, a Linear."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.fc = nn.Linear(8, 8)
        self.side = nn.Linear(3, 8)

    def forward(self, ids, feats):
        mask = (ids > 0).unsqueeze(-1).float()
        h = self.fc(self.emb(ids)) * mask + self.side(feats).unsqueeze(1)
        return h.masked_fill(ids.unsqueeze(-1) == 1, 0.0).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@pytest.mark.parametrize("as_dict", [False, True])
def test_inputs_of_any_dtype_calibrate_and_export(as_dict, tmp_path):
    """Token ids stay int64 (they used to be cast to float: 'Expected tensor for argument #1 indices');
    only float tensors are activations."""
    torch.manual_seed(0)
    net = TwoInputs().eval()
    ids, feats = torch.randint(0, 20, (40, 6)), torch.randn(40, 3)
    calib = {"ids": ids[:32], "feats": feats[:32]} if as_dict else [((ids[:16], feats[:16]), None),
                                                                      ((ids[16:32], feats[16:32]), None)]
    qm = quantize_model(net, calib, "ip-f", progress=False)
    assert qm.example.describe() == ("shape ids=(2, 6) int64, feats=(2, 3)" if as_dict else
                                     "shape (2, 6) int64, (2, 3)")
    ex = antq.load(antq.save(tmp_path / "m.antq", qm))
    assert [(i.name, i.shape, i.dtype) for i in ex.inputs] == [("ids", (6,), "int64"),
                                                                ("feats", (3,), "float32")]
    with torch.no_grad():
        fake = qm(ids[32:], feats[32:]).numpy()
    assert np.array_equal(ex.run((ids[32:].numpy(), feats[32:].numpy())), fake)
    assert np.array_equal(ex.run({"feats": feats[32:].numpy(), "ids": ids[32:].numpy()}), fake)
    with pytest.raises(TypeError, match="model input 'ids' must be a integer array"):
        ex.run((feats[32:].numpy()[:, :1].repeat(6, 1), feats[32:].numpy()))
    with pytest.raises(ValueError, match="takes 2 inputs"):
        ex.run(ids[32:].numpy())


class Refused(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.fc, self.how = nn.Linear(16, 16), how

    def forward(self, x):
        h = self.fc(x.flatten(1)).reshape(-1, 1, 4, 4)
        if self.how == "function":
            return torch.cumsum(h, dim=1)
        return h.to(torch.float64).float()


@pytest.mark.parametrize("how,match", [("function", "cumsum.* function cumsum is not supported"),
                                       ("arguments", r"^to \(call_method to\): dtype float64 is not a host "
                                                     r"dtype")])
def test_export_refuses_what_the_host_cannot_run_naming_the_node(how, match):
    qm = quantize_model(Refused(how).eval(), torch.rand(8, 1, 4, 4), "ip-f", progress=False)
    with pytest.raises(ExportError, match=match):
        qm.export()


def test_ceil_mode_pooling_exports_and_runs(tmp_path):
    """It used to export, save, and then fail in run (unsupported arguments {'ceil_mode': True})."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                        nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), nn.Flatten(),
                        nn.Linear(4 * 2 * 2, 3)).eval()
    x = torch.rand(20, 1, 9, 9)
    qm = quantize_model(net, x[:16], "ip-f", progress=False)
    ex = antq.load(antq.save(tmp_path / "m.antq", qm))
    assert np.array_equal(ex.run(x[16:].numpy()), _torch_logits(qm, x[16:].numpy()))


def test_target_overlay_refuses_undecodable_formats_before_calibrating(cnn, digits):
    """6-bit ip-f may choose flint6/pot6, which the PE cannot decode: said when quantizing for the
    overlay, not only by the Runtime. 6-bit int runs (as int8 nibble passes)."""
    with pytest.raises(ValueError, match=r"target='overlay'.*ip-f/6 may choose pot6u, pot6s, flint6u, "
                                         r"flint6s"):
        quantize_model(cnn, digits[0], "ip-f", 6, target="overlay", progress=False)
    with pytest.raises(ValueError, match="nf4 may choose nf4"):
        quantize_model(cnn, digits[0], "nf4", target="overlay", progress=False)
    with pytest.raises(ValueError, match="unknown target 'fpga'"):
        quantize_model(cnn, digits[0], "int", 6, target="fpga", progress=False)
    ex = quantize_model(cnn, digits[0], "int", 6, target="overlay", progress=False).export()
    assert ex.accelerator_ready and {g.w_fmt.name for g in ex.gemm_layers} == {"int6s"}
    four = quantize_model(cnn, digits[0], "ip-f", 4, target="overlay", progress=False)
    assert four.export().accelerator_ready

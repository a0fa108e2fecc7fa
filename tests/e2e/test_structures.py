"""Stock model structures, random init: quantize, export, save, load, run on the overlay; = fake-quant.

ResNet-18-style (strided convs, residual adds, BatchNorm folded, ceil-mode pooling), MobileNetV2
inverted residuals (ReLU6, depthwise and grouped convs as per-group GEMMs, Hardswish, SiLU,
LeakyReLU), a torchvision-style ViT with ``nn.MultiheadAttention`` (rebuilt from quantized Linear
layers, Q.K^T and P.V as activation x activation GEMMs) and the stock Hugging Face BERT encoder
(token ids and attention masks in, traced with Hugging Face's tracer). For each: the eval-mode
fake-quant torch model, the exported integer model, the same model saved and loaded, and the
overlay give identical float32 outputs (``np.array_equal``).
"""

import functools

import antq
import numpy as np
import pytest
import torch
from antq.model.calibrate import quantize_model
from antq.run.runtime import Runtime
from helpers import open_ov
from structures import MobileNetV2Style, ResNet18Style, ViTStyle, bert, randomize, token_batch

STRUCTURES = {
    "resnet18": lambda: ResNet18Style(width=4),
    "mobilenetv2": lambda: MobileNetV2Style(width=4),
    "vit": lambda: ViTStyle(),
    "bert": lambda: bert(),
}
LEVELS = {"resnet18": ("ref", "csim"), "mobilenetv2": ("ref", "csim", "rtl"), "vit": ("ref", "csim"),
          "bert": ("ref", "csim")}
"""Emulation levels per structure (rtl, the Verilated core, for the small MobileNetV2 one)."""


def _inputs(arch: str, g: torch.Generator, n: int):
    if arch == "bert":
        return token_batch(g, n, 10)
    side = 8 if arch == "vit" else 16
    return torch.rand(n, 1, side, side, generator=g)


def _fake(qm, x):
    with torch.no_grad():
        out = qm(**x) if isinstance(x, dict) else qm(x)
    return (out["last_hidden_state"] if isinstance(out, dict) else out).numpy()


def _out(y):
    return y["last_hidden_state"] if isinstance(y, dict) else y


def _numpy(x):
    return {k: v.numpy() for k, v in x.items()} if isinstance(x, dict) else x.numpy()


@functools.cache
def _case(arch: str, seed: int, config: str):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(2000 + seed)
    net = STRUCTURES[arch]().eval()
    randomize(net, g)
    calib, test = _inputs(arch, g, 48), _inputs(arch, g, 9)
    qm = quantize_model(net, calib, config, 4, progress=False)
    return net, qm, qm.export(), test


@pytest.mark.parametrize("config", ["ip-f", "fip-f", "ant4-8"])
@pytest.mark.parametrize("arch", list(STRUCTURES))
def test_structure_exports_and_runs_bit_identically(arch, config, tmp_path):
    _, qm, ex, x = _case(arch, 0, config)
    fake, host = _fake(qm, x), _out(ex.run(_numpy(x)))
    assert np.array_equal(fake, host), "the eval-mode fake-quant model must equal the integer model"
    loaded = antq.load(antq.save(tmp_path / f"{arch}.antq", qm))
    assert np.array_equal(_out(loaded.run(_numpy(x))), host), "save and load change nothing"
    assert loaded.accelerator_ready
    for level in LEVELS[arch] if config == "ip-f" else LEVELS[arch][:1]:
        with open_ov(level, pace=0) as ov, Runtime(loaded, ov) as rt:
            assert np.array_equal(_out(rt.run(_numpy(x), batch_size=4)), host), f"{arch} on {level}"


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("arch", list(STRUCTURES))
def test_more_seeds_on_the_host(arch, seed):
    _, qm, ex, x = _case(arch, seed, "ip-f")
    assert np.array_equal(_fake(qm, x), _out(ex.run(_numpy(x))))


def test_what_each_structure_exercises():
    """The cases above are not trivial: each structure's characteristic pieces are in the graph."""
    _, qm, ex, _ = _case("resnet18", 0, "ip-f")
    assert len(ex.gemm_layers) == 1 + 8 * 2 + 3 + 1 and len(qm.folded) == 1 + 8 * 2 + 3
    assert {g.stride for g in ex.gemm_layers} == {(1, 1), (2, 2)}
    pools = [n for n in ex.nodes if n.op == "max_pool2d"]
    assert pools and pools[0].kwargs["ceil_mode"] is True
    _, qm, ex, _ = _case("mobilenetv2", 0, "ip-f")
    ops = {n.op for n in ex.nodes}
    assert {"relu6", "hardswish", "silu", "leaky_relu", "avg_pool2d"} <= ops
    groups = sorted({g.groups for g in ex.gemm_layers})
    assert groups[0] == 1 and 2 in groups and max(groups) == 16  # depthwise: one group per channel
    _, qm, ex, _ = _case("vit", 0, "ip-f")
    assert qm.replaced_attention == ["layers.0.self_attention", "layers.1.self_attention"]
    names = [layer.name for layer in ex.layers]
    for i in range(2):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert f"layers.{i}.self_attention.{proj}" in names
    assert [m.name for m in ex.matmul_layers] == [f"layers.{i}.self_attention.matmul{j}"
                                                  for i in range(2) for j in range(2)]
    assert "expand" in {n.op for n in ex.nodes}
    _, qm, ex, _ = _case("bert", 0, "ip-f")
    assert [(i.name, i.dtype) for i in ex.inputs] == [("input_ids", "int64"), ("attention_mask", "int64")]
    assert len(ex.gemm_layers) == 2 * 6 and len(ex.matmul_layers) == 2 * 2
    ops = [n.op for n in ex.nodes]
    assert {"embedding", "expand", "to", "softmax", "layer_norm", "gelu"} <= set(ops)
    # shape arithmetic folded: the sequence length and the sliced token-type buffer are constants and
    # the mask-rank checks are gone (sizes are still read at run time for the batch dimension)
    assert "dim" not in ops and "eq" not in ops
    consts = [n.kwargs["value"] for n in ex.nodes if n.op == "constant"]
    assert any(v.dtype == np.int64 and v.shape == (1, 10) for v in consts)


@pytest.mark.parametrize("arch", list(STRUCTURES))
def test_quantization_is_real(arch):
    """The quantized outputs differ from fp32, and types other than int are chosen."""
    kinds = set()
    for seed in (0, 1):
        net, qm, ex, x = _case(arch, seed, "fip-f")
        kinds |= {f.kind for g in ex.layers for f in (g.act_fmt, g.w_fmt)}
        with torch.no_grad():
            fp = net(**x) if isinstance(x, dict) else net(x)
        fp = (fp.last_hidden_state if hasattr(fp, "last_hidden_state") else fp).numpy()
        assert not np.allclose(_out(ex.run(_numpy(x))), fp, rtol=1e-3, atol=1e-3)
    assert kinds - {"int"}

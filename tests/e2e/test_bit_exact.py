"""Fake-quant = integer model = overlay, bit for bit, by construction (docs/contracts.md §11).

Random-init models (no trained weights, so nothing depends on where a trained value happens to
round), each quantized with every ANT config for several seeds: the eval-mode fake-quant torch
model, the exported integer model on the host and the overlay on every emulation level give
identical outputs (``np.array_equal``), and the overlay runs in smaller batches than the host.
"""

import functools

import numpy as np
import pytest
import torch
from antq.model import zoo
from antq.model.calibrate import quantize_model
from antq.model.configs import ANT48, CANDIDATES
from antq.run.runtime import Runtime
from structures import BasicBlock, randomize
from torch import nn

CONFIGS = (*CANDIDATES, ANT48)
SEEDS = (0, 1, 2)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1, self.layer2 = BasicBlock(8, 8, 1), BasicBlock(8, 16, 2)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layer2(self.layer1(self.stem(x)))).flatten(1))


def _mlp() -> nn.Module:
    """A Linear-only stack with a BatchNorm1d (folded) and a residual add-free ReLU chain."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 32),
                         nn.ReLU(), nn.Linear(32, 10))


ARCHS = {
    "resnet": TinyResNet,
    "mlp": _mlp,
    "transformer": lambda: zoo.DigitsTransformer(dim=16, heads=2, hidden=32),
}


@functools.cache
def _case(arch: str, seed: int, config: str):
    """(quantized torch model, exported integer model, test inputs) of one random-init model."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1000 + seed)
    net = ARCHS[arch]().eval()
    randomize(net, g)
    x = torch.rand(96, 1, 8, 8, generator=g)
    qm = quantize_model(net, x[:64], config, 4, progress=False)
    return qm, qm.export(), x[64:].numpy()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_fake_quant_equals_integer_model_and_overlay(arch, seed, config, ov):
    qm, ex, x = _case(arch, seed, config)
    with torch.no_grad():
        fake = qm(torch.from_numpy(x)).numpy()
    host = ex.run(x)
    assert np.array_equal(fake, host), "the eval-mode fake-quant model must equal the integer model"
    assert ex.accelerator_ready
    with Runtime(ex, ov) as rt:
        assert np.array_equal(rt.run(x, batch_size=7), host), "the overlay must equal the integer model"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_cases_are_not_trivial(arch):
    """BatchNorms were folded with negative factors, types other than int were chosen, and the
    quantized model differs from fp32: the equalities above compare real 4-bit computations."""
    kinds = set()
    for seed in SEEDS:
        qm, ex, x = _case(arch, seed, "fip-f")
        kinds |= {f.kind for g in ex.gemm_layers for f in (g.act_fmt, g.w_fmt)}
        if arch != "transformer":
            assert qm.folded and any((g.weight.values() < 0).any() for g in ex.gemm_layers)
        with torch.no_grad():
            fp32 = qm.to_float()(torch.from_numpy(x)).numpy()
        assert not np.allclose(ex.run(x), fp32, rtol=1e-3, atol=1e-3)
    assert kinds - {"int"}, f"{arch}: every tensor chose int under fip-f; the case exercises no other type"

"""all-MiniLM-L6-v2, a real pretrained transformer, end to end: quantized with ANT (every GEMM, the
attention matmuls included), exported, saved, reloaded and run on the emulated overlay, bit-identical
to the software reference and to the eval-mode fake-quant model. The fast suite runs the model's
first encoder layer; the whole model runs behind the slow marker."""

import functools

import antq
import numpy as np
import pytest
from antq.model import text
from antq.model.calibrate import quantize_model
from antq.run.runtime import Runtime
from helpers import open_ov


@functools.cache
def _minilm(layers: int | None, n_test: int):
    model = text.load_minilm(layers)
    xc = {k: v[:8] for k, v in text.load_text("murphy", "calib").items()}
    xt = {k: v[:n_test] for k, v in text.load_text("murphy", "test").items()}
    qm = quantize_model(model, xc, "ip-f", 4, target="overlay", progress=False)
    return model, qm, xt


def _check(layers, n_test, level, tmp_path):
    model, qm, xt = _minilm(layers, n_test)
    loaded = antq.load(antq.save(tmp_path / "minilm.antq", qm))
    n_layers = len(model.bert.encoder.layer)
    assert len(loaded.gemm_layers) == 6 * n_layers and len(loaded.matmul_layers) == 2 * n_layers
    assert loaded.accelerator_ready
    # the attention's inputs and output are requantized by the IP's epilogue for their consumers:
    # query/key/value through view and permute (key also a transpose) into Q.K^T and P.V, and P.V
    # through permute, a size() and a view into the output dense (contracts §13)
    for i in range(n_layers):
        at = f"bert.encoder.layer.{i}.attention"
        want = {f"{at}.self.query": f"{at}.self.matmul0", f"{at}.self.key": f"{at}.self.matmul0",
                f"{at}.self.value": f"{at}.self.matmul1", f"{at}.self.matmul1": f"{at}.output.dense"}
        assert {m.name: m.out.to for m in loaded.layers if m.name in want and m.out is not None} == want
    host = loaded.run(xt)
    assert host.shape == (n_test, 384) and host.dtype == np.float32
    assert np.array_equal(text.embed(qm, xt), host), "the fake-quant model must equal the integer model"
    with open_ov(level, pace=0) as ov, Runtime(loaded, ov) as rt:
        assert np.array_equal(rt.run(xt, batch_size=3), host), f"the {level} overlay must equal the reference"
        calls = len(rt.calls)
    # every GEMM ran on the accelerator: the Linear layers once per batch, Q.K^T and P.V per group
    # of samples_per_call samples and heads_per_call of the 12 heads, in each batch
    sizes = [min(3, n_test - i) for i in range(0, n_test, 3)]
    assert all(12 % m.heads_per_call == 0 for m in loaded.matmul_layers)
    assert calls == len(sizes) * 6 * n_layers + sum(m.calls(b) for m in loaded.matmul_layers for b in sizes)
    fp = text.embed(model, xt)
    assert 0.3 < text.cosines(fp, host).mean() < 0.9999  # quantized, and still the same embedding space


@pytest.mark.parametrize("level", ["csim", "rtl"])
def test_first_layer_of_minilm_on_the_overlay(level, tmp_path):
    _check(1, 5, level, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("level", ["csim", "rtl"])
def test_whole_minilm_on_the_overlay(level, tmp_path):
    _check(None, 6, level, tmp_path)

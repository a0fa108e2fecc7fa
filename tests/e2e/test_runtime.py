"""The runtime on every level: equal to the software reference and to the fake-quant torch model."""

import numpy as np
import pytest
import torch
from antq.core import arch, reference
from antq.run import open_overlay
from antq.run.compare import compare
from antq.run.evaluate import evaluate
from antq.run.runtime import Runtime


@pytest.mark.parametrize("which", ["cnn_q", "transformer_q"])
def test_overlay_equals_reference_and_fake_quant_torch(which, ov, digits_test, request):
    _, fake, qmodel = request.getfixturevalue(which)
    x, y = digits_test
    x = x[:96]
    with Runtime(qmodel, ov) as rt:
        logits = rt.run(x, batch_size=32)
        assert rt.resident_buffers == len(qmodel.gemm_layers)
    ref = qmodel.run(x)  # antq.reference.gemm on the host
    assert np.array_equal(logits, ref), "the overlay's integer GEMMs must equal the reference bit for bit"
    with torch.no_grad():
        torch_logits = fake(torch.from_numpy(x)).numpy()
    assert np.array_equal(logits, torch_logits), "the eval-mode fake-quant model computes the same bits"


def test_evaluate_full_held_out_set_csim(cnn_q, digits_test):

    net, _, qmodel = cnn_q
    x, y = digits_test
    with open_overlay("csim", pace=0) as ov:
        r = evaluate(qmodel, ov, x, y, progress=False)
    assert r.samples == len(y) == 359
    assert r.mismatched_predictions == 0 and r.identical_logits
    with torch.no_grad():
        fp32 = float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    assert r.accuracy == r.reference_accuracy and r.accuracy >= fp32 - 0.02


def test_trace_records_every_layer_with_timing(cnn_q, digits_test, ov):
    _, _, qmodel = cnn_q
    x = digits_test[0][:4]
    for chain in (False, True):
        with Runtime(qmodel, ov, chain=chain) as rt:
            out, records = rt.run(x, trace=True)
        gemms = [r for r in records if r.op == "gemm"]
        assert [r.name for r in gemms] == [layer.name for layer in qmodel.gemm_layers]
        assert [c.name for c in rt.calls] == [r.name for r in gemms]
        for r, layer in zip(gemms, qmodel.gemm_layers, strict=True):
            on_chip = chain and layer.out is not None
            # a requantized output that stays on the device has no host accumulators; the copy out of
            # one a host op needs is its own part ("fetch"), outside the node's seconds
            assert (r.acc is None) if on_chip else (r.acc.dtype == np.int64)
            assert {"quantize", "gemm", "rescale"} <= set(r.times) <= {"quantize", "gemm", "rescale", "fetch"}
            assert sum(v for k, v in r.times.items() if k != "fetch") <= r.seconds
        assert np.array_equal(records[-1].output, out)


def test_compare_finds_the_first_differing_tile_and_element(cnn_q, digits_test):
    _, _, qmodel = cnn_q
    x = digits_test[0][:3]
    target = qmodel.gemm_layers[1]

    def faulty(a, w):
        y = reference.gemm(a, w)
        if w is target.weight:
            y[21, 19] += 1  # one wrong accumulator in array tile (1, 1) of the second layer (16x16)
        return y

    assert compare(qmodel, x, reference.gemm, reference.gemm) is None
    mm = compare(qmodel, x, reference.gemm, faulty, labels=("ref", "board"))
    assert mm is not None and mm.layer == target.name and mm.op == "gemm"
    rows, cols = arch.DEFAULT.rows, arch.DEFAULT.cols
    assert mm.index == (21, 19) and mm.tile == (21 // rows, 19 // cols) == (1, 1)
    assert mm.value_b == mm.value_a + 1
    assert mm.differing == 1
    text = str(mm)
    assert target.name in text and "tile (1, 1)" in text and "(m=21, n=19)" in text


def test_compare_across_two_emulation_levels(transformer_q, digits_test):

    _, _, qmodel = transformer_q
    x = digits_test[0][:4]
    with open_overlay("ref", pace=0) as a, open_overlay("rtl", pace=0) as b:
        assert compare(qmodel, x, a.gemm, b.gemm, labels=("ref", "rtl")) is None

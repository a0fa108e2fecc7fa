"""Chained execution (issue 13): requantized outputs stay on the device, with the same bits.

The export's fusion plan makes a layer's output the integer epilogue's codes in its consumer's
format; the fake-quant model, the integer model and the overlay (chained or not, every level)
must agree bit for bit, and the chained run must move less data and read fewer results.
"""

import numpy as np
import pytest
import torch
from antq.core import container, epilogue, formats, pack
from antq.core.quantize import quantize_as
from antq.model import graph
from antq.run.latency import bench_model
from antq.run.runtime import DeviceCodes, Runtime
from helpers import open_ov
from hypothesis import given, settings
from hypothesis import strategies as st

CNN_PLAN = {"features.0": ("relu", "features.3"), "features.3": ("relu", "features.7"),
            "features.7": ("relu", "classifier.1"), "classifier.1": ("relu", "classifier.4")}
"""Each ReLU right after a layer is absorbed; the pools and the flatten pass the codes on."""


def _plan(model: graph.IntegerModel) -> dict[str, tuple[str, str]]:
    return {layer.name: (layer.out.act, layer.out.to) for layer in model.layers if layer.out is not None}


def test_cnn_fusion_plan_chains_every_layer_but_the_last(cnn_q):
    _, _, im = cnn_q
    assert _plan(im) == CNN_PLAN
    # the folded ReLUs are gone from the graph; the pools and the flatten stay host ops
    assert [n.op for n in im.nodes if n.layer is None] == ["input", "max_pool2d", "max_pool2d", "flatten",
                                                           "output"]
    for layer in im.gemm_layers[:-1]:
        nxt = next(m for m in im.gemm_layers if m.name == layer.out.to)
        assert layer.out.fmt == nxt.act_fmt and layer.out.scale == nxt.act_scale
        assert layer.epilogue is not None and layer.epilogue.fmt == nxt.act_fmt


def _layer(im, name):
    return next(m for m in im.layers if m.name == name)


def _qkv_planned(im) -> bool:
    """Whether q, k and v (attn.matmul0's a and b, attn.matmul1's b) share one format: then one
    epilogue call requantizes the qkv projection for all three, one scale per column."""
    mm0, mm1 = _layer(im, "attn.matmul0"), _layer(im, "attn.matmul1")
    return mm0.a_fmt == mm0.b_fmt == mm1.b_fmt


@pytest.mark.parametrize("which", ["ip-f", "int"])
def test_transformer_fusion_plan(which, transformer_q, transformer_int):
    # P.V reaches the output projection through a transpose and a reshape, and the qkv projection
    # reaches q, k and v through a reshape, a permute, the split and k's transpose, each reading its
    # own 48 columns; every other GEMM output meets an op that needs the host (LayerNorm, GELU,
    # residual add, softmax)
    _, qm, im = transformer_q if which == "ip-f" else transformer_int
    want = {"attn.matmul1": ("none", "attn.proj")}
    if which == "int":
        assert _qkv_planned(im)  # int4s for all three on any machine: the case is always tested
    if _qkv_planned(im):
        want["attn.qkv"] = ("none", "attn.matmul0, attn.matmul1")
    assert _plan(im) == want
    matmul, proj = _layer(im, "attn.matmul1"), _layer(im, "attn.proj")
    assert matmul.out.fmt == proj.act_fmt and matmul.out.scale == proj.act_scale
    assert qm.layers["attn.matmul1"].requant_link[0] is qm.layers["attn.proj"].input_quant
    if "attn.qkv" not in want:
        assert qm.layers["attn.qkv"].requant_link is None
        return
    qkv, mm0 = _layer(im, "attn.qkv"), _layer(im, "attn.matmul0")
    d = qkv.n // 3
    assert qkv.out.fmt == mm0.a_fmt and qkv.epilogue.fmt == mm0.a_fmt
    assert np.array_equal(np.asarray(qkv.out.scale), np.repeat([mm0.a_scale, mm0.b_scale, matmul.b_scale], d))
    links, act = qm.layers["attn.qkv"].requant_link
    mods = qm.layers
    assert act == "none" and [(q, c) for q, c in links] == [
        (mods["attn.matmul0"].input_quant, tuple(range(d))),
        (mods["attn.matmul0"].weight_quant, tuple(range(d, 2 * d))),
        (mods["attn.matmul1"].weight_quant, tuple(range(2 * d, 3 * d)))]


def test_qkv_requantized_per_column_is_each_consumers_grid(transformer_int, digits_test):
    """The qkv output holds, in each consumer's columns, values on that consumer's grid: its own
    quantizer gives back the epilogue's codes; the fake-quant model computes the same bits."""
    _, qm, im = transformer_int
    x = digits_test[0][:8]
    _, recs = im.run(x, trace=True)
    qkv, mm0, mm1 = _layer(im, "attn.qkv"), _layer(im, "attn.matmul0"), _layer(im, "attn.matmul1")
    rec = next(r for r in recs if r.name == "attn.qkv")
    y, d = np.asarray(rec.output), qkv.n // 3
    codes = epilogue.apply(rec.acc, qkv.epilogue)
    for i, (fmt, scale) in enumerate([(mm0.a_fmt, mm0.a_scale), (mm0.b_fmt, mm0.b_scale),
                                      (mm1.b_fmt, mm1.b_scale)]):
        part = y[..., i * d:(i + 1) * d]
        assert np.array_equal(quantize_as(part, fmt, scale).dequantize(), part)
        assert np.array_equal(quantize_as(part, fmt, scale).codes.reshape(-1, d), codes[:, i * d:(i + 1) * d])
    _reference(qm, im, x)


@pytest.mark.parametrize("which", ["ip-f", "int"])
def test_chained_transformer_equals_reference_and_fake_quant(which, transformer_q, transformer_int,
                                                             digits_test, ov):
    _, qm, im = transformer_q if which == "ip-f" else transformer_int
    x = digits_test[0][:24]
    chained, unchained = _chained_and_unchained(im, ov, x, _reference(qm, im, x))
    # every P.V call writes its block of the projection's operand on the device: no P.V result is
    # read (int64 or codes), and the projection's operand is not uploaded
    pv, proj, qkv = _layer(im, "attn.matmul1"), _layer(im, "attn.proj"), _layer(im, "attn.qkv")
    rows, cols = len(x) * pv.a_shape[-2], pv.heads * pv.n
    assert (rows, cols) == (len(x) * proj.rows_per_sample, proj.k)
    # every P.V call writes its block of the projection's operand on the device, and with the qkv
    # output requantized (its codes on the device) the IP generates Q, K^T and V from them (heads
    # mode): neither result is read, and no attention operand but P is uploaded
    saved_reads = pv.calls(len(x)) + (qkv.out is not None)
    assert unchained.reads - chained.reads == saved_reads > 1
    qkv_y = len(x) * qkv.rows_per_sample * qkv.n * 8  # the qkv int64 result, read unchained only
    assert unchained.from_device - chained.from_device == rows * cols * 8 + (qkv.out is not None) * qkv_y
    per_layer = {}
    for chain in (True, False):
        with Runtime(im, ov, chain=chain) as rt:
            rt.run(x)
            rt.run(x)  # the second run: parameter buffers are already on the device
            per_layer[chain] = rt.layer_traffic
    mm0 = "attn.matmul0"
    if qkv.out is not None:
        assert per_layer[True][mm0].to_device == 0 < per_layer[False][mm0].to_device  # Q and K^T generated
        assert per_layer[True]["attn.qkv"].from_device == 0
        assert 0 < per_layer[True][pv.name].to_device < per_layer[False][pv.name].to_device  # P only
    operand = pack.accelerator_layout("a", ov.array).nbytes((rows, cols), 4)
    uploads = sum(per_layer[False][n].to_device - per_layer[True][n].to_device for n in (mm0, pv.name))
    assert unchained.to_device - chained.to_device == operand + uploads


def test_attention_output_stays_on_the_device(transformer_q, digits_test, ov, monkeypatch):
    """P.V's codes reach the projection through transpose and reshape, which move their indices
    (DeviceValue.relayout), not the codes, and the qkv codes reach Q.K^T and P.V as the IP's own
    heads-mode operands: nothing is fetched, on any batch size."""
    _, _, im = transformer_q
    x = digits_test[0][:13]  # an odd batch: the last P.V call takes one sample
    fetched = []
    real = DeviceCodes.materialize
    monkeypatch.setattr(DeviceCodes, "materialize", lambda self: fetched.append(self.name) or real(self))
    with Runtime(im, ov) as rt:
        assert np.array_equal(rt.run(x), im.run(x))
        assert np.array_equal(rt.run(x, batch_size=5), im.run(x))
    # nor do the qkv codes: the IP generates Q, K^T and V from them (heads mode), in every batch
    assert fetched == []


def test_qkv_codes_are_fetched_where_the_ip_cannot_generate_the_operands(transformer_int, digits_test,
                                                                         monkeypatch):
    """Where heads mode cannot take a call (here: refused), the qkv codes come back once per batch
    and the host builds the attention operands, with the same bits."""
    _, _, im = transformer_int
    x = digits_test[0][:10]
    fetched = []
    real = DeviceCodes.materialize
    monkeypatch.setattr(DeviceCodes, "materialize", lambda self: fetched.append(self.name) or real(self))
    from antq.driver.overlay import AntOverlay

    with open_ov("ref", pace=0) as ov:
        with Runtime(im, ov) as rt:
            assert np.array_equal(rt.run(x), im.run(x))
            assert rt.layer_traffic["attn.matmul0"].to_device == 0  # Q and K^T generated
        monkeypatch.setattr(AntOverlay, "can_heads", lambda self, *a, **k: False)
        with Runtime(im, ov) as rt:
            assert np.array_equal(rt.run(x), im.run(x))
            assert rt.layer_traffic["attn.qkv"].reads == 1 and rt.layer_traffic["attn.matmul0"].to_device > 0
    assert fetched == ["attn.qkv"] * 3  # q, k and v views of one fetch, in the second run only


def test_attention_output_is_fetched_when_its_blocks_do_not_tile(transformer_q, digits_test, ov, monkeypatch):
    """An array whose tiles the P.V calls' blocks do not fill (here: blocks refused) writes each
    call to its own buffer and fetches 4-bit codes, with the same bits."""
    _, _, im = transformer_q
    x = digits_test[0][:8]
    from antq.driver.overlay import DeviceTensor

    def refuse(self, rows, cols=None):
        raise ValueError("not a packed matrix")

    monkeypatch.setattr(DeviceTensor, "block", refuse)
    pv = next(m for m in im.matmul_layers if m.name == "attn.matmul1")
    traffic = {}
    for chain in (True, False):
        with Runtime(im, ov, chain=chain) as rt:
            assert np.array_equal(rt.run(x), im.run(x))
            traffic[chain] = rt.traffic
    rows, cols = pv.samples_per_call * pv.a_shape[-2], pv.heads_per_call * pv.n
    calls = pv.calls(len(x))
    assert calls * rows == len(x) * pv.a_shape[-2] and calls > 1  # full calls only
    qkv = _layer(im, "attn.qkv")
    # every P.V call read, as packed codes; the qkv codes stay for heads mode (no block needed)
    assert traffic[False].reads - traffic[True].reads == (qkv.out is not None)
    codes = pack.accelerator_layout("a", ov.array).nbytes((rows, cols), 4)
    qkv_y = len(x) * qkv.rows_per_sample * qkv.n * 8  # its int64 result, read unchained only
    saved = calls * (rows * cols * 8 - codes) + (qkv.out is not None) * qkv_y
    assert traffic[False].from_device - traffic[True].from_device == saved


def test_fake_quant_links_match_the_plan(cnn_q):
    _, qm, _ = cnn_q
    links = {name: (m.requant_link[1], m.requant_link[0]) for name, m in qm.layers.items()
             if getattr(m, "requant_link", None) is not None}
    assert {k: v[0] for k, v in links.items()} == {k: v[0] for k, v in CNN_PLAN.items()}
    for name, (_, quant) in links.items():
        assert quant is qm.layers[CNN_PLAN[name][1]].input_quant


def test_requantized_layer_output_is_the_epilogue(cnn_q, digits_test):
    """A requantized layer's output is ``dequantized(apply(acc))``, not the float rescale."""
    _, _, im = cnn_q
    x, _ = digits_test
    _, recs = im.run(x[:8], trace=True)
    rec = next(r for r in recs if r.name == "features.3")
    layer = next(m for m in im.gemm_layers if m.name == "features.3")
    want = layer.output_layout(epilogue.dequantized(epilogue.apply(rec.acc, layer.epilogue), layer.out.fmt,
                                                    layer.out.scale), 8)
    assert np.array_equal(rec.output, want)
    rescaled = layer.output_layout(graph.rescale(rec.acc, layer.act_scale, layer.weight.scale, layer.bias), 8)
    assert not np.array_equal(rec.output, rescaled)  # the values are on the next layer's grid
    nxt = next(m for m in im.gemm_layers if m.name == "features.7")
    assert np.array_equal(quantize_as(rec.output, nxt.act_fmt, nxt.act_scale).dequantize(), rec.output)


def _reference(qm, im, x: np.ndarray) -> np.ndarray:
    """The integer model's output on x, checked equal to the eval-mode fake-quant model's."""
    ref = im.run(x)
    qm.eval()
    with torch.no_grad():
        assert np.array_equal(qm(torch.from_numpy(x)).numpy(), ref)
    return ref


def _chained_and_unchained(im, ov, x: np.ndarray, ref: np.ndarray):
    """(chained, unchained) traffic of a second run of x, each run checked equal to ``ref`` (the
    first in batches of 20, which also writes the parameter buffers) and leaving no buffer behind."""
    traffic = {}
    for chain in (True, False):
        with Runtime(im, ov, chain=chain) as rt:
            assert np.array_equal(rt.run(x, batch_size=20), ref)  # batch splits too (and parameters written)
            assert np.array_equal(rt.run(x), ref)
            traffic[chain] = rt.traffic
        # chained outputs, weights and parameter buffers are freed: only the driver's scratch remains
        assert ov.live_buffers == len(ov._scratch)
    return traffic[True], traffic[False]


def test_chained_overlay_equals_reference_fake_quant_and_unchained(cnn_q, digits_test, ov):
    _, qm, im = cnn_q
    x = digits_test[0][:48]
    chained, unchained = _chained_and_unchained(im, ov, x, _reference(qm, im, x))
    assert unchained.reads == len(im.gemm_layers)  # every layer's int64 result came back
    # features.0's codes go into features.3 through the IP's im2col and classifier.1's straight into
    # classifier.4: two results fewer are read; only the pools' inputs and the logits come back
    assert chained.reads == len(im.gemm_layers) - 2
    assert chained.from_device * 8 < unchained.from_device  # 4-bit codes instead of int64
    # features.3's im2col'd operand (9x the codes) is not uploaded: the input, the pooled codes
    assert chained.to_device * 2 < unchained.to_device


def test_trace_of_a_chained_run_holds_values(cnn_q, digits_test, ov):
    _, _, im = cnn_q
    x, _ = digits_test
    _, want = im.run(x[:4], trace=True)
    with Runtime(im, ov) as rt:
        _, recs = rt.run(x[:4], trace=True)
    assert [r.name for r in recs] == [r.name for r in want]
    for r, w in zip(recs, want, strict=True):
        assert not isinstance(r.output, graph.DeviceValue)
        assert np.array_equal(np.asarray(r.output), np.asarray(w.output)), r.name
        if r.name in CNN_PLAN:
            assert r.acc is None
            # features.0 feeds features.3 (conv mode) and classifier.1 feeds classifier.4 on the device;
            # the others are fetched for the pools
            assert ("fetch" in r.times) == (r.name in ("features.3", "features.7"))


def test_codes_pass_to_the_next_layer_on_the_device(cnn_q, digits_test, ov, monkeypatch):
    _, _, im = cnn_q
    x, _ = digits_test
    fetched = []
    real = DeviceCodes.materialize
    monkeypatch.setattr(DeviceCodes, "materialize", lambda self: fetched.append(self.name) or real(self))
    with Runtime(im, ov) as rt:
        assert np.array_equal(rt.run(x[:8]), im.run(x[:8]))
    assert fetched == ["features.3", "features.7"]  # the pools' inputs; not features.0, classifier.1


def test_conv_to_conv_falls_back_to_the_host_im2col_when_the_ip_cannot(cnn_q, digits_test, ov, monkeypatch):
    """A geometry or source the conv mode cannot take (here: every one, as if SRC_BYTES were 0)
    fetches the codes and im2cols them on the host, with the same bits."""
    _, _, im = cnn_q
    x, _ = digits_test
    monkeypatch.setattr(type(ov), "can_im2col", lambda self, *a, **k: False)
    with Runtime(im, ov) as rt:
        assert np.array_equal(rt.run(x[:8]), im.run(x[:8]))
        assert rt.traffic.reads == len(im.gemm_layers) - 1  # features.0's codes came back


def test_bench_reports_traffic_and_the_unchained_baseline(cnn_q, digits_test):

    _, _, im = cnn_q
    x, _ = digits_test
    with open_ov("ref", pace=0) as ov:
        res = bench_model(im, ov, x[:16], repeats=1, int8_cost=False, progress=False)
    for key in ("bytes_to_device", "bytes_from_device", "round_trips", "images_per_s"):
        assert isinstance(res[key], (int, float)) and res[key] > 0, key
    base = res["unchained"]
    assert res["round_trips"] == 3 and base["round_trips"] == 5
    assert res["bytes_from_device"] < base["bytes_from_device"]
    assert res["speedup"] == pytest.approx(res["images_per_s"] / base["images_per_s"])
    assert {r["out_fmt"] for r in res["layers"] if r["kind"] == "gemm"} == {"int4u", "int64"}


@pytest.mark.parametrize("which", ["cnn", "transformer"])
def test_bench_rows_say_where_the_traffic_goes(which, cnn_q, transformer_int, digits_test):
    """Each GEMM row's bytes and reads are its own calls' and its codes' fetches: they add up to
    the totals, chained and unchained; an int64 result is M*N*8 bytes back, codes their packed size."""

    _, _, im = cnn_q if which == "cnn" else transformer_int
    x = digits_test[0][:16]
    with open_ov("ref", pace=0) as ov:
        res = bench_model(im, ov, x, repeats=1, int8_cost=False, progress=False)
        cfg = ov.array
    layers = {m.name: m for m in im.layers}
    for r, unchained in ((res, False), (res["unchained"], True)):
        rows = r["layers"]
        for key in ("bytes_to_device", "bytes_from_device", "round_trips"):
            assert sum(row[key] for row in rows) == r[key], key
        for row in rows:
            if row["kind"] != "gemm" or not isinstance(layers[row["name"]], graph.GemmLayer):
                continue
            layer = layers[row["name"]]
            m = len(x) * layer.rows_per_sample
            if row["out_fmt"] == "int64":
                assert row["bytes_from_device"] == m * layer.n * 8 and row["round_trips"] == 1
            elif row["round_trips"]:  # fetched codes (a host op or the attention operands need them)
                assert row["bytes_from_device"] == pack.accelerator_layout("a", cfg).nbytes((m, layer.n), 4)
            else:  # stayed on the device for the next layer
                assert row["bytes_from_device"] == 0
            assert row["out_fmt"] == "int64" or not unchained
    by = {row["name"]: row["read_by"] for row in res["layers"] if row["kind"] == "gemm"}
    if which == "transformer":
        qkv = next(row for row in res["layers"] if row["name"] == "attn.qkv")
        assert qkv["out_fmt"] == "int4s" and qkv["round_trips"] == qkv["bytes_from_device"] == 0  # heads mode
        assert by["attn.qkv"] == "attn.matmul0, attn.matmul1" and by["fc1"] == "gelu"
        assert by["attn.matmul1"] == "attn.proj" and by["head"] == "output"  # past transpose, reshape
    else:
        assert by == {"features.0": "features.3", "features.3": "max_pool2d", "features.7": "max_pool2d",
                      "classifier.1": "classifier.4", "classifier.4": "output"}


def test_model_file_keeps_the_requantized_outputs(cnn_q, tmp_path, digits_test):
    _, _, im = cnn_q
    x, _ = digits_test
    path = container.save(tmp_path / "m.antq", im)
    back = container.load(path)
    assert _plan(back) == CNN_PLAN
    assert np.array_equal(back.run(x[:16]), im.run(x[:16]))


def test_a_scale_per_column_is_kept_in_a_version_4_file(transformer_int, cnn_q, tmp_path, digits_test):
    """A model with a per-column requantized output is written as version 4 (older antq cannot
    read it); one without is still version 3."""
    _, _, im = transformer_int
    x = digits_test[0][:6]
    assert im.__antq_state__()["version"] == 4 and cnn_q[2].__antq_state__()["version"] == 3
    back = container.load(container.save(tmp_path / "t.antq", im))
    qkv, qkv2 = _layer(im, "attn.qkv"), _layer(back, "attn.qkv")
    assert qkv2.out == qkv.out and len(qkv2.out.scale) == qkv.n and qkv2.epilogue == qkv.epilogue
    assert np.array_equal(back.run(x), im.run(x))


def test_version_2_files_load_without_requantized_outputs(cnn_q, digits_test):
    _, _, im = cnn_q
    state = im.__antq_state__()
    state["version"] = 2
    for n in state["nodes"]:
        n.get("layer", {}).pop("out", None)
    old = graph.IntegerModel.from_state(state)
    assert _plan(old) == {}
    x, _ = digits_test
    assert old.run(x[:4]).shape == im.run(x[:4]).shape


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(epilogue.output_formats()), scale=st.floats(1e-6, 1e4), seed=st.integers(0, 99))
def test_requantizing_grid_values_gives_back_the_codes(fmt, scale, seed):
    """What makes chaining exact: the consumer's quantize_as of dequantized codes (after max
    pooling, flatten, ...) is the identity on the codes, for every format the epilogue writes."""
    codes = np.random.default_rng(seed).choice(fmt.grid_codes, size=64).astype(np.uint8)
    s = np.float32(scale)
    vals = epilogue.dequantized(codes[None, :], fmt, s)
    back = quantize_as(vals, fmt, s)
    assert np.array_equal(back.values(), fmt.values[codes][None, :])


def test_a_layer_the_epilogue_cannot_represent_keeps_its_rescale(cnn_q):
    _, _, im = cnn_q
    layer = im.gemm_layers[0]
    w = layer.weight
    tiny = w.scale.copy()
    tiny[0] = np.float32(1e-30)  # a dead channel: its multiplier rounds to 0
    out = graph.Requant(formats.get("int", 4, False), np.float32(0.2), "relu")
    assert graph.requant_params(layer.act_fmt, layer.act_scale, layer.w_fmt, tiny, layer.k, layer.bias,
                                out) is None
    assert graph.requant_params(layer.act_fmt, layer.act_scale, layer.w_fmt, w.scale, layer.k, layer.bias,
                                out) is not None

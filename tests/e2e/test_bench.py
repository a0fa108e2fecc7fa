"""Latency breakdown, its JSON and plot, and the run/bench/compare/demo commands."""

import json

import numpy as np
import pytest
from antq import cli
from antq.core import arch, container
from antq.run import latency, open_overlay


@pytest.fixture(scope="module")
def cnn_file(cnn_q, tmp_path_factory):
    return container.save(tmp_path_factory.mktemp("m") / "cnn.antq", cnn_q[2])


@pytest.mark.parametrize("backend", ["csim", "rtl"])
def test_bench_model_breakdown(cnn_q, digits_test, backend):
    _, _, qm = cnn_q
    x = digits_test[0][:8]
    with open_overlay(backend, pace=0) as ov:
        res = latency.bench_model(qm, ov, x, clock_mhz=100, repeats=2, progress=False)
        assert ov.live_buffers <= 3  # only the driver's scratch buffers remain after the runtime closed
    gemm = [r for r in res["layers"] if r["kind"] == "gemm"]
    host = [r for r in res["layers"] if r["kind"] == "host"]
    assert [r["name"] for r in gemm] == [layer.name for layer in qm.gemm_layers]
    assert host and all(r["host_s"] > 0 and r["macs"] == 0 for r in host)
    assert res["macs"] == qm.macs(8) == sum(r["macs"] for r in gemm)
    assert res["projected"] and res["backend"] == backend and res["batch"] == 8
    for r in gemm:
        assert r["cycles"] > r["k"] and 0 < r["macs_per_cycle"] <= res["peak_macs_per_cycle"]
        assert r["compute_s"] >= r["cycles"] / 100e6
        assert all(r[p] >= 0 for p in latency.PARTS) and r["quantize_pack_s"] > 0
        # nibble passes never cost less on the same array (a small layer's load may bound both)
        assert r["int8_cycles"] >= r["cycles"]
    assert res["int8_vs_ant4"] > 1 and res["peak_macs_per_cycle"] == arch.DEFAULT.peak_macs_per_cycle
    assert res["total_s"] == pytest.approx(sum(res["totals"].values()))
    assert res["images_per_s"] == pytest.approx(8 / res["total_s"])


def test_ddr_bandwidth_bounds_the_projection(cnn_q, digits_test):
    _, _, qm = cnn_q
    with open_overlay("ref", pace=0) as ov:
        fast = latency.bench_model(qm, ov, digits_test[0][:4], repeats=1, int8_cost=False, progress=False)
        slow = latency.bench_model(qm, ov, digits_test[0][:4], ddr_gbps=0.001, repeats=1, int8_cost=False,
                                 progress=False)
    for f, s in zip(fast["layers"], slow["layers"], strict=True):
        if f["kind"] == "gemm":
            assert s["compute_s"] == pytest.approx(s["ddr_bytes"] / 1e6)
            assert s["compute_s"] > f["compute_s"]


def test_bench_command_writes_json_and_plot(cnn_file, tmp_path, capsys):
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    assert cli.main(["bench", str(cnn_file), "--backend", "rtl", "--clock-mhz", "100", "--batch", "4",
                     "--repeats", "1", "--json", str(js), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"MACs/cycle of a peak {arch.DEFAULT.peak_macs_per_cycle}" in out
    assert "projected" in out and "int8 nibble passes" in out
    assert "per inference of 4:" in out and "unchained baseline" in out
    res = json.loads(js.read_text())
    assert {"layers", "macs_per_cycle", "peak_macs_per_cycle"} <= set(res)
    for key in ("bytes_to_device", "bytes_from_device", "round_trips"):  # per inference, both runs
        assert res[key] > 0 and res["unchained"][key] > 0
    assert res["round_trips"] < res["unchained"]["round_trips"]
    assert res["bytes_from_device"] < res["unchained"]["bytes_from_device"]
    assert all({"name", "macs", "cycles", *latency.PARTS} <= set(r) for r in res["layers"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_command_checks_against_the_reference(cnn_file, capsys):
    assert cli.main(["run", str(cnn_file), "--backend", "csim", "--limit", "40", "--batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "40 held-out samples of digits" in out
    assert "differing from the reference: 0; logits identical" in out


def test_compare_command(cnn_file, capsys):
    assert cli.main(["compare", str(cnn_file), "--a", "host", "--b", "rtl", "--limit", "2"]) == 0
    assert "agree bit for bit on every layer" in capsys.readouterr().out


def test_demo(tmp_path, capsys):
    from antq.run.demo import demo

    res = demo("csim", tmp_path, batch=4)
    out = capsys.readouterr().out
    assert res["ok"]
    for name in ("digits-cnn", "digits-transformer"):
        m = res["models"][name]
        assert m["samples"] == 359 and m["mismatches"] == 0 and m["identical"]
        assert m["ant4"] >= m["fp32"] - 2.0  # ANT 4-bit PTQ within 2 points of fp32 on digits
        assert (tmp_path / f"{name}-ip-f-4bit.antq").stat().st_size > 0
    assert "flint4s x int4s" in out  # the transformer runs flint activations on the array
    assert (tmp_path / "latency.png").exists()
    assert json.loads((tmp_path / "latency.json").read_text())["layers"]
    assert np.isfinite(res["latency"]["images_per_s"])
    assert "round trips (results the host reads)" in out  # the demo prints the traffic
    assert res["latency"]["round_trips"] == 3 and res["latency"]["bytes_from_device"] > 0
    for name in ("digits-cnn", "digits-transformer"):  # each model's traffic, chained and not
        m = res["models"][name]
        assert m["round_trips"] < m["unchained"]["round_trips"]
        assert m["bytes_from_device"] < m["unchained"]["bytes_from_device"]
    assert out.count("unchained: ") == 2

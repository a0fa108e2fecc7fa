"""Bad input to the driver and the runtime above it: lifecycle (closed runtime, closed overlay),
empty, 0-d and odd-dtype batches, data float32 cannot hold, benchmark arguments, and the boards a
PYNQ image can name. Each is an error that says what happened, or a documented behaviour."""

import re

import numpy as np
import pytest
import torch
from antq.core import container
from antq.driver import overlay as driver
from antq.run import latency
from antq.run.backends import board_problem, open_overlay
from antq.run.runtime import Runtime
from antq.toolchain import paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

X = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    return container.load(paths.shipped_model())


@pytest.fixture
def ov():
    overlay = open_overlay("ref", pace=0)
    yield overlay
    overlay.close()


def test_runtime_after_its_own_close(model, ov):
    rt = Runtime(model, ov)
    rt.close()
    with pytest.raises(RuntimeError, match=r"this Runtime is closed \(close\(\) or the end of its with "):
        rt.run(X)
    assert rt.resident_buffers == 0 and not ov.closed  # the overlay stays usable: a new Runtime works
    with Runtime(model, ov) as again:
        assert np.array_equal(again.run(X), model.run(X))


def test_runtime_after_the_overlay_was_closed(model, ov):
    rt = Runtime(model, ov)
    ov.close()
    with pytest.raises(RuntimeError, match="the overlay under this Runtime was closed"):
        rt.run(X)
    with pytest.raises(RuntimeError, match=r"this AntOverlay is closed \(close\(\) freed its device "
                       r"buffers\); open a new one with antq.open_overlay\(\)"):
        Runtime(model, ov)
    assert ov.closed and ov.live_buffers == 0


def test_closed_overlay_refuses_every_call(model, ov):
    w = model.gemm_layers[0].weight
    ov.close()
    for call in (lambda: ov.load_weights(w), lambda: ov.gemm(w, w)):
        with pytest.raises(RuntimeError, match="this AntOverlay is closed"):
            call()


@pytest.mark.parametrize("x, batch_size, exc, match", [
    (X[:0], None, ValueError, r"model input has an empty batch \(0 samples\): nothing to run"),
    (np.float32(1.0), None, ValueError, r"model input is 0-d \(a single number\); expected a batch of shape "
     r"\(batch, 1, 8, 8\)"),
    (X, 0, ValueError, "batch_size must be a positive int or None, got 0"),
    (X, -2, ValueError, "got -2"),
    (X, 1.5, ValueError, "got 1.5"),
    (X, True, ValueError, "got True"),
    (np.full((1, 1, 8, 8), 1e40), None, ValueError, r"values up to 1e\+40, which overflow float32"),
    (np.full((1, 1, 8, 8), np.nan), None, ValueError, "64 NaN and 0 Inf"),
    (X.astype(complex), None, TypeError, "real numeric array"),
    (X[:, :, :4], None, ValueError, r"expected \(batch, 1, 8, 8\)"),
])
def test_runtime_run_refuses(model, ov, x, batch_size, exc, match):
    with Runtime(model, ov) as rt:
        with pytest.raises(exc, match=match):
            rt.run(x, batch_size=batch_size)
        assert np.array_equal(rt.run(X), model.run(X))  # still usable after a refused call


def test_torch_inputs_of_any_float_dtype_run(model, ov):
    """bfloat16 (numpy has none) is widened to float32 exactly: the same logits as its float32 copy."""
    t = torch.from_numpy(X).bfloat16()
    with Runtime(model, ov) as rt:
        assert np.array_equal(rt.run(t), model.run(t.float().numpy()))
        assert np.array_equal(rt.run(torch.from_numpy(X).double(), batch_size=np.int64(3)), model.run(X))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes()),
                  st.tuples(st.integers(0, 3), st.sampled_from([1, 2]), st.sampled_from([8, 7]),
                            st.just(8))))
def test_hypothesis_runtime_agrees_with_the_model_or_both_refuse(model, ov, x):
    """Random batches, dtypes and shapes: the overlay gives the reference's outputs, or the same error
    as the numpy model, before any GEMM."""
    with Runtime(model, ov) as rt:
        try:
            want = model.run(x)
        except (TypeError, ValueError) as e:
            with pytest.raises(type(e), match=re.escape(str(e))):
                rt.run(x)
            assert rt.calls == []
        else:
            assert np.array_equal(rt.run(x), want)


def test_bench_model_arguments(model, ov):
    with pytest.raises(ValueError, match="clock_mhz must be a positive number, got 0.0"):
        latency.bench_model(model, ov, X, clock_mhz=0, progress=False)
    with pytest.raises(ValueError, match="ddr_gbps must be a positive number or None, got 0"):
        latency.bench_model(model, ov, X, ddr_gbps=0, progress=False)
    with pytest.raises(ValueError, match="ddr_gbps must be a positive number or None, got nan"):
        latency.bench_model(model, ov, X, ddr_gbps=float("nan"), progress=False)
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        latency.bench_model(model, ov, X, repeats=0, progress=False)
    # ddr_gbps=None is the documented way to leave out the DDR bound: compute is the cycles alone
    res = latency.bench_model(model, ov, X, ddr_gbps=None, clock_mhz=50, repeats=1, int8_cost=False,
                              progress=False)
    gemm = [r for r in res["layers"] if r["kind"] == "gemm"]
    assert res["ddr_gbps"] is None and res["clock_mhz"] == 50
    assert all(r["compute_s"] == r["cycles"] / 50e6 for r in gemm)
    slow_ddr = latency.bench_model(model, ov, X, ddr_gbps=1e-3, clock_mhz=50, repeats=1, int8_cost=False,
                                   progress=False)
    assert all(r["compute_s"] > r["cycles"] / 50e6 for r in slow_ddr["layers"] if r["kind"] == "gemm")


# ---- boards -------------------------------------------------------------------------------------


class _NoBitfile:
    default_bitfile = None


@pytest.mark.parametrize("board, folder", sorted(driver.BOARD_DIRS.items()))
def test_every_board_image_names_its_bitstream_folder(monkeypatch, board, folder):
    """Pynq-Z1 (the same xc7z020 as the PYNQ-Z2) is a board like the others: no "no bitstream known"."""
    monkeypatch.delenv(paths.BITFILE_ENV, raising=False)
    monkeypatch.setenv(paths.BOARD_ENV, board)
    path = paths.source_dir("bitstreams") / folder / "ant.bit"
    if path.is_file():
        assert driver.default_bitfile(_NoBitfile()) == path
    else:
        with pytest.raises(FileNotFoundError, match=f"make bitstream BOARD={folder}`"):
            driver.default_bitfile(_NoBitfile())


def test_unknown_board_lists_the_known_ones(monkeypatch):
    monkeypatch.delenv(paths.BITFILE_ENV, raising=False)
    monkeypatch.setenv(paths.BOARD_ENV, "Ultra96")
    with pytest.raises(RuntimeError, match="no bitstream known for BOARD='Ultra96' .*Pynq-Z1, Pynq-Z2"):
        driver.default_bitfile(_NoBitfile())


@pytest.mark.skipif(paths.on_board(), reason="on a board the board backend is available")
def test_board_backend_off_a_board_says_why_in_one_line():
    why = board_problem()
    assert why and "\n" not in why and "not a PYNQ board" in why
    with pytest.raises(RuntimeError, match="not a PYNQ board"):
        open_overlay("board")
    with pytest.raises(ValueError, match="unknown backend 'gpu'; expected one of"):
        open_overlay("gpu")

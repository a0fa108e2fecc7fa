"""Bad input and faults around the runtime: clear errors, no leaked device buffers, files untouched."""

import antq
import numpy as np
import pytest
from antq import cli
from antq.core import container
from antq.model import graph
from antq.run import open_overlay
from antq.run.runtime import Runtime


@pytest.fixture
def csim():
    ov = open_overlay("csim", pace=0, timeout=0.5)
    yield ov
    ov.close()
    assert ov.live_buffers == 0 and ov.device.live_buffers == 0


def test_model_file_from_another_version(cnn_q, tmp_path, monkeypatch, capsys):
    _, _, qm = cnn_q
    real = graph.IntegerModel.__antq_state__
    monkeypatch.setattr(graph.IntegerModel, "__antq_state__",
                        lambda self: {**real(self), "version": graph.STATE_VERSION + 1})
    path = container.save(tmp_path / "future.antq", qm)
    before = path.read_bytes()
    monkeypatch.undo()
    assert cli.main(["run", str(path), "--backend", "ref", "--limit", "4"]) == 1
    err = capsys.readouterr().err
    assert f"version {graph.STATE_VERSION + 1}" in err and "re-export" in err
    assert path.read_bytes() == before


def test_file_that_is_not_a_model(tmp_path, capsys):
    path = container.save(tmp_path / "t.antq", {"just": np.arange(3)})
    assert cli.main(["run", str(path), "--backend", "ref"]) == 1
    assert "not a quantized model" in capsys.readouterr().err


def test_layer_formats_the_accelerator_cannot_map(cnn_q, csim, tmp_path):
    _, _, qm = cnn_q
    odd = container.load(container.save(tmp_path / "m.antq", qm))  # an independent copy
    layer = odd.gemm_layers[1]
    codes = np.minimum(layer.weight.codes, 15)
    layer.weight = antq.QuantizedTensor(codes, kind="flint", bits=5, signed=True, scale=layer.weight.scale,
                                        channel_axis=0)  # a 5-bit flint: no PE decodes it
    before = csim.live_buffers
    with pytest.raises(ValueError, match=r"cannot run these layers' formats .*: features\.3 \(int4u x "
                       r"flint5s\)"):
        Runtime(odd, csim)
    assert csim.live_buffers == before


def test_input_of_the_wrong_shape(cnn_q, csim, digits_test):
    _, _, qm = cnn_q
    with Runtime(qm, csim) as rt:
        with pytest.raises(ValueError, match=r"input has shape \(2, 1, 8, 4\); expected \(batch, 1, 8, 8\)"):
            rt.run(digits_test[0][:2, :, :, :4])
        with pytest.raises(ValueError, match="batch_size must be a positive int or None, got 0"):
            rt.run(digits_test[0][:2], batch_size=0)
        with pytest.raises(TypeError, match="IntegerModel"):
            Runtime(object(), csim)


def test_device_timeout_in_the_middle_of_a_model(cnn_q, digits_test, csim, monkeypatch):
    _, _, qm = cnn_q
    calls = 0
    with pytest.raises(TimeoutError), Runtime(qm, csim) as rt:
        real = csim.gemm  # every layer's call, chained (epilogue on the IP) or not

        def hang_on_third(a, w, **kw):
            nonlocal calls
            calls += 1
            if calls == 3:
                csim.device.faults.hang = True
            return real(a, w, **kw)

        monkeypatch.setattr(csim, "gemm", hang_on_third)
        rt.run(digits_test[0][:4])
    assert calls == 3 and rt.resident_buffers == 0  # the with block freed the weights
    with pytest.raises(RuntimeError, match="failed earlier"):
        Runtime(qm, csim)
    # the fixture then checks that close() leaves no buffer behind, on the host or the device


def test_running_a_saved_model_needs_no_torch(cnn_q, tmp_path):
    """A board image may lack PyTorch: antq run on a .antq file must not import it."""
    import subprocess
    import sys

    path = container.save(tmp_path / "m.antq", cnn_q[2])
    code = ("import sys, antq.cli as c; "
            "rc = c.main(['run', sys.argv[1], '--backend', 'ref', '--limit', '8']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "8 held-out samples" in r.stdout

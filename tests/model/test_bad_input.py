"""Bad input to the model layer: integer-model inputs of any shape and dtype (0-d, empty, NaN,
beyond float32, bfloat16), calibration data float32 cannot hold, and model files whose checksummed
header says something malformed about the model. Each is an error that names the problem."""

import json
import struct
import zlib

import antq
import numpy as np
import pytest
import torch
from antq.core import container
from antq.core.container import ContainerError
from antq.model.calibrate import quantize_model
from antq.toolchain import paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

X = np.random.default_rng(1).random((3, 1, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    return container.load(paths.shipped_model())


@pytest.mark.parametrize("x, exc, match", [
    (np.float32(0.5), ValueError, r"model input is 0-d \(a single number\); expected a batch of shape "
     r"\(batch, 1, 8, 8\)"),
    (X[:0], ValueError, r"model input has an empty batch \(0 samples\): nothing to run"),
    (X[0], ValueError, r"model input has shape \(1, 8, 8\); expected \(batch, 1, 8, 8\)"),
    (X.astype(bool), TypeError, "model input must be a real numeric array \\(float32\\), got dtype bool"),
    (X.astype(complex), TypeError, "got dtype complex128"),
    (np.where(X > 0.5, np.inf, X), ValueError, r"model input contains 0 NaN and \d+ Inf values"),
    (X.astype(np.float64) * 1e39, ValueError, r"model input \(float64\) has values up to 9.\d+e\+38, which "
     r"overflow float32"),
])
def test_integer_model_input_is_refused_by_name(model, x, exc, match):
    with pytest.raises(exc, match=match):
        model.run(x)


def test_torch_inputs_need_no_conversion(model):
    """A torch tensor of any float dtype runs as its float32 values (bfloat16 has no numpy dtype)."""
    t = torch.from_numpy(X)
    assert np.array_equal(model.run(t.bfloat16()), model.run(t.bfloat16().float().numpy()))
    assert np.array_equal(model.run(t.double()), model.run(X))
    ints = (X * 4).astype(np.int16)
    assert np.array_equal(model.run(ints), model.run(ints.astype(np.float32)))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(),
                            hnp.complex_number_dtypes()),
                  hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=8)))
def test_hypothesis_any_input_runs_or_is_refused(model, x):
    """Random shapes and dtypes: logits of the right shape, or a TypeError/ValueError naming the input."""
    try:
        y = model.run(x)
    except (TypeError, ValueError) as e:
        assert "model input" in str(e), e
    else:
        assert y.shape == (x.shape[0], 10) and y.dtype == np.float32


def test_calibration_data_beyond_float32_says_so():
    from antq.model import zoo

    net = zoo.get("digits-cnn", progress=False)
    with pytest.raises(ValueError, match=r"calibration data \(torch.float64\) has values up to 1e\+40, "
                       r"which overflow torch.float32 to Inf"):
        quantize_model(net, np.full((4, 1, 8, 8), 1e40), progress=False)
    x = np.full((4, 1, 8, 8), 0.5)
    x.reshape(4, -1)[:, 0] = np.nan
    with pytest.raises(ValueError, match="calibration data contains 4 NaN/Inf values"):
        quantize_model(net, x, progress=False)


# ---- model files: checksummed, but what they say about the model is wrong ------------------------


def _split(data: bytes) -> tuple[dict, bytes]:
    _, _, hlen, _ = struct.unpack_from("<8sIII", data)
    return json.loads(zlib.decompress(data[20:20 + hlen])), data[20 + hlen:]


def _join(meta: dict, blobs: bytes) -> bytes:
    raw = zlib.compress(json.dumps(meta).encode())
    head = struct.pack("<8sIII", container.MAGIC, container.FORMAT_VERSION, len(raw), zlib.crc32(raw))
    return head + raw + blobs


def _state(meta: dict) -> dict:
    return meta["tree"]["state"]["items"]


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("nodes"), r"obj\.state: .*not a quantized model|missing or bad field 'nodes'"),
    (lambda s: s.update(format="antq-other"), "not a quantized model"),
    (lambda s: s.update(version=99), "quantized model format version 99"),
    (lambda s: s["nodes"]["items"][2]["items"].update(op="teleport"), "node 'features_3': unknown host op "
     "'teleport'"),
    (lambda s: s["nodes"]["items"][0]["items"].update(op="relu"), "needs at least one input node"),
    (lambda s: s["nodes"]["items"][1]["items"]["layer"]["items"]["in_shape"]["items"].append(3),
     r"layer features.0: conv2d input shape must be \(C, H, W\), got \(1, 8, 8, 3\)"),
    (lambda s: s["nodes"]["items"][1]["items"]["layer"]["items"]["act"]["items"].update(bits=9),
     r"obj: malformed obj 'antq\.\w+\.\w+': FormatError: unsupported bit width 9"),
])
def test_malformed_model_state_is_a_container_error(tmp_path, edit, match):
    meta, blobs = _split(paths.shipped_model().read_bytes())
    edit(_state(meta))
    p = tmp_path / "bad.antq"
    p.write_bytes(_join(meta, blobs))
    with pytest.raises(ContainerError, match=match):
        antq.load(p)


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _places(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _places(v, (*path, i))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=5)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_mutated_model_file_loads_or_is_a_container_error(tmp_path, data):
    """Any field of a real model's header replaced or deleted (checksum recomputed): the file loads
    as a model, or loading raises a ContainerError naming the place, never a raw KeyError/TypeError."""
    meta, blobs = _split(paths.shipped_model().read_bytes())
    where = data.draw(st.sampled_from(list(_places(meta["tree"]))[1:]))
    parent = meta["tree"]
    for k in where[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    p = tmp_path / "mutated.antq"
    p.write_bytes(_join(meta, blobs))
    try:
        antq.load(p)
    except ContainerError as e:
        assert str(e).startswith(f"{p}: ")

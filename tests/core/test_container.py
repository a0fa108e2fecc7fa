"""The .antq container: round trips, size, and refusal of corrupt, truncated or foreign files."""

import struct

import antq
import numpy as np
import pytest
import torch
from antq.core import container
from antq.core.container import ContainerError


def _model_state(rng):
    layers = {}
    for i, (o, k) in enumerate([(256, 784), (256, 256), (10, 256)]):
        w = rng.laplace(size=(o, k)).astype(np.float32)
        layers[f"fc{i}"] = {
            "weight": antq.quantize_tensor(w, channel_axis=0, signed=True),
            "bias": rng.standard_normal(o).astype(np.float32),
            "act": {"kind": "int", "bits": 4, "signed": False, "scale": 0.01},
        }
    return layers


def test_round_trip_tree(tmp_path):
    rng = np.random.default_rng(0)
    q8 = antq.quantize_tensor(rng.standard_normal((5, 7)), bits=8, channel_axis=1)
    obj = {"a": antq.quantize_tensor(rng.standard_normal((3, 4, 5))), "b": [1, 2.5, "x", None, True],
           "q8": q8, "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
           "t": torch.ones(3), "nested": {"z": (np.float32(1.5),)}}
    p = antq.save(tmp_path / "m.antq", obj)
    back = antq.load(p)
    assert back["a"] == obj["a"] and back["q8"] == q8
    assert back["b"] == [1, 2.5, "x", None, True]
    assert np.array_equal(back["arr"], obj["arr"]) and back["arr"].dtype == np.int32
    assert np.array_equal(back["t"], np.ones(3, np.float32))
    assert back["nested"] == {"z": [1.5]}
    single = antq.load(antq.save(tmp_path / "t.antq", obj["a"]))
    assert single == obj["a"] and np.array_equal(single.dequantize(), obj["a"].dequantize())


def test_4bit_model_is_at_most_a_seventh_of_fp32(tmp_path):
    state = _model_state(np.random.default_rng(1))
    fp32 = sum(v["weight"].codes.size * 4 + v["bias"].nbytes for v in state.values())
    torch_file = tmp_path / "fp32.pt"
    torch.save({k: torch.from_numpy(v["weight"].dequantize()) for k, v in state.items()}
               | {k + ".b": torch.from_numpy(v["bias"]) for k, v in state.items()}, torch_file)
    size = antq.save(tmp_path / "m.antq", state).stat().st_size
    assert size * 7 <= fp32 and size * 7 <= torch_file.stat().st_size, (size, fp32)


def test_registered_objects(tmp_path):
    class Box:
        def __init__(self, v):
            self.v = v

        def __antq_state__(self):
            return {"v": self.v}

    container.register("test.Box", Box, lambda s: Box(s["v"]))
    back = antq.load(antq.save(tmp_path / "b.antq", {"box": Box(np.arange(3))}))
    assert isinstance(back["box"], Box) and np.array_equal(back["box"].v, np.arange(3))


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(2)
    return antq.save(tmp_path / "m.antq", {"w": antq.quantize_tensor(rng.standard_normal((8, 8)))})


def test_rejects_truncated(saved):
    data = saved.read_bytes()
    for cut in (5, 30, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(ContainerError, match="truncated"):
            antq.load(saved)


def test_rejects_corrupted(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="checksum mismatch"):
        antq.load(saved)
    data = bytearray(saved.read_bytes())
    data[25] ^= 0x01  # inside the compressed header
    saved.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="header checksum"):
        antq.load(saved)


def test_rejects_other_versions_and_files(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    struct.pack_into("<I", data, 8, container.FORMAT_VERSION + 1)
    saved.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match=r"version 2, but this antq reads version 1"):
        antq.load(saved)
    other = tmp_path / "x.antq"
    other.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ContainerError, match="bad magic"):
        antq.load(other)
    saved.write_bytes(bytes(saved.read_bytes()) + b"junk")
    with pytest.raises(ContainerError):
        antq.load(saved)


def test_save_rejects_unknown_objects_and_keeps_old_file(saved):
    before = saved.read_bytes()
    with pytest.raises(TypeError, match=r"obj.bad: cannot store object of type set"):
        antq.save(saved, {"bad": {1, 2}})
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left

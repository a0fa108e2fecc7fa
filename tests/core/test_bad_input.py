"""Bad input to the core layer: every one is an error that names the problem, never a silent result.

Classes (issue 14): quantizer arguments (ratios, signedness, bits, candidates, axis), tensors of
any dtype and shape, float64 data beyond float32, torch dtypes numpy lacks, and ``.antq`` files
that are corrupt or whose checksummed header is malformed, plus the paths ``save`` writes to.
"""

import json
import os
import stat
import struct
import zlib

import antq
import numpy as np
import pytest
import torch
from antq.core import container, formats, quantize
from antq.core.container import ContainerError
from antq.core.formats import FormatError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

X = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)

# ---- quantizer arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, kwargs, exc, match",
    [(np.array([1.0, np.nan]), {}, ValueError, "1 NaN and 0 Inf"),
     (np.array([1.0, np.inf, -np.inf]), {}, ValueError, "0 NaN and 2 Inf"),
     (np.array([]), {}, ValueError, "empty"),
     (np.array(["a"]), {}, TypeError, "real numeric"),
     (np.float32(3.0), {}, ValueError, "0-d"),
     (np.ones(4), {"bits": 9}, FormatError, "unsupported bit width 9"),
     (np.ones(4), {"bits": 3.5}, FormatError, "bits must be an int"),
     (np.ones(4), {"candidates": ("int", "nf4")}, FormatError, "unknown candidate"),
     (np.ones(4), {"candidates": ()}, ValueError, "candidates is empty"),
     (np.ones((2, 2)), {"channel_axis": 2}, ValueError, "channel_axis 2 is out of range"),
     (-np.ones(4), {"bits": 2, "candidates": ("flint",)}, FormatError, "none of"),
     (X, {"ratios": [-1.0]}, ValueError, r"ratios must be finite, positive and at most 1000 .* got \[-1.0\]"),
     (X, {"ratios": [0]}, ValueError, r"ratios must be finite, positive .* got \[0.0\]"),
     (X, {"ratios": [0.9, 1e308]}, ValueError, r"ratios must be .* got \[1e\+308\]"),
     (X, {"ratios": []}, ValueError, "ratios must be a non-empty 1-D sequence"),
     (X, {"ratios": [[0.9]]}, ValueError, r"got shape \(1, 1\)"),
     (X, {"ratios": ["a"]}, TypeError, "ratios must be a sequence of numbers"),
     (X, {"signed": False}, ValueError, r"signed=False, but x has \d+ negative values .* clip to 0"),
     (X, {"signed": "yes"}, TypeError, "signed must be True, False or None"),
     (np.full(4, 1e40), {}, ValueError, r"values up to 1e\+40, which overflow float32"),
     (np.array([3e38, -3e38]), {"bits": 2, "candidates": ("int",), "ratios": [1.49]}, ValueError,
      "outside float32's range"),
     (np.full(4, 1e-300), {}, ValueError, "outside float32's range")],
)
def test_quantize_tensor_refuses(x, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        antq.quantize_tensor(x, **kwargs)


def test_quantize_as_refuses_what_float32_cannot_hold():
    f = formats.get("int", 4, True)
    with pytest.raises(ValueError, match="overflow float32"):
        quantize.quantize_as(np.full(4, 1e40), f, 1.0)
    with pytest.raises(ValueError, match="0-d"):
        quantize.quantize_as(np.float64(1.0), f, 1.0)
    with pytest.raises(ValueError, match=r"scales must be finite and positive in float32, got \[inf\]"):
        quantize.quantize_as(np.ones(4), f, 1e40)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4))
def test_ratios_are_used_or_refused(ratios):
    """Any ratio list either drives the search (every chosen ratio is one of them) or is refused."""
    if ratios and all(np.isfinite(r) and 0 < r <= quantize.MAX_RATIO for r in ratios):
        try:
            q = antq.quantize_tensor(X, ratios=ratios)
        except ValueError as e:  # a ratio so large or small that the scale leaves float32
            assert "outside float32's range" in str(e)
        else:
            assert set(q.selection.ratio.tolist()) <= set(ratios)
            assert np.all(np.isfinite(q.scale)) and np.all(q.scale > 0)
    else:
        with pytest.raises(ValueError, match="ratios must be"):
            antq.quantize_tensor(X, ratios=ratios)


DTYPES = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                   hnp.floating_dtypes(), hnp.complex_number_dtypes(), hnp.datetime64_dtypes(),
                   hnp.byte_string_dtypes(), hnp.unicode_string_dtypes())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
def test_any_dtype_and_shape_is_quantized_or_refused_by_name(x):
    """Random dtypes and shapes (0-d, empty, NaN, huge, bool, complex, strings, dates): a quantized
    tensor whose scale is finite, or a TypeError/ValueError that says what is wrong."""
    try:
        q = antq.quantize_tensor(x)
    except TypeError as e:
        assert "real numeric array" in str(e)
        assert x.dtype.kind not in "fiu" or x.dtype == np.bool_
    except ValueError as e:
        assert any(s in str(e) for s in ("empty", "0-d", "NaN", "overflow float32", "outside float32")), e
    else:
        assert q.shape == x.shape and np.all(np.isfinite(q.scale)) and np.all(q.scale > 0)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-300, 1e300), st.booleans())
def test_any_float64_magnitude_is_quantized_or_refused(magnitude, per_channel):
    x = np.array([[magnitude, -magnitude / 3], [magnitude / 7, 0.0]])
    try:
        q = antq.quantize_tensor(x, channel_axis=0 if per_channel else None)
    except ValueError as e:
        assert "float32" in str(e), e
    else:
        assert np.all(np.isfinite(q.dequantize())) and np.all(q.scale > 0)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_torch_dtypes_numpy_lacks():
    """bfloat16 and float8 hold float32 values exactly: accepted; other dtypes numpy lacks: refused."""
    t = torch.from_numpy(X).bfloat16()
    assert antq.quantize_tensor(t) == antq.quantize_tensor(t.float().numpy())
    t8 = torch.from_numpy(X).to(torch.float8_e4m3fn)
    assert antq.quantize_tensor(t8) == antq.quantize_tensor(t8.float().numpy())
    with pytest.raises(TypeError, match=r"torch dtype torch.quint8, which numpy cannot hold"):
        antq.quantize_tensor(torch.quantize_per_tensor(torch.from_numpy(X), 0.1, 0, torch.quint8))


# ---- the .antq container: corrupt bytes, malformed headers -------------------------------------


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    obj = {"w": antq.quantize_tensor(rng.standard_normal((4, 6)), channel_axis=0), "b": [1, "x", None],
           "a": np.arange(6, dtype=np.int16).reshape(2, 3), "q8": antq.quantize_tensor(rng.random(5), bits=8)}
    return container.save(tmp_path_factory.mktemp("c") / "good.antq", obj).read_bytes()


def _with_header(meta_or_bytes, blobs: bytes = b"") -> bytes:
    """A file whose header checksum matches: only its content can be wrong."""
    raw = meta_or_bytes if isinstance(meta_or_bytes, bytes) else json.dumps(meta_or_bytes).encode()
    raw = raw if isinstance(meta_or_bytes, bytes) else zlib.compress(raw)
    head = struct.pack("<8sIII", container.MAGIC, container.FORMAT_VERSION, len(raw), zlib.crc32(raw))
    return head + raw + blobs


def _split(data: bytes) -> tuple[dict, bytes]:
    _, _, hlen, _ = struct.unpack_from("<8sIII", data)
    return json.loads(zlib.decompress(data[20:20 + hlen])), data[20 + hlen:]


@pytest.mark.parametrize("header, match", [
    (b"hello world", r"the header is not zlib-compressed data \(Error -3"),
    (zlib.compress(b"{nope"), "the header is not JSON"),
    (zlib.compress(b"\xff\xfe"), "the header is not JSON"),
    (zlib.compress(b"[1, 2]"), "the header must be a JSON object, got list"),
    (zlib.compress(b'{"tree": 1}'), "the header has no 'blobs' field"),
    (zlib.compress(b'{"blobs": []}'), "the header has no 'tree' field"),
    (zlib.compress(b'{"tree": 1, "blobs": {}}'), "header field 'blobs' must be a list, got dict"),
    (zlib.compress(b'{"tree": 1, "blobs": [[0, 1]]}'), r"blobs\[0\] must be \[offset, length, crc32\]"),
    (zlib.compress(b'{"tree": 1, "blobs": [[0, -1, 0]]}'), r"blobs\[0\] must be"),
    (zlib.compress(b'{"tree": 1, "blobs": [[5, 0, 0]]}'), r"blobs\[0\]: offset 5, but data blocks are back"),
    (zlib.compress(b'{"tree": [1], "blobs": []}'), "obj: expected a value or a tagged object, got a list"),
    (zlib.compress(b'{"tree": {"a": 1}, "blobs": []}'), "obj: object without its '__t' type field"),
    (zlib.compress(b'{"tree": {"__t": "zip"}, "blobs": []}'), "obj: unknown node type 'zip'"),
    (zlib.compress(b'{"tree": {"__t": "dict"}, "blobs": []}'), "obj: dict node has no 'items' field"),
    (zlib.compress(b'{"tree": {"__t": "list", "items": 3}, "blobs": []}'),
     "field 'items' of a list node must be a list, got 3"),
    (zlib.compress(b'{"tree": {"__t": "obj", "name": "x.Y", "state": 1}, "blobs": []}'),
     "unknown object type 'x.Y'"),
], ids=lambda v: None if isinstance(v, bytes) else v[:40])
def test_malformed_checksummed_header_names_the_field(tmp_path, header, match):
    p = tmp_path / "bad.antq"
    p.write_bytes(_with_header(header))
    with pytest.raises(ContainerError, match=match):
        antq.load(p)


def test_malformed_nodes_name_their_place_in_the_tree(tmp_path, good_file):
    meta, blobs = _split(good_file)
    cases = [
        (("w", "bits"), "4", r"obj\.w: field 'bits' of a qtensor node must be an integer, got '4'"),
        (("w", "bits"), 9, r"obj\.w: malformed qtensor: .*bit width 9"),
        (("w", "shape"), [4, -6], r"obj\.w: field 'shape' .* a list of non-negative integers"),
        (("w", "shape"), [4, 7], r"obj\.w: malformed qtensor: ValueError: packed buffer has"),
        (("w", "codes"), 99, r"obj\.w: field 'codes' .* a data block index below"),
        (("w", "kind"), "nf4", r"obj\.w: malformed qtensor: .*unknown kind 'nf4'"),
        (("w", "channel_axis"), 5, r"obj\.w: malformed qtensor: .*channel_axis 5 is out of range"),
        (("w", "scale", "__t"), "list", r"obj\.w\.scale: list node has no 'items' field"),
        (("a", "dtype"), "object", r"obj\.a: field 'dtype' of a array node must be one of"),
        (("a", "shape"), [5, 3], r"obj\.a: an array of int16 \[5, 3\] needs 30 bytes, its data block has 12"),
        (("b", "items", 1), {"__t": "dict", "items": []}, r"obj\.b\[1\]: field 'items' of a dict node"),
    ]
    for keys, value, match in cases:
        bad = json.loads(json.dumps(meta))
        node = bad["tree"]["items"]
        for k in keys[:-1]:
            node = node[k] if isinstance(node, list) or k in node else node["items"][k]
        node[keys[-1]] = value
        p = tmp_path / "bad.antq"
        p.write_bytes(_with_header(bad, blobs))
        with pytest.raises(ContainerError, match=match):
            antq.load(p)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=6)


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _places(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _places(v, (*path, i))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_any_mutated_header_is_a_container_error(tmp_path, good_file, data):
    """Replace or delete any field of a valid header (checksum recomputed): the file loads, or
    loading raises a ContainerError, never a KeyError, TypeError, zlib or JSON error."""
    meta, blobs = _split(good_file)
    places = list(_places(meta))
    where = data.draw(st.sampled_from(places[1:]))
    parent = meta
    for k in where[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    p = tmp_path / "mutated.antq"
    p.write_bytes(_with_header(meta, blobs))
    try:
        antq.load(p)
    except ContainerError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_corrupted_bytes_are_always_caught(tmp_path, good_file, data):
    """Flip, drop or append bytes anywhere: every byte is under a checksum or checked, so the file
    never loads and the error is a ContainerError."""
    b = bytearray(good_file)
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        b = b[:data.draw(st.integers(0, len(b) - 1))]
    else:
        b += data.draw(st.binary(min_size=1, max_size=8))
    p = tmp_path / "corrupt.antq"
    p.write_bytes(bytes(b))
    with pytest.raises(ContainerError):
        antq.load(p)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
def test_hypothesis_any_checksummed_header_bytes(tmp_path, raw):
    p = tmp_path / "raw.antq"
    p.write_bytes(_with_header(raw))
    with pytest.raises(ContainerError, match="the header is not"):
        antq.load(p)


def test_load_of_a_folder_names_it(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not an .antq file"):
        antq.load(tmp_path)


# ---- where save writes ---------------------------------------------------------------------------


def test_save_refuses_bad_targets_before_writing(tmp_path):
    q = antq.quantize_tensor(X)
    with pytest.raises(ValueError, match="the output path is empty"):
        antq.save("", q)
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder; give a file name"):
        antq.save(tmp_path, q)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError, match=f"cannot write {tmp_path}/f/m.antq: {tmp_path}/f is a file, not a "
                       "folder"):
        antq.save(tmp_path / "f" / "m.antq", q)
    if os.path.isdir("/proc/self"):
        with pytest.raises(OSError, match=r"cannot write /proc/x\.antq: "):
            antq.save("/proc/x.antq", q)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_creates_folders_and_uses_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = antq.save(tmp_path / "a" / "b" / "m.antq", antq.quantize_tensor(X))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert antq.load(p) == antq.quantize_tensor(X)
    assert [f.name for f in p.parent.iterdir()] == ["m.antq"]  # no temporary file left

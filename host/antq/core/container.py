"""The ``.antq`` file: packed codes, scales, formats and shapes of tensors and whole models.

Layout (all integers little-endian)::

    magic   8 bytes  b"ANTQFILE"
    version u32      FORMAT_VERSION; another version is refused
    hlen    u32      length of the compressed header
    hcrc    u32      CRC-32 of the compressed header
    header  hlen     zlib-compressed JSON: the object tree, blobs referenced by index
    blobs            raw byte strings, back to back; the header lists each one's offset,
                     length and CRC-32

Quantized tensors store their codes packed with :data:`antq.core.pack.Layout` ``()`` (two 4-bit codes
per byte), so a 4-bit model is about 1/8 of its fp32 size. Loading checks the magic, the version,
the total length, every checksum and every header field, and names what is wrong (a corrupt file
is always a :class:`ContainerError`). Saving writes to a temporary file and renames it, so an
existing file is never left half-written, and the file gets the umask's permissions.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import pack
from .quantize import QuantizedTensor

MAGIC = b"ANTQFILE"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIII")
_NUMERIC = {"float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool"}
_REGISTRY: dict[str, tuple[type, Callable[[Any], Any]]] = {}


class ContainerError(ValueError):
    """A file that is not a valid .antq container of this version."""


def register(name: str, cls: type, from_state: Callable[[Any], Any]) -> None:
    """Let ``save`` store ``cls`` objects via ``obj.__antq_state__()`` and ``load`` rebuild them."""
    _REGISTRY[name] = (cls, from_state)


class _Writer:
    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def encode(self, obj: Any, where: str) -> Any:
        if isinstance(obj, QuantizedTensor):
            return {
                "__t": "qtensor", "kind": obj.kind, "bits": obj.bits, "signed": obj.signed,
                "shape": list(obj.shape), "channel_axis": obj.channel_axis,
                "codes": self.blob(pack.pack(obj.codes, obj.bits).tobytes()),
                "scale": self.encode(obj.scale, where + ".scale"),
            }
        for name, (cls, _) in _REGISTRY.items():
            if type(obj) is cls:
                return {"__t": "obj", "name": name, "state": self.encode(obj.__antq_state__(), where)}
        if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch.Tensor
            obj = obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray):
            if obj.dtype.name not in _NUMERIC:
                raise TypeError(f"{where}: cannot store array of dtype {obj.dtype}")
            return {"__t": "array", "dtype": obj.dtype.name, "shape": list(obj.shape),
                    "data": self.blob(np.ascontiguousarray(obj).tobytes())}
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise TypeError(f"{where}: dict keys must be str")
            return {"__t": "dict", "items": {k: self.encode(v, f"{where}.{k}") for k, v in obj.items()}}
        if isinstance(obj, (list, tuple)):
            return {"__t": "list", "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, np.generic):
            obj = obj.item()
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"{where}: cannot store object of type {type(obj).__name__}")


def save(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (a QuantizedTensor, array, registered model, or dict/list of them) to ``path``.

    The file appears complete or not at all (a temporary file in the same folder, then a rename)
    and gets the permissions the umask allows, as any other file the user writes. Missing parent
    folders are created. Errors name ``path``, not the temporary file.
    """
    if os.fspath(path) == "":
        raise ValueError("the output path is empty; give a file name such as model.antq")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder; give a file name, e.g. "
                                f"{path / 'model.antq'}")
    w = _Writer()
    tree = w.encode(obj, "obj")
    offsets, off = [], 0
    for b in w.blobs:
        offsets.append([off, len(b), zlib.crc32(b)])
        off += len(b)
    header = zlib.compress(json.dumps({"tree": tree, "blobs": offsets}, separators=(",", ":")).encode())
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        file = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        why = f"{file} is a file, not a folder" if file else f"cannot create {path.parent}: {e.strerror}"
        raise OSError(e.errno, f"cannot write {path}: {why}") from None
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(header)
            for b in w.blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
        raise
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file beside ``path``, created with mode 0o666 so that the umask
    sets its permissions (``tempfile.mkstemp`` would make every saved file private to its writer)."""
    for _ in range(16):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, f"cannot write {path}: {e.strerror} (in {path.parent})") from None
    raise FileExistsError(errno.EEXIST, f"cannot write {path}: no free temporary file name in {path.parent}")


def load(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`save`; raises ContainerError naming any corruption.

    Everything is checked before it is used: the magic, the version, the checksums, every field
    of the header (a file whose checksums match but whose header is malformed names the field).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder, not an .antq file")
    data = path.read_bytes()
    if len(data) < _HEAD.size:
        raise ContainerError(f"{path}: truncated ({len(data)} bytes); not an .antq file")
    magic, version, hlen, hcrc = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"{path}: bad magic {magic!r}; not an .antq file")
    if version != FORMAT_VERSION:
        raise ContainerError(
            f"{path}: container format version {version}, but this antq reads version "
            f"{FORMAT_VERSION}; re-export the model with a matching antq"
        )
    body = _HEAD.size + hlen
    if len(data) < body:
        raise ContainerError(f"{path}: truncated inside the header ({len(data)} of {body} bytes)")
    header = data[_HEAD.size:body]
    if zlib.crc32(header) != hcrc:
        raise ContainerError(f"{path}: header checksum mismatch; the file is corrupt")
    try:
        meta = _header(header)
        blobs = _blobs(meta["blobs"], data, body)
        return _decode(meta["tree"], blobs, "obj")
    except ContainerError as e:
        raise ContainerError(f"{path}: {e}") from None


def _header(header: bytes) -> dict:
    """The header's JSON object, with its two fields present."""
    try:
        text = zlib.decompress(header)
    except zlib.error as e:
        raise ContainerError(f"the header is not zlib-compressed data ({e}): not written by antq.save"
                             ) from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ContainerError(f"the header is not JSON ({e}): not written by antq.save") from None
    if not isinstance(meta, dict):
        raise ContainerError(f"the header must be a JSON object, got {type(meta).__name__}")
    for key in ("tree", "blobs"):
        if key not in meta:
            raise ContainerError(f"the header has no {key!r} field")
    return meta


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_index(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _blobs(entries: Any, data: bytes, body: int) -> list[bytes]:
    """The data blocks the header lists (back to back after it), each checked against its CRC-32."""
    if not isinstance(entries, list):
        raise ContainerError(f"header field 'blobs' must be a list, got {type(entries).__name__}")
    blobs, end = [], body
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 3 and all(map(_is_index, entry))):
            raise ContainerError(f"header field blobs[{i}] must be [offset, length, crc32] of non-negative "
                                 f"integers, got {_short(entry)}")
        off, n, crc = entry
        if body + off != end:
            raise ContainerError(f"header field blobs[{i}]: offset {off}, but data blocks are back to back "
                                 f"and this one starts at {end - body}")
        b = data[end:end + n]
        if len(b) != n:
            raise ContainerError(f"truncated: data block {i} needs {n} bytes, found {len(b)}")
        if zlib.crc32(b) != crc:
            raise ContainerError(f"data block {i} checksum mismatch; the file is corrupt")
        blobs.append(b)
        end += n
    if len(data) != end:
        raise ContainerError(f"{len(data) - end} unexpected trailing bytes")
    return blobs


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


_NODE_FIELDS: dict[str, tuple[str, ...]] = {
    "qtensor": ("kind", "bits", "signed", "shape", "channel_axis", "codes", "scale"),
    "array": ("dtype", "shape", "data"), "dict": ("items",), "list": ("items",), "obj": ("name", "state"),
}


def _decode(node: Any, blobs: list[bytes], where: str) -> Any:
    """The object a header node describes; a malformed node is a ContainerError naming its field."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict):
        raise ContainerError(f"{where}: expected a value or a tagged object, got a {type(node).__name__}")
    t = node.get("__t")
    if not isinstance(t, str) or t not in _NODE_FIELDS:
        raise ContainerError(f"{where}: unknown node type {_short(t)}" if "__t" in node
                             else f"{where}: object without its '__t' type field")
    missing = [k for k in _NODE_FIELDS[t] if k not in node]
    if missing:
        raise ContainerError(f"{where}: {t} node has no {missing[0]!r} field")

    def field(key: str, ok: Callable[[Any], bool], want: str) -> Any:
        if not ok(node[key]):
            raise ContainerError(f"{where}: field {key!r} of a {t} node must be {want}, got "
                                 f"{_short(node[key])}")
        return node[key]

    def blob(key: str) -> bytes:
        n = len(blobs)
        return blobs[field(key, lambda v: _is_index(v) and v < n, f"a data block index below {n}")]

    def shape() -> tuple[int, ...]:
        return tuple(field("shape", lambda v: isinstance(v, list) and all(map(_is_index, v)),
                           "a list of non-negative integers"))

    try:
        if t == "qtensor":
            kind = field("kind", lambda v: isinstance(v, str), "a string")
            bits = field("bits", _is_int, "an integer")
            signed = field("signed", lambda v: isinstance(v, bool), "true or false")
            axis = field("channel_axis", lambda v: v is None or _is_int(v), "an integer or null")
            dims = shape()
            codes = pack.unpack(np.frombuffer(blob("codes"), np.uint8), bits, dims)
            return QuantizedTensor(codes, kind=kind, bits=bits, signed=signed, channel_axis=axis,
                                   scale=_decode(node["scale"], blobs, where + ".scale"))
        if t == "array":
            dtype = np.dtype(field("dtype", lambda v: isinstance(v, str) and v in _NUMERIC,
                                   f"one of {sorted(_NUMERIC)}"))
            dims, raw = shape(), blob("data")
            need = math.prod(dims) * dtype.itemsize
            if len(raw) != need:
                raise ContainerError(f"{where}: an array of {dtype} {list(dims)} needs {need} bytes, its "
                                     f"data block has {len(raw)}")
            return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
        if t == "dict":
            items = field("items", lambda v: isinstance(v, dict), "an object")
            return {k: _decode(v, blobs, f"{where}.{k}") for k, v in items.items()}
        if t == "list":
            items = field("items", lambda v: isinstance(v, list), "a list")
            return [_decode(v, blobs, f"{where}[{i}]") for i, v in enumerate(items)]
        name = field("name", lambda v: isinstance(v, str), "a string")
        if name not in _REGISTRY:
            raise ContainerError(f"{where}: unknown object type {name!r}; import the module that defines it")
        state = _decode(node["state"], blobs, f"{where}.state")
        try:
            return _REGISTRY[name][1](state)
        except ContainerError as e:  # the registered class's own check: say where the object is
            raise ContainerError(f"{where} ({name}): {e}") from None
    except ContainerError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        what = f"{t} {node['name']!r}" if t == "obj" else t
        raise ContainerError(f"{where}: malformed {what}: {type(e).__name__}: {e}") from e

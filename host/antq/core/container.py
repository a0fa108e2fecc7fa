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
the total length and every checksum, and names what is wrong. Saving writes to a temporary file
and renames it, so an existing file is never left half-written.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
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
    """Write ``obj`` (a QuantizedTensor, array, registered model, or dict/list of them) to ``path``."""
    path = Path(path)
    w = _Writer()
    tree = w.encode(obj, "obj")
    offsets, off = [], 0
    for b in w.blobs:
        offsets.append([off, len(b), zlib.crc32(b)])
        off += len(b)
    header = zlib.compress(json.dumps({"tree": tree, "blobs": offsets}, separators=(",", ":")).encode())
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(header)
            for b in w.blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`save`; raises ContainerError naming any corruption."""
    path = Path(path)
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
    meta = json.loads(zlib.decompress(header))
    blobs = []
    for i, (off, n, crc) in enumerate(meta["blobs"]):
        b = data[body + off:body + off + n]
        if len(b) != n:
            raise ContainerError(f"{path}: truncated: data block {i} needs {n} bytes, found {len(b)}")
        if zlib.crc32(b) != crc:
            raise ContainerError(f"{path}: data block {i} checksum mismatch; the file is corrupt")
        blobs.append(b)
    end = body + sum(n for _, n, _ in meta["blobs"])
    if len(data) != end:
        raise ContainerError(f"{path}: {len(data) - end} unexpected trailing bytes")
    return _decode(meta["tree"], blobs)


def _decode(node: Any, blobs: list[bytes]) -> Any:
    if not isinstance(node, dict):
        return node
    t = node["__t"]
    if t == "qtensor":
        shape = tuple(node["shape"])
        buf = np.frombuffer(blobs[node["codes"]], np.uint8)
        codes = pack.unpack(buf, node["bits"], shape)
        return QuantizedTensor(
            codes, kind=node["kind"], bits=node["bits"], signed=node["signed"],
            scale=_decode(node["scale"], blobs), channel_axis=node["channel_axis"],
        )
    if t == "array":
        a = np.frombuffer(blobs[node["data"]], dtype=node["dtype"]).reshape(node["shape"])
        return a.copy()
    if t == "dict":
        return {k: _decode(v, blobs) for k, v in node["items"].items()}
    if t == "list":
        return [_decode(v, blobs) for v in node["items"]]
    if t == "obj":
        if node["name"] not in _REGISTRY:
            raise ContainerError(f"unknown object type {node['name']!r}; import the module that defines it")
        return _REGISTRY[node["name"]][1](_decode(node["state"], blobs))
    raise ContainerError(f"unknown node type {t!r}")

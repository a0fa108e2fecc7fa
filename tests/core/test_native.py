"""The native kernel: built once into the build folder, and a clear error without a compiler."""

import numpy as np
import pytest
from antq.core import native, pack


def test_built_once_into_the_build_folder():
    native.library()
    path = native._lib_path()
    assert path.is_file() and path.parent.name == "native" and path.name.startswith("libantq_kernels-")
    assert native.library() is native.library()


def test_no_compiler_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(native.NativeBuildError, match="needs a C\\+\\+ compiler .*no-such-g\\+\\+"):
        pack.pack(np.ones((2, 2), np.uint8), 4)
    assert not (tmp_path / "native").exists() or not list((tmp_path / "native").glob("*.so"))


def test_compiler_errors_are_reported(monkeypatch, tmp_path):
    broken = tmp_path / "kernels.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_source", lambda: broken)
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path / "build"))
    with pytest.raises(native.NativeBuildError, match="g\\+\\+ failed building antq's packing kernel"):
        native.library()
    assert not list((tmp_path / "build" / "native").glob("*.so*"))


def test_wrapper_rejects_what_the_kernel_cannot_take():
    out = np.empty(2, np.uint8)
    with pytest.raises(TypeError, match="C-contiguous uint8"):
        native.pack(np.ones((2, 2), np.int16), 1, 2, 1, out)
    with pytest.raises(ValueError, match="wrong size"):
        native.pack(np.ones((2, 2), np.uint8), 1, 2, 1, np.empty(3, np.uint8))

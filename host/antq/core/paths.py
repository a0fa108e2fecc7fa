"""The build folder and its lock, in the lowest layer: core's g++ kernel (:mod:`antq.core.native`)
caches its library there. :mod:`antq.toolchain.paths` re-exports both with every other path.

Build outputs and caches go to :func:`build_dir`: ``$ANTQ_BUILD``, else ``build/`` of a source
checkout, else the user cache folder (``$XDG_CACHE_HOME/antq``, by default ``~/.cache/antq``),
never into site-packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path

BUILD_ENV = "ANTQ_BUILD"
"""Overrides where builds and caches go."""

PACKAGE = importlib.resources.files("antq")
"""The installed (or checked-out) ``antq`` package folder."""


def checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), if it is one."""
    root = Path(str(PACKAGE)).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "hls").is_dir() else None


def build_dir() -> Path:
    """``$ANTQ_BUILD``, else the checkout's ``build/`` (gitignored), else the user cache folder."""
    env = os.environ.get(BUILD_ENV)
    if env:
        return Path(env)
    root = checkout()
    if root is not None:
        return root / "build"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "antq"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder): pytest-xdist workers and
    concurrent commands then build a cached artefact once instead of racing on it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

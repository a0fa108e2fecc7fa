"""Build outputs: where they go, and a file lock so parallel workers build each artefact once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """``$ANTQ_BUILD``, else the repository's ``build/`` (gitignored)."""
    env = os.environ.get("ANTQ_BUILD")
    return Path(env) if env else ROOT / "build"


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


@contextlib.contextmanager
def makeflags(value: str) -> Iterator[None]:
    """Set ``MAKEFLAGS`` for the builds inside (cocotb's runner passes it on to make), then restore it."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved

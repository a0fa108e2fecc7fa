"""Packaging hook: the wheel carries the sources the emulator builds and the overlay needs.

``antq.toolchain.paths.SOURCES`` names the repository folders (HLS C++, RTL, Verilator harness,
emulation .hwh, bitstreams) that the installed package finds under ``antq/_data/``; this copies
them there when the wheel is built. Everything else is in pyproject.toml.
"""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _sources() -> tuple[str, ...]:
    """``SOURCES`` from antq/toolchain/paths.py, read without importing antq (its one home)."""
    tree = ast.parse((ROOT / "host" / "antq" / "toolchain" / "paths.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SOURCES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("antq/toolchain/paths.py defines no SOURCES")


class BuildPyWithSources(build_py):
    def run(self) -> None:
        super().run()
        for name in _sources():
            shutil.copytree(ROOT / name, Path(self.build_lib) / "antq" / "_data" / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithSources})

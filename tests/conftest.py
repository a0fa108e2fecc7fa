"""Suite-wide: `make test` records its own timing for the README (scripts/docs_numbers.py).

With ``ANTQ_RECORD_SESSION=<path>`` (set by the Makefile's test target) the controlling pytest
process writes the wall time, the outcome counts, the workers and a stamp of the sources to that
path when the session ends; ``make docs`` turns it into the README's test-time line.
"""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dn():
    """scripts/docs_numbers.py as a module (the docs tests read its datasets and renderers)."""
    return _docs_numbers()


def _docs_numbers():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "scripts" / "docs_numbers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def pytest_sessionstart(session):
    if os.environ.get("ANTQ_RECORD_SESSION") and not hasattr(session.config, "workerinput"):
        dn = _docs_numbers()
        session.config._antq_session = (time.perf_counter(), dn.stamp(dn.EVERYTHING, "make test"))


def pytest_sessionfinish(session, exitstatus):
    started = getattr(session.config, "_antq_session", None)
    if started is None:
        return
    t0, st = started
    stats = session.config.pluginmanager.get_plugin("terminalreporter").stats
    count = {k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") in ("call", "setup")])
             for k in ("passed", "failed", "error", "skipped")}
    setup = Path(os.environ.get("ANTQ_BUILD") or ROOT / "build") / "setup-time.json"
    data = {"seconds": round(time.perf_counter() - t0, 1), **count,
            "workers": getattr(session.config.option, "numprocesses", None) or 1,
            "markexpr": session.config.option.markexpr, "exitstatus": int(exitstatus),
            "setup_seconds": json.loads(setup.read_text())["seconds"] if setup.is_file() else None}
    path = Path(os.environ["ANTQ_RECORD_SESSION"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stamp": st, "data": data}, indent=1) + "\n")

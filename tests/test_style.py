"""The Python sources stay ruff-clean (the configuration is in pyproject.toml)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "host", "tests", "scripts", "setup.py"],
                       cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_seed_depends_on_pythonhashseed():
    """The builtin hash of a str differs between runs (PYTHONHASHSEED); a seed built from it makes
    a test pass or fail by chance. Seeds come from fixed numbers or the characters of a name."""
    offenders = []
    for path in sorted([*ROOT.glob("host/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("scripts/*.py")]):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"(?<![\w.])hash\(", code):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)

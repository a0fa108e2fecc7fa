"""The wheel works outside the checkout: a fresh venv, `pip install 'antq[torch,board] @ <clone>'`,
then from another folder `antq --help`, `antq demo --backend csim`, `antq run` on the saved model
and on the shipped one, and `pynq get-notebooks antq`, with every cache in the user cache folder
and nothing written into site-packages.

Slow (a venv and a wheel build): `make test-wheel` runs it, and so does `.ci/run`.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
"""The local CPU wheel (any other torch would pull gigabytes)."""


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n"
                              f"{r.stderr[-4000:]}")
    return r


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    env_dir, work, cache = tmp_path / "venv", tmp_path / "elsewhere", tmp_path / "cache"
    work.mkdir()
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTQ_", "VIRTUAL_ENV", "PYTHON"))}
    env |= {"XDG_CACHE_HOME": str(cache), "PATH": f"{env_dir / 'bin'}:{env['PATH']}"}
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, TORCH], work, env)
    _run([*pip, "-c", str(ROOT / "requirements.lock"), f"antq[torch,board] @ {ROOT.as_uri()}"], work, env)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work,
                     env).stdout.strip())
    pynq_version = _run([str(py), "-c", "import pynq; print(pynq.__version__)"], work, env).stdout.strip()
    assert pynq_version == "3.0.1", "the board extra must pin the board image's pynq"
    assert (site / "antq" / "_data" / "hls" / "ant_gemm.cpp").is_file()
    before = _files(site)
    antq = str(env_dir / "bin" / "antq")
    assert "quantize" in _run([antq, "--help"], work, env).stdout
    demo = _run([antq, "demo", "--backend", "csim", "--out", str(work / "demo")], work, env).stdout
    assert "all identical" in demo and "logits bit-identical" in demo
    run = _run([antq, "run", str(work / "demo" / "digits-cnn-ip-f-4bit.antq"), "--backend", "csim",
                "--limit", "40"], work, env).stdout
    assert "logits identical" in run
    shipped = _run([str(py), "-c", "from antq.toolchain.paths import shipped_model; print(shipped_model())"],
                   work, env).stdout.strip()
    assert Path(shipped).is_relative_to(site), "the shipped .antq must come from the wheel"
    assert "logits identical" in _run([antq, "run", shipped, "--backend", "csim", "--limit", "40"], work,
                                      env).stdout
    # `pynq get-notebooks` finds the notebook through the entry point (-o: no overlay lookup off a board)
    pynq = str(env_dir / "bin" / "pynq")
    _run([pynq, "get-notebooks", "antq", "-o", "-p", str(work / "notebooks")], work, env)
    assert (work / "notebooks" / "antq" / "antq_on_pynq.ipynb").is_file()
    assert _files(site) == before, "running antq wrote into site-packages"
    assert list((cache / "antq" / "hls").glob("libantgemm_csim-*.so")), "the g++ build belongs in the cache"
    assert not (work / "build").exists()
    assert sys.prefix != str(env_dir)

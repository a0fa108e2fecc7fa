"""The board users' notebook, executed in emulation so that it cannot rot: once as is, and once
with PyTorch unimportable, as on a board image without it (the shipped model runs, quantizing is
skipped with a message)."""

import os
from pathlib import Path

import antq
import nbformat
from antq.core import arch
from nbclient import NotebookClient

NOTEBOOK = Path(antq.__file__).parent / "notebooks" / "antq_on_pynq.ipynb"


def _execute(folder: Path) -> str:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the latency plot was not displayed"
    assert (folder / "latency.png").exists()
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "SimDevice csim" in text
    assert "0 differ, logits identical" in text  # the shipped model, checked against the reference
    assert f"MACs/cycle of a peak {arch.DEFAULT.peak_macs_per_cycle}" in text
    assert "live buffers after close: 0" in text
    return text


def test_notebook_runs_in_emulation(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTQ_BACKEND", "csim")
    text = _execute(tmp_path)
    assert "predictions of your model checked against the software reference: 0 differ" in text


def test_notebook_runs_without_torch(tmp_path, monkeypatch):
    blocker = tmp_path / "no-torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('PyTorch is blocked in this test')\n")
    path = [str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))  # the kernel finds this torch first
    monkeypatch.setenv("ANTQ_BACKEND", "csim")
    text = _execute(tmp_path)
    assert "PyTorch is not installed: skipping quantization, using the shipped model" in text
    assert "your model" not in text

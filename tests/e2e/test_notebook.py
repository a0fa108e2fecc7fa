"""The board users' notebook, executed in emulation so that it cannot rot."""

from pathlib import Path

import antq
import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(antq.__file__).parent / "notebooks" / "antq_on_pynq.ipynb"


def test_notebook_runs_in_emulation(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTQ_BACKEND", "csim")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "SimDevice csim" in text
    assert "0 differ, logits identical" in text
    assert "MACs/cycle of a peak 64" in text
    assert "live buffers after close: 0" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the latency plot was not displayed"
    assert (tmp_path / "latency.png").exists()

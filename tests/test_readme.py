"""The README's short tour runs as written (in a scratch folder), so it cannot drift from the API."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_short_tour_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    tour = text[text.index("## A short tour"):]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTQ_BACKEND", "csim")
    scope: dict = {}
    exec(compile(code, "README.md (a short tour)", "exec"), scope)
    assert scope["q"].kind == "flint"
    assert os.path.isfile(tmp_path / "cnn.antq") and scope["logits"].shape[1] == 10

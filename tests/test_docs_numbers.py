"""Every number in the README and docs comes from a run at HEAD (scripts/docs_numbers.py, `make docs`)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_generated_number_is_fresh(dn):
    found = dn.problems()
    assert not found, "\n".join(found) + "\nre-measure them with `make test` then `make docs`"


def test_every_block_is_in_its_file_once(dn):
    for b in dn.BLOCKS:
        if not b.whole_file:
            dn.current(b)  # raises unless exactly one begin/end pair is there


def test_a_changed_source_or_a_hand_edit_is_caught(dn, tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    begin, end = dn.BEGIN.format(name="n"), dn.END.format(name="n")
    (tmp_path / "README.md").write_text(f"top\n{begin}\nold\n{end}\nend\n")
    monkeypatch.setattr(dn, "ROOT", tmp_path)
    monkeypatch.setattr(dn, "DATA", tmp_path / "data")
    monkeypatch.setattr(dn, "DATASETS", {"n": dn.Dataset("n", ("src/*.py",), lambda: {"value": 42}, "run")})
    monkeypatch.setattr(dn, "BLOCKS", [dn.Block("n", "README.md", ("n",),
                                                lambda ds: f"value {ds['n']['data']['value']}")])
    assert dn.problems() == ["docs/data/n.json is missing"]
    assert dn.main([]) == 0
    assert (tmp_path / "README.md").read_text() == f"top\n{begin}\nvalue 42\n{end}\nend\n"
    assert json.loads((tmp_path / "data" / "n.json").read_text())["stamp"]["globs"] == ["src/*.py"]
    assert dn.problems() == [] and dn.main(["--check"]) == 0
    (tmp_path / "src" / "a.py").write_text("x = 2\n")  # the code behind the number changed
    assert len(dn.problems()) == 1 and "n.json is stale" in dn.problems()[0]
    assert dn.main([]) == 0 and dn.problems() == []  # re-measured
    text = (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text(text.replace("value 42", "value 43"))  # edited by hand
    assert dn.problems() == ["README.md: block 'n' differs from what `make docs` renders from "
                             "docs/data/n.json"]

"""The Yosys cost report on the smallest designs: real synthesis, schema of build/area.json,
positive counts, the derived table, and the docs updater. (`make area` runs all designs.)"""

import json
import subprocess
import sys

import pytest
from antq.core import arch
from antq.toolchain import yosys


@pytest.fixture(scope="module")
def small_report():
    picked = [d for d in yosys.designs() if d.name in ("ant_decoder", "int4_pe", "ant_pe")]
    return yosys.run(picked, jobs=2, progress=False)


def test_report_schema_and_counts(small_report):
    assert set(small_report) == {"ant_decoder", "int4_pe", "ant_pe"}
    for d in small_report.values():
        assert d["top"] in ("ant_decoder", "int4_pe", "ant_pe") and d["yosys"].startswith("Yosys")
        assert isinstance(d["parameters"], dict)
        for m in yosys.MAPPINGS:
            assert d[m]["mapping"] == m and "synth_xilinx -family xc7 -noiopad -flatten" in d[m]["script"]
            assert ("-nodsp" in d[m]["script"]) == (m == "nodsp")
            cells = d[m]["cells"]
            assert cells and all(isinstance(v, int) and v > 0 for v in cells.values()), cells
            s = d[m]["summary"]
            assert s["LUT"] == sum(v for k, v in cells.items() if k.startswith(("LUT", "SRL", "INV")))
            assert s["FF"] == sum(v for k, v in cells.items() if k.startswith("FD"))
    pe = small_report["ant_pe"]
    assert pe["parameters"] == {"ACC_W": arch.ACC_BITS, "DECODE": 0}
    # flip-flops: the accumulator and its shadow, the operand and marker pass-through (2 x 9 + 2),
    # and the stage register (29-bit shifted magnitude and its sign)
    assert pe["nodsp"]["summary"]["FF"] == 2 * arch.ACC_BITS + 2 * 9 + 2 + 29 + 1
    assert small_report["int4_pe"]["nodsp"]["summary"]["FF"] == arch.ACC_BITS + 2 * 5
    assert small_report["ant_decoder"]["nodsp"]["summary"]["FF"] == 0  # purely combinational
    assert small_report["int4_pe"]["nodsp"]["summary"]["DSP"] == 0


def test_table_and_checks(small_report):
    text = yosys.table(small_report)
    assert "ant_pe" in text and "LUT/MAC" in text and len(text.splitlines()) == 1 + 2 * 3
    checks = yosys.checks(small_report)
    assert len(checks) == 2 and all("ANT PE / int4 PE LUTs" in c for c in checks)
    md = yosys.markdown(small_report)
    assert "| ant_decoder | nodsp |" in md and md.count("\n") == 1 + 2 * 3


def test_every_design_synthesizes_its_own_parameters():
    names = [d.name for d in yosys.designs()]
    for n in ("int4_pe", "int8_pe", "ant_pe", "ant_decoder", "ant_array_edge_16x16", "ant_array_pe_4x4"):
        assert n in names
    d = next(d for d in yosys.designs() if d.name == "ant_array_pe_8x8")
    want = "chparam -set ACC_W 32 -set ROWS 8 -set COLS 8 -set DECODE_IN_PE 1 ant_array"
    assert want in yosys.script(d, "nodsp")
    with pytest.raises(ValueError, match="mapping"):
        yosys.script(d, "lut")


def test_cli_rejects_unknown_designs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "antq", "area", "no_such_pe", "-o", str(tmp_path / "a.json")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "unknown design" in r.stderr and not (tmp_path / "a.json").exists()


def test_cli_writes_json_with_a_progress_bar(tmp_path):
    out = tmp_path / "sub" / "area.json"
    r = subprocess.run([sys.executable, "-m", "antq", "area", "ant_decoder", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "yosys synth_xilinx: 100%" in r.stderr and "2/2" in r.stderr
    data = json.loads(out.read_text())
    assert list(data) == ["ant_decoder"] and data["ant_decoder"]["nodsp"]["summary"]["LUT"] > 0
    assert "ant_decoder" in r.stdout and f"wrote {out}" in r.stdout


def test_default_set_stops_at_8x8_and_full_is_every_design(tmp_path, monkeypatch, capsys, small_report):
    """`make area` synthesizes the quick set (a few minutes on 2 cores); --full adds the 16x16 arrays."""
    from antq import cli

    quick = {d.name for d in yosys.quick_designs()}
    assert {"int4_pe", "int8_pe", "ant_pe", "ant_pe_decode", "ant_decoder", "ant_array_edge_8x8",
            "ant_array_pe_8x8", "ant_array_pe_4x4"} <= quick
    assert not any("16x16" in n for n in quick) and {d.name for d in yosys.designs()} - quick
    asked = []
    monkeypatch.setattr(yosys, "run", lambda selected, **kw: asked.append(selected) or small_report)
    out = str(tmp_path / "area.json")
    assert cli.main(["area", "-q", "-o", out]) == 0 and cli.main(["area", "--full", "-q", "-o", out]) == 0
    assert [d.name for d in asked[0]] == [d.name for d in yosys.quick_designs()]
    assert [d.name for d in asked[1]] == [d.name for d in yosys.designs()]
    assert "ANT PE / int4 PE LUTs" in capsys.readouterr().out  # the ratios are printed

"""docs/rtl.md's before/after table (scripts/docs_numbers.py, dataset ``before-after``) renders from a
dataset, and ``make timing`` counts LUTs and flip-flops from Yosys's cells. No Yosys run here."""

from pathlib import Path

from antq.toolchain import timing

ROOT = Path(__file__).resolve().parents[1]


def test_lut_ff_counts_lut1_to_6_and_every_flip_flop():
    cells = {"LUT1": 3, "LUT2": 10, "LUT6": 100, "LUT6_2": 7, "INV": 5, "SRL16E": 2, "CARRY4": 40,
             "MUXF7": 9, "FDRE": 500, "FDSE": 4, "FDCE": 1, "BUFG": 1, "IBUF": 30}
    assert timing.lut_ff(cells) == {"lut": 113, "ff": 505}
    assert timing.lut_ff({}) == {"lut": 0, "ff": 0}


def _timing(rows, cols, arrival_ps, lut, ff):
    path = [{"at_ps": 0, "cell": "BUFG", "from": "I", "to": "O", "net": "clk", "routed": False},
            {"at_ps": 500, "cell": "FDRE", "from": "C", "to": "Q", "net": "\\a_q [0]", "routed": False},
            {"at_ps": 1400, "cell": "LUT6", "from": "I0", "to": "O", "net": "\\b [3]", "routed": True},
            {"at_ps": arrival_ps, "cell": "CARRY4", "from": "S[0]", "to": "O[3]", "net": "\\acc [7]",
             "routed": False}]
    return {"rows": rows, "cols": cols, "arrival_ps": arrival_ps, "routed_nets": 2, "route_ps": 400,
            "logic_ps": arrival_ps - 800, "fmax_mhz": 1e6 / arrival_ps, "path": path, "lut": lut, "ff": ff}


def _gemm(a, w, m, n, k, cycles, peak):
    return {"a": a, "w": w, "m": m, "n": n, "k": k, "macs": m * n * k, "cycles": cycles, "exact": True,
            "utilization": m * n * k / (cycles * peak)}


def test_before_after_table(dn):
    gemms = [("int4s", "int4s", 256, 256, 1024), ("int4s", "int4s", 256, 256, 256),
            ("int8s", "int8s", 256, 256, 256)]
    cycles = (2_000_000, 800_000, 1_800_000)
    before = {"commit": "5a8311c5b4", "rows": 8, "cols": 8, "timing": _timing(8, 8, 8000, 12345, 6789),
              "gemms": [_gemm(*g, c, 64) for g, c in zip(gemms, cycles, strict=True)]}
    gemms.append(("pot4u", "pot4u", 256, 256, 256))
    cycles = (264_000, 67_000, 263_000, 2_425_000)
    after = {"commit": "e59ac1f000", "rows": 16, "cols": 16, "uncommitted": [],
             "timing": _timing(16, 16, 6000, 45678, 54321),
             "gemms": [_gemm(*g, c, 256) for g, c in zip(gemms, cycles, strict=True)]}
    ds = {"before-after": {"stamp": {"command": "cmd", "date": "2026-12-02 10:00",
                                     "machine": {"cpu": "CPU", "cores": 2}},
                           "data": {"before": before, "after": after, "yosys": "Yosys 0.23 (git sha1 x)",
                                    "verilator": "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)"}}}
    text = dn.render_before_after(ds)
    assert "`cmd`, 2026-12-02 10:00 on CPU (2 cores)" in text and "Yosys 0.23 and Verilator 5.006:" in text
    assert "| | before: 5a8311c, 8×8 | after: HEAD (e59ac1f), 16×16 |" in text
    assert "| LUT (LUT1–6; share of the xc7z020) | 12,345 (23.2%) | 45,678 (85.9%) |" in text
    assert "| FF (share of the xc7z020) | 6,789 (6.4%) | 54,321 (51.1%) |" in text
    assert "| Fmax estimate (MHz, 0.40 ns per routed net) | 125 | 167 |" in text
    assert ("| utilization int4s × int4s 256×256×1024 | 52.4% (33.6 of 64 MACs/cycle, 2,000,000 cycles) | "
            "99.3% (254.2 of 256 MACs/cycle, 264,000 cycles) |") in text
    assert "| utilization int4s × int4s 256³ | 32.8% (21.0 of 64" in text
    assert "| utilization int8s × int8s 256³ | 14.6%" in text
    assert "| utilization pot4u × pot4u 256³ | — | 2.7% (6.9 of 256 MACs/cycle, 2,425,000 cycles) |" in text
    assert "16×16 core meets the 150 MHz target (167 MHz; 8×8 before: 125 MHz)" in text
    assert timing.describe(after["timing"]) in text and timing.describe(before["timing"]) in text
    assert "from \\b [3] through \\acc [7]" in text and "input port" not in text
    assert "ant_core 16x16: worst path 6.00 ns = 5.20 ns logic + 2 routed nets x 0.40 ns -> 167 MHz" in text
    after["timing"] = _timing(16, 16, 7000, 45678, 54321)
    after["timing"]["path"] = after["timing"]["path"][2:]  # starts at an input port instead
    after["timing"]["path"][0]["net"] = "0   \\s_axis_tdata [19] (<primary input>)"
    text = dn.render_before_after(ds)
    assert "16×16 core does not meet the 150 MHz target (143 MHz" in text
    assert "HEAD's starts at the input port `\\s_axis_tdata [19]`, whose arrival `sta` puts at 0" in text
    assert "from input port \\s_axis_tdata [19] (arrival 0) through \\acc [7]" in text


def test_before_after_is_a_dataset_with_a_block_in_rtl_md(dn):
    d = dn.DATASETS["before-after"]
    assert d.slow and "host/antq/**/*.py" in d.globs and "overlay/rtl/*.v" in d.globs
    assert "hls/*" in d.globs
    assert any(b.name == "before-after" and b.file == "docs/rtl.md" for b in dn.BLOCKS)

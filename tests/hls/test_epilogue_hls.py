"""The HLS epilogue (hls/ant_epilogue.h) on the golden vectors: every code and every packed byte,
and a testbench that fails when one golden line is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from antq.toolchain import hls
from helpers import corrupt_epilogue_golden

GOLDEN_EPILOGUE = Path(__file__).resolve().parents[1] / "golden" / "epilogue.txt"


def test_epilogue_testbench_matches_every_golden_case():
    r = hls.run_epilogue_tb(GOLDEN_EPILOGUE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "64 golden cases" in r.stdout and "all bit-exact (codes and packed bytes)" in r.stdout


@pytest.mark.parametrize(("tag", "index"), [("codes", 3), ("packed", 10), ("thr", 0), ("codes", 63)])
def test_a_corrupted_golden_line_fails(tmp_path, tag, index):
    r = hls.run_epilogue_tb(corrupt_epilogue_golden(GOLDEN_EPILOGUE, tmp_path, tag, index)[0])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL:" in r.stderr and "FAILURES" in r.stdout


def test_a_golden_file_for_another_array_is_refused(tmp_path):
    text = GOLDEN_EPILOGUE.read_text().replace("array 16 16 64", "array 8 8 64", 1)
    bad = tmp_path / "epilogue.txt"
    bad.write_text(text)
    r = hls.run_epilogue_tb(bad)
    assert r.returncode == 2 and "golden file is for a 8x8 array" in r.stderr

"""A board user's first hour, off the board: the shipped ready-to-run model is what `antq quantize`
writes today, and `make test-board` refuses to pass where there is no board."""

import json
import struct
import subprocess
import zlib
from pathlib import Path

import antq
import pytest
from antq import cli
from antq.toolchain import paths

ROOT = Path(__file__).resolve().parents[2]


def _content(path: Path) -> tuple[dict, bytes]:
    """(header JSON, data blocks) of an .antq file: what it holds, whatever zlib build compressed it."""
    data = path.read_bytes()
    _, _, hlen, _ = struct.unpack_from("<8sIII", data)
    return json.loads(zlib.decompress(data[20:20 + hlen])), data[20 + hlen:]


def test_shipped_model_is_what_antq_quantize_writes_today(tmp_path, capsys):
    """If this fails, the shipped weights or the quantizer changed: `make models-ship` rewrites it."""
    shipped = paths.shipped_model()
    assert shipped.is_file(), "the shipped .antq is missing from the package"
    fresh = tmp_path / "cnn.antq"
    assert cli.main(["quantize", "digits-cnn", "--config", "ip-f", "--bits", "4", "-o", str(fresh)]) == 0
    assert _content(fresh) == _content(shipped)
    model = antq.load(shipped)
    assert model.name and model.dataset == "digits" and model.config == "ip-f" and model.accelerator_ready


@pytest.mark.skipif(paths.on_board(), reason="on a board make test-board runs the board tests")
def test_make_test_board_fails_off_a_board_with_one_line():
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "test-board"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode != 0
    reason = [line for line in r.stderr.splitlines() if line.startswith("make test-board:")]
    assert len(reason) == 1 and "this is not a PYNQ board" in reason[0], r.stderr
    assert "passed" not in r.stdout and "skipped" not in r.stdout  # pytest never started

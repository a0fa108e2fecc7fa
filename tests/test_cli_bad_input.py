"""Bad input on the command line: every numeric option and every output path is checked when the
command line is parsed, before any work, and the message names the option (argparse's exit
status 2). Then the issue's examples, verbatim, and the outputs that need folders created."""

import json
import re
from pathlib import Path

import pytest
from antq import cli
from antq.toolchain import paths
from hypothesis import given, settings
from hypothesis import strategies as st

MODEL = str(paths.shipped_model())

# (argv before the option, option, bad values, a good value, the parsed attribute and its value)
NUMERIC = [
    (["eval", MODEL], "--limit", ["0", "-5", "2.5", "x"], "5", "limit", 5),
    (["eval", MODEL], "--batch", ["0", "-1", "1e3"], "32", "batch", 32),
    (["run", MODEL], "--limit", ["0", "-1"], "8", "limit", 8),
    (["run", MODEL], "--batch", ["0"], "8", "batch", 8),
    (["compare", MODEL], "--limit", ["0"], "2", "limit", 2),
    (["bench", MODEL], "--batch", ["0", "-3"], "4", "batch", 4),
    (["bench", MODEL], "--repeats", ["0", "-1"], "1", "repeats", 1),
    (["bench", MODEL], "--clock-mhz", ["0", "-100", "nan", "inf", "fast"], "150", "clock_mhz", 150.0),
    (["bench", MODEL], "--ddr-gbps", ["0", "-1", "nan"], "4.2", "ddr_gbps", 4.2),
    (["demo"], "--batch", ["0"], "8", "batch", 8),
    (["formats"], "--bits", ["9", "-1", "1", "x"], "0", "bits", 0),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--bits", ["9", "1", "0"], "8", "bits", 8),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--calib", ["0", "-4", "many", "nope.npy"], "64", "calib",
     "64"),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--auto-int8", ["-1"], "2", "auto_int8", 2),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--qat-epochs", ["-1"], "0", "qat_epochs", 0),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--lr", ["0", "-1e-3", "nan"], "1e-3", "lr", 1e-3),
    (["quantize", "digits-cnn", "-o", "m.antq"], "--override", ["features.0", "=4", "x="], "fc=int8",
     "override", [("fc", "int8")]),
    (["report"], "--qat-steps", ["0"], "3", "qat_steps", 3),
    (["report"], "--qat-epochs", ["-2"], "0", "qat_epochs", 0),
    (["bench-quant"], "--rows", ["0"], "64", "rows", 64),
    (["bench-quant"], "--act-elems", ["-8"], "100", "act_elems", 100),
    (["bench-pack"], "--cols", ["0"], "64", "cols", 64),
    (["bench-gemm"], "--repeats", ["0"], "2", "repeats", 2),
    (["bench-gemm"], "--backends", ["gpu", "csim,fpga", ","], "ref,csim", "backends", ("ref", "csim")),
    (["bench-rtl"], "--jobs", ["0"], "3", "jobs", 3),
    (["bench-rtl"], "--k", ["0"], "16", "k", 16),
    (["hls", "csim"], "--random", ["-1"], "0", "random", 0),
    (["hwh"], "--rows", ["0"], "4", "rows", 4),
    (["rtl-build"], "--cols", ["-4"], "4", "cols", 4),
    (["area"], "--jobs", ["0"], "4", "jobs", 4),
]


@pytest.mark.parametrize("before, option, bad, good, attr, value", NUMERIC,
                         ids=[f"{n[0][0]} {n[1]}" for n in NUMERIC])
def test_every_numeric_option_is_checked_when_parsed(capsys, before, option, bad, good, attr, value):
    parser = cli.build_parser()
    for v in bad:
        with pytest.raises(SystemExit) as e:
            parser.parse_args([*before, f"{option}={v}"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.search(rf"argument (-\w/)?{option}: ", err), err
        assert any(part.strip("-") in err for part in v.split(",")), err  # and the value it refuses
    assert getattr(parser.parse_args([*before, f"{option}={good}"]), attr) == value


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
                 st.text(max_size=6)))
def test_hypothesis_positive_int_options(text):
    """Any text: accepted exactly when it is an integer >= 1, and then parsed to that integer."""
    try:
        want = int(text)
    except ValueError:
        want = None
    try:
        got = cli.POSITIVE(text)
    except cli.argparse.ArgumentTypeError as e:
        assert want is None or want < 1
        assert ("not an integer" in str(e)) == (want is None)
    else:
        assert want is not None and want >= 1 and got == want


# ---- the issue's examples --------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["eval", MODEL, "--limit", "-5"], "argument --limit: must be at least 1, got -5"),
    (["eval", MODEL, "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["run", MODEL, "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["eval", MODEL, "--batch", "0"], "argument --batch: must be at least 1, got 0"),
    (["bench", MODEL, "--clock-mhz", "0"], "argument --clock-mhz: must be greater than 0, got 0"),
    (["bench", MODEL, "--ddr-gbps", "0"], "argument --ddr-gbps: must be greater than 0, got 0"),
    (["bench", MODEL, "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    (["bench", MODEL, "--batch", "0"], "argument --batch: must be at least 1, got 0"),
    (["formats", "--bits", "9"], "argument --bits: invalid choice: 9 (choose from 0, 2, 3, 4, 5, 6, 7, 8)"),
    (["formats", "--bits", "-1"], "argument --bits: invalid choice: -1"),
    (["quantize", "digits-cnn", "-o", ""], "argument -o/--output: is empty; give a file name"),
    (["quantize", "digits-cnn", "-o", "/proc/x.antq"],
     "argument -o/--output: cannot write /proc/x.antq: /proc does not take new files"),
    (["quantize", "digits-cnn", "-o", "{tmp}"],
     "argument -o/--output: {tmp} is a folder; give a file name in it, e.g. {tmp}/model.antq"),
    (["quantize", "digits-cnn", "-o", "{tmp}/f/m.antq"],
     "cannot write {tmp}/f/m.antq: {tmp}/f is a file, not a folder"),
    (["bench", MODEL, "--plot", "{tmp}"], "argument --plot: {tmp} is a folder; give a file name in it, e.g. "
     "{tmp}/latency.png"),
    (["bench", MODEL, "--plot", "{tmp}/p.antq"],
     "argument --plot: {tmp}/p.antq must end in .png, .pdf, .svg"),
    (["bench", MODEL, "--json", "{tmp}/f"], "argument --json: {tmp}/f must end in .json"),
    (["report", "-o", "{tmp}/f"], "argument -o/--output: {tmp}/f is a file, not a folder"),
    (["demo", "--out", "{tmp}/f/sub"], "argument --out: cannot write {tmp}/f/sub: {tmp}/f is a file"),
    (["golden", "-o", "{tmp}"], "argument -o/--output: {tmp} is a folder"),
])
def test_issue_examples_fail_before_any_work(tmp_path, capsys, argv, message):
    (tmp_path / "f").write_text("a file")
    if "/proc/x.antq" in argv and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(SystemExit) as e:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and message.format(tmp=tmp_path) in err, err
    assert out == ""  # nothing ran: no calibration, no benchmark
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_area_design_names_and_full_exclude_each_other(capsys):
    assert cli.main(["area", "ant_pe", "--full"]) == 1
    assert "give design names or --full, not both" in capsys.readouterr().err


# ---- documented behaviour of legitimate inputs -----------------------------------------------


def test_eval_limit_evaluates_exactly_that_many(capsys):
    assert cli.main(["eval", MODEL, "--limit", "5", "--batch", "2"]) == 0
    assert "on digits/test (5 samples)" in capsys.readouterr().out
    assert cli.main(["eval", MODEL]) == 0  # no --limit: the whole split
    assert "on digits/test (359 samples)" in capsys.readouterr().out


def test_outputs_create_their_folders(tmp_path, capsys):
    js, plot = tmp_path / "a" / "b" / "lat.json", tmp_path / "c" / "d" / "lat.png"
    assert cli.main(["bench", MODEL, "--backend", "ref", "--batch", "2", "--repeats", "1",
                     "--json", str(js), "--plot", str(plot)]) == 0
    assert json.loads(js.read_text())["batch"] == 2 and plot.stat().st_size > 0
    out = capsys.readouterr().out
    assert re.search(r"compute from IP cycles at 100 MHz", out) and f"wrote {plot}" in out

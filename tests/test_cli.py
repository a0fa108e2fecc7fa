"""The command line: help, the formats table, benchmarks on small inputs, error reporting."""

import subprocess
import sys

import pytest
from antq import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "antq", *args], capture_output=True, text=True)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("formats", "bench-quant", "bench-pack"):
        assert cmd in r.stdout


def test_formats_table(capsys):
    assert cli.main(["formats", "--kind", "flint"]) == 0
    out = capsys.readouterr().out
    assert "flint4u" in out and "1000        64     +  4    4" in out and "\nint4u:" not in out


def test_bench_quant_small_prints_ratio_and_progress(capsys):
    assert cli.main(["bench-quant", "--rows", "64", "--cols", "256", "--act-elems", "20000"]) == 0
    out, err = capsys.readouterr()
    assert "speedup" in out and "yes" in out and "NO" not in out
    assert "bench-quant: 100%" in err and "10/10" in err  # 2 tensors x (vectorized + 4 loop types)


def test_bench_quant_defaults_fit_in_minutes():
    """`make bench-quant` runs the quick sizes (the ones make docs measures); --full the 16x larger."""
    from antq.run import microbench

    parser = cli.build_parser()
    a, full = parser.parse_args(["bench-quant"]), parser.parse_args(["bench-quant", "--full"])
    assert (a.rows, a.cols, a.act_elems, a.full, full.full) == (None, None, None, False, True)
    (rows, cols), act = microbench.BENCH_QUANT_QUICK
    assert rows * cols <= 1 << 20 and act <= 1 << 21  # about a minute on 2 cores
    (frows, fcols), fact = microbench.BENCH_QUANT_FULL
    assert frows * fcols == 16 * rows * cols and fact == 4 * act


def test_bench_pack_small(capsys):
    assert cli.main(["bench-pack", "--rows", "64", "--cols", "64"]) == 0
    assert "x copy" in capsys.readouterr().out


def test_bad_arguments_exit_nonzero():
    r = run("formats", "--kind", "nf4")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    with pytest.raises(SystemExit):
        cli.main([])

"""Build once, run many: the cocotb runner glue shared by the RTL suites.

Each (toplevel, parameters, simulator) is built once into ``build/sim/<name>`` under a file
lock (pytest-xdist workers share builds safely), and every pytest item runs the cocotb tests
of its module against that build. Seeds: ``ANTQ_RTL_SEED`` fixes the seed of every simulation
(cocotb's ``RANDOM_SEED``, which the testbenches also use for numpy); otherwise a fresh seed
is drawn, printed, and named in the failure message so the run can be repeated.
``ANTQ_RTL_WAVES=1`` builds with tracing (separate build directories) and leaves an FST per
pytest item in ``build/rtl/waves``; ``ANTQ_RTL_TESTCASE`` runs only the named cocotb tests
(comma-separated), e.g. to keep a trace short. ``make rtl-waves`` sets both.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import cocotb
from antq.toolchain.paths import file_lock, makeflags
from cocotb.runner import Verilator, get_results, get_runner

ROOT = Path(__file__).resolve().parents[2]
RTL_DIR = ROOT / "overlay" / "rtl"
SIM_BUILD = ROOT / "build" / "sim"
WAVES_DIR = ROOT / "build" / "rtl" / "waves"
SIMS = ("verilator", "icarus")

# The cocotb run is Python-bound, so the model is compiled for build speed, not run speed.
VERILATOR_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O1"


# Verilator's runtime objects do not depend on the design; compiling them takes most of a
# cocotb Verilator build, so the first build leaves them here and later builds reuse them.
RUNTIME_OBJS = ("verilated.o", "verilated_vpi.o", "verilated_dpi.o", "verilated_threads.o")


class CachedVerilator(Verilator):
    """cocotb's Verilator runner, reusing Verilator's runtime objects across builds."""

    def _build_command(self) -> list[list[str]]:
        verilate, make = super()._build_command()
        key = hashlib.sha256(repr((
            subprocess.run(["verilator", "--version"], capture_output=True, text=True).stdout,
            cocotb.__version__, os.environ.get("MAKEFLAGS"), self.waves,
            [a for a in self.build_args if str(a).startswith("--trace")],
        )).encode()).hexdigest()[:16]
        cache = SIM_BUILD / f".verilator-runtime-{key}"
        names = " ".join(RUNTIME_OBJS)
        restore = ["sh", "-c", f"for f in {names}; do if [ -f {cache}/$f ]; then cp {cache}/$f $f "
                   "&& touch $f; fi; done"]
        save = ["sh", "-c", f"mkdir -p {cache} && for f in {names}; do if [ -f $f ] && "
                f"[ ! -f {cache}/$f ]; then cp $f {cache}/.$f.$$ && mv {cache}/.$f.$$ {cache}/$f; fi; done"]
        return [verilate, restore, make, save]


def sources() -> list[Path]:
    return sorted(RTL_DIR.glob("*.v"))


def seed() -> int:
    """The simulation seed: ANTQ_RTL_SEED if set, else a fresh one (printed by :func:`run`)."""
    env = os.environ.get("ANTQ_RTL_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 2**31)


def waves() -> bool:
    return os.environ.get("ANTQ_RTL_WAVES", "") not in ("", "0")


def run(toplevel: str, sim: str, module: str, parameters: dict | None = None, *,
        tb_env: dict | None = None, testcase: str | None = None) -> None:
    """Build ``toplevel`` with ``parameters`` for ``sim`` (cached) and run ``module``'s cocotb tests.

    ``tb_env`` reaches the testbench as JSON in ``ANTQ_TB`` (sizes, options). Raises
    AssertionError naming the seed when any cocotb test fails.
    """
    parameters = dict(parameters or {})
    trace = waves()
    tag = "_".join(f"{k}{v}" for k, v in sorted(parameters.items()))
    build_dir = SIM_BUILD / f"{toplevel}{'_' + tag if tag else ''}_{sim}{'_waves' if trace else ''}"
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = CachedVerilator() if sim == "verilator" else get_runner(sim)
    # The lock covers the run too: another session (a second `make test` in the same checkout)
    # must not relink the simulator or overwrite the results file under this one.
    with file_lock(build_dir / ".lock"):
        _build(runner, sim, toplevel, parameters, build_dir, trace)
        _test(runner, sim, toplevel, module, parameters, build_dir, trace, tb_env, testcase)


def _build(runner, sim: str, toplevel: str, parameters: dict, build_dir: Path, trace: bool) -> None:
    flags = VERILATOR_MAKEFLAGS if sim == "verilator" else os.environ.get("MAKEFLAGS", "")
    try:
        with makeflags(flags):
            runner.build(verilog_sources=sources(), hdl_toplevel=toplevel, parameters=parameters,
                         build_dir=build_dir,
                         build_args=["--trace-fst"] if sim == "verilator" and trace else [],
                         waves=trace, timescale=("1ns", "1ps"))
    except SystemExit as e:
        raise AssertionError(f"{sim} build of {toplevel} {parameters} failed: {e}") from None


def _test(runner, sim: str, toplevel: str, module: str, parameters: dict, build_dir: Path, trace: bool,
          tb_env: dict | None, testcase: str | None) -> None:
    s = seed()
    print(f"{toplevel} {parameters} on {sim}: seed {s} (repeat with ANTQ_RTL_SEED={s})")
    testcase = testcase or os.environ.get("ANTQ_RTL_TESTCASE") or None
    test_args = []
    fst = None
    if trace:
        WAVES_DIR.mkdir(parents=True, exist_ok=True)
        name = os.environ.get("PYTEST_CURRENT_TEST", toplevel).split(" ")[0].split("::")[-1]
        fst = WAVES_DIR / f"{name.replace('/', '_')}.fst"
        fst.unlink(missing_ok=True)
        test_args = ["--trace-file", str(fst)] if sim == "verilator" else []
    try:
        results = runner.test(hdl_toplevel=toplevel, test_module=module, build_dir=build_dir,
                              test_dir=build_dir, seed=s, testcase=testcase, waves=trace,
                              test_args=test_args, extra_env={"ANTQ_TB": json.dumps(tb_env or {})})
    except SystemExit as e:
        raise AssertionError(f"cocotb: {e} ({toplevel} {parameters} on {sim}; repeat with "
                             f"ANTQ_RTL_SEED={s})") from None
    ran, failed = get_results(results)
    assert ran > 0 and failed == 0, f"{module} ran {ran} cocotb tests, {failed} failed"
    if fst is not None:
        if sim == "icarus":  # icarus dumps into the build dir under the toplevel's name
            shutil.move(build_dir / f"{toplevel}.fst", fst)
        print(f"waves: {fst}")


def tb_env() -> dict:
    """Inside a cocotb test: the ``tb_env`` that :func:`run` was given."""
    return json.loads(os.environ.get("ANTQ_TB", "{}"))

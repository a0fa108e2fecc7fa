# RTL: the ANT PE array (overlay/rtl), its Verilated harness, lint, waves, speed and cost report.
# docs/rtl.md explains each target.
.PHONY: rtl-lib bench-rtl lint-rtl rtl-waves area timing

RTL_ROWS ?=
RTL_COLS ?=
WAVES_TEST ?= timing_full_rate
RTL_ARCH = $(shell $(PY) -c "from antq.core import arch; print(f'{arch.ARRAY_ROWS}-{arch.ARRAY_COLS}')")

rtl-lib: setup ## build the -O3 Verilated ant_core library (RTL_ROWS/RTL_COLS override antq.core.arch)
	$(PY) -m antq rtl-build $(if $(RTL_ROWS),--rows $(RTL_ROWS)) $(if $(RTL_COLS),--cols $(RTL_COLS))

bench-rtl: setup ## array cycles/s of a 16x16 ant_core: -O3 C harness vs. a cocotb driver
	$(PY) -m antq bench-rtl

lint-rtl: setup ## verilator --lint-only -Wall on every RTL module (and an Icarus -g2005 compile)
	$(PY) -m pytest -q tests/rtl/test_lint.py

rtl-waves: setup ## FST trace of one ant_core cocotb test under Verilator (WAVES_TEST=name) in build/rtl/waves
	ANTQ_RTL_WAVES=1 ANTQ_RTL_TESTCASE=$(WAVES_TEST) $(PY) -m pytest -q -p no:xdist \
		"tests/rtl/test_ant_core.py::test_ant_core[verilator-$(RTL_ARCH)-0]"
	@ls -l build/rtl/waves/test_ant_core*verilator*.fst

area: setup ## Yosys cost report up to 8x8 arrays (what make docs puts in docs/rtl.md; FULL=1: 16x16 too) and build/area.json
	$(PY) -m antq area $(if $(FULL),--full)

timing: setup ## Yosys timing estimate of ant_core 16x16 and 8x8 on xc7z020-1: worst path, logic + routing, Fmax
	$(PY) -m antq.toolchain.timing

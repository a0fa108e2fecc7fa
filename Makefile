# antq: ANT adaptive number formats on a PYNQ overlay.
# The two commands a new user needs: `make demo` and `make test`. Everything else is below them.
SHELL := /bin/bash
PY    := .venv/bin/python
JOBS  ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup test test-slow test-wheel test-board demo docs lint golden config bench-quant bench-calib bench-pack clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install system tools and the pinned .venv (idempotent; quick when nothing is missing)
	@bash scripts/setup.sh

test: setup ## run the fast test suite (everything but slow and board tests) on JOBS=2 workers
	ANTQ_RECORD_SESSION=$(or $(ANTQ_BUILD),build)/test-session.json $(PY) -m pytest -q -n $(JOBS) -m "not slow and not board" $(PYTEST_ARGS)

test-slow: setup ## run the slow tests too
	$(PY) -m pytest -q -n $(JOBS) -m "not board" $(PYTEST_ARGS)

test-wheel: setup ## build the wheel into a fresh venv and run antq from outside the checkout (slow)
	$(PY) -m pytest -q tests/test_wheel.py -m slow $(PYTEST_ARGS)

test-board: setup ## on a PYNQ board: the board self-test (board-marked tests); elsewhere it fails, saying why
	@$(PY) -c "import sys; from antq.run.backends import board_problem as p; w = p(); \
	  sys.exit(w and 'make test-board: ' + w)"
	$(PY) -m pytest -q -m board $(PYTEST_ARGS)

lint: setup ## ruff
	$(PY) -m ruff check host tests scripts setup.py

golden: setup ## regenerate tests/golden/gemm.txt and epilogue.txt (shared by Python, HLS and RTL tests)
	$(PY) -m antq golden -o tests/golden/gemm.txt --epilogue tests/golden/epilogue.txt

bench-quant: setup ## vectorized type/clip search vs. a straightforward loop (prints the ratio; FULL=1: 16x larger)
	$(PY) -m antq bench-quant $(if $(FULL),--full)

bench-calib: setup ## calibrating all-MiniLM-L6-v2 against the calibration as it was (prints the ratio)
	$(PY) -m antq bench-calib

bench-pack: setup ## pack/unpack throughput vs. np.copy (prints GB/s and ratios)
	$(PY) -m antq bench-pack

docs: setup ## re-measure every stale number of the README and docs (docs/data) and render them; run make test first
	$(PY) scripts/docs_numbers.py $(if $(ONLY),--only $(ONLY),)

demo: setup ## the main job: ANT-quantize the digits models and run them on the overlay (BACKEND=rtl for cycle-accurate)
	$(PY) -m antq demo $(if $(BACKEND),--backend $(BACKEND),)

clean: ## remove build outputs (keeps .venv)
	rm -rf build

-include mk/*.mk

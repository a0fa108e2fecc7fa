# The overlay (docs/overlay.md): HLS C simulation, generated header and .hwh, the Vitis/Vivado
# flow per board, and the GEMM benchmark of the emulated overlay.
#
# hls needs Vitis HLS 2022.1 to 2024.2 (antq.toolchain.vitis picks vitis_hls or vitis-run); hwh and
# bitstream need the Vivado of the board image (2022.1 for the PYNQ v3.0 images that ship pynq
# 3.0.1). Without them they stop at once and build nothing.

.PHONY: csim config emu-hwh bench-gemm hls hwh bitstream

OVERLAY_BOARDS := pynq-z1 pynq-z2 zcu104 kv260
VIVADO_VERSION := 2022.1
HLS_VERSIONS := 2022.1 to 2024.2
HLS_STEP ?= export
BOARD ?= pynq-z2
BENCH_ARGS ?=

define overlay_need
	@case " $(OVERLAY_BOARDS) " in *" $(BOARD) "*) ;; *) \
	  echo "make $@: BOARD=$(BOARD) is not one of: $(OVERLAY_BOARDS)" >&2; exit 2;; esac
	@for tool in $(1); do found=; for t in $${tool//\// }; do command -v $$t >/dev/null 2>&1 && found=1; done; \
	  [ -n "$$found" ] || { \
	  echo "make $@: $${tool//\// or } is not on PATH. This target needs Vitis HLS $(HLS_VERSIONS) and, for" >&2; \
	  echo "  the block design, Vivado $(VIVADO_VERSION) (the version of the PYNQ v3.0 board images):" >&2; \
	  echo "  source <Xilinx>/Vivado/$(VIVADO_VERSION)/settings64.sh. Nothing was built." >&2; \
	  echo "  Without a board or Vivado, use the emulated overlay (docs/overlay.md)." >&2; \
	  exit 1; }; done
endef

csim: setup ## HLS C simulation with g++: golden vectors and random GEMMs, bit-exact
	$(PY) -m antq hls csim --golden tests/golden/gemm.txt

config: setup ## regenerate hls/ant_config.h from antq.core (arch, formats, regmap) (a test fails if stale)
	$(PY) -m antq hls config

emu-hwh: setup ## regenerate overlay/emulation/ant.hwh from antq.core.regmap (a test fails if stale)
	$(PY) -m antq hwh

bench-gemm: setup ## GEMM MAC/s of the csim and rtl levels vs numpy int32 (BENCH_ARGS="--shape M N K")
	$(PY) -m antq bench-gemm $(BENCH_ARGS)

hls: ## Vitis HLS of ant_gemm for BOARD: csim, synth, cosim, IP export (HLS_STEP= stops earlier; Vitis HLS 2022.1-2024.2)
	$(call overlay_need,vitis_hls/vitis-run)
	$(PY) -m antq vitis --board $(BOARD) --step $(HLS_STEP)

hwh: ## Vivado block design up to bitstreams/<board>/ant.hwh (needs Vivado 2022.1; BOARD=...)
	$(call overlay_need,vitis_hls/vitis-run vivado)
	$(MAKE) --no-print-directory hls BOARD=$(BOARD)
	vivado -mode batch -nojournal -log build/vivado/$(BOARD)-hwh.log -source overlay/bd/build.tcl \
	  -tclargs $(BOARD) hwh $(CURDIR)/build/vitis/$(BOARD) $(CURDIR)/bitstreams/$(BOARD)

bitstream: ## full build: bitstreams/<board>/ant.{bit,hwh} + BUILD_INFO (BOARD=pynq-z1|pynq-z2|zcu104|kv260)
	$(call overlay_need,vitis_hls/vitis-run vivado)
	$(MAKE) --no-print-directory hls BOARD=$(BOARD)
	vivado -mode batch -nojournal -log build/vivado/$(BOARD)-bit.log -source overlay/bd/build.tcl \
	  -tclargs $(BOARD) bitstream $(CURDIR)/build/vitis/$(BOARD) $(CURDIR)/bitstreams/$(BOARD)
	@cd bitstreams/$(BOARD) && { \
	  echo "board: $(BOARD)"; echo "built: $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
	  echo "commit: $$(git rev-parse HEAD)$$(git diff --quiet HEAD -- hls overlay || echo ' (modified)')"; \
	  echo "vivado: $$(vivado -version | head -1)"; echo "vitis_hls: $$(vitis_hls -version | head -1)"; \
	  echo "make: make bitstream BOARD=$(BOARD)"; sha256sum ant.bit ant.hwh; } > BUILD_INFO
	@cat bitstreams/$(BOARD)/BUILD_INFO
	@echo "add these checksums to bitstreams/README.md when you commit the files"

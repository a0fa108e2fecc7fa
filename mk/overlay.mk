# The overlay (docs/overlay.md): HLS C simulation, generated header and .hwh, the Vitis/Vivado
# flow per board, and the GEMM benchmark of the emulated overlay.
#
# hls, hwh and bitstream need the Vitis HLS / Vivado version of the board image (2022.1 for the
# PYNQ v3.0 images that ship pynq 3.0.1). Without them they stop at once and build nothing.

.PHONY: csim config emu-hwh bench-gemm hls hwh bitstream

OVERLAY_BOARDS := pynq-z1 pynq-z2 zcu104 kv260
VIVADO_VERSION := 2022.1
BOARD ?= pynq-z2
BENCH_ARGS ?=
part_pynq-z1 := xc7z020clg400-1
part_pynq-z2 := xc7z020clg400-1
part_zcu104  := xczu7ev-ffvc1156-2-e
part_kv260   := xck26-sfvc784-2LV-c

define overlay_need
	@case " $(OVERLAY_BOARDS) " in *" $(BOARD) "*) ;; *) \
	  echo "make $@: BOARD=$(BOARD) is not one of: $(OVERLAY_BOARDS)" >&2; exit 2;; esac
	@for tool in $(1); do command -v $$tool >/dev/null 2>&1 || { \
	  echo "make $@: '$$tool' is not on PATH. This target needs Xilinx $(VIVADO_VERSION) (Vitis HLS and" >&2; \
	  echo "  Vivado; the version of the PYNQ v3.0 board images): source <Xilinx>/Vivado/$(VIVADO_VERSION)/settings64.sh." >&2; \
	  echo "  Nothing was built. Without a board or Vivado, use the emulated overlay (docs/overlay.md)." >&2; \
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

hls: ## Vitis HLS: C sim, synthesis, IP export of ant_gemm (needs Vitis HLS 2022.1; BOARD=...)
	$(call overlay_need,vitis_hls)
	mkdir -p build/vitis/$(BOARD)
	cd build/vitis/$(BOARD) && vitis_hls -f $(CURDIR)/hls/run_hls.tcl -tclargs $(CURDIR) $(part_$(BOARD)) export

hwh: ## Vivado block design up to bitstreams/<board>/ant.hwh (needs Vivado 2022.1; BOARD=...)
	$(call overlay_need,vitis_hls vivado)
	$(MAKE) --no-print-directory hls BOARD=$(BOARD)
	vivado -mode batch -nojournal -log build/vivado/$(BOARD)-hwh.log -source overlay/bd/build.tcl \
	  -tclargs $(BOARD) hwh $(CURDIR)/build/vitis/$(BOARD)/ant_gemm/sol/impl/ip $(CURDIR)/bitstreams/$(BOARD)

bitstream: ## full build: bitstreams/<board>/ant.{bit,hwh} + BUILD_INFO (BOARD=pynq-z1|pynq-z2|zcu104|kv260)
	$(call overlay_need,vitis_hls vivado)
	$(MAKE) --no-print-directory hls BOARD=$(BOARD)
	vivado -mode batch -nojournal -log build/vivado/$(BOARD)-bit.log -source overlay/bd/build.tcl \
	  -tclargs $(BOARD) bitstream $(CURDIR)/build/vitis/$(BOARD)/ant_gemm/sol/impl/ip $(CURDIR)/bitstreams/$(BOARD)
	@cd bitstreams/$(BOARD) && { \
	  echo "board: $(BOARD)"; echo "built: $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
	  echo "commit: $$(git rev-parse HEAD)$$(git diff --quiet HEAD -- hls overlay || echo ' (modified)')"; \
	  echo "vivado: $$(vivado -version | head -1)"; echo "vitis_hls: $$(vitis_hls -version | head -1)"; \
	  echo "make: make bitstream BOARD=$(BOARD)"; sha256sum ant.bit ant.hwh; } > BUILD_INFO
	@cat bitstreams/$(BOARD)/BUILD_INFO
	@echo "add these checksums to bitstreams/README.md when you commit the files"

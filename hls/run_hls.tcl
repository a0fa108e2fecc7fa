# run_hls.tcl: Vitis HLS flow of the ant_gemm IP for one board (make hls BOARD=...).
#
# Run by `antq vitis --board <board> [--step csim|synth|cosim|export]` from the board's folder
# <build>/vitis/<board>, which it fills first (antq.toolchain.vitis.prepare): settings.tcl (part,
# clock, paths), the board's ant_config.h, the blackbox JSON with absolute paths and the wrapper.
# Vitis HLS 2022.1 to 2024.1 run it as `vitis_hls -f run_hls.tcl`, 2024.2 as
# `vitis-run --mode hls --tcl run_hls.tcl`; the script only uses commands all of them share.
#
# Steps, each stopping the run if it was the one asked for:
#   csim    C simulation of hls/tb (the testbench of `make csim`) on the board's golden vectors:
#           gemm_golden.txt and, beside it, epilogue_golden.txt (the epilogue mode)
#   synth   C synthesis, the Verilog ant_core as an RTL blackbox (ant_core_bb.json)
#   cosim   C/RTL co-simulation of the synthesized IP on a few random GEMMs (m_axi depth= set
#           in ant_gemm.cpp from ANT_COSIM_DEPTH; the testbench refuses larger buffers)
#   export  IP export under the pinned VLNV (antq.core.regmap.VLNV) into ant_gemm/sol/impl/ip
if {![file exists settings.tcl]} {
    error "run_hls.tcl: no settings.tcl in [pwd]; run it through `make hls BOARD=...` (antq vitis)"
}
source settings.tcl
set flags "-I$antq_conf -I$antq_hls -std=c++14"
set tbflags "$flags -I$antq_hls/tb"

open_project -reset ant_gemm
set_top ant_gemm
add_files $antq_hls/ant_gemm.cpp -cflags $flags
add_files -blackbox $antq_blackbox
add_files -tb $antq_hls/tb/tb_ant_gemm.cpp -cflags $tbflags
add_files -tb $antq_hls/tb/golden_io.h -cflags $tbflags

# The testbench also reads epilogue_golden.txt beside gemm_golden.txt (both written by `antq vitis`
# for the board's array): the epilogue mode is checked on the same vectors as tests/golden.
open_solution -reset sol -flow_target vivado
set_part $antq_part
create_clock -period $antq_clock_ns -name default
config_interface -m_axi_addr64

csim_design -argv $antq_tb_args
if {$antq_step eq "csim"} { exit }
csynth_design
if {$antq_step eq "synth"} { exit }
cosim_design -rtl verilog -argv $antq_cosim_args
if {$antq_step eq "cosim"} { exit }
export_design -format ip_catalog -vendor antq -library hls -version 1.0 -ipname ant_gemm \
    -description "antq ANT GEMM accelerator (int/pot/flint/float 4-bit, int8 nibble passes)"
exit

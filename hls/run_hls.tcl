# run_hls.tcl: Vitis HLS flow of the ant_gemm IP (make hls BOARD=...; needs Vitis HLS 2022.1).
#
#   vitis_hls -f hls/run_hls.tcl -tclargs <repo root> <FPGA part> [csim|synth|export]
#
# C simulation of hls/tb (the same testbench as `make csim`, on the golden vectors), C synthesis
# with the Verilog ant_core as an RTL blackbox (hls/ant_core_bb.json), and IP export under the
# pinned VLNV antq:hls:ant_gemm:1.0 (antq.core.regmap.VLNV) into build/vitis/ant_gemm/sol/impl/ip.
if {[llength $argv] < 2} {
    error "usage: vitis_hls -f run_hls.tcl -tclargs <repo root> <part> \[csim|synth|export\]"
}
set root [file normalize [lindex $argv 0]]
set part [lindex $argv 1]
set step [expr {[llength $argv] > 2 ? [lindex $argv 2] : "export"}]
set hls  $root/hls

open_project -reset ant_gemm
set_top ant_gemm
add_files $hls/ant_gemm.cpp -cflags "-I$hls -std=c++14"
add_files -blackbox $hls/ant_core_bb.json
add_files -tb $hls/tb/tb_ant_gemm.cpp -cflags "-I$hls -std=c++14"
open_solution -reset sol -flow_target vivado
set_part $part
create_clock -period 10 -name default
config_interface -m_axi_addr64

csim_design -argv "$root/tests/golden/gemm.txt --random 200"
if {$step eq "csim"} { exit }
csynth_design
if {$step eq "synth"} { exit }
export_design -format ip_catalog -vendor antq -library hls -version 1.0 -ipname ant_gemm \
    -description "antq ANT GEMM accelerator (int/pot/flint/float 4-bit, int8 nibble passes)"
exit

# build.tcl: Vivado block design of the antq overlay (make hwh / make bitstream BOARD=...).
#
#   vivado -mode batch -source overlay/bd/build.tcl -tclargs <board> <hwh|bitstream> <vitis dir> <out dir>
#
# <board> is pynq-z1, pynq-z2, zcu104 or kv260 (overlay/bd/<board>.tcl: PS, ports, Vivado version).
# <vitis dir> is the board's Vitis folder that `make hls` filled (<build>/vitis/<board>): its
# settings.tcl gives the part, bus width and clock (antq.core.arch.BOARDS), its
# ant_gemm/sol/impl/ip the exported IP. overlay/bd/<board>.tcl gives the PS and its ports.
# The design: the Zynq PS; ant_gemm_0 (antq:hls:ant_gemm:1.0) with its s_axi_control on the PS's
# control master (M_AXI_GP0 / M_AXI_HPM0_FPD) and each of its m_axi bundles (gmem_a, gmem_w,
# gmem_y) on its own high-performance slave port, so activations, weights and results do not
# share one port; FCLK0 at the board's clock; addresses assigned by Vivado. The ant_core RTL is
# inside the IP (an HLS RTL blackbox), so the block design has no separate stream IP.
# The interrupt pin is left unconnected: the driver polls AP_DONE.
# Outputs <out dir>/ant.hwh (and ant.bit for the bitstream step), one base name for PYNQ.
if {[llength $argv] != 4} {
    error "usage: vivado -mode batch -source build.tcl -tclargs <board> <hwh|bitstream> <vitis dir> <out dir>"
}
lassign $argv board step vitis_dir out_dir
set here [file dirname [file normalize [info script]]]
if {![file exists $here/$board.tcl]} { error "unknown board '$board': expected pynq-z1, pynq-z2, zcu104 or kv260" }
if {![file exists $vitis_dir/settings.tcl]} { error "no $vitis_dir/settings.tcl: run `make hls BOARD=$board` first" }
source $vitis_dir/settings.tcl
source $here/$board.tcl
set part $antq_part
set ip_repo $vitis_dir/ant_gemm/sol/impl/ip
if {![string match "${vivado_version}*" [version -short]] && ![info exists ::env(ANTQ_ALLOW_VIVADO_MISMATCH)]} {
    error "$board's PYNQ image expects Vivado $vivado_version, this is [version -short]; a mismatched\
           .bit/.hwh is a known cause of parse errors and hangs (set ANTQ_ALLOW_VIVADO_MISMATCH=1 to override)"
}
set vlnv antq:hls:ant_gemm:1.0
set proj [file normalize build/vivado/$board]

create_project -force ant $proj -part $part
if {[lsearch [get_board_parts -quiet] $board_part] >= 0} {
    set_property board_part $board_part [current_project]
    set preset 1
} else {
    puts "note: board files for $board_part are not installed; using the bare part $part"
    set preset 0
}
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog
if {[llength [get_ipdefs -quiet $vlnv]] == 0} { error "IP $vlnv not found in $ip_repo: run `make hls` first" }

create_bd_design ant
set ps_vlnv [lindex [lsort [get_ipdefs -all xilinx.com:ip:${ps_ip}:*]] end]
create_bd_cell -type ip -vlnv $ps_vlnv ps
apply_bd_automation -rule $ps_rule -config [list make_external "FIXED_IO, DDR" apply_board_preset $preset] [get_bd_cells ps]
set_property -dict [ps_config $antq_bus_bits $antq_clock_mhz] [get_bd_cells ps]
create_bd_cell -type ip -vlnv $vlnv ant_gemm_0
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
    -config [list Master /ps/$ctrl_master Clk Auto] [get_bd_intf_pins ant_gemm_0/s_axi_control]
foreach {bundle slave} $data_slaves {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config [list Slave /ps/$slave Clk Auto] [get_bd_intf_pins ant_gemm_0/m_axi_$bundle]
}
assign_bd_address
validate_bd_design
save_bd_design
generate_target all [get_files ant.bd]

file mkdir $out_dir
set hwh [lindex [glob -nocomplain $proj/ant.gen/sources_1/bd/ant/hw_handoff/ant.hwh \
                                   $proj/ant.srcs/sources_1/bd/ant/hw_handoff/ant.hwh] 0]
if {$hwh eq ""} { error "generate_target wrote no ant.hwh under $proj" }
file copy -force $hwh $out_dir/ant.hwh
if {$step eq "hwh"} { exit }

make_wrapper -files [get_files ant.bd] -top
add_files -norecurse [glob $proj/ant.gen/sources_1/bd/ant/hdl/ant_wrapper.v]
set_property top ant_wrapper [current_fileset]
launch_runs impl_1 -to_step write_bitstream -jobs 2
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { error "implementation failed: see $proj/ant.runs/impl_1" }
file copy -force $proj/ant.runs/impl_1/ant_wrapper.bit $out_dir/ant.bit

# PYNQ-Z1 (Zynq-7020, the same xc7z020clg400-1 part and PS ports as the PYNQ-Z2): board image PYNQ
# v3.0.1 (pynq 3.0.1), built with Vivado 2022.1. The overlay uses no board pins, so only the board
# files differ from pynq-z2.tcl. The part, bus width and clock come from antq.core.arch.BOARDS
# (settings.tcl of `antq vitis`).
set board_part    www.digilentinc.com:pynq-z1:part0:1.0
set vivado_version 2022.1
set ps_ip         processing_system7
set ps_rule       xilinx.com:bd_rule:processing_system7
set ctrl_master   M_AXI_GP0
# one AXI3 HP port per m_axi bundle of ant_gemm: activations, weights, results
set data_slaves   {gmem_a S_AXI_HP0 gmem_w S_AXI_HP1 gmem_y S_AXI_HP2}
proc ps_config {bus_bits clock_mhz} {
    set cfg [list CONFIG.PCW_USE_M_AXI_GP0 1 CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz]
    foreach hp {0 1 2} {
        lappend cfg CONFIG.PCW_USE_S_AXI_HP$hp 1 CONFIG.PCW_S_AXI_HP${hp}_DATA_WIDTH $bus_bits
    }
    return $cfg
}

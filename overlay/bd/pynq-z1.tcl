# PYNQ-Z1 (Zynq-7020, the same xc7z020clg400-1 part and PS ports as the PYNQ-Z2): board image PYNQ
# v3.0.1 (pynq 3.0.1), built with Vivado 2022.1. The overlay uses no board pins, so only the board
# files differ from pynq-z2.tcl.
set part          xc7z020clg400-1
set board_part    www.digilentinc.com:pynq-z1:part0:1.0
set vivado_version 2022.1
set ps_ip         processing_system7
set ps_rule       xilinx.com:bd_rule:processing_system7
set ctrl_master   M_AXI_GP0
set data_slave    S_AXI_HP0
set ps_config [list CONFIG.PCW_USE_M_AXI_GP0 {1} CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100}]

# ZCU104 (Zynq UltraScale+ XCZU7EV): board image PYNQ v3.0.1 (pynq 3.0.1), built with Vivado 2022.1.
set part          xczu7ev-ffvc1156-2-e
set board_part    xilinx.com:zcu104:part0:1.1
set vivado_version 2022.1
set ps_ip         zynq_ultra_ps_e
set ps_rule       xilinx.com:bd_rule:zynq_ultra_ps_e
set ctrl_master   M_AXI_HPM0_FPD
set data_slave    S_AXI_HP0_FPD
set ps_config [list CONFIG.PSU__USE__M_AXI_GP0 {1} CONFIG.PSU__USE__M_AXI_GP1 {0} \
    CONFIG.PSU__USE__S_AXI_GP2 {1} CONFIG.PSU__SAXIGP2__DATA_WIDTH {64} \
    CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {100}]

# ZCU104 (Zynq UltraScale+ XCZU7EV): board image PYNQ v3.0.1 (pynq 3.0.1), built with Vivado 2022.1.
# The part, bus width and clock come from antq.core.arch.BOARDS (settings.tcl of `antq vitis`).
set board_part    xilinx.com:zcu104:part0:1.1
set vivado_version 2022.1
set ps_ip         zynq_ultra_ps_e
set ps_rule       xilinx.com:bd_rule:zynq_ultra_ps_e
set ctrl_master   M_AXI_HPM0_FPD
# one HP port per m_axi bundle of ant_gemm: activations, weights, results (S_AXI_HPn_FPD is SAXIGP2+n)
set data_slaves   {gmem_a S_AXI_HP0_FPD gmem_w S_AXI_HP1_FPD gmem_y S_AXI_HP2_FPD}
proc ps_config {bus_bits clock_mhz} {
    set cfg [list CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__USE__M_AXI_GP1 0 \
                 CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz]
    foreach gp {2 3 4} {
        lappend cfg CONFIG.PSU__USE__S_AXI_GP$gp 1 CONFIG.PSU__SAXIGP${gp}__DATA_WIDTH $bus_bits
    }
    return $cfg
}

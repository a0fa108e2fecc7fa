# PYNQ-Z1 (Zynq-7020, the same xc7z020clg400-1 part and PS ports as the PYNQ-Z2): board image PYNQ
# v3.0.1 (pynq 3.0.1), built with Vivado 2022.1. The overlay uses no board pins, so only the board
# files differ: everything else is pynq-z2.tcl's. The part, bus width and clock come from
# antq.core.arch.BOARDS (settings.tcl of `antq vitis`).
source [file join [file dirname [file normalize [info script]]] pynq-z2.tcl]
set board_part    www.digilentinc.com:pynq-z1:part0:1.0

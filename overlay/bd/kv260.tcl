# KV260 (Kria K26 SOM): Kria-PYNQ v3.0 (pynq 3.0.1 on Ubuntu 22.04), built with Vivado 2022.1. The
# same Zynq UltraScale+ PS ports as the ZCU104: everything but the board files is zcu104.tcl's.
source [file join [file dirname [file normalize [info script]]] zcu104.tcl]
set board_part    xilinx.com:kv260_som:part0:1.3

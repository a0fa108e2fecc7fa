// ap_axi_sdata.h: a small g++ stand-in for Xilinx's ap_axiu<D, U, TI, TD> AXI-Stream beat.
// Side channels of width 0 are kept as one unused bit so that the struct stays plain C++.
#ifndef ANTQ_SHIM_AP_AXI_SDATA_H
#define ANTQ_SHIM_AP_AXI_SDATA_H

#include "ap_int.h"

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<(U > 0 ? U : 1)> user;
    ap_uint<1> last;
    ap_uint<(TI > 0 ? TI : 1)> id;
    ap_uint<(TD > 0 ? TD : 1)> dest;
};

#endif

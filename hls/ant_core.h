// ant_core.h: the ant_core stream interface (docs/contracts.md section 10) as seen from HLS C++.
//
// In Vitis HLS, ant_core() is an RTL blackbox (ant_core_bb.json -> ant_core_bb.v -> the Verilog
// ant_core in overlay/rtl). For g++ builds one of two C++ implementations is linked in:
//   ant_core_model.cpp  a C++ model of the core (the csim level, make csim);
//   ant_core_rtl.cpp    the Verilated ant_core through overlay/harness/antcore.h (the rtl level).
// Both consume exactly one job per call: the config beat, k step beats (tlast on the last), and
// produce ROWS*COLS accumulator beats (tlast on the last) when the job has emit = 1.
#ifndef ANT_CORE_H
#define ANT_CORE_H

#include <ap_int.h>
#include <hls_stream.h>
#include <stdint.h>

#include <ant_config.h>

// One AXI-Stream beat as a plain bit vector: tdata in bits DATA_W-1:0, tlast in bit DATA_W (the
// blackbox wrapper ant_core_bb.v splits it; no side-channel struct whose packing could differ).
typedef ap_uint<ANT_DATA_W + 1> core_in_t;
typedef ap_uint<33> core_out_t;
#define ANT_IN_LAST ANT_DATA_W
#define ANT_OUT_LAST 32

void ant_core(hls::stream<core_in_t> &s_axis, hls::stream<core_out_t> &m_axis);

#ifndef __SYNTHESIS__
// Simulation-only side channel of the g++ builds: clock cycles the core has used so far, and the
// first error it hit (NULL when none). In hardware the IP counts cycles itself (see ant_gemm.cpp).
uint64_t ant_core_cycles(void);
const char *ant_core_error(void);
void ant_core_clear_error(void);
#endif

#endif

// ant_core.h: the ant_core stream interface (docs/contracts.md section 10) as seen from HLS C++.
//
// In Vitis HLS, ant_core_bb() is an RTL blackbox (the JSON that antq.toolchain.vitis writes ->
// ant_core_bb.v -> the Verilog ant_core in overlay/rtl; the C function and the RTL module share the
// name, as Vitis expects). For g++ builds one of two C++ implementations is linked in:
//   ant_core_model.cpp  a C++ model of the core (the csim level, make csim);
//   ant_core_rtl.cpp    the Verilated ant_core through overlay/harness/antcore.h (the rtl level).
// One call of ant_core_bb() serves one ant_gemm call: a stats request (config bit ANT_CFG_STATS,
// k = 0), the jobs (config beat + k step beats each, tlast on the last step), and a closing stats
// request; it answers each stats request with 4 counter beats and each emitting job with
// ROWS*COLS accumulator beats (tlast on the last beat of each), and returns after the closing
// stats answer.
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

typedef hls::stream<core_in_t, ANT_CORE_IN_DEPTH> core_in_stream;
typedef hls::stream<core_out_t, ANT_CORE_OUT_DEPTH> core_out_stream;

void ant_core_bb(core_in_stream &s_axis, core_out_stream &m_axis);

#ifndef __SYNTHESIS__
// Simulation-only side channel of the g++ builds: the first error the core hit (NULL when none).
const char *ant_core_error(void);
void ant_core_clear_error(void);
void ant_core_fail(const char *msg);
#endif

#endif

// sim_api.cpp: the C ABI through which the emulator (antq.emu, csim and rtl levels) calls
// the HLS top function as a shared library. Pointers are the device-side memory the emulated
// m_axi ports read and write; the scalars are the s_axilite argument registers.
#include <stdint.h>

#include <exception>
#include <string>

#include "ant_core.h"
#include "ant_gemm.h"

namespace {
std::string error_;
}

extern "C" {

// Run one call of ant_gemm. out[0..7] receive id_version, geometry, status, cycles_lo, cycles_hi,
// core_busy, stall_in, stall_out; stages[0..2] the model's load, compute, store totals. Returns 0,
// or -1 when the dataflow deadlocked or the linked core reported an error (see antgemm_error).
int antgemm_call(const void *a, const void *w, void *y, const void *p, uint32_t m, uint32_t n, uint32_t k,
                 uint32_t a_type, uint32_t w_type, uint32_t passes, uint32_t out_mode, uint32_t conv_hw,
                 uint32_t conv_win, uint32_t heads, uint32_t heads_dims, uint32_t heads_a_src,
                 uint32_t heads_a_col, uint32_t heads_w_src, uint32_t heads_w_col, uint32_t *out, uint64_t *stages) {
    ant_core_clear_error();
    error_.clear();
    try {
        ant_gemm(static_cast<const bus_t *>(a), static_cast<const bus_t *>(w), static_cast<int64_t *>(y),
                 static_cast<const int64_t *>(p), m, n, k, a_type, w_type, passes, out_mode, conv_hw, conv_win, heads,
                 heads_dims, heads_a_src, heads_a_col, heads_w_src, heads_w_col, &out[0], &out[1], &out[2], &out[3],
                 &out[4], &out[5], &out[6], &out[7]);
    } catch (const std::exception &e) {
        error_ = e.what();
        return -1;
    }
    const uint64_t *s = ant_model_stages();
    for (int i = 0; i < 3; ++i) stages[i] = s[i];
    if (ant_core_error()) {
        error_ = ant_core_error();
        return -1;
    }
    return 0;
}

const char *antgemm_error(void) { return error_.c_str(); }
uint32_t antgemm_max_k(uint32_t a_type, uint32_t w_type) { return ant_max_k(a_type, w_type); }
uint32_t antgemm_id_word(void) { return ANT_ID_WORD; }
uint32_t antgemm_geometry(void) { return ANT_GEOMETRY; }

}  // extern "C"

// sim_api.cpp: the C ABI through which the emulator (antq.emu, csim and rtl levels) calls
// the HLS top function as a shared library. Pointers are the device-side memory the emulated
// m_axi port reads and writes; the scalars are the s_axilite argument registers.
#include <stdint.h>

#include "ant_core.h"
#include "ant_gemm.h"

extern "C" {

// Run one call of ant_gemm. out[0..4] receive id_version, geometry, status, cycles_lo, cycles_hi.
// Returns 0, or -1 when the linked core reported an error (see antgemm_error).
int antgemm_call(const void *a, const void *w, void *y, uint32_t m, uint32_t n, uint32_t k,
                 uint32_t a_type, uint32_t w_type, uint32_t passes, uint32_t *out) {
    ant_core_clear_error();
    ant_gemm(static_cast<const bus_t *>(a), static_cast<const bus_t *>(w), static_cast<int64_t *>(y),
             m, n, k, a_type, w_type, passes, &out[0], &out[1], &out[2], &out[3], &out[4]);
    return ant_core_error() ? -1 : 0;
}

const char *antgemm_error(void) { return ant_core_error(); }
uint32_t antgemm_max_k(uint32_t a_type, uint32_t w_type) { return ant_max_k(a_type, w_type); }
uint64_t antgemm_core_cycles(void) { return ant_core_cycles(); }
uint32_t antgemm_id_word(void) { return ANT_ID_WORD; }
uint32_t antgemm_geometry(void) { return ANT_GEOMETRY; }

}  // extern "C"

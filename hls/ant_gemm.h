// ant_gemm.h: the HLS top function of the antq accelerator and its helpers shared with the
// g++ harnesses. The argument list is the register map: antq.core.regmap.ARGS, in order (a test
// checks it).
#ifndef ANT_GEMM_H
#define ANT_GEMM_H

#include <ap_int.h>
#include <stdint.h>

#include <ant_config.h>

typedef ap_uint<ANT_BUS_BITS> bus_t;

void ant_gemm(const bus_t *a, const bus_t *w, int64_t *y, const int64_t *p, uint32_t m, uint32_t n, uint32_t k,
              uint32_t a_type, uint32_t w_type, uint32_t passes, uint32_t out_mode, uint32_t conv_hw, uint32_t conv_win,
              uint32_t heads, uint32_t heads_dims, uint32_t heads_a_src, uint32_t heads_a_col, uint32_t heads_w_src,
              uint32_t heads_w_col, uint32_t *id_version,
              uint32_t *geometry, uint32_t *status, uint32_t *cycles_lo, uint32_t *cycles_hi,
              uint32_t *core_busy, uint32_t *stall_in, uint32_t *stall_out);

// Largest K one job may reduce over without overflowing the ANT_ACC_BITS accumulators
// (antq.core.arch.max_k); 0 if a type word is not an accelerator format.
uint32_t ant_max_k(uint32_t a_type, uint32_t w_type);

#ifndef __SYNTHESIS__
// g++ builds: the cycle model's load, compute and store totals of the last call (ant_model.h).
const uint64_t *ant_model_stages(void);
#endif

#endif

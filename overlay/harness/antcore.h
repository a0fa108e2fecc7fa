/* antcore.h: C ABI of the Verilated ant_core (docs/contracts.md §10).
 *
 * Built with -O3 and no tracing into build/rtl/libantcore_<R>x<C>.so by antq.toolchain.verilator.build()
 * (or `make rtl-lib`); R and C are fixed at build time. One clock, synchronous active-high
 * reset, the AXI-Stream job format of docs/contracts.md §10 (see also docs/rtl.md).
 * An antcore is not thread safe; separate handles are independent.
 */
#ifndef ANTCORE_H
#define ANTCORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct antcore antcore;
antcore *antcore_open(void);            /* one Verilated ant_core (R, C fixed at build) */
void antcore_close(antcore *);
unsigned antcore_rows(void);
unsigned antcore_cols(void);
unsigned antcore_data_bits(void);       /* DATA_W */
void antcore_reset(antcore *);          /* rst for a few cycles; returns with the core idle */
/* Stream one job (nbeats beats of DATA_W/64 little-endian uint64 words each, beat 0 = config)
 * and collect its output into out[R*C]. Returns the number of output beats (0 or R*C), or -1
 * if max_cycles clock cycles pass first. Adds the cycles used to *cycles. */
int antcore_job(antcore *, const uint64_t *in, unsigned nbeats, int32_t *out,
                uint64_t max_cycles, uint64_t *cycles);
uint64_t antcore_cycle_count(antcore *); /* cycles since open */

/* Details of antcore_job beyond the contract's one-line summary:
 *  - It returns once every beat was accepted, every output beat received and the core is idle
 *    again, so the returned cycles include the array's drain (flush) cycles.
 *  - It returns ANTCORE_EBADJOB (-2), without touching the core, when in[] is not one
 *    well-formed job: in/out NULL, k = 0, nbeats != k + 1 for the config word's k, or
 *    reserved config bits set. (A core fed such a stream would wait for beats that never
 *    come, or take the surplus for the next job.)
 *  - After -1 (timeout) the core is left where it stopped; call antcore_reset() before the
 *    next job.
 *  - The output stream is always ready (no backpressure); the cocotb tests cover that.
 */
#define ANTCORE_ETIMEOUT (-1)
#define ANTCORE_EBADJOB (-2)

#ifdef __cplusplus
}
#endif

#endif /* ANTCORE_H */

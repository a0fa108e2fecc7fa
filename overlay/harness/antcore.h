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
/* Stream nbeats beats (any number of jobs and stats requests, back to back: a new beat whenever
 * s_axis_tready) with the sink always ready, until every beat is taken, every output beat sent
 * and the core is idle. Stores output beat i in out[i] and the cycle it was transferred in
 * out_cycles[i] (cycle 0 = the first cycle of this call); in_cycles[n] (may be NULL) gets the
 * cycle input beat n was taken. Returns the number of output beats, ANTCORE_ETIMEOUT if
 * max_cycles pass first, ANTCORE_EBADJOB for a stream that is not whole jobs and stats
 * requests, ANTCORE_EOUT if it would send more than max_out beats (or the core sends more than
 * the stream asks for). Adds the cycles to *cycles. */
int64_t antcore_stream(antcore *, const uint64_t *in, uint64_t nbeats, uint32_t *out,
                       uint64_t *out_cycles, uint64_t max_out, uint64_t *in_cycles,
                       uint64_t max_cycles, uint64_t *cycles);

/* Details beyond the contract's one-line summaries:
 *  - It returns once every beat was accepted, every output beat received and the core is idle
 *    again, so the returned cycles include the array's drain (flush) cycles.
 *  - antcore_job returns ANTCORE_EBADJOB (-2), without touching the core, when in[] is not one
 *    well-formed job: in/out NULL, k = 0, nbeats != k + 1 for the config word's k, or
 *    config bits 63:34 set (a stats request is not a job). (A core fed such a stream would wait
 *    for beats that never come, or take the surplus for the next job.)
 *  - antcore_stream refuses (ANTCORE_EBADJOB, without touching the core) NULL pointers, a
 *    config word with k = 0 that is not exactly the stats request (bit 34 alone), reserved
 *    bits 63:35, stats with k != 0, and a stream that ends inside a job.
 *  - After ANTCORE_ETIMEOUT the core is left where it stopped; call antcore_reset() before the
 *    next job.
 *  - The output stream is always ready (no backpressure); the cocotb tests cover that.
 *  - antcore_reset() ends with rst just released, so the counters of the core count from the
 *    first cycle of the next call.
 */
#define ANTCORE_ETIMEOUT (-1)
#define ANTCORE_EBADJOB (-2)
#define ANTCORE_EOUT (-3)

#ifdef __cplusplus
}
#endif

#endif /* ANTCORE_H */

// ant_core_timing.h: when the RTL ant_core takes each beat and emits each result (docs/contracts.md
// §10), as closed-form rules per job. The C++ core model counts its counters with it and the
// data mover's cycle model (ant_model.h) its compute stage; antq.core.stream.CoreTiming is the
// same rules in Python, and the RTL tests check the Verilated core against them beat by beat.
//
// Times are core cycles since the last stats request. Input is taken one beat per cycle, back to
// back across jobs, except that the last step of an emitting job waits until its results can
// follow the previous job's without overlap (its readout starts at that step + ANT_CORE_LATENCY,
// one beat per cycle for ROWS*COLS cycles). A stats request answers after the results still
// pending and clears the counters.
#ifndef ANT_CORE_TIMING_H
#define ANT_CORE_TIMING_H

#include <stdint.h>

#include <ant_config.h>

namespace ant_timing {

struct Core {
    uint64_t t = 0;         // first cycle the core can take the next beat
    uint64_t out_end = 0;   // the cycle after the last pending result beat
    uint64_t busy = 0;      // cycles with steps in the array or results on the way out
    uint64_t stall_in = 0;  // cycles the core waited for a beat while a job was open
    uint64_t stall_out = 0; // cycles a result waited for the sink (never, with a ready sink)
    uint64_t last_out = 0;  // the cycle of the last result beat so far

    static uint64_t max(uint64_t a, uint64_t b) { return a > b ? a : b; }

    // A job of k steps whose beats are all available: config at t, steps after it.
    void job(uint32_t k, bool emit) {
        const uint64_t cfg = t;
        uint64_t last = cfg + k;  // the last step, if nothing holds it back
        if (emit) {
            const uint64_t earliest = out_end > ANT_CORE_LATENCY ? out_end - ANT_CORE_LATENCY : 0;
            last = max(last, earliest);
            out_end = last + ANT_CORE_LATENCY + ANT_ROWS * ANT_COLS;
            last_out = out_end - 1;
        }
        busy += last + 1 - cfg;
        t = last + 1;
    }

    // The stats answer: [total, busy, stall_in, stall_out] since the last one; clears them.
    void stats(uint64_t c[4]) {
        const uint64_t at = max(t, out_end);  // after every pending result
        c[0] = at;
        c[1] = busy + (out_end > t ? out_end - t : 0);
        c[2] = stall_in;
        c[3] = stall_out;
        t = 1;  // the stats request took cycle 0 of the next interval
        out_end = 0;
        busy = stall_in = stall_out = 0;
        last_out = 0;
    }
};

}  // namespace ant_timing

#endif

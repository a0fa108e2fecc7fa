// ant_core_timing.h: ant_core's timing (docs/contracts.md §10) for a stream offered at full rate
// to a sink that is always ready, in closed form, job by job: antq.core.stream.CoreTiming is the
// same code in Python, and the tests check it against antq.core.stream.schedule (the exact
// rules) and the Verilated core. The C++ core model counts its stats answers with it and the
// data mover's cycle model (ant_model.h) its compute stage.
//
// Cycle 0 is the first beat's on an idle core with cleared counters. At full rate only the last
// step of an emitting job is ever held: until the previous readout (first read `readout`) has at
// most ANT_CORE_READ_AHEAD shadows left; its own readout is read from ANT_CORE_CAPTURE cycles
// after that step, one beat per cycle, each on m_axis ANT_CORE_OUT_DELAY cycles after its read.
#ifndef ANT_CORE_TIMING_H
#define ANT_CORE_TIMING_H

#include <stdint.h>

#include <ant_config.h>

namespace ant_timing {

struct Core {
    int64_t t = 0;          // the cycle the core takes the next beat
    int64_t readout = -1;   // first read of the last emitting job's readout (-1: none yet)
    int64_t read_end = -1;  // the cycle the last output beat so far is read
    int64_t out_end = 0;    // the cycle after the sink took the last output beat so far
    int64_t snap = -1;      // the cycle of the last stats snapshot (-1: since reset)

    static int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }

    // A job of k >= 1 steps: its config beat now, its steps in the next cycles.
    void job(uint32_t k, bool emit) {
        const int64_t npe = int64_t{ANT_ROWS} * ANT_COLS;
        int64_t last = t + k;
        if (emit) {
            if (readout >= 0) last = max(last, readout + max(1, npe - ANT_CORE_READ_AHEAD));
            readout = max(last + ANT_CORE_CAPTURE, read_end + 1);
            read_end = readout + npe - 1;
            out_end = read_end + ANT_CORE_OUT_DELAY + 1;
        }
        t = last + 1;
    }

    // A stats request now: its answer [total, busy, stall_in, stall_out], which clears them. At
    // full rate the core is busy in every cycle between two snapshots (except the first beat's
    // own cycle after reset) and never stalls.
    void stats(uint64_t c[4]) {
        const int64_t q = max(t, snap), s = max(q + 1, read_end + 1);  // held until the last answer began
        c[0] = static_cast<uint64_t>(s - snap);
        c[1] = snap < 0 ? c[0] - 1 : c[0];
        c[2] = c[3] = 0;
        snap = s;
        t = q + 1;
        read_end = s + ANT_STATS_BEATS - 1;
        out_end = read_end + ANT_CORE_OUT_DELAY + 1;
    }
};

}  // namespace ant_timing

#endif

// ant_core_rtl.cpp: ant_core() backed by the -O3 Verilated RTL core (the emulator's rtl level).
//
// Serves one ant_gemm call: collects each job from the input stream (config beat + k step beats,
// DATA_W/64 little-endian uint64 words per beat), runs it through overlay/harness/antcore.h (the
// Verilated overlay/rtl/ant_core.v, built by antq.toolchain.verilator), and writes the R*C
// accumulators it returns; it answers the call's two stats requests and returns after the second.
#include <antcore.h>
#include <stdint.h>

#include <vector>

#include "ant_core.h"
#include "ant_core_timing.h"

namespace {

constexpr unsigned kRows = ANT_ROWS, kCols = ANT_COLS, kWords = ANT_DATA_W / 64;
antcore *core_ = nullptr;
const char *error_ = nullptr;
std::vector<uint64_t> beats_;

antcore *core() {
    if (!core_) {
        if (antcore_rows() != kRows || antcore_cols() != kCols || antcore_data_bits() != ANT_DATA_W) {
            ant_core_fail("the Verilated ant_core library was built for another array size than ant_config.h");
            return nullptr;
        }
        core_ = antcore_open();
        if (!core_) ant_core_fail("antcore_open failed");
    }
    return core_;
}

void put(const core_in_t &beat) {
    for (unsigned w = 0; w < kWords; ++w) beats_.push_back(beat.range(64 * w + 63, 64 * w).to_uint64());
}

}  // namespace

const char *ant_core_error(void) { return error_; }
void ant_core_clear_error(void) { error_ = nullptr; }
void ant_core_fail(const char *msg) {
    if (!error_) error_ = msg;
}

void ant_core_bb(core_in_stream &s_axis, core_out_stream &m_axis) {
    ant_timing::Core timing;  // the stats answer, until the RTL counts itself (issue 12)
    int stats_seen = 0;
    while (stats_seen < 2) {
        beats_.clear();
        const core_in_t head = s_axis.read();
        put(head);
        const uint64_t cfg = beats_[0];
        const uint32_t k = cfg & 0xFFFFFFu;
        if ((cfg >> ANT_CFG_STATS) & 1u) {
            uint64_t c[4];
            timing.stats(c);
            for (int i = 0; i < 4; ++i) {
                core_out_t o = static_cast<uint32_t>(c[i]);
                o.range(ANT_OUT_LAST, ANT_OUT_LAST) = (i == 3);
                m_axis.write(o);
            }
            ++stats_seen;
            continue;
        }
        const bool emit = (cfg >> ANT_CFG_EMIT) & 1u;
        for (uint32_t s = 0; s < k; ++s) put(s_axis.read());
        int32_t out[kRows * kCols] = {};
        antcore *c = core();
        if (c) {
            uint64_t used = 0;
            const uint64_t max_cycles = 4 * (uint64_t{k} + kRows * kCols + kRows + kCols) + 64;
            const int rc = antcore_job(c, beats_.data(), k + 1, out, max_cycles, &used);
            if (rc == ANTCORE_ETIMEOUT) {
                ant_core_fail("the Verilated ant_core did not finish a job (timeout); it was reset");
                antcore_reset(c);
            } else if (rc == ANTCORE_EBADJOB) {
                ant_core_fail("the Verilated ant_core rejected a malformed job");
            } else if (rc != (emit ? static_cast<int>(kRows * kCols) : 0)) {
                ant_core_fail("the Verilated ant_core returned the wrong number of results");
            }
        }
        timing.job(k, emit);
        if (!emit) continue;
        for (unsigned i = 0; i < kRows * kCols; ++i) {
            core_out_t o = static_cast<uint32_t>(out[i]);
            o.range(ANT_OUT_LAST, ANT_OUT_LAST) = (i == kRows * kCols - 1);
            m_axis.write(o);
        }
    }
}

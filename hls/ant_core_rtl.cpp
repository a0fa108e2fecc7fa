// ant_core_rtl.cpp: ant_core() backed by the -O3 Verilated RTL core (the emulator's rtl level).
//
// Collects one job from the input stream (config beat + k step beats, DATA_W/64 little-endian
// uint64 words per beat), runs it through overlay/harness/antcore.h (the Verilated
// overlay/rtl/ant_core.v, built by antq.toolchain.verilator), and writes the R*C accumulators it returns. The
// core's cycles are the RTL's real clock cycles, including its pipeline fill and drain.
#include <antcore.h>
#include <stdint.h>

#include <vector>

#include "ant_core.h"

namespace {

constexpr unsigned kRows = ANT_ROWS, kCols = ANT_COLS, kWords = ANT_DATA_W / 64;
antcore *core_ = nullptr;
uint64_t cycles_ = 0;
const char *error_ = nullptr;
std::vector<uint64_t> beats_;

void fail(const char *msg) {
    if (!error_) error_ = msg;
}

antcore *core() {
    if (!core_) {
        if (antcore_rows() != kRows || antcore_cols() != kCols || antcore_data_bits() != ANT_DATA_W) {
            fail("the Verilated ant_core library was built for another array size than ant_config.h");
            return nullptr;
        }
        core_ = antcore_open();
        if (!core_) fail("antcore_open failed");
    }
    return core_;
}

void put(const core_in_t &beat) {
    for (unsigned w = 0; w < kWords; ++w) beats_.push_back(beat.range(64 * w + 63, 64 * w).to_uint64());
}

}  // namespace

uint64_t ant_core_cycles(void) { return cycles_; }
const char *ant_core_error(void) { return error_; }
void ant_core_clear_error(void) { error_ = nullptr; }

void ant_core(hls::stream<core_in_t> &s_axis, hls::stream<core_out_t> &m_axis) {
    beats_.clear();
    const core_in_t head = s_axis.read();
    put(head);
    const uint64_t cfg = beats_[0];
    const uint32_t k = cfg & 0xFFFFFFu;
    const bool emit = (cfg >> ANT_CFG_EMIT) & 1u;
    for (uint32_t s = 0; s < k; ++s) put(s_axis.read());
    int32_t out[kRows * kCols] = {};
    antcore *c = core();
    if (c) {
        uint64_t used = 0;
        const uint64_t max_cycles = 4 * (uint64_t{k} + kRows * kCols + kRows + kCols) + 64;
        const int rc = antcore_job(c, beats_.data(), k + 1, out, max_cycles, &used);
        cycles_ += used;
        if (rc == ANTCORE_ETIMEOUT) {
            fail("the Verilated ant_core did not finish a job (timeout); it was reset");
            antcore_reset(c);
        } else if (rc == ANTCORE_EBADJOB) {
            fail("the Verilated ant_core rejected a malformed job");
        } else if (rc != (emit ? static_cast<int>(kRows * kCols) : 0)) {
            fail("the Verilated ant_core returned the wrong number of results");
        }
    }
    if (!emit) return;
    for (unsigned i = 0; i < kRows * kCols; ++i) {
        core_out_t o = static_cast<uint32_t>(out[i]);
        o.range(ANT_OUT_LAST, ANT_OUT_LAST) = (i == kRows * kCols - 1);
        m_axis.write(o);
    }
}

// ant_core_rtl.cpp: ant_core_bb() backed by the -O3 Verilated RTL core (the emulator's rtl level).
//
// Serves one ant_gemm call: collects the call's whole input stream (the opening stats request,
// every job's config beat and k step beats of DATA_W/64 little-endian uint64 words, the closing
// stats request), streams it through overlay/harness/antcore.h's antcore_stream (the Verilated
// overlay/rtl/ant_core.v, built by antq.toolchain.verilator; back to back at full rate, the sink
// always ready) and writes every output beat the RTL sent: each emitting job's R*C sums and the
// RTL's own two stats answers, so the call's counters are the hardware's, not a model's.
#include <antcore.h>
#include <stdint.h>

#include <vector>

#include "ant_core.h"

namespace {

constexpr unsigned kRows = ANT_ROWS, kCols = ANT_COLS, kWords = ANT_DATA_W / 64;
constexpr uint64_t kNpe = uint64_t{kRows} * kCols;
antcore *core_ = nullptr;
const char *error_ = nullptr;

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

void put(std::vector<uint64_t> &beats, const core_in_t &beat) {
    for (unsigned w = 0; w < kWords; ++w) beats.push_back(beat.range(64 * w + 63, 64 * w).to_uint64());
}

void write(core_out_stream &m_axis, uint32_t v, bool last) {
    core_out_t o = v;
    o.range(ANT_OUT_LAST, ANT_OUT_LAST) = last;
    m_axis.write(o);
}

}  // namespace

const char *ant_core_error(void) { return error_; }
void ant_core_clear_error(void) { error_ = nullptr; }
void ant_core_fail(const char *msg) {
    if (!error_) error_ = msg;
}

void ant_core_bb(core_in_stream &s_axis, core_out_stream &m_axis) {
    std::vector<uint64_t> beats;
    std::vector<uint8_t> answers;  // per output task in order: 1 = stats answer, 0 = R*C sums
    uint64_t nbeats = 0;
    int stats_seen = 0;
    while (stats_seen < 2) {  // the call's opening and closing stats requests
        const core_in_t head = s_axis.read();
        put(beats, head);
        ++nbeats;
        const uint64_t cfg = head.range(63, 0).to_uint64();
        if ((cfg >> ANT_CFG_STATS) & 1u) {
            answers.push_back(1);
            ++stats_seen;
            continue;
        }
        const uint32_t k = cfg & 0xFFFFFFu;
        for (uint32_t s = 0; s < k; ++s) put(beats, s_axis.read());
        nbeats += k;
        if ((cfg >> ANT_CFG_EMIT) & 1u) answers.push_back(0);
    }
    uint64_t max_out = 0;
    for (uint8_t a : answers) max_out += a ? ANT_STATS_BEATS : kNpe;
    std::vector<uint32_t> out(max_out ? max_out : 1, 0);
    std::vector<uint64_t> out_cycles(out.size(), 0);
    antcore *c = core();
    if (c) {
        uint64_t used = 0;
        // every beat at least once, every readout and the array's flight, with room to spare
        const uint64_t max_cycles = 4 * (nbeats + max_out + kRows + kCols) + 256;
        const int64_t rc = antcore_stream(c, beats.data(), nbeats, out.data(), out_cycles.data(), max_out,
                                          nullptr, max_cycles, &used);
        if (rc == ANTCORE_ETIMEOUT) {
            ant_core_fail("the Verilated ant_core did not finish the call (timeout); it was reset");
            antcore_reset(c);
        } else if (rc == ANTCORE_EBADJOB) {
            ant_core_fail("the Verilated ant_core rejected a malformed stream");
        } else if (rc != static_cast<int64_t>(max_out)) {
            ant_core_fail("the Verilated ant_core returned the wrong number of output beats");
        }
    }
    uint64_t i = 0;
    for (uint8_t a : answers) {
        const uint64_t n = a ? ANT_STATS_BEATS : kNpe;
        for (uint64_t j = 0; j < n; ++j, ++i) write(m_axis, out[i], j == n - 1);
    }
}

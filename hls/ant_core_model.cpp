// ant_core_model.cpp: a C++ model of the RTL ant_core behind the same stream interface
// (docs/contracts.md sections 3 and 10). Linked into the g++ builds of the csim level and the
// make csim testbench; the rtl level links ant_core_rtl.cpp (the Verilated RTL) instead.
//
// Each code is decoded to the PE form (sign, M, S) exactly as the contract defines it (an int8
// high nibble adds 4 to S), and a product is sign_a*sign_w * (M_a*M_w) << (S_a+S_w), accumulated
// in ANT_ACC_BITS-bit two's complement like the hardware. The cycle counters follow the core's
// timing rules of §10 (ant_core_timing.h, shared with the cycle model), which the RTL tests check
// against the Verilated core beat by beat.
#include <stdint.h>

#include "ant_core.h"
#include "ant_core_timing.h"

namespace {

constexpr uint32_t kRows = ANT_ROWS, kCols = ANT_COLS;
int32_t acc_[kRows][kCols];
const char *error_ = nullptr;

struct Pe {
    int32_t sign;
    uint32_t m, s;
};

uint32_t lzd(uint32_t v, uint32_t width) {
    uint32_t n = 0;
    for (int b = static_cast<int>(width) - 1; b >= 0 && !((v >> b) & 1u); --b) ++n;
    return n;
}

// side: kind bits 1:0, signed bit 2, int8-high-nibble bit 3 (the config nibble of one operand).
Pe decode(uint32_t side, uint32_t code) {
    const uint32_t kind = side & 3u, sgn = (side >> 2) & 1u, hi = (side >> 3) & 1u;
    const uint32_t n = sgn ? 3 : 4;  // value bits of a 4-bit code
    Pe pe{1, 0, 0};
    if (kind == ANT_KIND_INT) {
        const int32_t v = sgn && code >= 8 ? static_cast<int32_t>(code) - 16 : static_cast<int32_t>(code);
        pe.sign = v < 0 ? -1 : 1;
        pe.m = static_cast<uint32_t>(v < 0 ? -v : v);
    } else {
        const uint32_t mag = code & ((1u << n) - 1);
        if (sgn && ((code >> 3) & 1u)) pe.sign = -1;
        if (kind == ANT_KIND_POT) {
            if (mag) { pe.m = 1; pe.s = mag - 1; }
        } else if (kind == ANT_KIND_FLOAT) {
            const uint32_t mb = n - 3, e = mag >> mb, f = mag & ((1u << mb) - 1);
            if (e == 0) { pe.m = f; } else { pe.m = (1u << mb) + f; pe.s = e - 1; }
        } else {  // flint
            const uint32_t h = mag >> (n - 1), l = mag & ((1u << (n - 1)) - 1);
            if (!h) { pe.m = l; }
            else if (l) { pe.m = l; pe.s = 2 * lzd(l, n - 1) + 1; }
            else { pe.m = 1u << (n - 2); pe.s = n; }
        }
    }
    if (hi) pe.s += 4;
    return pe;
}

void write_counters(core_out_stream &m_axis, const uint64_t c[4]) {
    for (int i = 0; i < 4; ++i) {
        core_out_t o = static_cast<uint32_t>(c[i]);
        o.range(ANT_OUT_LAST, ANT_OUT_LAST) = (i == 3);
        m_axis.write(o);
    }
}

}  // namespace

int64_t ant_core_model_value(uint32_t side, uint32_t code) {
    const Pe pe = decode(side, code);
    return static_cast<int64_t>(pe.sign) * (static_cast<int64_t>(pe.m) << pe.s);
}

const char *ant_core_error(void) { return error_; }
void ant_core_clear_error(void) { error_ = nullptr; }
void ant_core_fail(const char *msg) {
    if (!error_) error_ = msg;
}

void ant_core_bb(core_in_stream &s_axis, core_out_stream &m_axis) {
    ant_timing::Core timing;
    int stats_seen = 0;
    while (stats_seen < 2) {  // the call's opening and closing stats requests
        const core_in_t head = s_axis.read();
        const uint64_t cfg = head.range(63, 0).to_uint64();
        const uint32_t k = cfg & 0xFFFFFFu;
        bool ok = (cfg >> (ANT_CFG_STATS + 1)) == 0 && !head[ANT_IN_LAST];
        for (int b = 64; b < ANT_DATA_W; b += 32) ok = ok && head.range(b + 31, b).to_uint64() == 0;
        if ((cfg >> ANT_CFG_STATS) & 1u) {
            if (k != 0) ant_core_fail("ant_core model: a stats request must have k = 0");
            uint64_t counters[4];
            timing.stats(counters);
            write_counters(m_axis, counters);
            ++stats_seen;
            continue;
        }
        if (!ok || k == 0) {
            ant_core_fail("ant_core model: bad config beat (reserved bits, k = 0 or tlast)");
            return;
        }
        const uint32_t side_a = (cfg >> ANT_CFG_A_SIDE) & 0xFu, side_w = (cfg >> ANT_CFG_W_SIDE) & 0xFu;
        const bool acc = (cfg >> ANT_CFG_ACC) & 1u, emit = (cfg >> ANT_CFG_EMIT) & 1u;
        if (!acc)
            for (uint32_t r = 0; r < kRows; ++r)
                for (uint32_t c = 0; c < kCols; ++c) acc_[r][c] = 0;
        int64_t ta[16], tw[16];  // decoded value of each code for this job's two sides
        for (uint32_t code = 0; code < 16; ++code) {
            ta[code] = ant_core_model_value(side_a, code);
            tw[code] = ant_core_model_value(side_w, code);
        }
        for (uint32_t s = 0; s < k; ++s) {
            const core_in_t beat = s_axis.read();
            if (beat[ANT_IN_LAST] != (s == k - 1)) ant_core_fail("ant_core model: tlast on the wrong beat");
            int64_t va[kRows], vw[kCols];
            for (uint32_t i = 0; i < kRows; ++i) va[i] = ta[beat.range(4 * i + 3, 4 * i).to_uint64()];
            for (uint32_t j = 0; j < kCols; ++j)
                vw[j] = tw[beat.range(4 * kRows + 4 * j + 3, 4 * kRows + 4 * j).to_uint64()];
            for (uint32_t i = 0; i < kRows; ++i)
                for (uint32_t j = 0; j < kCols; ++j)  // two's complement wrap, as a 32-bit register does
                    acc_[i][j] = static_cast<int32_t>(static_cast<uint32_t>(acc_[i][j]) +
                                                      static_cast<uint32_t>(va[i] * vw[j]));
        }
        timing.job(k, emit);
        if (!emit) continue;
        for (uint32_t i = 0; i < kRows * kCols; ++i) {
            core_out_t o = static_cast<uint32_t>(acc_[i / kCols][i % kCols]);
            o.range(ANT_OUT_LAST, ANT_OUT_LAST) = (i == kRows * kCols - 1);
            m_axis.write(o);
        }
    }
}

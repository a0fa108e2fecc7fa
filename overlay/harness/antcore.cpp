// antcore.cpp: the -O3 Verilated ant_core behind the C ABI of antcore.h.
//
// Each cycle: drive the inputs with clk low and evaluate (the handshakes are decided on these
// settled values), then raise clk and evaluate (the posedge). Two evals per cycle, no tracing.
// ANTCORE_ROWS / ANTCORE_COLS are passed by the build (antq.toolchain.verilator) and must match the -G
// parameters the model was Verilated with; a static_assert checks DATA_W against the port.

#include "antcore.h"

#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "Vant_core.h"
#include "verilated.h"

#ifndef ANTCORE_ROWS
#error "build with -DANTCORE_ROWS=R -DANTCORE_COLS=C"
#endif

namespace {

constexpr unsigned kRows = ANTCORE_ROWS;
constexpr unsigned kCols = ANTCORE_COLS;
constexpr unsigned kDataBits = (4 * (kRows + kCols) + 63) / 64 * 64;  // DATA_W: whole 64-bit words
constexpr unsigned kWords = kDataBits / 64;                             // uint64 words per beat
constexpr unsigned kOut = kRows * kCols;
constexpr uint64_t kReservedMask = ~((uint64_t{1} << 34) - 1);  // config bits 63:34
constexpr uint64_t kStatsWord = uint64_t{1} << 34;                // a stats request
constexpr uint64_t kStatsBeats = 4;

using TData = std::remove_reference_t<decltype(std::declval<Vant_core>().s_axis_tdata)>;
static_assert(kDataBits <= 64 ? std::is_integral_v<TData>
                              : sizeof(TData) * 8 == kDataBits,
              "ANTCORE_ROWS/COLS do not match the Verilated DATA_W");

template <typename Top>
void set_tdata(Top &top, const uint64_t *beat) {
    if constexpr (std::is_integral_v<TData>) {
        top.s_axis_tdata = beat[0];
    } else {
        for (unsigned w = 0; w < kWords; ++w) {
            top.s_axis_tdata[2 * w] = static_cast<uint32_t>(beat[w]);
            top.s_axis_tdata[2 * w + 1] = static_cast<uint32_t>(beat[w] >> 32);
        }
    }
}

}  // namespace

struct antcore {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vant_core> top;
    uint64_t cycles = 0;

    // Settle the inputs with clk low, then the rising edge.
    void half_low() {
        top->clk = 0;
        top->eval();
    }
    void rise() {
        top->clk = 1;
        top->eval();
        ++cycles;
    }
};

extern "C" {

unsigned antcore_rows(void) { return kRows; }
unsigned antcore_cols(void) { return kCols; }
unsigned antcore_data_bits(void) { return kDataBits; }

antcore *antcore_open(void) {
    auto *c = new (std::nothrow) antcore;
    if (!c) return nullptr;
    c->ctx = std::make_unique<VerilatedContext>();
    c->top = std::make_unique<Vant_core>(c->ctx.get(), "ant_core");
    antcore_reset(c);
    return c;
}

void antcore_close(antcore *c) {
    if (!c) return;
    c->top->final();
    delete c;
}

void antcore_reset(antcore *c) {
    if (!c) return;
    Vant_core &t = *c->top;
    t.s_axis_tvalid = 0;
    t.s_axis_tlast = 0;
    t.m_axis_tready = 0;
    t.rst = 1;
    for (int i = 0; i < 3; ++i) {
        c->half_low();
        c->rise();
    }
    t.rst = 0;
    c->half_low();
}

int antcore_job(antcore *c, const uint64_t *in, unsigned nbeats, int32_t *out,
                uint64_t max_cycles, uint64_t *cycles) {
    if (!c || !in || !out || nbeats == 0) return ANTCORE_EBADJOB;
    const uint64_t cfg = in[0];
    for (unsigned w = 1; w < kWords; ++w)
        if (in[w]) return ANTCORE_EBADJOB;
    if (cfg & kReservedMask) return ANTCORE_EBADJOB;
    const uint64_t k = cfg & 0xFFFFFFu;
    if (k == 0 || uint64_t{nbeats} != k + 1) return ANTCORE_EBADJOB;
    const unsigned expect = ((cfg >> 33) & 1u) ? kOut : 0;

    Vant_core &t = *c->top;
    unsigned sent = 0, got = 0;
    uint64_t used = 0;
    int rc = ANTCORE_ETIMEOUT;
    t.m_axis_tready = 1;
    for (;;) {
        const bool more = sent < nbeats;
        t.s_axis_tvalid = more;
        if (more) {
            set_tdata(t, in + uint64_t{sent} * kWords);
            t.s_axis_tlast = (sent == nbeats - 1);
        } else {
            t.s_axis_tlast = 0;
        }
        c->half_low();
        if (!more && got == expect && t.idle) {
            rc = static_cast<int>(got);
            break;
        }
        if (used >= max_cycles) break;
        const bool in_fire = more && t.s_axis_tready;
        if (t.m_axis_tvalid) {
            if (got < kOut) out[got] = static_cast<int32_t>(t.m_axis_tdata);
            ++got;
        }
        c->rise();
        ++used;
        if (in_fire) ++sent;
    }
    t.s_axis_tvalid = 0;
    t.s_axis_tlast = 0;
    t.m_axis_tready = 0;
    c->half_low();
    if (cycles) *cycles += used;
    return rc;
}

int64_t antcore_stream(antcore *c, const uint64_t *in, uint64_t nbeats, uint32_t *out,
                       uint64_t *out_cycles, uint64_t max_out, uint64_t *in_cycles,
                       uint64_t max_cycles, uint64_t *cycles) {
    if (!c || (nbeats && !in) || !out || !out_cycles) return ANTCORE_EBADJOB;
    // walk the config words: whole jobs and exact stats requests only; count the output and mark
    // each job's last step (tlast)
    uint64_t expect = 0;
    std::vector<uint64_t> last_steps;
    for (uint64_t n = 0; n < nbeats;) {
        const uint64_t *beat = in + n * kWords;
        for (unsigned w = 1; w < kWords; ++w)
            if (beat[w]) return ANTCORE_EBADJOB;
        const uint64_t cfg = beat[0], k = cfg & 0xFFFFFFu;
        if (cfg == kStatsWord) {
            expect += kStatsBeats;
        } else if (k == 0 || (cfg & kReservedMask)) {
            return ANTCORE_EBADJOB;
        } else {
            if (nbeats - n - 1 < k) return ANTCORE_EBADJOB;
            if ((cfg >> 33) & 1u) expect += kOut;
            last_steps.push_back(n + k);
        }
        n += 1 + ((cfg == kStatsWord) ? 0 : k);
    }
    if (expect > max_out) return ANTCORE_EOUT;

    Vant_core &t = *c->top;
    uint64_t sent = 0, got = 0, used = 0;
    size_t next_last = 0;
    int64_t rc = ANTCORE_ETIMEOUT;
    t.m_axis_tready = 1;
    for (;;) {
        const bool more = sent < nbeats;
        t.s_axis_tvalid = more;
        if (more) set_tdata(t, in + sent * kWords);
        t.s_axis_tlast = more && next_last < last_steps.size() && last_steps[next_last] == sent;
        c->half_low();
        if (!more && got == expect && t.idle) {
            rc = static_cast<int64_t>(got);
            break;
        }
        if (used >= max_cycles) break;
        const bool in_fire = more && t.s_axis_tready;
        if (t.m_axis_tvalid) {
            if (got == expect) {  // more output than the stream asks for: a core bug
                rc = ANTCORE_EOUT;
                break;
            }
            out[got] = static_cast<uint32_t>(t.m_axis_tdata);
            out_cycles[got] = used;
            ++got;
        }
        if (in_fire && in_cycles) in_cycles[sent] = used;
        c->rise();
        ++used;
        if (in_fire) {
            if (t.s_axis_tlast) ++next_last;
            ++sent;
        }
    }
    t.s_axis_tvalid = 0;
    t.s_axis_tlast = 0;
    t.m_axis_tready = 0;
    c->half_low();
    if (cycles) *cycles += used;
    return rc;
}

uint64_t antcore_cycle_count(antcore *c) { return c ? c->cycles : 0; }

}  // extern "C"

// ant_gemm.cpp: the HLS top function of the antq accelerator (Vitis HLS, and g++ unchanged).
//
// Y (M x N, int64) = A (M x K) times W (N x K) transposed, on codes of any accelerator format:
// every 4-bit int/pot/flint/float, and int8 as nibble passes (docs/contracts.md sections 4-6).
//
// Tiling (docs/overlay.md): output tiles of ANT_ROWS x ANT_COLS; K is cut into jobs of
// J = min(max_k, ANT_KBUF_STEPS) steps, so no 32-bit accumulator can overflow and every job's
// operands fit the on-chip buffers. Per (tile, job): burst the job's steps of each needed
// activation and weight nibble plane from DDR into BRAM, then run one core job per nibble pass
// (int8 x int8: (hi,hi), (hi,lo), (lo,hi), (lo,lo), chained with acc = 1 and emit on the last).
// Each job's R x C int32 accumulators are added into int64 and written back once per tile.
// When K fits one job the activation tile stays on chip while the weight tiles go by.
//
// Cycle counter: the IP counts its own cycles per call: ANT_CALL_OVERHEAD, one per bus word read
// or written plus ANT_MEM_LATENCY per burst, and each core job's cycles. In g++ builds the core's
// share comes from the linked core (the C++ model charges k + 1 + ANT_CORE_LATENCY, + R*C + 1 when
// it emits; the Verilated RTL reports its real cycles); in synthesis the same model is counted.
#include "ant_gemm.h"

#include "ant_core.h"

namespace {

constexpr uint32_t kRows = ANT_ROWS, kCols = ANT_COLS, kBus = ANT_BUS_BITS;
constexpr uint32_t kStepA = 4 * kRows, kStepW = 4 * kCols;  // bits of one k-step of a tile block
constexpr uint32_t kBufA = (ANT_KBUF_STEPS * kStepA + kBus - 1) / kBus + 1;
constexpr uint32_t kBufW = (ANT_KBUF_STEPS * kStepW + kBus - 1) / kBus + 1;

struct Fmt {
    uint32_t kind, sgn, bits, planes;
    bool ok;
};

Fmt decode_type(uint32_t t) {
    Fmt f;
    f.kind = t & 3u;
    f.sgn = (t >> 2) & 1u;
    f.bits = (t >> 4) & 0xFu;
    f.planes = f.bits > ANT_CODE_BITS ? 2 : 1;
    f.ok = (t >> 8) == 0 && ((t >> 3) & 1u) == 0 &&
           (f.bits == ANT_CODE_BITS || (f.bits == 8 && f.kind == ANT_KIND_INT));
    return f;
}

// Largest |value| of each nibble plane, scaled by its pass shift (antq.core.arch.nibble_pass_bound).
uint32_t plane_max(const Fmt &f, uint32_t plane) {
    if (f.bits == ANT_CODE_BITS) return ANT_MAX_ABS4[f.kind][f.sgn];
    return plane ? (f.sgn ? 8u : 15u) << 4 : 15u;
}

uint32_t max_k_of(const Fmt &a, const Fmt &w) {
    uint64_t bound = 0;
    for (uint32_t pa = 0; pa < a.planes; ++pa)
        for (uint32_t pw = 0; pw < w.planes; ++pw) bound += uint64_t{plane_max(a, pa)} * plane_max(w, pw);
    return static_cast<uint32_t>(((uint64_t{1} << (ANT_ACC_BITS - 1)) - 1) / bound);
}

uint32_t gcd(uint32_t a, uint32_t b) {
    while (b) {
        const uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// One packed operand in the accelerator layout (antq.core.pack, tile T, bus kBus).
struct Operand {
    const bus_t *base;
    uint32_t step_bits;
    uint64_t block_words, plane_words;
};

Operand make_operand(const bus_t *base, uint32_t tile, uint32_t rows, uint32_t k) {
    const uint32_t step = 4 * tile;
    const uint32_t k_align = (step / gcd(step, kBus) * kBus) / step;  // lcm(step, bus) / step
    const uint64_t kpad = (uint64_t{k} + k_align - 1) / k_align * k_align;
    const uint64_t ntiles = (uint64_t{rows} + tile - 1) / tile;
    Operand op;
    op.base = base;
    op.step_bits = step;
    op.block_words = uint64_t{tile} * kpad * 4 / kBus;
    op.plane_words = ntiles * op.block_words;
    return op;
}

// Burst the bus words holding steps [k0, k0 + kl) of tile block t of nibble plane p into buf.
// Returns the number of words; *bit0 is the position of step k0 in buf[0].
uint32_t load_steps(const Operand &op, uint32_t t, uint32_t p, uint32_t k0, uint32_t kl, bus_t *buf,
                    uint32_t *bit0) {
    const uint64_t first = uint64_t{k0} * op.step_bits;
    const uint64_t last = (uint64_t{k0} + kl) * op.step_bits;
    const uint64_t w0 = first / kBus, w1 = (last + kBus - 1) / kBus;
    const uint64_t base = p * op.plane_words + t * op.block_words;
load:
    for (uint64_t i = w0; i < w1; ++i) {
#pragma HLS PIPELINE II = 1
        buf[i - w0] = op.base[base + i];
    }
    *bit0 = static_cast<uint32_t>(first % kBus);
    return static_cast<uint32_t>(w1 - w0);
}

// n <= 32 bits of a word buffer starting at bit pos.
uint64_t bits_at(const bus_t *buf, uint64_t pos, uint32_t n) {
    const uint64_t wi = pos / kBus;
    const uint32_t off = static_cast<uint32_t>(pos % kBus);
    if (off + n <= kBus) return buf[wi].range(off + n - 1, off).to_uint64();
    const uint32_t n1 = kBus - off;
    const uint64_t lo = buf[wi].range(kBus - 1, off).to_uint64();
    const uint64_t hi = buf[wi + 1].range(n - n1 - 1, 0).to_uint64();
    return lo | (hi << n1);
}

void put_bits(core_in_t &beat, uint32_t dst, const bus_t *buf, uint64_t pos, uint32_t nbits) {
    for (uint32_t b = 0; b < nbits; b += 32) {
        const uint32_t n = nbits - b < 32 ? nbits - b : 32;
        beat.range(dst + b + n - 1, dst + b) = bits_at(buf, pos + b, n);
    }
}

// Config nibble of one operand side of a pass: kind bits 1:0, signed bit 2, hi bit 3.
uint64_t side_bits(const Fmt &f, uint32_t hi) {
    if (f.bits == ANT_CODE_BITS) return f.kind | (f.sgn << 2);
    // int8 nibble planes: the low nibble is an unsigned int4, the high one signed as the int8 is.
    return ANT_KIND_INT | ((hi ? f.sgn : 0u) << 2) | (uint64_t{hi} << 3);
}

void feed_job(hls::stream<core_in_t> &s, uint64_t cfg, uint32_t kl, const bus_t *abuf, uint32_t abit,
              const bus_t *wbuf, uint32_t wbit) {
    core_in_t head = 0;
    head.range(63, 0) = cfg;
    s.write(head);
steps:
    for (uint32_t i = 0; i < kl; ++i) {
#pragma HLS PIPELINE II = 1
        core_in_t beat = 0;
        put_bits(beat, 0, abuf, abit + uint64_t{i} * kStepA, kStepA);
        put_bits(beat, kStepA, wbuf, wbit + uint64_t{i} * kStepW, kStepW);
        beat.range(ANT_IN_LAST, ANT_IN_LAST) = (i == kl - 1);
        s.write(beat);
    }
}

void drain_job(hls::stream<core_out_t> &s, bool emit, int64_t acc[kRows][kCols]) {
    if (!emit) return;
results:
    for (uint32_t i = 0; i < kRows * kCols; ++i) {
#pragma HLS PIPELINE II = 1
        const core_out_t v = s.read();
        acc[i / kCols][i % kCols] += static_cast<int32_t>(static_cast<uint32_t>(v.range(31, 0).to_uint64()));
    }
}

void job_dataflow(uint64_t cfg, uint32_t kl, const bus_t *abuf, uint32_t abit, const bus_t *wbuf,
                  uint32_t wbit, bool emit, int64_t acc[kRows][kCols]) {
#pragma HLS DATAFLOW
    hls::stream<core_in_t> to_core("to_core");
    hls::stream<core_out_t> from_core("from_core");
#pragma HLS STREAM variable = to_core depth = 16
#pragma HLS STREAM variable = from_core depth = 16
    feed_job(to_core, cfg, kl, abuf, abit, wbuf, wbit);
    ant_core(to_core, from_core);
    drain_job(from_core, emit, acc);
}

// One core job; returns the cycles it took.
uint64_t run_job(uint64_t cfg, uint32_t kl, const bus_t *abuf, uint32_t abit, const bus_t *wbuf,
                 uint32_t wbit, bool emit, int64_t acc[kRows][kCols]) {
#ifndef __SYNTHESIS__
    const uint64_t before = ant_core_cycles();
    job_dataflow(cfg, kl, abuf, abit, wbuf, wbit, emit, acc);
    return ant_core_cycles() - before;
#else
    job_dataflow(cfg, kl, abuf, abit, wbuf, wbit, emit, acc);
    return uint64_t{kl} + 1 + ANT_CORE_LATENCY + (emit ? kRows * kCols + 1 : 0);
#endif
}

uint32_t check_args(uint32_t m, uint32_t n, uint32_t k, const Fmt &fa, const Fmt &fw,
                    uint32_t passes, uint32_t *sel) {
    if (m == 0 && n == 0 && k == 0) return ANT_ST_OK;  // identification call
    if (!fa.ok) return ANT_ST_BAD_A;
    if (!fw.ok) return ANT_ST_BAD_W;
    uint32_t need = 0;
    for (uint32_t ah = 0; ah < fa.planes; ++ah)
        for (uint32_t wh = 0; wh < fw.planes; ++wh) need |= 1u << (ah * 2 + wh);
    *sel = passes ? passes : need;
    if (*sel & ~need) return ANT_ST_BAD_PASSES;
    if (max_k_of(fa, fw) == 0) return ANT_ST_BAD_PAIR;
    if (m == 0 || n == 0 || k == 0 || m > ANT_MAX_DIM || n > ANT_MAX_DIM || k > ANT_MAX_DIM)
        return ANT_ST_BAD_SIZE;
    return ANT_ST_OK;
}

uint64_t gemm(const bus_t *a, const bus_t *w, int64_t *y, uint32_t m, uint32_t n, uint32_t k,
              const Fmt &fa, const Fmt &fw, uint32_t sel) {
    static bus_t abuf[2][kBufA];
    static bus_t wbuf[2][kBufW];
    uint32_t abit[2] = {0, 0}, wbit[2] = {0, 0};
    const Operand A = make_operand(a, kRows, m, k), W = make_operand(w, kCols, n, k);
    const uint32_t max_k = max_k_of(fa, fw);
    const uint32_t J = max_k < ANT_KBUF_STEPS ? max_k : ANT_KBUF_STEPS;
    const uint32_t nj = (k + J - 1) / J, ntm = (m + kRows - 1) / kRows, ntn = (n + kCols - 1) / kCols;
    const bool use_a[2] = {(sel & 0x3u) != 0, (sel & 0xCu) != 0};
    const bool use_w[2] = {(sel & 0x5u) != 0, (sel & 0xAu) != 0};
    uint32_t last_p = 0;
    while (!((sel >> last_p) & 1u)) ++last_p;  // passes run from p = 3 down; the lowest emits
    uint64_t cycles = 0;
tiles_m:
    for (uint32_t tm = 0; tm < ntm; ++tm) {
    tiles_n:
        for (uint32_t tn = 0; tn < ntn; ++tn) {
            int64_t acc[kRows][kCols];
            for (uint32_t r = 0; r < kRows; ++r)
                for (uint32_t c = 0; c < kCols; ++c) acc[r][c] = 0;
        jobs:
            for (uint32_t j = 0; j < nj; ++j) {
                const uint32_t k0 = j * J, kl = k - k0 < J ? k - k0 : J;
                for (uint32_t p = 0; p < 2; ++p) {
                    if (use_a[p] && (nj > 1 || tn == 0))
                        cycles += ANT_MEM_LATENCY + load_steps(A, tm, p, k0, kl, abuf[p], &abit[p]);
                    if (use_w[p])
                        cycles += ANT_MEM_LATENCY + load_steps(W, tn, p, k0, kl, wbuf[p], &wbit[p]);
                }
                bool first = true;
                for (int p = 3; p >= 0; --p) {
                    if (!((sel >> p) & 1u)) continue;
                    const uint32_t ah = static_cast<uint32_t>(p) >> 1, wh = static_cast<uint32_t>(p) & 1u;
                    const bool emit = static_cast<uint32_t>(p) == last_p;
                    const uint64_t cfg = uint64_t{kl} | side_bits(fa, ah) << ANT_CFG_A_SIDE |
                                         side_bits(fw, wh) << ANT_CFG_W_SIDE |
                                         uint64_t{!first} << ANT_CFG_ACC | uint64_t{emit} << ANT_CFG_EMIT;
                    cycles += run_job(cfg, kl, abuf[ah], abit[ah], wbuf[wh], wbit[wh], emit, acc);
                    first = false;
                }
            }
            const uint32_t rows = m - tm * kRows < kRows ? m - tm * kRows : kRows;
            const uint32_t cols = n - tn * kCols < kCols ? n - tn * kCols : kCols;
        write_back:
            for (uint32_t r = 0; r < rows; ++r) {
                cycles += ANT_MEM_LATENCY + cols;
                for (uint32_t c = 0; c < cols; ++c) {
#pragma HLS PIPELINE II = 1
                    y[(uint64_t{tm} * kRows + r) * n + uint64_t{tn} * kCols + c] = acc[r][c];
                }
            }
        }
    }
    return cycles;
}

}  // namespace

uint32_t ant_max_k(uint32_t a_type, uint32_t w_type) {
    const Fmt fa = decode_type(a_type), fw = decode_type(w_type);
    return fa.ok && fw.ok ? max_k_of(fa, fw) : 0;
}

void ant_gemm(const bus_t *a, const bus_t *w, int64_t *y, uint32_t m, uint32_t n, uint32_t k,
              uint32_t a_type, uint32_t w_type, uint32_t passes, uint32_t *id_version,
              uint32_t *geometry, uint32_t *status, uint32_t *cycles_lo, uint32_t *cycles_hi) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem max_read_burst_length = 256
#pragma HLS INTERFACE m_axi port = w offset = slave bundle = gmem max_read_burst_length = 256
#pragma HLS INTERFACE m_axi port = y offset = slave bundle = gmem max_write_burst_length = 256
#pragma HLS INTERFACE s_axilite port = a bundle = control
#pragma HLS INTERFACE s_axilite port = w bundle = control
#pragma HLS INTERFACE s_axilite port = y bundle = control
#pragma HLS INTERFACE s_axilite port = m bundle = control
#pragma HLS INTERFACE s_axilite port = n bundle = control
#pragma HLS INTERFACE s_axilite port = k bundle = control
#pragma HLS INTERFACE s_axilite port = a_type bundle = control
#pragma HLS INTERFACE s_axilite port = w_type bundle = control
#pragma HLS INTERFACE s_axilite port = passes bundle = control
#pragma HLS INTERFACE s_axilite port = id_version bundle = control
#pragma HLS INTERFACE s_axilite port = geometry bundle = control
#pragma HLS INTERFACE s_axilite port = status bundle = control
#pragma HLS INTERFACE s_axilite port = cycles_lo bundle = control
#pragma HLS INTERFACE s_axilite port = cycles_hi bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    *id_version = ANT_ID_WORD;
    *geometry = ANT_GEOMETRY;
    const Fmt fa = decode_type(a_type), fw = decode_type(w_type);
    uint32_t sel = 0;
    const uint32_t st = check_args(m, n, k, fa, fw, passes, &sel);
    uint64_t cycles = ANT_CALL_OVERHEAD;
    if (st == ANT_ST_OK && m != 0) cycles += gemm(a, w, y, m, n, k, fa, fw, sel);
    *status = st;
    *cycles_lo = static_cast<uint32_t>(cycles);
    *cycles_hi = static_cast<uint32_t>(cycles >> 32);
}

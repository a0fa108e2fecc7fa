// ant_model.h: the cycle model of one ant_gemm call in the g++ builds (csim and rtl levels).
//
// The dataflow overlaps its stages, so a call costs the fill (CALL_OVERHEAD and one DDR latency),
// (with the epilogue also MEM_LATENCY + the parameter buffer's words, read before the tiles; in
// conv mode MEM_LATENCY + the source tensor's words, read into fetch_a's buffer before the tiles;
// in heads mode MEM_LATENCY + the larger side's source words, each read into its fetch's buffer),
// then per output tile the slowest of its four stages, then the drain of the last tile:
//   fetch_a  bus words of A this tile reads from DDR (first uses only) + MEM_LATENCY per span;
//            in conv mode no DDR: per span the steps it touches times 1 (fast path) or R (one code
//            per cycle), plus the step-back to its first step; R per row tile (its pixel rows);
//            in heads mode with A's rule no DDR: per span the steps it touches (rows: the fast
//            path, one step per cycle); R per row tile (its rows' blocks)
//   fetch_w  the same for W (port gmem_w, in parallel with fetch_a on gmem_a); in heads mode with
//            W's rule per span the steps it touches times 1 on the fast path (kt: C <= R, v:
//            4C <= bus; heads_fast) or C (one code per cycle), and C per column tile it sets up
//   compute  the core's cycles for the tile's beats (ant_core_timing.h, exact)
//   store    rows * cols int64 words on gmem_y (outstanding writes hide the latency); with the
//            epilogue the tile's packed 64-bit words, every plane (ant_epi::run_words)
//   drain    the last results leaving the core, the last tile's store, one write latency.
// antq.emu.levels.ref.model_cycles computes the same numbers; docs/overlay.md §2 explains it.
// Included by ant_gemm.cpp after its Plan (g++ builds only).
#ifndef ANT_MODEL_H
#define ANT_MODEL_H

#include "ant_core_timing.h"

namespace {

uint64_t span_cost(const Span &s) { return ANT_MEM_LATENCY + (s.w1 - s.w0); }

// Conv mode: gen_span's cycles for the span of steps [k0, k0 + kl) (its back and steps loops).
uint64_t conv_span_cost(const Plan &p, uint32_t k0, uint32_t kl) {
    const Span s = span_of(kStepA, k0, kl);
    const uint64_t s_first = uint64_t{s.w0} * kBus / kStepA;
    const uint64_t s_end = (uint64_t{s.w1} * kBus + kStepA - 1) / kStepA;
    return (k0 - s_first) + (s_end - s_first) * (p.cv.fast ? 1 : kRows);
}

// Heads mode: gen_heads_span's cycles for the span of steps [k0, k0 + kl) of a side whose steps are
// step_bits wide (tile codes each): every step its words touch, one per cycle on the fast path
// (heads_fast), else tile (one code per cycle). = ref.heads_span_cost.
uint64_t heads_span_cost(uint32_t step_bits, uint32_t tile, uint32_t k0, uint32_t kl, bool fast) {
    const Span s = span_of(step_bits, k0, kl);
    const uint64_t s_first = uint64_t{s.w0} * kBus / step_bits;
    const uint64_t s_end = (uint64_t{s.w1} * kBus + step_bits - 1) / step_bits;
    return (s_end - s_first) * (fast ? 1 : tile);
}

// Cycles of the call; stages[] receives the load, compute and store totals over the tiles.
uint64_t ant_model_cycles(const Plan &p, uint64_t stages[3]) {
    ant_timing::Core core;
    uint64_t opening[4];
    core.stats(opening);  // the opening stats request
    uint64_t cycles = ANT_CALL_OVERHEAD + ANT_MEM_LATENCY, load = 0, compute = 0, store = 0;
    if (p.epi) cycles += ANT_MEM_LATENCY + p.epi_words;  // the parameter buffer, before the tiles
    if (p.cv.on) cycles += ANT_MEM_LATENCY + p.cv.src_words;  // the source tensor, before the tiles
    const bool gen_a = p.hd.a.rule != kRuleOff, gen_w = p.hd.w.rule != kRuleOff;
    const bool fast_a = gen_a && heads_fast(p.hd.a.rule), fast_w = gen_w && heads_fast(p.hd.w.rule);
    if (gen_a || gen_w) cycles += ANT_MEM_LATENCY + p.hd.src_words;  // heads sources, on both ports at once
    uint32_t last_p = 0;
    while (!((p.sel >> last_p) & 1u)) ++last_p;
    uint64_t last_store = 0;
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols) {
            uint64_t fa = (p.cv.on || gen_a) && n0 == 0 ? kRows : 0;  // the row tile's rows
            uint64_t fw = gen_w && (!p.w_resident || m0 == 0) ? kCols : 0;  // the column tile's rows
            const uint64_t before = core.t;
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                for (int pl = 1; pl >= 0; --pl) {
                    if (p.use_a[pl] && (!p.a_reuse || n0 == 0))
                        fa += p.cv.on ? conv_span_cost(p, k0, kl)
                              : gen_a ? heads_span_cost(kStepA, kRows, k0, kl, fast_a)
                                      : span_cost(span_of(kStepA, k0, kl));
                    if (p.use_w[pl] && (!p.w_resident || m0 == 0))
                        fw += gen_w ? heads_span_cost(kStepW, kCols, k0, kl, fast_w) : span_cost(span_of(kStepW, k0, kl));
                }
                for (int ps = 3; ps >= 0; --ps)
                    if ((p.sel >> ps) & 1u) core.job(kl, static_cast<uint32_t>(ps) == last_p);
            }
            const uint32_t rows = p.m - m0 < kRows ? p.m - m0 : kRows, cols = p.n - n0 < kCols ? p.n - n0 : kCols;
            const uint64_t fetch = fa > fw ? fa : fw, comp = core.t - before;
            const uint64_t st = p.epi ? uint64_t{p.out.planes} * ant_epi::run_words(ant_epi::run_steps(n0, p.n))
                                      : uint64_t{rows} * cols;
            uint64_t slowest = fetch > comp ? fetch : comp;
            slowest = slowest > st ? slowest : st;
            cycles += slowest;
            load += fetch;
            compute += comp;
            store += st;
            last_store = st;
        }
    const uint64_t tail = (core.out_end > core.t ? core.out_end - core.t : 0) + last_store + ANT_MEM_LATENCY;
    stages[0] = load;
    stages[1] = compute;
    stages[2] = store;
    return cycles + tail;
}

}  // namespace

#endif

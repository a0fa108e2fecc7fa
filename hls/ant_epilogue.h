// ant_epilogue.h: the requantization epilogue, bit for bit as docs/contracts.md section 12.
//
// For an int64 accumulator acc of output column n (integers only, no float, no divider):
//   t    = acc * M[n] + B[n]               int64 (|t| <= 2^62 when |acc| <= acc_max, see section 12)
//   t    = min(max(t, L), H)
//   idx  = #{ j : t >= T_j }               T_j from the parameter buffer, j = 0 .. q-2
//   code = ANT_GRID_CODES4[kind][signed][idx]            a 4-bit output format
// and for int8 the shift form, equal to the count over its 255 thresholds:
//   v    = clamp((t >> S) + ((t >> (S-1)) & 1), lo, hi),  code = v & 0xFF
// The packing helpers write an output tile as the next layer's activations
// (pack.accelerator_layout("a"), K = N): steps n0 .. n0+C-1 of tile block m0/R, row r of step s at
// nibble s*R + r of the tile's run, low nibble first in each byte, one run per nibble plane.
// Used by drain and store_y (hls/ant_gemm.cpp) and by hls/tb/tb_epilogue.cpp on the golden vectors.
#ifndef ANT_EPILOGUE_H
#define ANT_EPILOGUE_H

#include <stdint.h>

#include <ant_config.h>

namespace ant_epi {

constexpr uint32_t kMaxThr = 15;  // q - 1 <= 15 for every 4-bit format

// The output format and shift of an out_mode word (bits 7:0 a type word, bits 13:8 S).
struct Out {
    uint32_t kind, sgn, bits, shift, planes, nthr, index;
    bool ok;
};

inline Out decode_out(uint32_t word) {
    Out o;
    o.kind = word & 3u;
    o.sgn = (word >> 2) & 1u;
    o.bits = (word >> 4) & 0xFu;
    o.shift = (word >> 8) & 0x3Fu;
    o.planes = o.bits > ANT_CODE_BITS ? 2 : 1;
    const bool type_ok = ((word >> 3) & 1u) == 0 && (o.bits == ANT_CODE_BITS || (o.bits == 8 && o.kind == ANT_KIND_INT));
    o.index = o.bits == ANT_CODE_BITS ? o.kind * 2 + o.sgn : 8 + o.sgn;
    o.nthr = type_ok && o.bits == ANT_CODE_BITS ? ANT_GRID_Q4[o.kind][o.sgn] - 1 : 0;
    o.ok = (word >> 14) == 0 && type_ok && o.shift >= 1 && o.shift <= ANT_EPI_MAX_SHIFT[o.index];
    return o;
}

// Does an R x C output tile write whole bus words (R even, C*4R a multiple of the bus)?
constexpr bool tiles_ok() { return ANT_ROWS % 2 == 0 && (4 * ANT_ROWS * ANT_COLS) % ANT_BUS_BITS == 0; }

// t = clamp(acc * M + B, L, H). The multiply-add is done in uint64 so that parameters outside the
// contract wrap (as the hardware's 64-bit multiplier does) instead of being undefined behaviour.
inline int64_t transform(int64_t acc, int64_t m, int64_t b, int64_t lo, int64_t hi) {
    const int64_t t = static_cast<int64_t>(static_cast<uint64_t>(acc) * static_cast<uint64_t>(m) +
                                           static_cast<uint64_t>(b));
    return t < lo ? lo : (t > hi ? hi : t);
}

// The code of a clamped t: the threshold count (4-bit formats) or the shift form (int8).
inline uint32_t code_of(int64_t t, const Out &o, const int64_t thr[kMaxThr]) {
    if (o.bits == 8) {
        int64_t v = (t >> o.shift) + ((t >> (o.shift - 1)) & 1);
        const int64_t lo = o.sgn ? -128 : 0, hi = o.sgn ? 127 : 255;
        v = v < lo ? lo : (v > hi ? hi : v);
        return static_cast<uint32_t>(v) & 0xFFu;
    }
    uint32_t idx = 0;
count:
    for (uint32_t j = 0; j < kMaxThr; ++j) {
#pragma HLS UNROLL
        if (j < o.nthr && t >= thr[j]) ++idx;
    }
    return ANT_GRID_CODES4[o.kind][o.sgn][idx];
}

inline uint32_t code(int64_t acc, int64_t m, int64_t b, int64_t lo, int64_t hi, const Out &o,
                     const int64_t thr[kMaxThr]) {
    return code_of(transform(acc, m, b, lo, hi), o, thr);
}

// Nibble plane pl of a code: the code itself (4-bit), or its low (pl 0) / high (pl 1) nibble.
inline uint32_t nibble(uint32_t code, const Out &o, uint32_t pl) {
    return o.planes == 2 ? (pl ? code >> 4 : code & 15u) : code;
}

// K_pad of the a layout for K = n: n rounded up to lcm(4R, bus) / 4R steps (a power of two).
inline uint32_t k_pad(uint32_t n) {
    uint32_t align = 1;
    while ((uint64_t{align} * 4 * ANT_ROWS) % ANT_BUS_BITS) align *= 2;
    return (n + align - 1) / align * align;
}

// Steps of the tile run at column n0: C, or for the last column tile up to K_pad (padding steps
// are code 0). At most C when tiles_ok().
inline uint32_t run_steps(uint32_t n0, uint32_t n) {
    const uint32_t end = n0 + ANT_COLS >= n ? k_pad(n) : n0 + ANT_COLS;
    return end - n0;
}

// 64-bit words of the run of `steps` steps (R codes of 4 bits each).
inline uint32_t run_words(uint32_t steps) { return steps * ANT_ROWS / 16; }

// 64-bit word offset of the run of tile (m0, n0) in plane pl of an M x N output.
inline uint64_t run_offset(uint32_t m0, uint32_t n0, uint32_t pl, uint32_t m, uint32_t n) {
    const uint64_t kp = k_pad(n), r_pad = (uint64_t{m} + ANT_ROWS - 1) / ANT_ROWS * ANT_ROWS;
    const uint64_t plane = r_pad * kp / 16, block = uint64_t{m0 / ANT_ROWS} * (kp * ANT_ROWS / 16);
    return pl * plane + block + uint64_t{n0} * ANT_ROWS / 16;
}

// Word w of plane pl of a tile's run from its codes (0 outside the tile's rows and columns).
inline uint64_t run_word(const uint8_t codes[ANT_ROWS][ANT_COLS], uint32_t w, const Out &o, uint32_t pl) {
    uint64_t v = 0;
nibbles:
    for (uint32_t j = 0; j < 16; ++j) {
#pragma HLS UNROLL
        const uint32_t idx = w * 16 + j, s = idx / ANT_ROWS, r = idx % ANT_ROWS;  // ANT_ROWS: a constant
        const uint32_t c = s < ANT_COLS ? codes[r][s] : 0u;
        v |= uint64_t{nibble(c, o, pl)} << (4 * j);
    }
    return v;
}

}  // namespace ant_epi

#endif

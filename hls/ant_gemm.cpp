// ant_gemm.cpp: the HLS top function of the antq accelerator (Vitis HLS, and g++ unchanged).
//
// Y (M x N, int64) = A (M x K) times W (N x K) transposed, on codes of any accelerator format:
// every 4-bit int/pot/flint/float, and int8 as nibble passes (docs/contracts.md sections 4-6).
//
// One call is one DATAFLOW region of eight processes that run concurrently (docs/overlay.md §2):
//
//   fetch_a (m_axi gmem_a) -> a_words -> serve_a -> a_steps -+
//                                                            +-> feed -> to_core -> ant_core
//   fetch_w (m_axi gmem_w) -> w_words -> serve_w -> w_steps -+                          |
//   store_y (m_axi gmem_y) <- y_vals <- drain <-------------- from_core <---------------+
//
// Output tiles are R x C (ANT_ROWS x ANT_COLS), row tiles outermost; K is cut into jobs of
// J = min(max_k, ANT_KBUF_STEPS) steps (a lookup table, no divider) so no 32-bit accumulator can
// overflow; an int8 operand is two nibble planes, run as chained passes (acc = 1, the last
// emits). Reuse: when K fits one job the activation row tile stays in serve_a's BRAM for all the
// column tiles, and the whole weight matrix stays in serve_w's BRAM (if it fits ANT_WRES_WORDS)
// for all the row tiles, so DDR reads each operand once. A first use streams the words through
// (storing them for reuse) at one step per cycle, so loads overlap the core instead of preceding
// it. The core (RTL, stall-free) takes one beat per cycle; drain adds the K jobs of a tile in
// int64 and store_y writes each row in bursts of at most ANT_MAX_BURST words on its own port.
//
// Output mode (out_mode != 0, docs/contracts.md section 12): fetch_w first reads the epilogue's
// parameter buffer p (on gmem_w, before any weight) into a stream to drain, which keeps M[n], B[n],
// L, H and the thresholds on chip; drain then applies the epilogue (ant_epilogue.h) to each tile's
// int64 sums and sends the tile's packed codes, and store_y writes them as the next layer's
// activations (accelerator layout tile R, K = N), one contiguous run per tile and nibble plane.
//
// Conv mode (conv_hw != 0, docs/contracts.md section 14): a points at a source tensor of B*H*W
// pixel rows x C channels packed as activations (the NHWC output of an epilogue call). fetch_a
// reads it once into an on-chip buffer (ANT_SRC_WORDS), then generates exactly the words of the
// im2col operand's tile blocks that normal mode would read from DDR (same order, same spans):
// element (m, k) is the source code of pixel (b, oy*sh - ph + i*dh, ox*sw - pw + j*dw), channel c,
// for m = (b, oy, ox) and k = (c, i, j), or code 0 outside the image, for rows >= M and steps >= K.
// For stride 1 with OH x OW = H x W ("same") a step's R codes are R consecutive source rows (two
// buffer reads, a shift, a border mask: one step per cycle); otherwise one code per cycle. serve_a
// and everything after it are unchanged.
//
// Heads mode (heads != 0, docs/contracts.md section 15): attention's operands generated from a
// projection's codes. A side with a rule (A: rows; W: kt or v) reads its pointer as Rs rows x Ks
// columns of 4-bit codes packed as activations (tile R) into an on-chip buffer (A: the conv-mode
// buffer, ANT_SRC_WORDS; W: fetch_w's own, ANT_WSRC_WORDS), then generates exactly the words of its
// block-diagonal operand that normal mode would read (same order, same spans): with the step
// t = (s'*g + h')*L + k (L = D, or T for v) and the operand row i = (s or h)*T + m/n (v: h*D + n),
// A[i, t] = src(r0 + i, c0 + h'*hs + k) if s' = s (rows), W[j, t] = src(r0 + s'*T + n, c0 + h*hs + k)
// if h' = h (kt) or src(r0 + s'*T + k, c0 + h*hs + n) if h' = h (v), code 0 elsewhere, for source
// rows >= Rs, operand rows >= M/N and steps >= K. A step's nonzero codes are one run of consecutive
// source codes, so rows (always), kt (C <= R: a run of rows of one column, two source steps) and v
// (4C <= bus: a run of columns of one row, two words of a row-major copy fetch_w writes as its
// source arrives) generate one step per cycle; otherwise a side makes one code per cycle.
//
// Counters: the call starts and ends with a stats request to the core (config bit 34, k = 0),
// whose answer is the core's own cycle counters (total, busy, input stalls, output stalls), so a
// board reports the hardware, not a model. g++ builds (csim, rtl levels) report the same
// counters from the linked core and, in cycles_lo/hi, the per-stage model of this dataflow
// (ant_model_cycles below; antq.emu.levels.ref computes the same numbers).
#include "ant_gemm.h"

#include "ant_core.h"
#include "ant_dataflow.h"
#include "ant_epilogue.h"

namespace {

constexpr uint32_t kRows = ANT_ROWS, kCols = ANT_COLS, kBus = ANT_BUS_BITS;
constexpr uint32_t kStepA = 4 * kRows, kStepW = 4 * kCols;  // bits of one k-step of a tile block
constexpr uint32_t kBufAWords = (ANT_KBUF_STEPS * kStepA + kBus - 1) / kBus + 1;   // one plane, one job
constexpr uint32_t kBufWWords = (ANT_KBUF_STEPS * kStepW + kBus - 1) / kBus + 1;

typedef ap_uint<kStepA> a_step_t;
typedef ap_uint<kStepW> w_step_t;

struct Fmt {
    uint32_t kind, sgn, bits, planes, index;
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
    f.index = f.bits == ANT_CODE_BITS ? f.kind * 2 + f.sgn : 8 + f.sgn;  // ANT_TYPE_INDEX order
    return f;
}

// Conv mode (conv_hw != 0, docs/contracts.md section 14): A is the im2col of a source tensor of
// B*H*W pixel rows (b, y, x) x C channels, packed as activations, that fetch_a holds on chip.
struct Conv {
    bool on, ok, fast;          // fast: stride 1 and OH x OW = H x W (a step is R consecutive rows)
    uint32_t h, w, kh, kw, sh, sw, ph, pw, dh, dw;
    uint32_t c, oh, ow;         // channels C = K / (kh*kw), output size
    uint32_t src_rows, src_tiles;  // B*H*W and its row tiles
    uint32_t src_block, src_plane, src_words;  // bus words of a source tile block, a plane, all planes
    uint32_t jc, ji, jj;        // a job of J steps as (channels, kernel rows, kernel cols)
};

uint32_t block_words(uint32_t tile, uint32_t k);

// The geometry of conv_hw/conv_win for M and K, checked once per call (ok = false: ANT_ST_BAD_CONV).
Conv decode_conv(uint32_t hw, uint32_t win, uint32_t m, uint32_t k, const Fmt &fa) {
    Conv cv = {};
    cv.on = hw != 0;
    cv.ok = true;
    if (!cv.on) return cv;
    cv.ok = false;
    cv.h = hw & 0xFFFFu;
    cv.w = hw >> 16;
    cv.kh = win & 0xFu;
    cv.kw = (win >> 4) & 0xFu;
    cv.sh = (win >> 8) & 0xFu;
    cv.sw = (win >> 12) & 0xFu;
    cv.ph = (win >> 16) & 0xFu;
    cv.pw = (win >> 20) & 0xFu;
    cv.dh = (win >> 24) & 0xFu;
    cv.dw = win >> 28;
    if (!cv.h || !cv.w || !cv.kh || !cv.kw || !cv.sh || !cv.sw || !cv.dh || !cv.dw) return cv;
    const uint32_t khkw = cv.kh * cv.kw;
    if (k % khkw) return cv;  // one divider, once per call (the check, not the data path)
    cv.c = k / khkw;
    const int64_t nh = int64_t{cv.h} + 2 * cv.ph - int64_t{cv.dh} * (cv.kh - 1) - 1;
    const int64_t nw = int64_t{cv.w} + 2 * cv.pw - int64_t{cv.dw} * (cv.kw - 1) - 1;
    if (nh < 0 || nw < 0) return cv;
    cv.oh = static_cast<uint32_t>(nh / cv.sh) + 1;
    cv.ow = static_cast<uint32_t>(nw / cv.sw) + 1;
    const uint64_t pix = uint64_t{cv.oh} * cv.ow;
    if (m % pix) return cv;
    const uint64_t rows = m / pix * cv.h * cv.w, tiles = (rows + kRows - 1) / kRows;
    const uint64_t words = uint64_t{fa.planes} * tiles * block_words(kRows, cv.c);
    if (words > ANT_SRC_WORDS) return cv;
    cv.src_rows = static_cast<uint32_t>(rows);
    cv.src_tiles = static_cast<uint32_t>(tiles);
    cv.src_block = block_words(kRows, cv.c);
    cv.src_plane = cv.src_tiles * cv.src_block;
    cv.src_words = static_cast<uint32_t>(words);
    cv.fast = cv.sh == 1 && cv.sw == 1 && cv.oh == cv.h && cv.ow == cv.w;
    cv.ok = true;
    return cv;
}

// Heads mode (docs/contracts.md section 15): one side's source and window. rule 0: the side is read
// as packed; 1 rows (A), 2 kt, 3 v (W).
enum { kRuleOff = 0, kRuleRows = 1, kRuleKt = 2, kRuleV = 3 };

struct HeadsSide {
    uint32_t rule;
    uint32_t ks, rs;      // source columns, rows
    uint32_t c0, hs, r0;  // first column, head stride (columns), row of the call's first sample
    uint32_t block;       // bus words of one source row tile block (tile R, Ks steps)
    uint32_t tiles;       // source row tiles: ceil(Rs / R)
    uint32_t words;       // bus words of the source: ceil(Rs / R) blocks
};

struct Heads {
    bool on, ok;         // on: a side has a rule; ok = false: ANT_ST_BAD_HEADS
    uint32_t s, g, t, d;  // samples, heads, tokens per sample, head width
    HeadsSide a, w;
    uint32_t src_words;  // the larger side's source words (both are read before the tiles)
};

HeadsSide heads_side(uint32_t rule, uint32_t src, uint32_t col) {
    HeadsSide sd;
    sd.rule = rule;
    sd.ks = src & 0xFFFFu;
    sd.rs = src >> 16;
    sd.c0 = col & 0xFFFFu;
    sd.hs = (col >> 16) & 0xFFu;
    sd.r0 = col >> 24;
    sd.block = sd.tiles = sd.words = 0;
    return sd;
}

// The checks of one side with a rule, in the order of regmap.decode_heads (rows: the operand's M or N).
bool heads_side_ok(const Heads &hd, HeadsSide &sd, uint32_t rows, uint32_t k, const Fmt &f, uint32_t limit) {
    const uint64_t s = hd.s, g = hd.g, t = hd.t, d = hd.d;
    const uint64_t want_rows = sd.rule == kRuleRows ? s * t : sd.rule == kRuleKt ? g * t : g * d;
    const uint64_t want_k = sd.rule == kRuleV ? s * g * t : s * g * d;
    if ((sd.rule == kRuleRows ? rows > want_rows : rows != want_rows) || k != want_k) return false;
    if (f.bits != ANT_CODE_BITS) return false;
    if (sd.r0 >= kRows) return false;
    if (sd.rs == 0 || uint64_t{sd.c0} + (g - 1) * sd.hs + d > sd.ks) return false;
    const uint64_t tiles = (uint64_t{sd.rs} + kRows - 1) / kRows;  // kRows: a constant
    const uint64_t words = tiles * block_words(kRows, sd.ks);
    if (words > limit) return false;
    sd.block = block_words(kRows, sd.ks);
    sd.tiles = static_cast<uint32_t>(tiles);
    sd.words = static_cast<uint32_t>(words);
    return true;
}

// The six heads registers for M, N, K, checked once per call exactly as regmap.decode_heads.
Heads decode_heads(uint32_t word, uint32_t dims, uint32_t a_src, uint32_t a_col, uint32_t w_src, uint32_t w_col,
                   uint32_t m, uint32_t n, uint32_t k, const Fmt &fa, const Fmt &fw, bool conv_on) {
    Heads hd = {};
    const uint32_t ra = word & 3u, rw = (word >> 2) & 3u;
    hd.on = ra != 0 || rw != 0;
    hd.ok = false;
    hd.a = heads_side(kRuleOff, 0, 0);
    hd.w = heads_side(kRuleOff, 0, 0);
    if (word >> 20) return hd;
    if (!hd.on) {
        hd.ok = true;
        return hd;
    }
    if (ra > kRuleRows || rw == kRuleRows) return hd;
    if (conv_on) return hd;
    hd.s = (word >> 4) & 0xFFu;
    hd.g = (word >> 12) & 0xFFu;
    hd.t = dims & 0xFFFFu;
    hd.d = dims >> 16;
    if (!hd.s || !hd.g || !hd.t || !hd.d) return hd;
    if (ra) {
        hd.a = heads_side(ra, a_src, a_col);
        if (!heads_side_ok(hd, hd.a, m, k, fa, ANT_SRC_WORDS)) return hd;
    }
    if (rw) {
        hd.w = heads_side(rw, w_src, w_col);
        if (!heads_side_ok(hd, hd.w, n, k, fw, ANT_WSRC_WORDS)) return hd;
    }
    hd.src_words = hd.a.words > hd.w.words ? hd.a.words : hd.w.words;
    hd.ok = true;
    return hd;
}

// The call, worked out once from the arguments and read by every process.
struct Plan {
    uint32_t m, n, k, J;        // J: steps per job
    uint32_t sel;               // passes to run (bit a_hi * 2 + w_hi)
    Fmt fa, fw;
    bool use_a[2], use_w[2];    // nibble planes the passes read
    bool a_reuse;               // the row tile's A stays on chip across the column tiles (one job)
    bool w_resident;            // all of W stays on chip across the row tiles (one job, fits)
    uint32_t a_block, w_block;  // bus words of one tile block (one plane, all of K padded)
    uint32_t a_plane, w_plane;  // bus words of one plane
    bool epi;                   // out_mode != 0: the epilogue writes packed codes
    ant_epi::Out out;           // its output format and shift
    uint32_t epi_words;         // int64 words of the parameter buffer
    Conv cv;                    // conv mode: A generated on chip from the source tensor
    Heads hd;                   // heads mode: a side generated on chip from its source
};

uint32_t gcd(uint32_t a, uint32_t b) {
    while (b) {
        const uint32_t t = a % b;  // constants of the array and bus only: folded at compile time
        a = b;
        b = t;
    }
    return a;
}

uint32_t block_words(uint32_t tile, uint32_t k) {
    const uint32_t step = 4 * tile;
    const uint32_t k_align = (step / gcd(step, kBus) * kBus) / step;  // lcm(step, bus) / step
    const uint32_t kpad = (k + k_align - 1) / k_align * k_align;      // k_align: a power of two
    return tile * kpad * 4 / kBus;
}

uint32_t tiles_of(uint32_t dim, uint32_t tile) {
    uint32_t t = 0;
    for (uint32_t d = 0; d < dim; d += tile) ++t;  // no divider: the tile count by counting
    return t;
}

Plan make_plan(uint32_t m, uint32_t n, uint32_t k, const Fmt &fa, const Fmt &fw, uint32_t sel,
               uint32_t out_mode, const Conv &cv, const Heads &hd) {
    Plan p;
    p.cv = cv;
    p.hd = hd;
    p.epi = out_mode != 0;
    p.out = ant_epi::decode_out(out_mode);
    p.epi_words = p.epi ? (n + 1) / 2 + n + 2 + p.out.nthr : 0;
    p.m = m;
    p.n = n;
    p.k = k;
    p.fa = fa;
    p.fw = fw;
    p.sel = sel;
    p.J = ANT_JOB_STEPS[fa.index][fw.index];
    p.use_a[0] = (sel & 0x3u) != 0;
    p.use_a[1] = (sel & 0xCu) != 0;
    p.use_w[0] = (sel & 0x5u) != 0;
    p.use_w[1] = (sel & 0xAu) != 0;
    p.a_block = block_words(kRows, k);
    p.w_block = block_words(kCols, k);
    p.a_plane = tiles_of(m, kRows) * p.a_block;
    p.w_plane = tiles_of(n, kCols) * p.w_block;
    const bool one_job = k <= p.J;
    p.a_reuse = one_job;
    const uint32_t w_need = (p.use_w[0] + p.use_w[1]) * p.w_plane;
    p.w_resident = one_job && w_need <= ANT_WRES_WORDS;
    if (cv.on) {  // J in (c, i, j) steps, so the window counters advance job by job without a divider
        const uint32_t khkw = cv.kh * cv.kw, rem = p.J % khkw;
        p.cv.jc = p.J / khkw;
        p.cv.ji = rem / cv.kw;
        p.cv.jj = rem % cv.kw;
    }
    return p;
}

// The bus words [w0, w1) holding steps [k0, k0 + kl) of one tile block, and the bit of step k0.
struct Span {
    uint32_t w0, w1, bit0;
};

Span span_of(uint32_t step_bits, uint32_t k0, uint32_t kl) {
    const uint64_t first = uint64_t{k0} * step_bits, last = (uint64_t{k0} + kl) * step_bits;
    Span s;
    s.w0 = static_cast<uint32_t>(first / kBus);  // kBus is a power of two: shifts
    s.w1 = static_cast<uint32_t>((last + kBus - 1) / kBus);
    s.bit0 = static_cast<uint32_t>(first % kBus);
    return s;
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

template <int W>
ap_uint<W> field_at(const bus_t *buf, uint64_t pos) {
    ap_uint<W> v = 0;
    for (uint32_t b = 0; b < static_cast<uint32_t>(W); b += 32) {
        const uint32_t n = W - b < 32 ? W - b : 32;
        v.range(b + n - 1, b) = bits_at(buf, pos + b, n);
    }
    return v;
}

template <int W>
void put_field(core_in_t &beat, uint32_t dst, const ap_uint<W> &v) {
    for (uint32_t b = 0; b < static_cast<uint32_t>(W); b += 32) {
        const uint32_t n = W - b < 32 ? W - b : 32;
        beat.range(dst + b + n - 1, dst + b) = v.range(b + n - 1, b).to_uint64();
    }
}

// Config nibble of one operand side of a pass: kind bits 1:0, signed bit 2, hi bit 3.
uint64_t side_bits(const Fmt &f, uint32_t hi) {
    if (f.bits == ANT_CODE_BITS) return f.kind | (f.sgn << 2);
    // int8 nibble planes: the low nibble is an unsigned int4, the high one signed as the int8 is.
    return ANT_KIND_INT | ((hi ? f.sgn : 0u) << 2) | (uint64_t{hi} << 3);
}

// ---- the processes --------------------------------------------------------------------------

// ---- conv mode: the im2col operand, generated on chip ----------------------------------------

// The pixel of each row of a row tile: source row base b*H*W, window origin oy*sh - ph, ox*sw - pw.
struct TileRows {
    bool live[kRows];  // row < M
    int32_t iy0[kRows], ix0[kRows];
    uint32_t bhw[kRows];
};

// Running (b, oy, ox) of output pixel m, advanced one row per cycle (no divider).
struct PixelCounter {
    uint32_t oy, ox, bhw, m;
};

void tile_rows(const Plan &p, PixelCounter &pc, TileRows &t) {
rows:
    for (uint32_t r = 0; r < kRows; ++r) {
#pragma HLS PIPELINE II = 1
        t.live[r] = pc.m < p.m;
        t.iy0[r] = static_cast<int32_t>(pc.oy * p.cv.sh) - static_cast<int32_t>(p.cv.ph);
        t.ix0[r] = static_cast<int32_t>(pc.ox * p.cv.sw) - static_cast<int32_t>(p.cv.pw);
        t.bhw[r] = pc.bhw;
        ++pc.m;
        if (++pc.ox == p.cv.ow) {
            pc.ox = 0;
            if (++pc.oy == p.cv.oh) {
                pc.oy = 0;
                pc.bhw += p.cv.h * p.cv.w;
            }
        }
    }
}

// A step's (channel, kernel row, kernel column): K order (c, i, j), j fastest.
struct Win {
    uint32_t c, i, j;
};

void win_next(const Conv &cv, Win &w) {
    if (++w.j == cv.kw) {
        w.j = 0;
        if (++w.i == cv.kh) {
            w.i = 0;
            ++w.c;
        }
    }
}

void win_prev(const Conv &cv, Win &w) {
    if (w.j) {
        --w.j;
        return;
    }
    w.j = cv.kw - 1;
    if (w.i) {
        --w.i;
        return;
    }
    w.i = cv.kh - 1;
    --w.c;
}

// The window of step k0 + J from that of k0: J = jc*kh*kw + ji*kw + jj, one carry per digit.
void win_jump(const Conv &cv, Win &w) {
    w.j += cv.jj;
    if (w.j >= cv.kw) {
        w.j -= cv.kw;
        ++w.i;
    }
    w.i += cv.ji;
    if (w.i >= cv.kh) {
        w.i -= cv.kh;
        ++w.c;
    }
    w.c += cv.jc;
}

// Bit of (plane, source row tile, channel) in the on-chip copy of the source.
uint64_t src_bit(const Conv &cv, uint32_t pl, uint32_t tile, uint32_t c) {
    return (uint64_t{pl} * cv.src_plane + uint64_t{tile} * cv.src_block) * kBus + uint64_t{c} * kStepA;
}

// Is tile row r's window element (i, j) of step w inside the image (and r < M)?
bool in_image(const Conv &cv, const TileRows &t, uint32_t r, const Win &w) {
    const int32_t iy = t.iy0[r] + static_cast<int32_t>(w.i * cv.dh), ix = t.ix0[r] + static_cast<int32_t>(w.j * cv.dw);
    return t.live[r] && iy >= 0 && iy < static_cast<int32_t>(cv.h) && ix >= 0 && ix < static_cast<int32_t>(cv.w);
}

// Element rule of conv mode: A[m0 + r, s] is the source code of row b*H*W + iy*W + ix, channel c
// (iy = oy*sh - ph + i*dh, ix = ox*sw - pw + j*dw), or 0 outside the image, for rows >= M and for
// steps >= K.

// Fast path (stride 1, OH x OW = H x W): the R codes of step s in one cycle. Row m0 + r reads
// source row m0 + r + (i*dh - ph)*W + (j*dw - pw), so the step is two source steps (tile blocks
// tb and tb + 1: two buffer reads), shifted by i0 rows and masked at the image border.
a_step_t fast_step(const bus_t *src, const Plan &p, const TileRows &t, uint32_t m0, const Win &w, uint32_t s,
                   uint32_t pl) {
    const Conv &cv = p.cv;
    a_step_t v = 0;
    bool ok[kRows];
    for (uint32_t r = 0; r < kRows; ++r) {
#pragma HLS UNROLL
        ok[r] = s < p.k && in_image(cv, t, r, w);
    }
    const int64_t base = int64_t{m0} + (int64_t{w.i * cv.dh} - cv.ph) * cv.w + (int64_t{w.j * cv.dw} - cv.pw);
    const int64_t tb = base >= 0 ? base / kRows : -((-base + kRows - 1) / kRows);  // kRows: a constant
    const uint32_t i0 = static_cast<uint32_t>(base - tb * kRows);
    a_step_t lo = 0, hi = 0;  // blocks outside the source only ever feed masked rows
    if (tb >= 0 && tb < cv.src_tiles) lo = field_at<kStepA>(src, src_bit(cv, pl, static_cast<uint32_t>(tb), w.c));
    if (tb + 1 >= 0 && tb + 1 < cv.src_tiles)
        hi = field_at<kStepA>(src, src_bit(cv, pl, static_cast<uint32_t>(tb + 1), w.c));
    for (uint32_t r = 0; r < kRows; ++r) {
#pragma HLS UNROLL
        const uint32_t q = i0 + r;
        const uint64_t nib = q < kRows ? lo.range(4 * q + 3, 4 * q).to_uint64()
                                       : hi.range(4 * (q - kRows) + 3, 4 * (q - kRows)).to_uint64();
        v.range(4 * r + 3, 4 * r) = ok[r] ? nib : 0;
    }
    return v;
}

// Any other geometry: the code of tile row r of step s (one buffer read; one code per cycle).
uint64_t one_code(const bus_t *src, const Plan &p, const TileRows &t, uint32_t r, const Win &w, uint32_t s,
                  uint32_t pl) {
    const Conv &cv = p.cv;
    if (s >= p.k || !in_image(cv, t, r, w)) return 0;
    const uint32_t iy = static_cast<uint32_t>(t.iy0[r] + static_cast<int32_t>(w.i * cv.dh));
    const uint32_t ix = static_cast<uint32_t>(t.ix0[r] + static_cast<int32_t>(w.j * cv.dw));
    const uint32_t row = t.bhw[r] + iy * cv.w + ix;
    return bits_at(src, src_bit(cv, pl, row / kRows, w.c) + 4 * (row % kRows), 4);  // kRows: a constant
}

// Bits into bus words, low bits first: the words of a span, whatever the step width.
struct WordPacker {
    bus_t cur;
    uint32_t have, left;  // bits in cur, words still to write

    void put(uint64_t x, uint32_t n, hls::stream<bus_t, ANT_WORDS_DEPTH> &out) {
        while (n > 0 && left > 0) {
            const uint32_t t = n < kBus - have ? n : kBus - have;
            cur.range(have + t - 1, have) = t == 64 ? x : x & ((uint64_t{1} << t) - 1);
            x = t == 64 ? 0 : x >> t;
            have += t;
            n -= t;
            if (have == kBus) {
                out.write(cur);
                cur = 0;
                have = 0;
                --left;
            }
        }
    }
};

// Step v (STEP bits: one step of a tile block) into the span's words, the first step's bits before
// word w0 dropped.
template <int STEP>
void put_step(WordPacker &pk, const ap_uint<STEP> &v, uint32_t &skip, hls::stream<bus_t, ANT_WORDS_DEPTH> &out) {
    for (uint32_t b = 0; b < static_cast<uint32_t>(STEP); b += 32) {
        const uint32_t n = STEP - b < 32 ? STEP - b : 32;
        if (b + n <= skip) continue;
        const uint32_t lo = b < skip ? skip - b : 0;
        pk.put(v.range(b + n - 1, b + lo).to_uint64(), n - lo, out);
    }
    skip = 0;
}

// The words [s.w0, s.w1) of plane pl of A's row tile block at m0, exactly as packed A would hold
// them: steps s_first .. s_end - 1 gathered one after the other (one per cycle on the fast path,
// else one code per cycle). w is the window of step k0; it steps back to s_first first
// (k0 - s_first < bus / 4R steps; 0 when a step is a whole number of bus words).
void gen_span(const bus_t *src, const Plan &p, const TileRows &t, uint32_t m0, Win w, uint32_t k0, const Span &s,
              uint32_t pl, hls::stream<bus_t, ANT_WORDS_DEPTH> &out) {
    const uint64_t first = uint64_t{s.w0} * kBus;
    const uint32_t s_first = static_cast<uint32_t>(first / kStepA);  // kStepA: a constant
    const uint32_t s_end = static_cast<uint32_t>((uint64_t{s.w1} * kBus + kStepA - 1) / kStepA);
    uint32_t skip = static_cast<uint32_t>(first - uint64_t{s_first} * kStepA);
back:
    for (uint32_t i = s_first; i < k0; ++i) win_prev(p.cv, w);
    WordPacker pk;
    pk.cur = 0;
    pk.have = 0;
    pk.left = s.w1 - s.w0;
    if (p.cv.fast) {
    fast_steps:
        for (uint32_t st = s_first; st < s_end; ++st) {
#pragma HLS PIPELINE II = 1
            put_step<kStepA>(pk, fast_step(src, p, t, m0, w, st, pl), skip, out);
            win_next(p.cv, w);
        }
        return;
    }
    a_step_t v = 0;
codes:
    for (uint32_t st = s_first, r = 0; st < s_end;) {
#pragma HLS PIPELINE II = 1
        v.range(4 * r + 3, 4 * r) = one_code(src, p, t, r, w, st, pl);
        if (r + 1 < kRows) {
            ++r;
            continue;
        }
        put_step<kStepA>(pk, v, skip, out);
        v = 0;
        r = 0;
        ++st;
        win_next(p.cv, w);
    }
}

// ---- heads mode: a side's block-diagonal operand, generated on chip ------------------------

// Fast paths (docs/contracts.md section 15, ref.heads_fast): rows always generates one step per
// cycle; kt when C <= R (its run of at most C consecutive source rows of one column lies in two
// source steps); v when 4*C <= the bus width (a run of C codes of one source row lies in two words
// of fetch_w's row-major copy). Otherwise one code per cycle.
constexpr bool kKtFast = kCols <= kRows, kVFast = 4 * kCols <= kBus;

bool heads_fast(uint32_t rule) {
    return rule == kRuleRows || (rule == kRuleKt && kKtFast) || (rule == kRuleV && kVFast);
}

// fetch_w's row-major copy of its source for v's fast path: bank b = row % R holds the rows
// tb*R + b, each row's Ks codes contiguous, so code (row, col) is code tb*Ks + col of bank b (bus
// words of bus/4 codes). It is no larger than the source (Ks <= a block's padded steps), plus the
// word a run's second read may touch past the end.
constexpr uint32_t kRmWords = (ANT_WSRC_WORDS + kRows - 1) / kRows + 1;

// The copy is written as the source streams in: each bus word's codes go to their rows' banks,
// which receive their codes strictly in order (tb*Ks + col, tile by tile), so each bank fills one
// word in a register and writes it whole when it is full: one write per bank per cycle at most,
// each bank (a static index) taking the word's codes u = u_b, u_b + R, ... (its rows).
struct RowCopy {
    bus_t acc[kRows];
    uint32_t fill[kRows], next[kRows];  // codes in acc, the bank word it becomes
    uint32_t q, wib;                    // code of the block at the word's first code, word in the block
};

void row_copy_reset(RowCopy &rc) {
    for (uint32_t b = 0; b < kRows; ++b) {
#pragma HLS UNROLL
        rc.acc[b] = 0;
        rc.fill[b] = rc.next[b] = 0;
    }
    rc.q = rc.wib = 0;
}

void row_copy_word(RowCopy &rc, bus_t rm[kRows][kRmWords], const bus_t &word, const HeadsSide &sd) {
    constexpr uint32_t kPer = kBus / 4, kMost = (kPer + kRows - 1) / kRows;  // codes a word, a bank's share
    const uint32_t b0 = rc.q % kRows;  // the row of the word's first code (kRows: a constant)
    const uint64_t real = uint64_t{sd.ks} * kRows;  // codes of a block before its padding steps (c >= Ks)
    const uint32_t valid = rc.q >= real ? 0u : real - rc.q < kPer ? static_cast<uint32_t>(real - rc.q) : kPer;
banks:
    for (uint32_t b = 0; b < kRows; ++b) {
#pragma HLS UNROLL
        const uint32_t ub = (b + kRows - b0) % kRows;  // the bank's first code in the word
    bank_codes:
        for (uint32_t t = 0; t < kMost; ++t) {
#pragma HLS UNROLL
            const uint32_t u = ub + t * kRows;
            if (u >= valid) break;
            rc.acc[b].range(4 * rc.fill[b] + 3, 4 * rc.fill[b]) = word.range(4 * u + 3, 4 * u).to_uint64();
            if (++rc.fill[b] == kPer) {
                if (rc.next[b] < kRmWords) rm[b][rc.next[b]] = rc.acc[b];
                ++rc.next[b];
                rc.acc[b] = 0;
                rc.fill[b] = 0;
            }
        }
    }
    rc.q += kPer;
    if (++rc.wib == sd.block) {  // a block is a whole number of steps: the next starts at its step 0
        rc.wib = 0;
        rc.q = 0;
    }
}

void row_copy_flush(RowCopy &rc, bus_t rm[kRows][kRmWords]) {
    for (uint32_t b = 0; b < kRows; ++b) {
#pragma HLS UNROLL
        if (rc.fill[b] && rc.next[b] < kRmWords) rm[b][rc.next[b]] = rc.acc[b];
    }
}

// Running decomposition j = q*P + n of the operand row j (P = D for v, else T), advanced one row
// per cycle (no divider); qcol = q*hs.
struct HeadCounter {
    uint32_t j, q, n, qcol;
};

// What each row of a tile contributes to its codes: the block it belongs to (s for rows, h for kt
// and v; a step matches when its s' or h' is the same), its part of the source row and column;
// j0 is the tile's first operand row.
template <uint32_t TILE>
struct HeadRows {
    bool live[TILE];  // row < M (A) or N (W)
    uint32_t key[TILE], row[TILE], col[TILE];
    uint32_t j0;
};

template <uint32_t TILE>
void heads_rows(const Heads &hd, const HeadsSide &sd, uint32_t dim, HeadCounter &hc, HeadRows<TILE> &t) {
    const uint32_t per = sd.rule == kRuleV ? hd.d : hd.t;
    t.j0 = hc.j;
head_rows:
    for (uint32_t r = 0; r < TILE; ++r) {
#pragma HLS PIPELINE II = 1
        t.live[r] = hc.j < dim;
        t.key[r] = hc.q;
        t.row[r] = sd.r0 + (sd.rule == kRuleRows ? hc.j : sd.rule == kRuleKt ? hc.n : 0u);  // rows: r0 + s*T + m
        t.col[r] = sd.c0 + (sd.rule == kRuleRows ? 0u : hc.qcol + (sd.rule == kRuleV ? hc.n : 0u));
        ++hc.j;
        if (++hc.n == per) {
            hc.n = 0;
            ++hc.q;
            hc.qcol += sd.hs;
        }
    }
}

// A step t = (s*g + h)*L + k (L = D, or T for v), hcol = h*hs, srow = s*T, and hj = h*P (P = T
// for kt, D for v): the first operand row of head h.
struct HeadStep {
    uint32_t k, h, s, hcol, srow, hj;
};

// The decomposition of step t: the divisions run once per span (its first step).
HeadStep heads_step_at(const Heads &hd, const HeadsSide &sd, uint32_t t) {
    const uint32_t len = sd.rule == kRuleV ? hd.t : hd.d, per = sd.rule == kRuleV ? hd.d : hd.t;
    const uint32_t q = t / len;
    HeadStep st;
    st.k = t - q * len;
    st.s = q / hd.g;
    st.h = q - st.s * hd.g;
    st.hcol = st.h * sd.hs;
    st.srow = st.s * hd.t;
    st.hj = st.h * per;
    return st;
}

void heads_next(const Heads &hd, const HeadsSide &sd, HeadStep &st) {
    const uint32_t len = sd.rule == kRuleV ? hd.t : hd.d, per = sd.rule == kRuleV ? hd.d : hd.t;
    if (++st.k < len) return;
    st.k = 0;
    st.hcol += sd.hs;
    st.hj += per;
    if (++st.h < hd.g) return;
    st.h = 0;
    st.hcol = 0;
    st.hj = 0;
    ++st.s;
    st.srow += hd.t;
}

// The element rules of heads mode: the code of tile row r at step `step` (one buffer read), or 0 off
// the blocks (s' != s for rows, h' != h for kt and v), for source rows >= Rs, rows >= M/N and steps
// >= K. The source is packed as activations (tile R) whichever side it feeds.
template <uint32_t TILE>
uint64_t heads_code(const bus_t *src, const Plan &p, const HeadsSide &sd, const HeadRows<TILE> &t, uint32_t r,
                    const HeadStep &st, uint32_t step) {
    const uint32_t key = sd.rule == kRuleRows ? st.s : st.h;
    const uint32_t row = t.row[r] + (sd.rule == kRuleRows ? 0u : st.srow) + (sd.rule == kRuleV ? st.k : 0u);
    const uint32_t col = t.col[r] + (sd.rule == kRuleRows ? st.hcol : 0u) + (sd.rule == kRuleV ? 0u : st.k);
    if (!t.live[r] || step >= p.k || t.key[r] != key || row >= sd.rs) return 0;
    const uint64_t bit = uint64_t{row / kRows} * sd.block * kBus + uint64_t{col} * kStepA + 4 * (row % kRows);
    return bits_at(src, bit, 4);  // kRows: a constant
}

// rows and kt fast: the codes of the TILE (<= R) consecutive source rows base .. base + TILE - 1 at
// column col, from the two source steps holding them (row tiles tb and tb + 1: two buffer reads),
// shifted by the offset of base in its tile. Tiles outside the source only ever feed masked rows.
template <uint32_t TILE>
ap_uint<4 * TILE> heads_col_run(const bus_t *src, const HeadsSide &sd, int64_t base, uint32_t col) {
    const int64_t tb = base >= 0 ? base / kRows : -((-base + kRows - 1) / kRows);  // kRows: a constant
    const uint32_t i0 = static_cast<uint32_t>(base - tb * kRows);
    a_step_t lo = 0, hi = 0;
    if (tb >= 0 && tb < sd.tiles)
        lo = field_at<kStepA>(src, uint64_t(tb) * sd.block * kBus + uint64_t{col} * kStepA);
    if (tb + 1 >= 0 && tb + 1 < sd.tiles)
        hi = field_at<kStepA>(src, uint64_t(tb + 1) * sd.block * kBus + uint64_t{col} * kStepA);
    ap_uint<4 * TILE> v = 0;
    for (uint32_t r = 0; r < TILE; ++r) {
#pragma HLS UNROLL
        const uint32_t q = i0 + r;
        v.range(4 * r + 3, 4 * r) = q < kRows       ? lo.range(4 * q + 3, 4 * q).to_uint64()
                                    : q < 2 * kRows ? hi.range(4 * (q - kRows) + 3, 4 * (q - kRows)).to_uint64()
                                                    : uint64_t{0};  // (TILE <= R: never)
    }
    return v;
}

// v fast: the codes cb .. cb + TILE - 1 (4*TILE <= bus) of source row `row`, from two words of the
// row-major copy (bank row % R), shifted by the run's offset in the first word. Codes outside the
// row (cb < 0, past Ks) only ever feed masked columns.
template <uint32_t TILE>
ap_uint<4 * TILE> heads_row_run(const bus_t rm[kRows][kRmWords], const HeadsSide &sd, uint32_t row, int64_t cb) {
    ap_uint<4 * TILE> v = 0;
    if (row >= sd.rs) return v;  // every column is masked
    const uint32_t tb = row / kRows, b = row - tb * kRows;  // kRows: a constant
    const int64_t pos = 4 * (int64_t{tb} * sd.ks + cb);
    const int64_t wi = pos >= 0 ? pos / kBus : -((-pos + kBus - 1) / kBus);  // kBus: a power of two
    const uint32_t off = static_cast<uint32_t>(pos - wi * kBus);
    bus_t lo = 0, hi = 0;
    if (wi >= 0 && wi < kRmWords) lo = rm[b][wi];
    if (wi + 1 >= 0 && wi + 1 < kRmWords) hi = rm[b][wi + 1];
    const uint32_t u0 = off / 4;  // the run's first code in lo (codes of 4 bits: off is a multiple of 4)
    for (uint32_t c = 0; c < TILE; ++c) {
#pragma HLS UNROLL
        const uint32_t u = u0 + c, per = kBus / 4;
        const uint32_t q = 4 * u % kBus;  // the code's bit in its word
        v.range(4 * c + 3, 4 * c) = u >= 2 * per ? uint64_t{0}  // (4*TILE <= bus: never)
                                    : u < per    ? lo.range(q + 3, q).to_uint64()
                                                 : hi.range(q + 3, q).to_uint64();
    }
    return v;
}

// The fast path: the TILE codes of step `step` in one cycle. The nonzero rows of a step read one
// run of consecutive codes: rows, source rows r0 + j0 .. of column c0 + h'*hs + k; kt, source rows
// r0 + s'*T + j0 - h'*T .. of that column; v, columns c0 + h'*hs + j0 - h'*D .. of source row
// r0 + s'*T + k. Each row is then masked exactly as heads_code masks it. V_OK: the side may be v
// (W; A passes no copy).
template <uint32_t TILE, bool V_OK>
ap_uint<4 * TILE> heads_fast_step(const bus_t *src, const bus_t rm[kRows][kRmWords], const Plan &p,
                                  const HeadsSide &sd, const HeadRows<TILE> &t, const HeadStep &st, uint32_t step) {
    const bool rows = sd.rule == kRuleRows, v_rule = V_OK && sd.rule == kRuleV;
    const uint32_t key = rows ? st.s : st.h;
    const uint32_t add = (rows ? 0u : st.srow) + (v_rule ? st.k : 0u);
    ap_uint<4 * TILE> run;
    if (v_rule)
        run = heads_row_run<TILE>(rm, sd, sd.r0 + st.srow + st.k,
                                  int64_t{sd.c0} + st.hcol + t.j0 - int64_t{st.hj});
    else
        run = heads_col_run<TILE>(src, sd,
                                  int64_t{sd.r0} + t.j0 + (rows ? 0 : int64_t{st.srow} - int64_t{st.hj}),
                                  sd.c0 + st.hcol + st.k);
    ap_uint<4 * TILE> v = 0;
    for (uint32_t r = 0; r < TILE; ++r) {
#pragma HLS UNROLL
        const bool ok = t.live[r] && step < p.k && t.key[r] == key && t.row[r] + add < sd.rs;
        v.range(4 * r + 3, 4 * r) = ok ? run.range(4 * r + 3, 4 * r).to_uint64() : uint64_t{0};
    }
    return v;
}

// The words [s.w0, s.w1) of a generated side's tile block (TILE = R for A, C for W), exactly as the
// packed operand would hold them: steps s_first .. s_end - 1, one per cycle on the fast path
// (heads_fast), else one code per cycle. rm: fetch_w's row-major copy (v's fast path only; V_OK).
template <uint32_t TILE, bool V_OK>
void gen_heads_span(const bus_t *src, const bus_t rm[kRows][kRmWords], const Plan &p, const HeadsSide &sd,
                    const HeadRows<TILE> &t, const Span &s, hls::stream<bus_t, ANT_WORDS_DEPTH> &out) {
    const uint32_t kStep = 4 * TILE;
    const uint64_t first = uint64_t{s.w0} * kBus;
    const uint32_t s_first = static_cast<uint32_t>(first / kStep);  // kStep: a constant
    const uint32_t s_end = static_cast<uint32_t>((uint64_t{s.w1} * kBus + kStep - 1) / kStep);
    uint32_t skip = static_cast<uint32_t>(first - uint64_t{s_first} * kStep);
    HeadStep st = heads_step_at(p.hd, sd, s_first);
    WordPacker pk;
    pk.cur = 0;
    pk.have = 0;
    pk.left = s.w1 - s.w0;
    if (heads_fast(sd.rule)) {
    head_steps:
        for (uint32_t i = s_first; i < s_end; ++i) {
#pragma HLS PIPELINE II = 1
            put_step<4 * TILE>(pk, heads_fast_step<TILE, V_OK>(src, rm, p, sd, t, st, i), skip, out);
            heads_next(p.hd, sd, st);
        }
        return;
    }
    ap_uint<4 * TILE> v = 0;
head_codes:
    for (uint32_t i = s_first, r = 0; i < s_end;) {
#pragma HLS PIPELINE II = 1
        v.range(4 * r + 3, 4 * r) = heads_code<TILE>(src, p, sd, t, r, st, i);
        if (r + 1 < TILE) {
            ++r;
            continue;
        }
        put_step<4 * TILE>(pk, v, skip, out);
        v = 0;
        r = 0;
        ++i;
        heads_next(p.hd, sd, st);
    }
}

// DDR -> a_words: the words of every A block the call needs, in the order serve_a first uses them.
// In conv mode the source tensor, in heads mode (A's rule rows) A's source, is read into the
// on-chip buffer first and the words are generated.
void fetch_a(const bus_t *a, const Plan &p, hls::stream<bus_t, ANT_WORDS_DEPTH> &out) {
    static bus_t src[ANT_SRC_WORDS];
    const bool heads = p.hd.a.rule != kRuleOff;
    if (p.cv.on || heads) {
        const uint32_t words = p.cv.on ? p.cv.src_words : p.hd.a.words;
    read_src:
        for (uint32_t i = 0; i < words; ++i) {
#pragma HLS PIPELINE II = 1
            src[i] = a[i];
        }
    }
    PixelCounter pc = {0, 0, 0, 0};
    TileRows rows;
    HeadCounter hc = {0, 0, 0, 0};
    HeadRows<kRows> hrows;
    for (uint32_t m0 = 0, tm = 0; m0 < p.m; m0 += kRows, ++tm) {
        if (p.cv.on) tile_rows(p, pc, rows);
        if (heads) heads_rows<kRows>(p.hd, p.hd.a, p.m, hc, hrows);
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols) {
            if (p.a_reuse && n0 != 0) continue;
            Win w = {0, 0, 0};  // the window of step k0
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                const Span s = span_of(kStepA, k0, kl);
                for (int pl = 1; pl >= 0; --pl) {  // passes run the high planes first
                    if (!p.use_a[pl]) continue;
                    if (p.cv.on) {
                        gen_span(src, p, rows, m0, w, k0, s, static_cast<uint32_t>(pl), out);
                        continue;
                    }
                    if (heads) {  // a 4-bit source: one plane
                        gen_heads_span<kRows, false>(src, nullptr, p, p.hd.a, hrows, s, out);
                        continue;
                    }
                    const uint32_t base = pl * p.a_plane + tm * p.a_block;
                read_a:
                    for (uint32_t i = s.w0; i < s.w1; ++i) {
#pragma HLS PIPELINE II = 1
                        out.write(a[base + i]);
                    }
                }
                if (p.cv.on) win_jump(p.cv, w);
            }
        }
    }
}

// DDR -> w_words (and the epilogue's parameters -> epi_words first). In heads mode (W's rule kt or
// v) W's source is read into fetch_w's own buffer after the parameters and the words are generated.
void fetch_w(const bus_t *w, const int64_t *prm, const Plan &p, hls::stream<bus_t, ANT_WORDS_DEPTH> &out,
             hls::stream<int64_t, ANT_EPI_DEPTH> &epi_words) {
    static bus_t wsrc[ANT_WSRC_WORDS];
    // v's fast path: the source row-major, banked by row % R (one bank per row, even and odd words
    // apart, so a step reads two words of one bank while the load writes one word of each bank).
    // kt's fast path reads two source steps of wsrc a cycle, as conv mode's of src (two ports).
    static bus_t wrm[kRows][kRmWords];
#pragma HLS ARRAY_PARTITION variable = wrm complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wrm cyclic factor = 2 dim = 2
    if (p.epi) {
    read_params:
        for (uint32_t i = 0; i < p.epi_words; ++i) {
#pragma HLS PIPELINE II = 1
            epi_words.write(prm[i]);
        }
    }
    const bool heads = p.hd.w.rule != kRuleOff;
    if (heads) {
        const bool copy = p.hd.w.rule == kRuleV && kVFast;  // the copy is written as the words arrive
        RowCopy rc;  // registers: a bank's accumulator, fill and next word
#pragma HLS DISAGGREGATE variable = rc
#pragma HLS ARRAY_PARTITION variable = rc.acc complete
#pragma HLS ARRAY_PARTITION variable = rc.fill complete
#pragma HLS ARRAY_PARTITION variable = rc.next complete
        row_copy_reset(rc);
    read_wsrc:
        for (uint32_t i = 0; i < p.hd.w.words; ++i) {
#pragma HLS PIPELINE II = 1
            const bus_t word = w[i];
            wsrc[i] = word;
            if (copy) row_copy_word(rc, wrm, word, p.hd.w);
        }
        if (copy) row_copy_flush(rc, wrm);
    }
    HeadRows<kCols> hrows;
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows) {
        if (p.w_resident && m0 != 0) break;
        HeadCounter hc = {0, 0, 0, 0};  // the column tiles' rows, from the first again
        for (uint32_t n0 = 0, tn = 0; n0 < p.n; n0 += kCols, ++tn) {
            if (heads) heads_rows<kCols>(p.hd, p.hd.w, p.n, hc, hrows);
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                const Span s = span_of(kStepW, k0, kl);
                for (int pl = 1; pl >= 0; --pl) {
                    if (!p.use_w[pl]) continue;
                    if (heads) {  // a 4-bit source: one plane
                        gen_heads_span<kCols, true>(wsrc, wrm, p, p.hd.w, hrows, s, out);
                        continue;
                    }
                    const uint32_t base = pl * p.w_plane + tn * p.w_block;
                read_w:
                    for (uint32_t i = s.w0; i < s.w1; ++i) {
#pragma HLS PIPELINE II = 1
                        out.write(w[base + i]);
                    }
                }
            }
        }
    }
}

// The steps of one pass from a word buffer: on first use the words stream in (and are kept).
template <int STEP, typename StepT>
void serve_pass(hls::stream<bus_t, ANT_WORDS_DEPTH> &in, bus_t *buf, bool first_use, const Span &s, uint32_t kl,
                hls::stream<StepT, ANT_STEPS_DEPTH> &out) {
    uint32_t have = 0;  // words of the span in buf
serve:
    for (uint32_t i = 0; i < kl; ++i) {
#pragma HLS PIPELINE II = 1
        const uint64_t pos = s.bit0 + uint64_t{i} * STEP;
        const uint32_t need = static_cast<uint32_t>((pos + STEP + kBus - 1) / kBus);
        while (first_use && have < need) buf[have++] = in.read();
        out.write(field_at<STEP>(buf, pos));
    }
    while (first_use && have < s.w1 - s.w0) buf[have++] = in.read();  // a span's last, unused word
}

// a_words -> a_steps: the activation field of every beat, pass by pass.
void serve_a(const Plan &p, hls::stream<bus_t, ANT_WORDS_DEPTH> &in, hls::stream<a_step_t, ANT_STEPS_DEPTH> &out) {
    static bus_t buf[2][kBufAWords];
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols)
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                const Span s = span_of(kStepA, k0, kl);
                bool loaded[2] = {p.a_reuse && n0 != 0, p.a_reuse && n0 != 0};
                for (int ps = 3; ps >= 0; --ps) {
                    if (!((p.sel >> ps) & 1u)) continue;
                    const uint32_t pl = static_cast<uint32_t>(ps) >> 1;
                    serve_pass<kStepA>(in, buf[pl], !loaded[pl], s, kl, out);
                    loaded[pl] = true;
                }
            }
}

void serve_w(const Plan &p, hls::stream<bus_t, ANT_WORDS_DEPTH> &in, hls::stream<w_step_t, ANT_STEPS_DEPTH> &out) {
    static bus_t job[2][kBufWWords];
    static bus_t resident[ANT_WRES_WORDS];
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0, tn = 0; n0 < p.n; n0 += kCols, ++tn)
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                const Span s = span_of(kStepW, k0, kl);
                bool loaded[2] = {p.w_resident && m0 != 0, p.w_resident && m0 != 0};
                for (int ps = 3; ps >= 0; --ps) {
                    if (!((p.sel >> ps) & 1u)) continue;
                    const uint32_t pl = static_cast<uint32_t>(ps) & 1u;
                    const uint32_t slot = (p.use_w[1] && pl == 0 ? 1u : 0u) + (p.use_w[0] + p.use_w[1]) * tn;
                    bus_t *buf = p.w_resident ? &resident[slot * p.w_block] : job[pl];
                    serve_pass<kStepW>(in, buf, !loaded[pl], s, kl, out);
                    loaded[pl] = true;
                }
            }
}

// a_steps + w_steps -> to_core: a stats request, then the config beat and steps of every job and
// pass, then the closing stats request.
void feed(const Plan &p, hls::stream<a_step_t, ANT_STEPS_DEPTH> &a_steps,
          hls::stream<w_step_t, ANT_STEPS_DEPTH> &w_steps, core_in_stream &to_core) {
    core_in_t stats = 0;
    stats.range(63, 0) = uint64_t{1} << ANT_CFG_STATS;
    to_core.write(stats);
    uint32_t last_p = 0;
    while (!((p.sel >> last_p) & 1u)) ++last_p;  // passes run from 3 down; the lowest one emits
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols)
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
                const uint32_t kl = p.k - k0 < p.J ? p.k - k0 : p.J;
                bool first = true;
                for (int ps = 3; ps >= 0; --ps) {
                    if (!((p.sel >> ps) & 1u)) continue;
                    const uint32_t ah = static_cast<uint32_t>(ps) >> 1, wh = static_cast<uint32_t>(ps) & 1u;
                    core_in_t head = 0;
                    head.range(63, 0) = uint64_t{kl} | side_bits(p.fa, ah) << ANT_CFG_A_SIDE |
                                        side_bits(p.fw, wh) << ANT_CFG_W_SIDE | uint64_t{!first} << ANT_CFG_ACC |
                                        uint64_t{static_cast<uint32_t>(ps) == last_p} << ANT_CFG_EMIT;
                    to_core.write(head);
                steps:
                    for (uint32_t i = 0; i < kl; ++i) {
#pragma HLS PIPELINE II = 1
                        core_in_t beat = 0;
                        put_field(beat, 0, a_steps.read());
                        put_field(beat, kStepA, w_steps.read());
                        beat.range(ANT_IN_LAST, ANT_IN_LAST) = (i == kl - 1);
                        to_core.write(beat);
                    }
                    first = false;
                }
            }
    to_core.write(stats);
}

// from_core -> y_vals: the int64 sum of a tile's jobs (or, with the epilogue, the tile's packed
// codes in 64-bit words, plane by plane), then the closing stats answer.
void drain(const Plan &p, core_out_stream &from_core, hls::stream<int64_t, ANT_EPI_DEPTH> &epi_words,
           hls::stream<int64_t, ANT_Y_DEPTH> &y_vals, uint32_t counters[4]) {
    static uint32_t mult[ANT_EPI_MAX_COLS];
    static int64_t bias[ANT_EPI_MAX_COLS];
    int64_t lo = 0, hi = 0, thr[ant_epi::kMaxThr] = {0};
    if (p.epi) {  // first, so no process waits on the core for it (the rtl core answers late)
    load_mult:
        for (uint32_t i = 0; i < (p.n + 1) / 2; ++i) {
#pragma HLS PIPELINE II = 1
            const uint64_t v = static_cast<uint64_t>(epi_words.read());
            mult[2 * i] = static_cast<uint32_t>(v);
            if (2 * i + 1 < p.n) mult[2 * i + 1] = static_cast<uint32_t>(v >> 32);
        }
    load_bias:
        for (uint32_t i = 0; i < p.n; ++i) {
#pragma HLS PIPELINE II = 1
            bias[i] = epi_words.read();
        }
        lo = epi_words.read();
        hi = epi_words.read();
        for (uint32_t j = 0; j < p.out.nthr; ++j) thr[j] = epi_words.read();
    }
    for (int i = 0; i < 4; ++i) from_core.read();  // the opening stats answer: cleared counters
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols) {
            int64_t acc[kRows][kCols];
            for (uint32_t r = 0; r < kRows; ++r)
                for (uint32_t c = 0; c < kCols; ++c) acc[r][c] = 0;
            for (uint32_t k0 = 0; k0 < p.k; k0 += p.J) {
            results:
                for (uint32_t i = 0; i < kRows * kCols; ++i) {
#pragma HLS PIPELINE II = 1
                    const core_out_t v = from_core.read();
                    acc[i / kCols][i % kCols] +=  // kCols: a compile-time constant
                        static_cast<int32_t>(static_cast<uint32_t>(v.range(31, 0).to_uint64()));
                }
            }
            const uint32_t rows = p.m - m0 < kRows ? p.m - m0 : kRows, cols = p.n - n0 < kCols ? p.n - n0 : kCols;
            if (!p.epi) {
                for (uint32_t r = 0; r < rows; ++r)
                    for (uint32_t c = 0; c < cols; ++c) y_vals.write(acc[r][c]);
                continue;
            }
            uint8_t codes[kRows][kCols];
        epilogue:
            for (uint32_t i = 0; i < kRows * kCols; ++i) {
#pragma HLS PIPELINE II = 1
                const uint32_t r = i / kCols, c = i % kCols;
                codes[r][c] = r < rows && c < cols ? static_cast<uint8_t>(ant_epi::code(
                                                         acc[r][c], mult[n0 + c], bias[n0 + c], lo, hi, p.out, thr))
                                                   : 0;  // rows >= M and steps >= N are code 0
            }
            const uint32_t words = ant_epi::run_words(ant_epi::run_steps(n0, p.n));
            for (uint32_t pl = 0; pl < p.out.planes; ++pl)
            pack_tile:
                for (uint32_t wd = 0; wd < words; ++wd) {
#pragma HLS PIPELINE II = 1
                    y_vals.write(static_cast<int64_t>(ant_epi::run_word(codes, wd, p.out, pl)));
                }
        }
    for (int i = 0; i < 4; ++i) counters[i] = static_cast<uint32_t>(from_core.read().range(31, 0).to_uint64());
}

// y_vals -> DDR: each tile row in bursts of at most ANT_MAX_BURST words; with the epilogue each
// tile's run of packed words per plane (ant_epi::run_offset).
void store_y(int64_t *y, const Plan &p, hls::stream<int64_t, ANT_Y_DEPTH> &y_vals) {
    for (uint32_t m0 = 0; m0 < p.m; m0 += kRows)
        for (uint32_t n0 = 0; n0 < p.n; n0 += kCols) {
            if (p.epi) {
                const uint32_t words = ant_epi::run_words(ant_epi::run_steps(n0, p.n));
                for (uint32_t pl = 0; pl < p.out.planes; ++pl) {
                    const uint64_t base = ant_epi::run_offset(m0, n0, pl, p.m, p.n);
                write_codes:
                    for (uint32_t wd = 0; wd < words; ++wd) {
#pragma HLS PIPELINE II = 1
                        y[base + wd] = y_vals.read();
                    }
                }
                continue;
            }
            const uint32_t rows = p.m - m0 < kRows ? p.m - m0 : kRows, cols = p.n - n0 < kCols ? p.n - n0 : kCols;
            for (uint32_t r = 0; r < rows; ++r) {
                const uint64_t row = (uint64_t{m0} + r) * p.n + n0;
            write_y:
                for (uint32_t c = 0; c < cols; ++c) {
#pragma HLS PIPELINE II = 1
                    y[row + c] = y_vals.read();
                }
            }
        }
}

void run_call(const bus_t *a, const bus_t *w, int64_t *y, const int64_t *prm, const Plan &p,
              uint32_t counters[4]) {
    hls::stream<bus_t, ANT_WORDS_DEPTH> a_words("a_words"), w_words("w_words");
    hls::stream<a_step_t, ANT_STEPS_DEPTH> a_steps("a_steps");
    hls::stream<w_step_t, ANT_STEPS_DEPTH> w_steps("w_steps");
    core_in_stream to_core("to_core");
    core_out_stream from_core("from_core");
    hls::stream<int64_t, ANT_Y_DEPTH> y_vals("y_vals");
    hls::stream<int64_t, ANT_EPI_DEPTH> epi_words("epi_words");
    ANT_DATAFLOW_BEGIN("ant_gemm")
    ANT_PROCESS("fetch_a", fetch_a(a, p, a_words))
    ANT_PROCESS("fetch_w", fetch_w(w, prm, p, w_words, epi_words))
    ANT_PROCESS("serve_a", serve_a(p, a_words, a_steps))
    ANT_PROCESS("serve_w", serve_w(p, w_words, w_steps))
    ANT_PROCESS("feed", feed(p, a_steps, w_steps, to_core))
    ANT_PROCESS("ant_core", ant_core_bb(to_core, from_core))
    ANT_PROCESS("drain", drain(p, from_core, epi_words, y_vals, counters))
    ANT_PROCESS("store_y", store_y(y, p, y_vals))
    ANT_DATAFLOW_END()
}

uint32_t check_args(uint32_t m, uint32_t n, uint32_t k, const Fmt &fa, const Fmt &fw, uint32_t passes,
                    uint32_t out_mode, const Conv &cv, const Heads &hd, uint32_t *sel) {
    if (m == 0 && n == 0 && k == 0) return ANT_ST_OK;  // identification call
    if (!fa.ok) return ANT_ST_BAD_A;
    if (!fw.ok) return ANT_ST_BAD_W;
    uint32_t need = 0;
    for (uint32_t ah = 0; ah < fa.planes; ++ah)
        for (uint32_t wh = 0; wh < fw.planes; ++wh) need |= 1u << (ah * 2 + wh);
    *sel = passes ? passes : need;
    if (*sel & ~need) return ANT_ST_BAD_PASSES;
    if (ANT_JOB_STEPS[fa.index][fw.index] == 0) return ANT_ST_BAD_PAIR;
    if (m == 0 || n == 0 || k == 0 || m > ANT_MAX_DIM || n > ANT_MAX_DIM || k > ANT_MAX_DIM)
        return ANT_ST_BAD_SIZE;
    if (out_mode != 0 && (!ant_epi::decode_out(out_mode).ok || !ant_epi::tiles_ok() || n > ANT_EPI_MAX_COLS))
        return ANT_ST_BAD_MODE;
    if (!cv.ok) return ANT_ST_BAD_CONV;
    if (!hd.ok) return ANT_ST_BAD_HEADS;
    return ANT_ST_OK;
}

}  // namespace

uint32_t ant_max_k(uint32_t a_type, uint32_t w_type) {
    const Fmt fa = decode_type(a_type), fw = decode_type(w_type);
    return fa.ok && fw.ok ? ANT_MAX_K[fa.index][fw.index] : 0;
}

#ifndef __SYNTHESIS__
#include <ant_model.h>

namespace {
uint64_t last_stages_[3];
}

const uint64_t *ant_model_stages(void) { return last_stages_; }
#endif

void ant_gemm(const bus_t *a, const bus_t *w, int64_t *y, const int64_t *p, uint32_t m, uint32_t n, uint32_t k,
              uint32_t a_type, uint32_t w_type, uint32_t passes, uint32_t out_mode, uint32_t conv_hw, uint32_t conv_win,
              uint32_t heads, uint32_t heads_dims, uint32_t heads_a_src, uint32_t heads_a_col, uint32_t heads_w_src,
              uint32_t heads_w_col, uint32_t *id_version,
              uint32_t *geometry, uint32_t *status, uint32_t *cycles_lo, uint32_t *cycles_hi,
              uint32_t *core_busy, uint32_t *stall_in, uint32_t *stall_out) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem_a max_read_burst_length = ANT_MAX_BURST depth = ANT_COSIM_DEPTH
#pragma HLS INTERFACE m_axi port = w offset = slave bundle = gmem_w max_read_burst_length = ANT_MAX_BURST depth = ANT_COSIM_DEPTH
#pragma HLS INTERFACE m_axi port = y offset = slave bundle = gmem_y max_write_burst_length = ANT_MAX_BURST depth = ANT_COSIM_DEPTH
#pragma HLS INTERFACE m_axi port = p offset = slave bundle = gmem_w max_read_burst_length = ANT_MAX_BURST depth = ANT_COSIM_DEPTH
#pragma HLS INTERFACE s_axilite port = a bundle = control
#pragma HLS INTERFACE s_axilite port = w bundle = control
#pragma HLS INTERFACE s_axilite port = y bundle = control
#pragma HLS INTERFACE s_axilite port = p bundle = control
#pragma HLS INTERFACE s_axilite port = m bundle = control
#pragma HLS INTERFACE s_axilite port = n bundle = control
#pragma HLS INTERFACE s_axilite port = k bundle = control
#pragma HLS INTERFACE s_axilite port = a_type bundle = control
#pragma HLS INTERFACE s_axilite port = w_type bundle = control
#pragma HLS INTERFACE s_axilite port = passes bundle = control
#pragma HLS INTERFACE s_axilite port = out_mode bundle = control
#pragma HLS INTERFACE s_axilite port = conv_hw bundle = control
#pragma HLS INTERFACE s_axilite port = conv_win bundle = control
#pragma HLS INTERFACE s_axilite port = heads bundle = control
#pragma HLS INTERFACE s_axilite port = heads_dims bundle = control
#pragma HLS INTERFACE s_axilite port = heads_a_src bundle = control
#pragma HLS INTERFACE s_axilite port = heads_a_col bundle = control
#pragma HLS INTERFACE s_axilite port = heads_w_src bundle = control
#pragma HLS INTERFACE s_axilite port = heads_w_col bundle = control
#pragma HLS INTERFACE s_axilite port = id_version bundle = control
#pragma HLS INTERFACE s_axilite port = geometry bundle = control
#pragma HLS INTERFACE s_axilite port = status bundle = control
#pragma HLS INTERFACE s_axilite port = cycles_lo bundle = control
#pragma HLS INTERFACE s_axilite port = cycles_hi bundle = control
#pragma HLS INTERFACE s_axilite port = core_busy bundle = control
#pragma HLS INTERFACE s_axilite port = stall_in bundle = control
#pragma HLS INTERFACE s_axilite port = stall_out bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    *id_version = ANT_ID_WORD;
    *geometry = ANT_GEOMETRY;
    const Fmt fa = decode_type(a_type), fw = decode_type(w_type);
    uint32_t sel = 0;
    const Conv cv = decode_conv(conv_hw, conv_win, m, k, fa);
    const Heads hd = decode_heads(heads, heads_dims, heads_a_src, heads_a_col, heads_w_src, heads_w_col, m, n, k, fa,
                                  fw, cv.on);
    const uint32_t st = check_args(m, n, k, fa, fw, passes, out_mode, cv, hd, &sel);
    uint32_t counters[4] = {0, 0, 0, 0};  // total, busy, input stalls, output stalls
    uint64_t cycles = ANT_CALL_OVERHEAD;
    if (st == ANT_ST_OK && m != 0) {
        const Plan plan = make_plan(m, n, k, fa, fw, sel, out_mode, cv, hd);
        run_call(a, w, y, p, plan, counters);
#ifdef __SYNTHESIS__
        cycles += counters[0];
#else
        cycles = ant_model_cycles(plan, last_stages_);
#endif
    }
    *status = st;
    *cycles_lo = static_cast<uint32_t>(cycles);
    *cycles_hi = static_cast<uint32_t>(cycles >> 32);
    *core_busy = counters[1];
    *stall_in = counters[2];
    *stall_out = counters[3];
}

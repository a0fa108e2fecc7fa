// tb_ant_gemm.cpp: C-simulation testbench of the HLS top function (make csim; g++ with hls/shim).
//
//   tb_ant_gemm GOLDEN|none [--epilogue FILE|none] [--random N] [--seed S]
//
// 1. The core model's decode of every 4-bit code equals the value table generated from
//    antq.core.formats (ANT_VALUES4 in ant_config.h).
// 2. Every case of tests/golden/gemm.txt: this file's packer reproduces the accelerator-packed bytes
//    (pa/pw) written by Python, and ant_gemm on those bytes returns the golden int64 result.
// 3. Every case of the epilogue golden file (tests/golden/epilogue.txt; by default the file beside
//    GOLDEN with "gemm" in its name replaced by "epilogue", if there is one): ant_gemm in the
//    requantization mode (out_mode, parameter buffer p) on a GEMM whose exact result is the case's
//    accumulators writes exactly the golden codes and packed bytes.
// 4. N random GEMMs (every type pair, int8 nibble passes, odd shapes, several tiles, K beyond
//    max_k at the worst-case PoT bound) against a direct int64 matmul of the table values, and
//    single int8 passes selected with the passes register, conv-mode calls (on-chip im2col of
//    a random NHWC source, conv_hw/conv_win) against the GEMM of the im2col done here, and
//    heads-mode calls (every rule: rows on A, kt and v on W, one side or both, from random 4-bit
//    sources, the six heads registers) against the GEMM of the block-diagonal operands built here;
//    which of them take the one-step-per-cycle fast path depends on the array (rows always, kt when
//    C <= R, v when 4C <= bus: the default 16x16 array on a 64-bit bus is fast for all three, 3x5
//    and 4x8 make kt one code per cycle, 8x32 or 32x32 on 64 bits v too).
// Exits 0 only if everything is bit-exact.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <ant_config.h>
#include "ant_gemm.h"
#include "golden_io.h"

#ifndef ANT_TB_RTL
int64_t ant_core_model_value(uint32_t side, uint32_t code);
#endif

namespace {

int failures = 0;

void fail(const std::string &what) {
    if (failures < 20) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
}

struct Type {
    uint32_t kind, sgn, bits;
    uint32_t word() const { return kind | (sgn << 2) | (bits << 4); }
    std::string name() const {
        static const char *kinds[] = {"int", "pot", "flint", "float"};
        return std::string(kinds[kind]) + std::to_string(bits) + (sgn ? "s" : "u");
    }
};

int64_t value(const Type &t, uint32_t code) {
    if (t.bits == 8) return t.sgn ? static_cast<int8_t>(code) : static_cast<int64_t>(code);
    return ANT_VALUES4[t.kind][t.sgn][code];
}

uint32_t gcd(uint32_t a, uint32_t b) { return b ? gcd(b, a % b) : a; }

// The accelerator layout of antq.core.pack (tile T, ANT_BUS_BITS bus), written independently:
// nibble index of (plane p, row r, step kk) of a rows x k operand.
struct Layout {
    uint32_t tile, planes;
    uint64_t plane_bytes, block_bytes;
    Layout(uint32_t rows, uint32_t k, uint32_t bits, uint32_t tile_) : tile(tile_), planes(bits > 4 ? 2 : 1) {
        const uint32_t step = 4 * tile, k_align = step / gcd(step, ANT_BUS_BITS) * ANT_BUS_BITS / step;
        const uint64_t kp = (k + k_align - 1) / k_align * k_align, rp = (rows + tile - 1) / tile * tile;
        plane_bytes = rp * kp / 2;
        block_bytes = tile * kp / 2;
    }
    uint64_t bytes() const { return planes * plane_bytes; }
    uint64_t nibble(uint32_t p, uint32_t r, uint32_t kk) const {
        return 2 * (p * plane_bytes + (r / tile) * block_bytes) + uint64_t{kk} * tile + r % tile;
    }
};

std::vector<uint8_t> pack(const std::vector<uint32_t> &codes, uint32_t rows, uint32_t k, uint32_t bits,
                          uint32_t tile) {
    const Layout l(rows, k, bits, tile);
    std::vector<uint8_t> out(l.bytes(), 0);
    for (uint32_t p = 0; p < l.planes; ++p)
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t kk = 0; kk < k; ++kk) {
                const uint32_t c = codes[uint64_t{r} * k + kk];
                const uint32_t nib = l.planes == 2 ? (p ? c >> 4 : c & 15u) : c;
                const uint64_t j = l.nibble(p, r, kk);
                out[j / 2] |= static_cast<uint8_t>(nib << (4 * (j & 1)));
            }
    return out;
}

// Code (r, kk) of a packed operand (the inverse of pack).
uint32_t unpack(const std::vector<uint8_t> &bytes, const Layout &l, uint32_t r, uint32_t kk) {
    uint32_t c = 0;
    for (uint32_t p = 0; p < l.planes; ++p) {
        const uint64_t j = l.nibble(p, r, kk);
        c |= ((bytes[j / 2] >> (4 * (j & 1))) & 15u) << (4 * p);
    }
    return c;
}

std::vector<bus_t> to_words(const std::vector<uint8_t> &bytes) {
    const size_t nb = ANT_BUS_BITS / 8;
    std::vector<bus_t> words((bytes.size() + nb - 1) / nb + 1);
    for (size_t i = 0; i < bytes.size(); ++i) {
        const int bit = static_cast<int>((i % nb) * 8);
        words[i / nb].range(bit + 7, bit) = bytes[i];
    }
    return words;
}

struct Result {
    std::vector<int64_t> y;
    uint32_t status, cycles_lo, cycles_hi, id, geometry, busy, stall_in, stall_out;
};

Result run(const std::vector<uint8_t> &pa, const std::vector<uint8_t> &pw, uint32_t m, uint32_t n,
           uint32_t k, const Type &ta, const Type &tw, uint32_t passes = 0, uint32_t conv_hw = 0,
           uint32_t conv_win = 0, const uint32_t *heads = nullptr) {
    static const uint32_t off[6] = {0, 0, 0, 0, 0, 0};
    const uint32_t *hr = heads ? heads : off;
    const std::vector<bus_t> wa = to_words(pa), ww = to_words(pw);
    if (wa.size() > ANT_COSIM_DEPTH || ww.size() > ANT_COSIM_DEPTH || uint64_t{m} * n + 1 > ANT_COSIM_DEPTH)
        fail("a " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
             " GEMM needs more than the m_axi depth of " + std::to_string(ANT_COSIM_DEPTH) +
             " elements that cosim models (ANT_COSIM_DEPTH)");
    Result r;
    r.y.assign(uint64_t{m} * n + 1, -12345);  // one guard element past the end
    ant_gemm(wa.data(), ww.data(), r.y.data(), nullptr, m, n, k, ta.word(), tw.word(), passes, 0, conv_hw, conv_win,
             hr[0], hr[1], hr[2], hr[3], hr[4], hr[5], &r.id, &r.geometry, &r.status, &r.cycles_lo, &r.cycles_hi,
             &r.busy, &r.stall_in, &r.stall_out);
    return r;
}

void check_result(const std::string &name, const Result &r, const std::vector<int64_t> &want) {
    if (r.status != ANT_ST_OK) return fail(name + ": status " + std::to_string(r.status));
    if (r.id != ANT_ID_WORD || r.geometry != ANT_GEOMETRY) return fail(name + ": id/geometry words");
    for (size_t i = 0; i < want.size(); ++i)
        if (r.y[i] != want[i]) {
            return fail(name + ": y[" + std::to_string(i) + "] = " + std::to_string(r.y[i]) + ", want " +
                        std::to_string(want[i]));
        }
    if (r.y[want.size()] != -12345) fail(name + ": wrote past the end of y");
}

std::vector<int64_t> matmul(const std::vector<uint32_t> &a, const std::vector<uint32_t> &w, uint32_t m,
                            uint32_t n, uint32_t k, const Type &ta, const Type &tw) {
    std::vector<int64_t> y(uint64_t{m} * n, 0);
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            int64_t s = 0;
            for (uint32_t kk = 0; kk < k; ++kk) s += value(ta, a[i * k + kk]) * value(tw, w[j * k + kk]);
            y[uint64_t{i} * n + j] = s;
        }
    return y;
}

// The C++ core model's decode tables against the generated ones. Built around the Verilated core
// (-DANT_TB_RTL, antq's tb_rtl target) there is no model: tests/rtl checks the Verilog decode.
int check_decode() {
    int n = 0;
#ifdef ANT_TB_RTL
    return n;
#endif
    for (uint32_t kind = 0; kind < 4; ++kind)
        for (uint32_t sgn = 0; sgn < 2; ++sgn)
            for (uint32_t code = 0; code < 16; ++code, ++n) {
#ifndef ANT_TB_RTL
                const int64_t got = ant_core_model_value(kind | (sgn << 2), code);
                if (got != ANT_VALUES4[kind][sgn][code])
                    fail("decode " + Type{kind, sgn, 4}.name() + " code " + std::to_string(code) + " = " +
                         std::to_string(got) + ", table says " + std::to_string(ANT_VALUES4[kind][sgn][code]));
#endif
            }
    return n;
}

int check_golden(const char *path) {
    return golden::read_gemm(
        path,
        [](const golden::GemmCase &c) {
            const Type ta{c.a_kind, c.a_sgn, c.a_bits}, tw{c.w_kind, c.w_sgn, c.w_bits};
            if (pack(c.a, c.m, c.k, ta.bits, ANT_ROWS) != c.pa) fail(c.name + ": C++ packing of a differs from pa");
            if (pack(c.w, c.n, c.k, tw.bits, ANT_COLS) != c.pw) fail(c.name + ": C++ packing of w differs from pw");
            check_result("golden " + c.name, run(c.pa, c.pw, c.m, c.n, c.k, ta, tw), c.y);
        },
        fail);
}

// ---- the epilogue mode on the golden epilogue vectors -----------------------------------------
//
// An epilogue case gives ROWS x COLS accumulators and the codes and packed bytes they must become;
// the IP makes its accumulators itself, so each case is run as a GEMM whose exact result is acc.
// Block-diagonal over the smaller side (b = m if ROWS <= COLS, else n): the L = 2 + Lq steps of
// block b hold "powers" on the block's own row (pot4u 1, 2^7, 2^14, ..., 2^14; zero elsewhere) and
// int8s "digits" on the other operand, so that for every element of block b
//   acc = r0 + r1 * 2^7 + (d_0 + ... + d_{Lq-1}) * 2^14,   0 <= r0, r1 < 128, -128 <= d_i < 128.
// K = blocks * L goes past max_k(pot4u, int8s) for the large accumulators, so the K split and the
// int64 sum of the jobs in drain are exercised too. The product is checked against acc directly
// (so a wrong construction is reported as such), then ant_gemm runs with out_mode and the case's
// parameter buffer (docs/contracts.md section 12), and the codes unpacked from its output and
// every output byte are compared with the golden ones. g++/csim only: the buffers exceed the
// cosim depth (the cosim arguments name no golden file).
const Type kPow{ANT_KIND_POT, 0, 4}, kDigit{ANT_KIND_INT, 1, 8};
constexpr int64_t kRadix = 1 << 14;

uint32_t pow_code(int64_t v) {
    for (uint32_t c = 0; c < 16; ++c)
        if (ANT_VALUES4[ANT_KIND_POT][0][c] == v) return c;
    std::fprintf(stderr, "pot4u has no code of value %lld\n", static_cast<long long>(v));
    std::exit(2);
}

struct EpiGemm {
    uint32_t m = 0, n = 0, k = 0;
    Type ta{}, tw{};
    std::vector<uint32_t> a, w;
};

bool epi_gemm(const golden::EpiCase &c, EpiGemm &g) {
    const bool by_row = c.rows <= c.cols;
    int64_t lq = 1;  // digits of 2^14 per element: |q| <= 127 * lq
    for (const int64_t v : c.acc) {
        const int64_t r = ((v % kRadix) + kRadix) % kRadix, q = (v - r) / kRadix;
        lq = std::max(lq, ((q < 0 ? -q : q) + 126) / 127);
    }
    const uint64_t steps = 2 + static_cast<uint64_t>(lq), blocks = by_row ? c.rows : c.cols;
    if (blocks * steps > (uint64_t{1} << 24)) {
        fail("epilogue " + c.name + ": accumulators too large to build as a GEMM (K > 2^24)");
        return false;
    }
    g.m = c.rows;
    g.n = c.cols;
    g.k = static_cast<uint32_t>(blocks * steps);
    g.ta = by_row ? kPow : kDigit;
    g.tw = by_row ? kDigit : kPow;
    g.a.assign(uint64_t{g.m} * g.k, 0);
    g.w.assign(uint64_t{g.n} * g.k, 0);
    std::vector<uint32_t> &pw = by_row ? g.a : g.w, &dg = by_row ? g.w : g.a;
    const uint32_t p0 = pow_code(1), p1 = pow_code(128), p2 = pow_code(kRadix);
    for (uint32_t b = 0; b < blocks; ++b) {
        const uint64_t base = uint64_t{b} * g.k + b * steps;
        pw[base] = p0;
        pw[base + 1] = p1;
        for (uint64_t l = 2; l < steps; ++l) pw[base + l] = p2;
    }
    for (uint32_t m = 0; m < c.rows; ++m)
        for (uint32_t n = 0; n < c.cols; ++n) {
            const int64_t v = c.acc[uint64_t{m} * c.cols + n];
            const int64_t r = ((v % kRadix) + kRadix) % kRadix;
            int64_t q = (v - r) / kRadix;
            const uint32_t b = by_row ? m : n, other = by_row ? n : m;
            uint32_t *d = &dg[uint64_t{other} * g.k + b * steps];
            d[0] = static_cast<uint32_t>(r & 127);
            d[1] = static_cast<uint32_t>(r >> 7);
            for (uint64_t l = 2; l < steps; ++l) {
                const int64_t digit = q > 127 ? 127 : (q < -128 ? -128 : q);
                d[l] = static_cast<uint32_t>(digit) & 0xFFu;
                q -= digit;
            }
        }
    if (matmul(g.a, g.w, g.m, g.n, g.k, g.ta, g.tw) != c.acc) {
        fail("epilogue " + c.name + ": the testbench's GEMM does not produce the case's accumulators");
        return false;
    }
    return true;
}

// The parameter buffer the IP reads (antq.core.epilogue.param_buffer): M[2i] | M[2i+1] << 32,
// then B[0 .. N-1], L, H and, for a 4-bit output format, the q-1 thresholds.
std::vector<int64_t> param_buffer(const golden::EpiCase &c) {
    std::vector<int64_t> p;
    for (uint32_t i = 0; i < (c.cols + 1) / 2; ++i) {
        const uint64_t lo = static_cast<uint32_t>(c.mult[2 * i]);
        const uint64_t hi = 2 * i + 1 < c.cols ? static_cast<uint32_t>(c.mult[2 * i + 1]) : 0;
        p.push_back(static_cast<int64_t>(lo | hi << 32));
    }
    p.insert(p.end(), c.bias.begin(), c.bias.end());
    p.push_back(c.lo);
    p.push_back(c.hi);
    if (c.bits == ANT_CODE_BITS) p.insert(p.end(), c.thr.begin(), c.thr.end());
    return p;
}

void check_epilogue_case(const golden::EpiCase &c) {
    const std::string name = "epilogue " + c.name;
    const size_t n_el = size_t{c.rows} * c.cols;
    if (c.mult.size() != c.cols || c.bias.size() != c.cols || c.acc.size() != n_el || c.codes.size() != n_el)
        return fail(name + ": record lengths do not match ROWS x COLS");
    for (const int64_t m : c.mult)
        if (m < 0 || m > 0xFFFFFFFFll) return fail(name + ": a multiplier does not fit 32 bits");
    EpiGemm g;
    if (!epi_gemm(c, g)) return;
    const std::vector<int64_t> prm = param_buffer(c);
    const std::vector<bus_t> wa = to_words(pack(g.a, g.m, g.k, g.ta.bits, ANT_ROWS));
    const std::vector<bus_t> ww = to_words(pack(g.w, g.n, g.k, g.tw.bits, ANT_COLS));
    const Layout out_layout(c.rows, c.cols, c.bits, ANT_ROWS);  // the next layer's activations, K = N
    if (c.packed.size() != out_layout.bytes() || c.packed.size() % 8)
        return fail(name + ": packed has " + std::to_string(c.packed.size()) + " bytes, the layout " +
                    std::to_string(out_layout.bytes()));
    const int64_t guard = 0x5A5A5A5A5A5A5A5All;
    std::vector<int64_t> y(c.packed.size() / 8 + 1, guard);  // one guard word past the end
    uint32_t id = 0, geometry = 0, status = 0, lo = 0, hi = 0, busy = 0, st_in = 0, st_out = 0;
    ant_gemm(wa.data(), ww.data(), y.data(), prm.data(), g.m, g.n, g.k, g.ta.word(), g.tw.word(), 0, c.out_mode(), 0, 0,
             0, 0, 0, 0, 0, 0, &id, &geometry, &status, &lo, &hi, &busy, &st_in, &st_out);
    if (status != ANT_ST_OK) return fail(name + ": status " + std::to_string(status));
    if (id != ANT_ID_WORD || geometry != ANT_GEOMETRY) return fail(name + ": id/geometry words");
    std::vector<uint8_t> got(c.packed.size());
    for (size_t i = 0; i < got.size(); ++i) got[i] = static_cast<uint8_t>(static_cast<uint64_t>(y[i / 8]) >> (8 * (i % 8)));
    for (uint32_t m = 0; m < c.rows; ++m)
        for (uint32_t n = 0; n < c.cols; ++n) {
            const uint32_t code = unpack(got, out_layout, m, n);
            const int64_t want = c.codes[size_t{m} * c.cols + n];
            if (code != want)
                return fail(name + ": code[" + std::to_string(m) + "," + std::to_string(n) + "] = " +
                            std::to_string(code) + ", want " + std::to_string(want));
        }
    for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != c.packed[i])
            return fail(name + ": packed byte " + std::to_string(i) + " = " + std::to_string(got[i]) + ", want " +
                        std::to_string(c.packed[i]));
    if (y.back() != guard) fail(name + ": wrote past the end of the packed output");
}

int check_epilogue(const char *path) { return golden::read_epilogue(path, check_epilogue_case, fail); }

// The epilogue golden file beside a GEMM one: "gemm" in its name becomes "epilogue"
// (tests/golden/gemm.txt -> epilogue.txt, a board's gemm_golden.txt -> epilogue_golden.txt).
std::string epilogue_beside(const std::string &gemm) {
    const size_t slash = gemm.find_last_of('/'), at = gemm.find("gemm", slash == std::string::npos ? 0 : slash);
    if (at == std::string::npos) return "";
    return gemm.substr(0, at) + "epilogue" + gemm.substr(at + 4);
}
// ---- heads mode (docs/contracts.md section 15) -------------------------------------------------
//
// One generated side: Rs x Ks source codes (packed as activations, tile R, whichever side) and the
// window: first column c0, head stride hs, first row r0.
struct HeadsSrc {
    uint32_t rule = 0;  // 1 rows (A), 2 kt, 3 v (W)
    uint32_t ks = 0, rs = 0, c0 = 0, hs = 0, r0 = 0;
    std::vector<uint32_t> codes;
};

// The operand (rows x K) of the element rules, written out here: step t = (s'*g + h')*L + k with
// L = D (rows, kt) or T (v); A row i = s*T + m, W row j = h*T + n (kt) or h*D + n (v); code 0 off
// the blocks and past the source's rows.
std::vector<uint32_t> heads_operand(const HeadsSrc &h, uint32_t g, uint32_t T, uint32_t D,
                                    uint32_t rows, uint32_t k) {
    std::vector<uint32_t> op(uint64_t{rows} * k, 0);
    const uint32_t len = h.rule == 3 ? T : D;
    for (uint32_t i = 0; i < rows; ++i)
        for (uint32_t t = 0; t < k; ++t) {
            const uint32_t kk = t % len, h1 = t / len % g, s1 = t / len / g;
            uint32_t row = 0, col = 0;
            if (h.rule == 1) {  // rows: A[s*T + m, (s, h', k)] = src(r0 + s*T + m, c0 + h'*hs + k)
                if (s1 != i / T) continue;
                row = h.r0 + i;
                col = h.c0 + h1 * h.hs + kk;
            } else if (h.rule == 2) {  // kt: W[h*T + n, (s', h, k)] = src(r0 + s'*T + n, c0 + h*hs + k)
                if (h1 != i / T) continue;
                row = h.r0 + s1 * T + i % T;
                col = h.c0 + h1 * h.hs + kk;
            } else {  // v: W[h*D + n, (s', h, k)] = src(r0 + s'*T + k, c0 + h*hs + n)
                if (h1 != i / D) continue;
                row = h.r0 + s1 * T + kk;
                col = h.c0 + h1 * h.hs + i % D;
            }
            if (row < h.rs) op[uint64_t{i} * k + t] = h.codes[uint64_t{row} * h.ks + col];
        }
    return op;
}

int check_random(int count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<Type> types;
    for (uint32_t kind = 0; kind < 4; ++kind)
        for (uint32_t sgn = 0; sgn < 2; ++sgn) types.push_back({kind, sgn, 4});
    types.push_back({ANT_KIND_INT, 0, 8});
    types.push_back({ANT_KIND_INT, 1, 8});
    auto uni = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
    auto codes = [&](const Type &t, uint32_t count_) {
        std::vector<uint32_t> v(count_);
        for (auto &c : v) c = uni(0, (1u << t.bits) - 1);
        return v;
    };
    int done = 0;
    // Every type pair once, then random pairs; shapes up to a few tiles with odd edges.
    for (int i = 0; i < count; ++i, ++done) {
        const Type ta = i < 100 ? types[i / 10 % 10] : types[uni(0, 9)];
        const Type tw = i < 100 ? types[i % 10] : types[uni(0, 9)];
        const uint32_t m = uni(1, 3 * ANT_ROWS + 3), n = uni(1, 3 * ANT_COLS + 3), k = uni(1, 300);
        const std::vector<uint32_t> a = codes(ta, m * k), w = codes(tw, n * k);
        if (ant_max_k(ta.word(), tw.word()) == 0) {  // narrow accumulators: the pair is refused
            const Result r = run(pack(a, m, k, ta.bits, ANT_ROWS), pack(w, n, k, tw.bits, ANT_COLS), m, n, k, ta, tw);
            if (r.status != ANT_ST_BAD_PAIR) fail("pair " + ta.name() + " x " + tw.name() + " not refused");
            continue;
        }
        check_result("random " + ta.name() + " x " + tw.name() + " " + std::to_string(m) + "x" +
                         std::to_string(n) + "x" + std::to_string(k),
                     run(pack(a, m, k, ta.bits, ANT_ROWS), pack(w, n, k, tw.bits, ANT_COLS), m, n, k, ta, tw),
                     matmul(a, w, m, n, k, ta, tw));
    }
    // K beyond max_k at the worst-case bound: pot4u x pot4s, every product at +-2^20.
    if (ant_max_k(Type{ANT_KIND_POT, 0, 4}.word(), Type{ANT_KIND_POT, 1, 4}.word())) {
        const Type ta{ANT_KIND_POT, 0, 4}, tw{ANT_KIND_POT, 1, 4};
        const uint32_t max_k = ant_max_k(ta.word(), tw.word()), k = 2 * max_k + 77, m = 3, n = 2;
        std::vector<uint32_t> a(m * k, 15), w(n * k, 7);  // 2^14 and +2^6 / -2^6
        for (uint32_t kk = 0; kk < k; ++kk) w[k + kk] = 15;
        check_result("K split pot4u x pot4s K=" + std::to_string(k),
                     run(pack(a, m, k, 4, ANT_ROWS), pack(w, n, k, 4, ANT_COLS), m, n, k, ta, tw),
                     matmul(a, w, m, n, k, ta, tw));
        ++done;
    }
    // Single int8 passes: the passes register selects one (a_hi, w_hi) nibble product.
    {
        const Type ta{ANT_KIND_INT, 1, 8}, tw{ANT_KIND_INT, 1, 8};
        const uint32_t m = 5, n = 9, k = 21;
        const std::vector<uint32_t> a = codes(ta, m * k), w = codes(tw, n * k);
        for (uint32_t p = 0; p < 4; ++p) {
            const uint32_t ah = p >> 1, wh = p & 1;
            std::vector<uint32_t> na(a), nw(w);
            for (auto &c : na) c = ah ? c >> 4 : c & 15u;
            for (auto &c : nw) c = wh ? c >> 4 : c & 15u;
            const Type pa{ANT_KIND_INT, ah ? 1u : 0u, 4}, pw{ANT_KIND_INT, wh ? 1u : 0u, 4};
            std::vector<int64_t> want = matmul(na, nw, m, n, k, pa, pw);
            for (auto &v : want) v <<= 4 * (ah + wh);
            check_result("int8 pass " + std::to_string(p),
                         run(pack(a, m, k, 8, ANT_ROWS), pack(w, n, k, 8, ANT_COLS), m, n, k, ta, tw, 1u << p), want);
            ++done;
        }
    }
    // Conv mode: the IP's on-chip im2col of a random NHWC source (B*H*W rows x C) against the GEMM
    // of the im2col done here (rows (b, oy, ox), K (c, i, j), code 0 outside the image).
    for (int i = 0; i < 24; ++i) {
        const Type ta = types[uni(0, 9)], tw = types[uni(0, 7)];
        if (ant_max_k(ta.word(), tw.word()) == 0) continue;
        const bool same = i % 3 == 0;  // 3x3 pad 1 stride 1: the fast path
        const uint32_t b = uni(1, 2), c = uni(1, 6), h = uni(1, 9), wd = uni(1, 9);
        const uint32_t kh = same ? 3 : uni(1, 3), kw = same ? 3 : uni(1, 3), sh = same ? 1 : uni(1, 2),
                       sw = same ? 1 : uni(1, 2), ph = same ? 1 : uni(0, 1), pw = same ? 1 : uni(0, 1),
                       dh = same ? 1 : uni(1, 2), dw = same ? 1 : uni(1, 2);
        const int oh_ = (static_cast<int>(h) + 2 * static_cast<int>(ph) - static_cast<int>(dh * (kh - 1)) - 1);
        const int ow_ = (static_cast<int>(wd) + 2 * static_cast<int>(pw) - static_cast<int>(dw * (kw - 1)) - 1);
        if (oh_ < 0 || ow_ < 0) continue;
        const uint32_t oh = static_cast<uint32_t>(oh_) / sh + 1, ow = static_cast<uint32_t>(ow_) / sw + 1;
        const uint32_t m = b * oh * ow, k = c * kh * kw, n = uni(1, 2 * ANT_COLS + 1), rows = b * h * wd;
        const std::vector<uint32_t> src = codes(ta, rows * c), w = codes(tw, n * k);
        std::vector<uint32_t> a(uint64_t{m} * k, 0);
        for (uint32_t bb = 0; bb < b; ++bb)
            for (uint32_t oy = 0; oy < oh; ++oy)
                for (uint32_t ox = 0; ox < ow; ++ox)
                    for (uint32_t cc = 0; cc < c; ++cc)
                        for (uint32_t ki = 0; ki < kh; ++ki)
                            for (uint32_t kj = 0; kj < kw; ++kj) {
                                const int iy = static_cast<int>(oy * sh + ki * dh) - static_cast<int>(ph);
                                const int ix = static_cast<int>(ox * sw + kj * dw) - static_cast<int>(pw);
                                if (iy < 0 || ix < 0 || iy >= static_cast<int>(h) || ix >= static_cast<int>(wd))
                                    continue;
                                const uint32_t row = (bb * h + static_cast<uint32_t>(iy)) * wd + static_cast<uint32_t>(ix);
                                a[uint64_t{(bb * oh + oy) * ow + ox} * k + (cc * kh + ki) * kw + kj] = src[row * c + cc];
                            }
        const uint32_t conv_hw = h | wd << 16;
        const uint32_t win = kh | kw << 4 | sh << 8 | sw << 12 | ph << 16 | pw << 20 | dh << 24 | dw << 28;
        check_result("conv " + ta.name() + " x " + tw.name() + " " + std::to_string(b) + "x" + std::to_string(c) +
                         "x" + std::to_string(h) + "x" + std::to_string(wd) + " win " + std::to_string(win),
                     run(pack(src, rows, c, ta.bits, ANT_ROWS), pack(w, n, k, tw.bits, ANT_COLS), m, n, k, ta, tw, 0,
                         conv_hw, win),
                     matmul(a, w, m, n, k, ta, tw));
        ++done;
    }
    // Heads mode: (rows, -), (-, kt), (-, v), (rows, kt), (rows, v: D = T), random S, g, T, D,
    // first rows r0 inside the first row tile, source rows cut short (samples past the batch), a
    // head stride wider than D or (every third case) narrower (heads overlapping, hs = 0 too), and
    // on the other side any format read as packed. Pairs such as pot4u x pot4u (J = 7) split K.
    for (int i = 0; i < 30; ++i) {
        const uint32_t combo = static_cast<uint32_t>(i) % 5;
        const uint32_t ra = combo == 0 || combo >= 3 ? 1 : 0, rw = combo == 1 || combo == 3 ? 2 : combo == 0 ? 0 : 3;
        // T < 41 keeps M x N within ANT_COSIM_DEPTH on wide arrays (R = 32)
        const uint32_t S = uni(1, 3), g = uni(1, 3), T = uni(1, std::min(2 * ANT_ROWS + 3, 40));
        const uint32_t D = ra && rw == 3 ? T : uni(1, 9);
        const Type ta = ra ? types[uni(0, 7)] : types[uni(0, 9)], tw = rw ? types[uni(0, 7)] : types[uni(0, 9)];
        if (ant_max_k(ta.word(), tw.word()) == 0) continue;
        const uint32_t k = rw == 3 ? S * g * T : S * g * D;
        const uint32_t m = ra ? S * T - uni(0, T - 1) : uni(1, 2 * ANT_ROWS + 3);
        const uint32_t n = rw == 2 ? g * T : rw == 3 ? g * D : uni(1, 2 * ANT_COLS + 3);
        HeadsSrc side[2];
        std::vector<uint32_t> op[2];
        std::vector<uint8_t> packed[2];
        uint32_t regs[6] = {ra | rw << 2 | S << 4 | g << 12, T | D << 16, 0, 0, 0, 0};
        for (int sd = 0; sd < 2; ++sd) {
            const uint32_t rule = sd ? rw : ra, rows = sd ? n : m;
            const Type &t = sd ? tw : ta;
            if (!rule) {
                op[sd] = codes(t, rows * k);
                packed[sd] = pack(op[sd], rows, k, t.bits, sd ? ANT_COLS : ANT_ROWS);
                continue;
            }
            HeadsSrc &h = side[sd];
            h.rule = rule;
            h.r0 = uni(0, ANT_ROWS - 1);
            h.hs = i % 3 == 2 ? uni(0, D) : D + uni(0, 2);
            h.c0 = uni(0, 3);
            h.ks = h.c0 + (g - 1) * h.hs + D + uni(0, 3);
            h.rs = h.r0 + S * T - (i % 2 ? uni(0, T - 1) : 0);
            h.codes = codes(t, h.rs * h.ks);
            op[sd] = heads_operand(h, g, T, D, rows, k);
            packed[sd] = pack(h.codes, h.rs, h.ks, 4, ANT_ROWS);  // a source is packed as activations
            regs[2 + 2 * sd] = h.ks | h.rs << 16;
            regs[3 + 2 * sd] = h.c0 | h.hs << 16 | h.r0 << 24;
        }
        check_result("heads " + ta.name() + " x " + tw.name() + " rules " + std::to_string(ra) + "," +
                         std::to_string(rw) + " S=" + std::to_string(S) + " g=" + std::to_string(g) + " T=" +
                         std::to_string(T) + " D=" + std::to_string(D) + " " + std::to_string(m) + "x" +
                         std::to_string(n) + "x" + std::to_string(k),
                     run(packed[0], packed[1], m, n, k, ta, tw, 0, 0, 0, regs), matmul(op[0], op[1], m, n, k, ta, tw));
        ++done;
    }
    return done;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s GOLDEN|none [--epilogue FILE|none] [--random N] [--seed S]\n", argv[0]);
        return 2;
    }
    int count = 200;
    uint32_t seed = 1;
    const bool have_gemm = std::strcmp(argv[1], "none") != 0;
    std::string epi = have_gemm ? epilogue_beside(argv[1]) : "";
    bool epi_given = false;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--random")) count = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--seed")) seed = static_cast<uint32_t>(std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--epilogue")) {
            epi = std::strcmp(argv[i + 1], "none") ? argv[i + 1] : "";
            epi_given = true;
        } else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!epi_given && !epi.empty() && !std::ifstream(epi)) {  // no epilogue vectors beside GOLDEN
        std::printf("note: no epilogue golden file %s: the epilogue mode is not checked\n", epi.c_str());
        epi.clear();
    }
    const int decoded = check_decode();
    const int gemm_cases = have_gemm ? check_golden(argv[1]) : 0;
    const int epi_cases = epi.empty() ? 0 : check_epilogue(epi.c_str());
    const int random = check_random(count, seed);
#ifdef ANT_TB_RTL
    std::printf("[Verilog core] ");
#endif
    std::printf("csim %ux%u array, %u-bit bus: %d codes decoded, %d golden cases, %d epilogue cases, "
                "%d random GEMMs: %s\n",
                ANT_ROWS, ANT_COLS, ANT_BUS_BITS, decoded, gemm_cases, epi_cases, random,
                failures ? "FAILED" : "all bit-exact");
    if (failures) std::printf("%d failures\n", failures);
    const bool kt_fast = ANT_COLS <= ANT_ROWS, v_fast = 4 * ANT_COLS <= ANT_BUS_BITS;  // ref.heads_fast
    std::printf("heads mode on this array: rows one step per cycle, kt %s, v %s\n",
                kt_fast ? "one step per cycle (C <= R)" : "one code per cycle (C > R)",
                v_fast ? "one step per cycle (4C <= bus)" : "one code per cycle (4C > bus)");
    return failures ? 1 : 0;
}

// tb_epilogue.cpp: the HLS epilogue (hls/ant_epilogue.h) on the golden vectors (g++ with hls/shim).
//
//   tb_epilogue GOLDEN        GOLDEN = tests/golden/epilogue.txt (antq.core.golden.write_epilogue)
//
// For every case: the thresholds the IP is given (thr) equal (G_j + G_{j+1}) << (S-1) of the
// format's grid (ANT_VALUES4 / int8), every code ant_epi::code computes equals the golden code,
// and the bytes the IP's tile packer writes (ant_epi::run_word at ant_epi::run_offset, tile by
// tile as store_y writes them) equal the golden packed buffer. Exits 0 only if all are exact.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <ant_config.h>
#include "ant_epilogue.h"
#include "golden_io.h"

namespace {

int failures = 0;

void fail(const std::string &what) {
    if (failures < 20) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
}

using Case = golden::EpiCase;

// The grid G_0 < ... < G_{q-1} of the output format in integer units.
std::vector<int64_t> grid(const Case &c, uint32_t kind) {
    std::vector<int64_t> g;
    if (c.bits == 8) {
        for (int64_t v = c.sgn ? -128 : 0; v <= (c.sgn ? 127 : 255); ++v) g.push_back(v);
        return g;
    }
    for (uint32_t code = 0; code < 16; ++code) g.push_back(ANT_VALUES4[kind][c.sgn][code]);
    std::sort(g.begin(), g.end());
    g.erase(std::unique(g.begin(), g.end()), g.end());
    return g;
}

void check(const Case &c) {
    const uint32_t kind = golden::kind_id(c.kind);
    const ant_epi::Out o = ant_epi::decode_out(c.out_mode());
    if (!o.ok) return fail(c.name + ": out_mode word not accepted by ant_epi::decode_out");
    const std::vector<int64_t> g = grid(c, kind);
    if (c.thr.size() != g.size() - 1) return fail(c.name + ": thr has the wrong length");
    for (size_t j = 0; j + 1 < g.size(); ++j)
        if (c.thr[j] != static_cast<int64_t>(static_cast<uint64_t>(g[j] + g[j + 1]) << (c.shift - 1)))
            return fail(c.name + ": thr[" + std::to_string(j) + "] is not (G_j + G_j+1) << (S-1)");
    if (o.nthr != (c.bits == 8 ? 0u : g.size() - 1)) return fail(c.name + ": threshold count");
    int64_t thr[ant_epi::kMaxThr] = {0};
    for (uint32_t j = 0; j < o.nthr; ++j) thr[j] = c.thr[j];
    const size_t n_el = size_t{c.rows} * c.cols;
    if (c.mult.size() != c.cols || c.bias.size() != c.cols || c.acc.size() != n_el || c.codes.size() != n_el)
        return fail(c.name + ": record lengths do not match ROWS x COLS");
    std::vector<uint8_t> codes(n_el);
    for (uint32_t m = 0; m < c.rows; ++m)
        for (uint32_t n = 0; n < c.cols; ++n) {
            const size_t i = size_t{m} * c.cols + n;
            codes[i] = static_cast<uint8_t>(ant_epi::code(c.acc[i], c.mult[n], c.bias[n], c.lo, c.hi, o, thr));
            if (codes[i] != c.codes[i]) {
                fail(c.name + ": code[" + std::to_string(m) + "," + std::to_string(n) + "] = " +
                     std::to_string(codes[i]) + ", want " + std::to_string(c.codes[i]));
                return;
            }
        }
    // The packed output, tile by tile through the IP's packer.
    std::vector<uint64_t> out(c.packed.size() / 8 + 1, 0x5A5A5A5A5A5A5A5Aull);  // one guard word
    std::vector<bool> written(out.size(), false);
    for (uint32_t m0 = 0; m0 < c.rows; m0 += ANT_ROWS)
        for (uint32_t n0 = 0; n0 < c.cols; n0 += ANT_COLS) {
            uint8_t tile[ANT_ROWS][ANT_COLS] = {{0}};
            for (uint32_t r = 0; r < ANT_ROWS && m0 + r < c.rows; ++r)
                for (uint32_t s = 0; s < ANT_COLS && n0 + s < c.cols; ++s)
                    tile[r][s] = codes[size_t{m0 + r} * c.cols + n0 + s];
            const uint32_t words = ant_epi::run_words(ant_epi::run_steps(n0, c.cols));
            for (uint32_t pl = 0; pl < o.planes; ++pl) {
                const uint64_t base = ant_epi::run_offset(m0, n0, pl, c.rows, c.cols);
                for (uint32_t w = 0; w < words; ++w) {
                    if (base + w >= out.size() - 1) return fail(c.name + ": a tile writes past the buffer");
                    if (written[base + w]) return fail(c.name + ": two tiles write one word");
                    written[base + w] = true;
                    out[base + w] = ant_epi::run_word(tile, w, o, pl);
                }
            }
        }
    if (c.packed.size() % 8) return fail(c.name + ": packed is not whole 64-bit words");
    for (size_t i = 0; i < c.packed.size(); ++i) {
        const uint8_t b = static_cast<uint8_t>(out[i / 8] >> (8 * (i % 8)));
        if (!written[i / 8]) return fail(c.name + ": packed word " + std::to_string(i / 8) + " not written");
        if (b != c.packed[i])
            return fail(c.name + ": packed byte " + std::to_string(i) + " = " + std::to_string(b) + ", want " +
                        std::to_string(c.packed[i]));
    }
    if (out.back() != 0x5A5A5A5A5A5A5A5Aull) fail(c.name + ": wrote past the end");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: tb_epilogue GOLDEN\n");
        return 2;
    }
    if (!ant_epi::tiles_ok()) {
        std::fprintf(stderr, "a %dx%d array on a %d-bit bus does not write whole words per tile\n", ANT_ROWS,
                     ANT_COLS, ANT_BUS_BITS);
        return 2;
    }
    const int cases = golden::read_epilogue(argv[1], check, fail);
    std::printf("tb_epilogue: %d golden cases, %dx%d array, %d-bit bus\n", cases, ANT_ROWS, ANT_COLS, ANT_BUS_BITS);
    if (failures) {
        std::printf("%d FAILURES\n", failures);
        return 1;
    }
    std::printf("all bit-exact (codes and packed bytes)\n");
    return 0;
}

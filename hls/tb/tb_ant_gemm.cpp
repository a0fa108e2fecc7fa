// tb_ant_gemm.cpp: C-simulation testbench of the HLS top function (make csim; g++ with hls/shim).
//
//   tb_ant_gemm GOLDEN|none [--random N] [--seed S]
//
// 1. The core model's decode of every 4-bit code equals the value table generated from
//    antq.core.formats (ANT_VALUES4 in ant_config.h).
// 2. Every case of tests/golden/gemm.txt: this file's packer reproduces the accelerator-packed bytes
//    (pa/pw) written by Python, and ant_gemm on those bytes returns the golden int64 result.
// 3. N random GEMMs (every type pair, int8 nibble passes, odd shapes, several tiles, K beyond
//    max_k at the worst-case PoT bound) against a direct int64 matmul of the table values, and
//    single int8 passes selected with the passes register.
// Exits 0 only if everything is bit-exact.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <ant_config.h>
#include "ant_gemm.h"

int64_t ant_core_model_value(uint32_t side, uint32_t code);

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

int kind_id(const std::string &k) {
    if (k == "int") return ANT_KIND_INT;
    if (k == "pot") return ANT_KIND_POT;
    if (k == "flint") return ANT_KIND_FLINT;
    if (k == "float") return ANT_KIND_FLOAT;
    std::fprintf(stderr, "unknown kind %s\n", k.c_str());
    std::exit(2);
}

int64_t value(const Type &t, uint32_t code) {
    if (t.bits == 8) return t.sgn ? static_cast<int8_t>(code) : static_cast<int64_t>(code);
    return ANT_VALUES4[t.kind][t.sgn][code];
}

uint32_t gcd(uint32_t a, uint32_t b) { return b ? gcd(b, a % b) : a; }

// The accelerator layout of antq.core.pack (tile T, ANT_BUS_BITS bus), written independently.
std::vector<uint8_t> pack(const std::vector<uint32_t> &codes, uint32_t rows, uint32_t k, uint32_t bits,
                          uint32_t tile) {
    const uint32_t step = 4 * tile, k_align = step / gcd(step, ANT_BUS_BITS) * ANT_BUS_BITS / step;
    const uint64_t kp = (k + k_align - 1) / k_align * k_align, rp = (rows + tile - 1) / tile * tile;
    const uint32_t planes = bits > 4 ? 2 : 1;
    const uint64_t plane_bytes = rp * kp / 2, block_bytes = tile * kp / 2;
    std::vector<uint8_t> out(planes * plane_bytes, 0);
    for (uint32_t p = 0; p < planes; ++p)
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t kk = 0; kk < k; ++kk) {
                const uint32_t c = codes[r * k + kk];
                const uint32_t nib = planes == 2 ? (p ? c >> 4 : c & 15u) : c;
                const uint64_t j = uint64_t{kk} * tile + r % tile;
                out[p * plane_bytes + (r / tile) * block_bytes + j / 2] |= static_cast<uint8_t>(nib << (4 * (j & 1)));
            }
    return out;
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
           uint32_t k, const Type &ta, const Type &tw, uint32_t passes = 0) {
    const std::vector<bus_t> wa = to_words(pa), ww = to_words(pw);
    if (wa.size() > ANT_COSIM_DEPTH || ww.size() > ANT_COSIM_DEPTH || uint64_t{m} * n + 1 > ANT_COSIM_DEPTH)
        fail("a " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
             " GEMM needs more than the m_axi depth of " + std::to_string(ANT_COSIM_DEPTH) +
             " elements that cosim models (ANT_COSIM_DEPTH)");
    Result r;
    r.y.assign(uint64_t{m} * n + 1, -12345);  // one guard element past the end
    ant_gemm(wa.data(), ww.data(), r.y.data(), nullptr, m, n, k, ta.word(), tw.word(), passes, 0, &r.id,
             &r.geometry, &r.status, &r.cycles_lo, &r.cycles_hi, &r.busy, &r.stall_in, &r.stall_out);
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

std::vector<uint8_t> parse_hex(const std::string &hex) {
    std::vector<uint8_t> out(hex.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

int check_decode() {
    int n = 0;
    for (uint32_t kind = 0; kind < 4; ++kind)
        for (uint32_t sgn = 0; sgn < 2; ++sgn)
            for (uint32_t code = 0; code < 16; ++code, ++n) {
                const int64_t got = ant_core_model_value(kind | (sgn << 2), code);
                if (got != ANT_VALUES4[kind][sgn][code])
                    fail("decode " + Type{kind, sgn, 4}.name() + " code " + std::to_string(code) + " = " +
                         std::to_string(got) + ", table says " + std::to_string(ANT_VALUES4[kind][sgn][code]));
            }
    return n;
}

int check_golden(const char *path) {
    std::ifstream f(path);
    if (!f) {
        std::fprintf(stderr, "cannot open golden file %s\n", path);
        std::exit(2);
    }
    std::string line, name;
    Type ta{}, tw{};
    uint32_t m = 0, n = 0, k = 0;
    std::vector<uint32_t> a, w;
    std::vector<uint8_t> pa, pw;
    std::vector<int64_t> y;
    int cases = 0;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "array") {
            uint32_t r, c, b;
            in >> r >> c >> b;
            if (r != ANT_ROWS || c != ANT_COLS || b != ANT_BUS_BITS) {
                std::fprintf(stderr, "golden file is for a %ux%u array with a %u-bit bus; this build is %ux%u, %u\n",
                             r, c, b, ANT_ROWS, ANT_COLS, ANT_BUS_BITS);
                std::exit(2);
            }
        } else if (tag == "case") {
            std::string ak, wk;
            in >> name >> ak >> ta.bits >> ta.sgn >> wk >> tw.bits >> tw.sgn >> m >> n >> k;
            ta.kind = kind_id(ak);
            tw.kind = kind_id(wk);
        } else if (tag == "a" || tag == "w") {
            std::vector<uint32_t> &v = tag == "a" ? a : w;
            v.clear();
            for (uint32_t x; in >> x;) v.push_back(x);
        } else if (tag == "pa" || tag == "pw") {
            std::string hex;
            in >> hex;
            (tag == "pa" ? pa : pw) = parse_hex(hex);
        } else if (tag == "y") {
            y.clear();
            for (long long x; in >> x;) y.push_back(x);
        } else if (tag == "end") {
            if (pack(a, m, k, ta.bits, ANT_ROWS) != pa) fail(name + ": C++ packing of a differs from pa");
            if (pack(w, n, k, tw.bits, ANT_COLS) != pw) fail(name + ": C++ packing of w differs from pw");
            check_result("golden " + name, run(pa, pw, m, n, k, ta, tw), y);
            ++cases;
        }
    }
    return cases;
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
    return done;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s GOLDEN|none [--random N] [--seed S]\n", argv[0]);
        return 2;
    }
    int count = 200;
    uint32_t seed = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--random")) count = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--seed")) seed = static_cast<uint32_t>(std::atoi(argv[i + 1]));
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const int decoded = check_decode();
    const int golden = std::strcmp(argv[1], "none") ? check_golden(argv[1]) : 0;
    const int random = check_random(count, seed);
    std::printf("csim %ux%u array, %u-bit bus: %d codes decoded, %d golden cases, %d random GEMMs: %s\n",
                ANT_ROWS, ANT_COLS, ANT_BUS_BITS, decoded, golden, random,
                failures ? "FAILED" : "all bit-exact");
    if (failures) std::printf("%d failures\n", failures);
    return failures ? 1 : 0;
}

// golden_io.h: readers of the golden-vector files (antq.core.golden) shared by the testbenches
// hls/tb/tb_ant_gemm.cpp (Vitis csim and g++) and hls/tb/tb_epilogue.cpp (g++).
//
//   gemm.txt      array, then per case: case / a / w / pa / pw / y / end   (golden.write)
//   epilogue.txt  array, then per case: case / mult / bias / thr / acc / codes / packed / end
//                                                                          (golden.write_epilogue)
//
// Both files start with `array R C BUS_BITS`; a file for another array than this build's
// (ant_config.h) is refused with exit status 2, as is a file that cannot be opened. Records are
// whitespace separated, integers decimal (int64, strtoll), byte strings hex.
#ifndef ANT_TB_GOLDEN_IO_H
#define ANT_TB_GOLDEN_IO_H

#include <stdint.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ant_config.h>

namespace golden {

// ANT_KIND_* of a kind name; exits 2 on an unknown one.
inline uint32_t kind_id(const std::string &k) {
    if (k == "int") return ANT_KIND_INT;
    if (k == "pot") return ANT_KIND_POT;
    if (k == "flint") return ANT_KIND_FLINT;
    if (k == "float") return ANT_KIND_FLOAT;
    std::fprintf(stderr, "unknown kind %s\n", k.c_str());
    std::exit(2);
}

inline std::vector<uint8_t> parse_hex(const std::string &hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::strtoul(hex.substr(i, 2).c_str(), nullptr, 16)));
    return out;
}

// The rest of a record as int64 values.
inline std::vector<int64_t> ints(std::istringstream &in) {
    std::vector<int64_t> v;
    std::string tok;
    while (in >> tok) v.push_back(std::strtoll(tok.c_str(), nullptr, 10));
    return v;
}

// The rest of an `array R C BUS_BITS` record; exits 2 unless it is this build's array.
inline void check_array(std::istringstream &in, const char *path) {
    long r = 0, c = 0, b = 0;
    in >> r >> c >> b;
    if (r != ANT_ROWS || c != ANT_COLS || b != ANT_BUS_BITS) {
        std::fprintf(stderr, "golden file is for a %ldx%ld array on a %ld-bit bus, this build is %dx%d, %d (%s)\n",
                     r, c, b, ANT_ROWS, ANT_COLS, ANT_BUS_BITS, path);
        std::exit(2);
    }
}

inline std::ifstream open(const char *path) {
    std::ifstream f(path);
    if (!f) {
        std::fprintf(stderr, "cannot open golden file %s\n", path);
        std::exit(2);
    }
    return f;
}

// One case of gemm.txt: operand formats (kind id, bits, signed), shape, codes, packed bytes, Y.
struct GemmCase {
    std::string name;
    uint32_t a_kind = 0, a_bits = 0, a_sgn = 0, w_kind = 0, w_bits = 0, w_sgn = 0, m = 0, n = 0, k = 0;
    std::vector<uint32_t> a, w;
    std::vector<uint8_t> pa, pw;
    std::vector<int64_t> y;
};

// Calls on_case(const GemmCase &) for every case of a gemm.txt file; returns the case count.
// A record it does not know is passed to on_error(const std::string &).
template <typename OnCase, typename OnError>
int read_gemm(const char *path, OnCase on_case, OnError on_error) {
    std::ifstream f = open(path);
    std::string line;
    GemmCase c;
    int cases = 0;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "array") {
            check_array(in, path);
        } else if (tag == "case") {
            c = GemmCase();
            std::string ak, wk;
            in >> c.name >> ak >> c.a_bits >> c.a_sgn >> wk >> c.w_bits >> c.w_sgn >> c.m >> c.n >> c.k;
            if (!in) on_error("malformed case line: " + line);
            c.a_kind = kind_id(ak);
            c.w_kind = kind_id(wk);
        } else if (tag == "a" || tag == "w") {
            std::vector<uint32_t> &v = tag == "a" ? c.a : c.w;
            for (uint32_t x; in >> x;) v.push_back(x);
        } else if (tag == "pa" || tag == "pw") {
            std::string hex;
            in >> hex;
            (tag == "pa" ? c.pa : c.pw) = parse_hex(hex);
        } else if (tag == "y") {
            c.y = ints(in);
        } else if (tag == "end") {
            on_case(static_cast<const GemmCase &>(c));
            ++cases;
        } else {
            on_error("unknown record '" + tag + "' in " + path);
        }
    }
    return cases;
}

// One case of epilogue.txt: output format (kind name, bits, signed), ROWS x COLS, S, L, H,
// ACC_MAX, the per-column M[n] and B[n], the thresholds, the accumulators and the expected codes
// and packed bytes (accelerator activation layout, tile R, K = COLS).
struct EpiCase {
    std::string name, kind;
    uint32_t bits = 0, sgn = 0, rows = 0, cols = 0, shift = 0;
    int64_t lo = 0, hi = 0, acc_max = 0;
    std::vector<int64_t> mult, bias, thr, acc, codes;
    std::vector<uint8_t> packed;

    // The out_mode register of the case: type word | S << 8 (antq.core.regmap.encode_out_mode).
    uint32_t out_mode() const { return kind_id(kind) | (sgn << 2) | (bits << 4) | (shift << 8); }
};

// Calls on_case(const EpiCase &) for every case of an epilogue.txt file; returns the case count.
// Malformed input (a bad case line, an unknown record, a case without `end`) goes to on_error.
template <typename OnCase, typename OnError>
int read_epilogue(const char *path, OnCase on_case, OnError on_error) {
    std::ifstream f = open(path);
    std::string line;
    EpiCase c;
    int cases = 0;
    bool in_case = false;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "array") {
            check_array(in, path);
        } else if (tag == "case") {
            c = EpiCase();
            std::string lo, hi, acc_max;
            in >> c.name >> c.kind >> c.bits >> c.sgn >> c.rows >> c.cols >> c.shift >> lo >> hi >> acc_max;
            if (!in) {
                on_error("malformed case line: " + line);
                continue;
            }
            c.lo = std::strtoll(lo.c_str(), nullptr, 10);
            c.hi = std::strtoll(hi.c_str(), nullptr, 10);
            c.acc_max = std::strtoll(acc_max.c_str(), nullptr, 10);
            in_case = true;
        } else if (tag == "mult") {
            c.mult = ints(in);
        } else if (tag == "bias") {
            c.bias = ints(in);
        } else if (tag == "thr") {
            c.thr = ints(in);
        } else if (tag == "acc") {
            c.acc = ints(in);
        } else if (tag == "codes") {
            c.codes = ints(in);
        } else if (tag == "packed") {
            std::string hex;
            in >> hex;
            c.packed = parse_hex(hex);
        } else if (tag == "end") {
            if (!in_case) {
                on_error("'end' without a case");
                continue;
            }
            on_case(static_cast<const EpiCase &>(c));
            ++cases;
            in_case = false;
        } else {
            on_error("unknown record '" + tag + "'");
        }
    }
    if (in_case) on_error("the last case has no 'end'");
    return cases;
}

}  // namespace golden

#endif

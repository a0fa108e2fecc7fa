// antq's byte-shuffling kernels: the nibble packing of antq.core.pack and the im2col of
// antq.model.graph. numpy moves bytes one strided element at a time, which is 10x to 50x slower
// than a copy for these layouts; here they run near copy speed. antq.core.native compiles this
// file with g++ on first use and calls it through ctypes; the Python side checks every argument.
//
// The layout (antq/core/pack.py, docs/contracts.md section 5): a rows x K matrix, rows padded to
// a multiple of the tile T, K to k_pad; tile blocks in row order; in a block, nibble k*T + i holds
// row i of step k; nibble j sits in byte j/2, low half when j is even. 5-8 bit codes are two
// such planes (low nibbles, then high nibbles), plane_bytes apart.

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the word tricks below assume little-endian");

namespace {

constexpr uint64_t LO = 0x0F0F0F0F0F0F0F0Full;  // the low nibble of every byte
constexpr uint64_t HI = 0xF0F0F0F0F0F0F0F0ull;

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// PLANE -1: the code is the nibble (2-4 bit codes); 0 / 1: low / high nibble of an 8-bit code.
template <int PLANE>
inline uint8_t nib(uint8_t c) {
    return PLANE < 0 ? c : PLANE == 0 ? (c & 0xF) : (c >> 4);
}

// Eight codes of row pair (lo, hi) as eight bytes lo | hi << 4, for 8 consecutive k.
template <int PLANE>
inline uint64_t pair64(uint64_t lo, uint64_t hi) {
    if (PLANE < 0) return lo | (hi << 4);
    if (PLANE == 0) return (lo & LO) | ((hi & LO) << 4);
    return ((lo >> 4) & LO) | (hi & HI);
}

// In place: byte l of x[j] becomes byte j of x[l] (an 8x8 byte matrix transpose, three rounds
// of masked exchanges between words 4, 2 and 1 apart). V is uint64_t or a vector of them (one
// transpose per lane).
template <typename V>
inline void transpose8(V x[8]) {
    for (int j = 0; j < 4; ++j) {
        V t = ((x[j] >> 32) ^ x[j + 4]) & 0x00000000FFFFFFFFull;
        x[j + 4] ^= t;
        x[j] ^= t << 32;
    }
    for (int j : {0, 1, 4, 5}) {
        V t = ((x[j] >> 16) ^ x[j + 2]) & 0x0000FFFF0000FFFFull;
        x[j + 2] ^= t;
        x[j] ^= t << 16;
    }
    for (int j : {0, 2, 4, 6}) {
        V t = ((x[j] >> 8) ^ x[j + 1]) & 0x00FF00FF00FF00FFull;
        x[j + 1] ^= t;
        x[j] ^= t << 8;
    }
}

// LANES transposes at once in GCC/Clang vector registers (SSE2 on x86-64, NEON on ARM).
constexpr int LANES = 2;
typedef uint64_t VecW __attribute__((vector_size(8 * LANES)));

struct Geometry {
    int64_t rows, k, tile, k_pad;
};

// ---- pack: one tile block (rows r0 .. r0+T-1) of one plane into `out` (T * k_pad / 2 bytes).
// Each returns the OR of the raw codes it read (the caller's range check).

// Any tile, any padding: nibble by nibble.
template <int PLANE>
uint8_t pack_block_generic(const uint8_t* c, const Geometry& g, int64_t r0, uint8_t* out) {
    uint8_t seen = 0;
    int64_t i = 0, kk = 0;
    const int64_t nbytes = g.tile * g.k_pad / 2;
    for (int64_t q = 0; q < nbytes; ++q) {
        uint8_t v[2];
        for (int h = 0; h < 2; ++h) {
            const int64_t r = r0 + i;
            uint8_t code = (r < g.rows && kk < g.k) ? c[r * g.k + kk] : 0;
            seen |= code;
            v[h] = nib<PLANE>(code);
            if (++i == g.tile) {
                i = 0;
                ++kk;
            }
        }
        out[q] = static_cast<uint8_t>(v[0] | (v[1] << 4));
    }
    return seen;
}

// Tile 1: one row, row-major; neighbours along K share a byte.
template <int PLANE>
uint8_t pack_row(const uint8_t* c, const Geometry& g, int64_t r, uint8_t* out) {
    const uint8_t* row = c + r * g.k;
    const int64_t half = g.k / 2;
    uint8_t seen = 0;
    for (int64_t j = 0; j < half; ++j) {
        uint8_t a = row[2 * j], b = row[2 * j + 1];
        seen |= a | b;
        out[j] = static_cast<uint8_t>(nib<PLANE>(a) | (nib<PLANE>(b) << 4));
    }
    int64_t j = half;
    if (g.k % 2) {
        seen |= row[g.k - 1];
        out[j++] = nib<PLANE>(row[g.k - 1]);
    }
    std::memset(out + j, 0, g.k_pad / 2 - j);
    return seen;
}

// Even tile, all T rows present: rows 2j and 2j+1 of a step share byte j of its P = T/2 bytes.
// Byte loop for any P, per plane.
template <int PLANE>
uint8_t pack_steps_bytes(const uint8_t* c, const Geometry& g, int64_t r0, int64_t k_from, uint8_t* out) {
    const int64_t p = g.tile / 2, k = g.k;
    uint8_t seen = 0;
    for (int64_t kk = k_from; kk < g.k_pad; ++kk) {
        uint8_t* o = out + kk * p;
        if (kk >= k) {
            std::memset(o, 0, p);
            continue;
        }
        for (int64_t j = 0; j < p; ++j) {
            uint8_t a = c[(r0 + 2 * j) * k + kk], b = c[(r0 + 2 * j + 1) * k + kk];
            seen |= a | b;
            o[j] = static_cast<uint8_t>(nib<PLANE>(a) | (nib<PLANE>(b) << 4));
        }
    }
    return seen;
}

constexpr int64_t KC = 256;  // steps per round of the word path: its scratch stays in L1

// P a multiple of 8: eight row pairs x eight steps are one 8x8 byte transpose in words. Each
// round of KC steps first pairs the rows along K (two sequential streams, into scratch rows KC
// bytes apart; reading all T rows of a step at once would hit one cache set when K is a power of
// two), then transposes the scratch into the buffer's step order. NP = 2 packs both planes.
template <int NP>
uint8_t pack_block_words(const uint8_t* c, const Geometry& g, int64_t r0, uint8_t* out0, uint8_t* out1,
                         uint64_t* scratch) {
    const int64_t p = g.tile / 2, k = g.k, k_fast = k / 8 * 8, kw = KC / 8;
    uint64_t* tmp[2] = {scratch, scratch + p * kw};
    uint64_t seen64 = 0;
    for (int64_t k0 = 0; k0 < k_fast; k0 += KC) {
        const int64_t nw = (k_fast - k0 < KC ? k_fast - k0 : KC) / 8;
        for (int64_t j = 0; j < p; ++j) {
            const uint8_t* __restrict lo = c + (r0 + 2 * j) * k + k0;
            uint64_t* __restrict t0 = tmp[0] + j * kw;
            uint64_t* __restrict t1 = tmp[1] + j * kw;
            for (int64_t w = 0; w < nw; ++w) {
                uint64_t a = load64(lo + 8 * w), b = load64(lo + k + 8 * w);
                seen64 |= a | b;
                if (NP == 1) {
                    t0[w] = pair64<-1>(a, b);
                } else {
                    t0[w] = pair64<0>(a, b);
                    t1[w] = pair64<1>(a, b);
                }
            }
        }
        for (int pl = 0; pl < NP; ++pl) {
            uint8_t* out = pl ? out1 : out0;
            int64_t w = 0;
            for (; w + LANES <= nw; w += LANES) {
                for (int64_t q = 0; q < p; q += 8) {
                    VecW x[8];
                    for (int j = 0; j < 8; ++j) std::memcpy(&x[j], tmp[pl] + (q + j) * kw + w, sizeof(VecW));
                    transpose8(x);
                    for (int v = 0; v < LANES; ++v)
                        for (int l = 0; l < 8; ++l) store64(out + (k0 + 8 * (w + v) + l) * p + q, x[l][v]);
                }
            }
            for (; w < nw; ++w) {
                for (int64_t q = 0; q < p; q += 8) {
                    uint64_t x[8];
                    for (int j = 0; j < 8; ++j) x[j] = tmp[pl][(q + j) * kw + w];
                    transpose8(x);
                    for (int l = 0; l < 8; ++l) store64(out + (k0 + 8 * w + l) * p + q, x[l]);
                }
            }
        }
    }
    uint8_t seen = 0;
    for (int s = 0; s < 8; ++s) seen |= static_cast<uint8_t>(seen64 >> (8 * s));
    if (NP == 1) return seen | pack_steps_bytes<-1>(c, g, r0, k_fast, out0);
    return seen | pack_steps_bytes<0>(c, g, r0, k_fast, out0) | pack_steps_bytes<1>(c, g, r0, k_fast, out1);
}

template <int PLANE>
uint8_t pack_block(const uint8_t* c, const Geometry& g, int64_t r0, uint8_t* out) {
    if (g.tile == 1) return pack_row<PLANE>(c, g, r0, out);
    if (g.tile % 2 == 0 && r0 + g.tile <= g.rows) return pack_steps_bytes<PLANE>(c, g, r0, 0, out);
    return pack_block_generic<PLANE>(c, g, r0, out);
}

inline bool word_path(const Geometry& g, int64_t r0) {
    return g.tile % 16 == 0 && r0 + g.tile <= g.rows;
}

// ---- unpack: the inverse, one block of one plane. PLANE -1 / 0 write the nibbles, PLANE 1 ORs
// them << 4 into what plane 0 wrote. Each returns the OR of the nibbles it wrote, plus 0x100 if a
// padding nibble is not zero.

template <int PLANE>
inline void put(uint8_t* o, uint8_t v) {
    if (PLANE == 1)
        *o |= static_cast<uint8_t>(v << 4);
    else
        *o = v;
}

template <int PLANE>
inline void put64(uint8_t* o, uint64_t v) {
    store64(o, PLANE == 1 ? load64(o) | (v << 4) : v);
}

template <int PLANE>
uint32_t unpack_block_generic(const uint8_t* in, const Geometry& g, int64_t r0, uint8_t* c) {
    uint8_t seen = 0, bad = 0;
    int64_t i = 0, kk = 0;
    const int64_t nbytes = g.tile * g.k_pad / 2;
    for (int64_t q = 0; q < nbytes; ++q) {
        for (int h = 0; h < 2; ++h) {
            const uint8_t v = (in[q] >> (4 * h)) & 0xF;
            const int64_t r = r0 + i;
            if (r < g.rows && kk < g.k) {
                seen |= v;
                put<PLANE>(c + r * g.k + kk, v);
            } else {
                bad |= v;
            }
            if (++i == g.tile) {
                i = 0;
                ++kk;
            }
        }
    }
    return (PLANE == 1 ? seen << 4 : seen) | (bad ? 0x100u : 0u);
}

template <int PLANE>
uint32_t unpack_row(const uint8_t* in, const Geometry& g, int64_t r, uint8_t* c) {
    uint8_t* row = c + r * g.k;
    const int64_t half = g.k / 2;
    uint8_t seen = 0, bad = 0;
    for (int64_t j = 0; j < half; ++j) {
        const uint8_t b = in[j];
        seen |= b;
        put<PLANE>(row + 2 * j, b & 0xF);
        put<PLANE>(row + 2 * j + 1, b >> 4);
    }
    int64_t j = half;
    if (g.k % 2) {
        seen |= in[j] & 0xF;
        bad |= in[j] >> 4;
        put<PLANE>(row + g.k - 1, in[j++] & 0xF);
    }
    for (; j < g.k_pad / 2; ++j) bad |= in[j];
    seen = (seen & 0xF) | (seen >> 4);
    return (PLANE == 1 ? seen << 4 : seen) | (bad ? 0x100u : 0u);
}

template <int PLANE>
uint32_t unpack_steps_bytes(const uint8_t* in, const Geometry& g, int64_t r0, int64_t k_from, uint8_t* c) {
    const int64_t p = g.tile / 2, k = g.k;
    uint8_t seen = 0, bad = 0;
    for (int64_t kk = k_from; kk < g.k_pad; ++kk) {
        const uint8_t* b = in + kk * p;
        if (kk >= k) {
            for (int64_t j = 0; j < p; ++j) bad |= b[j];
            continue;
        }
        for (int64_t j = 0; j < p; ++j) {
            seen |= (b[j] & 0xF) | (b[j] >> 4);
            put<PLANE>(c + (r0 + 2 * j) * k + kk, b[j] & 0xF);
            put<PLANE>(c + (r0 + 2 * j + 1) * k + kk, b[j] >> 4);
        }
    }
    return (PLANE == 1 ? seen << 4 : seen) | (bad ? 0x100u : 0u);
}

// Inverse of pack_block_words: transpose a round of steps into scratch rows, then split the
// nibbles into the code rows along K. NP = 2 combines both planes into 8-bit codes.
template <int NP>
uint32_t unpack_block_words(const uint8_t* in0, const uint8_t* in1, const Geometry& g, int64_t r0, uint8_t* c,
                            uint64_t* scratch) {
    const int64_t p = g.tile / 2, k = g.k, k_fast = k / 8 * 8, kw = KC / 8;
    uint64_t* tmp[2] = {scratch, scratch + p * kw};
    uint64_t seen64 = 0;
    for (int64_t k0 = 0; k0 < k_fast; k0 += KC) {
        const int64_t nw = (k_fast - k0 < KC ? k_fast - k0 : KC) / 8;
        for (int pl = 0; pl < NP; ++pl) {
            const uint8_t* in = pl ? in1 : in0;
            int64_t w = 0;
            for (; w + LANES <= nw; w += LANES) {
                for (int64_t q = 0; q < p; q += 8) {
                    uint64_t lanes[8][LANES];
                    for (int l = 0; l < 8; ++l)
                        for (int v = 0; v < LANES; ++v) lanes[l][v] = load64(in + (k0 + 8 * (w + v) + l) * p + q);
                    VecW x[8];
                    std::memcpy(x, lanes, sizeof(x));
                    transpose8(x);
                    for (int j = 0; j < 8; ++j) std::memcpy(tmp[pl] + (q + j) * kw + w, &x[j], sizeof(VecW));
                }
            }
            for (; w < nw; ++w) {
                for (int64_t q = 0; q < p; q += 8) {
                    uint64_t x[8];
                    for (int l = 0; l < 8; ++l) x[l] = load64(in + (k0 + 8 * w + l) * p + q);
                    transpose8(x);
                    for (int j = 0; j < 8; ++j) tmp[pl][(q + j) * kw + w] = x[j];
                }
            }
        }
        for (int64_t j = 0; j < p; ++j) {
            uint8_t* lo = c + (r0 + 2 * j) * k + k0;
            const uint64_t* t0 = tmp[0] + j * kw;
            const uint64_t* t1 = tmp[1] + j * kw;
            for (int64_t w = 0; w < nw; ++w) {
                uint64_t a = t0[w] & LO, b = (t0[w] >> 4) & LO;
                if (NP == 2) {
                    a |= (t1[w] & LO) << 4;
                    b |= t1[w] & HI;
                }
                seen64 |= a | b;
                store64(lo + 8 * w, a);
                store64(lo + k + 8 * w, b);
            }
        }
    }
    uint32_t seen = 0;
    for (int s = 0; s < 8; ++s) seen |= static_cast<uint8_t>(seen64 >> (8 * s));
    if (NP == 1) return seen | unpack_steps_bytes<-1>(in0, g, r0, k_fast, c);
    return seen | unpack_steps_bytes<0>(in0, g, r0, k_fast, c) | unpack_steps_bytes<1>(in1, g, r0, k_fast, c);
}

template <int PLANE>
uint32_t unpack_block(const uint8_t* in, const Geometry& g, int64_t r0, uint8_t* c) {
    if (g.tile == 1) return unpack_row<PLANE>(in, g, r0, c);
    if (g.tile % 2 == 0 && r0 + g.tile <= g.rows) return unpack_steps_bytes<PLANE>(in, g, r0, 0, c);
    return unpack_block_generic<PLANE>(in, g, r0, c);
}

// ---- im2col: out[(b, y, x), (ch, i, j)] = x[b, ch, y*sh - ph + i*dh, x*sw - pw + j*dw], 0 outside.
// Each image is first copied into `rows`: every source row zero-padded by pw and split into sw
// phases (plus one row of zeros for the rows above and below the image), so that column
// (ch, i, j) of pixels x, x+1, ... of output row y is one contiguous run: phase j*dw % sw of
// source row (ch, yy), from x + j*dw / sw. The output tile (ow pixels x K columns) is then the
// transpose of those runs: 8 columns x 8 pixels per 8x8 byte transpose in words.
void im2col_rows(const uint8_t* src, int64_t nb, int64_t nc, int64_t h, int64_t w, int64_t kh, int64_t kw,
                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh,
                 int64_t ow, uint8_t* out) {
    const int64_t kk = nc * kh * kw, len = (w + 2 * pw + sw - 1) / sw + 8, zero_row = nc * h;
    std::vector<uint8_t> rows((nc * h + 1) * sw * len, 0);
    std::vector<int64_t> off(kk);  // column -> start of its run in `rows`, for one output row
    std::vector<int64_t> joff(kw);  // kernel column j -> its phase and start within a source row
    for (int64_t j = 0; j < kw; ++j) joff[j] = j * dw % sw * len + j * dw / sw;
    const int64_t k8 = kk / 8 * 8;
    for (int64_t b = 0; b < nb; ++b) {
        for (int64_t row = 0; row < nc * h; ++row) {
            const uint8_t* in = src + (b * nc * h + row) * w;
            uint8_t* r = rows.data() + row * sw * len;
            if (sw == 1) {
                std::memcpy(r + pw, in, w);
                continue;
            }
            for (int64_t phase = 0; phase < sw; ++phase, r += len) {  // padded column t*sw + phase
                int64_t t = phase >= pw ? 0 : (pw - phase + sw - 1) / sw;  // first t inside the image
                for (int64_t xx = t * sw + phase - pw; xx < w; ++t, xx += sw) r[t] = in[xx];
            }
        }
        for (int64_t y = 0; y < oh; ++y) {
            for (int64_t ch = 0; ch < nc; ++ch) {
                for (int64_t i = 0; i < kh; ++i) {
                    const int64_t yy = y * sh - ph + i * dh;
                    const int64_t start = ((yy >= 0 && yy < h) ? ch * h + yy : zero_row) * sw * len;
                    for (int64_t j = 0; j < kw; ++j) off[(ch * kh + i) * kw + j] = start + joff[j];
                }
            }
            uint8_t* tile = out + (b * oh + y) * ow * kk;
            const uint8_t* base = rows.data();
            for (int64_t x0 = 0; x0 < ow; x0 += 8) {  // 8 pixels (fewer at the end: loads stay in `rows`)
                const int n = ow - x0 < 8 ? static_cast<int>(ow - x0) : 8;
                int64_t q = 0;
                for (; q + 8 * LANES <= k8; q += 8 * LANES) {
                    uint64_t lanes[8][LANES];
                    for (int l = 0; l < 8; ++l)
                        for (int v = 0; v < LANES; ++v) lanes[l][v] = load64(base + off[q + 8 * v + l] + x0);
                    VecW x[8];
                    std::memcpy(x, lanes, sizeof(x));
                    transpose8(x);
                    for (int m = 0; m < n; ++m)
                        for (int v = 0; v < LANES; ++v) store64(tile + (x0 + m) * kk + q + 8 * v, x[m][v]);
                }
                for (; q < k8; q += 8) {
                    uint64_t x[8];
                    for (int l = 0; l < 8; ++l) x[l] = load64(base + off[q + l] + x0);
                    transpose8(x);
                    for (int m = 0; m < n; ++m) store64(tile + (x0 + m) * kk + q, x[m]);
                }
                for (int m = 0; m < n; ++m)
                    for (int64_t c = k8; c < kk; ++c) tile[(x0 + m) * kk + c] = base[off[c] + x0 + m];
            }
        }
    }
}

}  // namespace

extern "C" {

// Pack codes (rows x k, row-major uint8) into `out`: nplanes (1 or 2) planes of plane_bytes.
// Returns the OR of all codes (the caller raises if one is too wide for its bit width).
uint32_t antq_pack(const uint8_t* codes, int64_t rows, int64_t k, int64_t tile, int64_t k_pad,
                   int32_t nplanes, uint8_t* out) {
    const Geometry g{rows, k, tile, k_pad};
    const int64_t block_bytes = tile * k_pad / 2;
    const int64_t plane_bytes = (rows + tile - 1) / tile * block_bytes;
    std::vector<uint64_t> scratch(tile % 16 ? 0 : tile * KC / 8);
    uint8_t seen = 0;
    for (int64_t r0 = 0, o = 0; r0 < rows; r0 += tile, o += block_bytes) {
        uint8_t* o1 = out + plane_bytes + o;
        if (word_path(g, r0))  // both planes of a block in one pass over its rows
            seen |= nplanes == 1 ? pack_block_words<1>(codes, g, r0, out + o, o1, scratch.data())
                                 : pack_block_words<2>(codes, g, r0, out + o, o1, scratch.data());
        else if (nplanes == 1)
            seen |= pack_block<-1>(codes, g, r0, out + o);
        else
            seen |= pack_block<0>(codes, g, r0, out + o) | pack_block<1>(codes, g, r0, o1);
    }
    return seen;
}

// Inverse of antq_pack into `codes` (rows x k). Returns the OR of the codes, plus 0x100 if a
// padding nibble is not zero.
uint32_t antq_unpack(const uint8_t* buf, int64_t rows, int64_t k, int64_t tile, int64_t k_pad,
                     int32_t nplanes, uint8_t* codes) {
    const Geometry g{rows, k, tile, k_pad};
    const int64_t block_bytes = tile * k_pad / 2;
    const int64_t plane_bytes = (rows + tile - 1) / tile * block_bytes;
    std::vector<uint64_t> scratch(tile % 16 ? 0 : tile * KC / 8);
    uint32_t seen = 0;
    for (int64_t r0 = 0, o = 0; r0 < rows; r0 += tile, o += block_bytes) {
        const uint8_t* i1 = buf + plane_bytes + o;
        if (word_path(g, r0))
            seen |= nplanes == 1 ? unpack_block_words<1>(buf + o, i1, g, r0, codes, scratch.data())
                                 : unpack_block_words<2>(buf + o, i1, g, r0, codes, scratch.data());
        else if (nplanes == 1)
            seen |= unpack_block<-1>(buf + o, g, r0, codes);
        else  // plane 1 ORs its nibbles into what plane 0 wrote
            seen |= unpack_block<0>(buf + o, g, r0, codes) | unpack_block<1>(i1, g, r0, codes);
    }
    return seen;
}

// im2col of codes x (nb, nc, h, w) into out (nb*oh*ow, nc*kh*kw), code 0 for the padding.
void antq_im2col(const uint8_t* x, int64_t nb, int64_t nc, int64_t h, int64_t w, int64_t kh, int64_t kw,
                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh,
                 int64_t ow, uint8_t* out) {
    im2col_rows(x, nb, nc, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out);
}

}  // extern "C"

// ap_int.h: a small g++ stand-in for the part of Xilinx's ap_uint<W> that hls/ uses.
//
// Vitis HLS compiles hls/*.cpp against its own ap_int.h; g++ builds (make csim, the emulator's
// csim and rtl levels) put hls/shim first on the include path and get this file instead. Only
// what the accelerator needs is here: construction from integers, range(hi, lo) as an rvalue and
// an lvalue (fields of at most 64 bits), single bits, to_uint64(), and equality. Widths up to any
// multiple of 64 are stored little-endian in uint64 words.
#ifndef ANTQ_SHIM_AP_INT_H
#define ANTQ_SHIM_AP_INT_H

#include <cstdint>
#include <cstdlib>
#include <cstdio>

template <int W>
class ap_uint {
    static_assert(W >= 1, "ap_uint needs at least one bit");
    static constexpr int kWords = (W + 63) / 64;

   public:
    uint64_t w_[kWords];

    ap_uint() { clear(); }
    ap_uint(unsigned long long v) { clear(); w_[0] = v; mask_top(); }  // NOLINT: implicit, as in Vitis
    ap_uint(unsigned long v) : ap_uint(static_cast<unsigned long long>(v)) {}
    ap_uint(unsigned v) : ap_uint(static_cast<unsigned long long>(v)) {}
    ap_uint(int v) : ap_uint(static_cast<unsigned long long>(static_cast<long long>(v))) {}
    ap_uint(long v) : ap_uint(static_cast<unsigned long long>(v)) {}
    ap_uint(long long v) : ap_uint(static_cast<unsigned long long>(v)) {}
    ap_uint(bool v) : ap_uint(static_cast<unsigned long long>(v)) {}

    class range_ref {
       public:
        range_ref(ap_uint *p, int hi, int lo) : p_(p), hi_(hi), lo_(lo) {}
        uint64_t to_uint64() const { return p_->get(hi_, lo_); }
        operator uint64_t() const { return to_uint64(); }  // NOLINT
        range_ref &operator=(uint64_t v) { p_->set(hi_, lo_, v); return *this; }
        range_ref &operator=(const range_ref &o) { p_->set(hi_, lo_, o.to_uint64()); return *this; }

       private:
        ap_uint *p_;
        int hi_, lo_;
    };

    class const_range_ref {
       public:
        explicit const_range_ref(uint64_t v) : v_(v) {}
        uint64_t to_uint64() const { return v_; }
        operator uint64_t() const { return v_; }  // NOLINT

       private:
        uint64_t v_;
    };

    range_ref range(int hi, int lo) { check(hi, lo); return range_ref(this, hi, lo); }
    const_range_ref range(int hi, int lo) const { check(hi, lo); return const_range_ref(get(hi, lo)); }
    range_ref operator()(int hi, int lo) { return range(hi, lo); }
    const_range_ref operator()(int hi, int lo) const { return range(hi, lo); }
    bool operator[](int i) const { return get(i, i) != 0; }
    uint64_t to_uint64() const { return w_[0]; }
    unsigned to_uint() const { return static_cast<unsigned>(w_[0]); }
    bool operator==(const ap_uint &o) const {
        for (int i = 0; i < kWords; ++i) if (w_[i] != o.w_[i]) return false;
        return true;
    }
    bool operator!=(const ap_uint &o) const { return !(*this == o); }

   private:
    void clear() { for (int i = 0; i < kWords; ++i) w_[i] = 0; }
    void mask_top() {
        if (W % 64) w_[kWords - 1] &= (uint64_t{1} << (W % 64)) - 1;
    }
    static void check(int hi, int lo) {
        if (lo < 0 || hi < lo || hi >= W || hi - lo >= 64) {
            std::fprintf(stderr, "ap_uint<%d>::range(%d, %d) is out of bounds\n", W, hi, lo);
            std::abort();
        }
    }
    uint64_t get(int hi, int lo) const {
        const int n = hi - lo + 1, wi = lo / 64, sh = lo % 64;
        uint64_t v = w_[wi] >> sh;
        if (sh && sh + n > 64) v |= w_[wi + 1] << (64 - sh);
        return n == 64 ? v : v & ((uint64_t{1} << n) - 1);
    }
    void set(int hi, int lo, uint64_t v) {
        const int n = hi - lo + 1, wi = lo / 64, sh = lo % 64;
        const uint64_t m = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
        v &= m;
        w_[wi] = (w_[wi] & ~(m << sh)) | (v << sh);
        if (sh && sh + n > 64) {
            const int rest = sh + n - 64;
            const uint64_t m2 = (uint64_t{1} << rest) - 1;
            w_[wi + 1] = (w_[wi + 1] & ~m2) | (v >> (64 - sh));
        }
    }
};

#endif

// hls_stream.h: a small g++ stand-in for Xilinx's hls::stream<T> (C simulation semantics).
//
// Like Vitis C simulation, the stream is an unbounded FIFO and a DATAFLOW region runs its
// processes one after another. Reading an empty stream is a deadlock in hardware; here it aborts
// with a message instead of returning garbage.
#ifndef ANTQ_SHIM_HLS_STREAM_H
#define ANTQ_SHIM_HLS_STREAM_H

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

namespace hls {

template <typename T>
class stream {
   public:
    stream() : name_("stream") {}
    explicit stream(const char *name) : name_(name) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;

    void write(const T &v) { q_.push_back(v); }
    T read() {
        if (q_.empty()) {
            std::fprintf(stderr, "hls::stream '%s': read while empty (deadlock in hardware)\n",
                         name_.c_str());
            std::abort();
        }
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    void read(T &v) { v = read(); }
    bool read_nb(T &v) {
        if (q_.empty()) return false;
        v = read();
        return true;
    }
    bool empty() const { return q_.empty(); }
    bool full() const { return false; }
    std::size_t size() const { return q_.size(); }
    void operator<<(const T &v) { write(v); }
    void operator>>(T &v) { v = read(); }

   private:
    std::string name_;
    std::deque<T> q_;
};

}  // namespace hls

#endif

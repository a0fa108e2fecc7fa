// hls_stream.h: a g++ stand-in for Xilinx's hls::stream<T, DEPTH> that can deadlock like hardware.
//
// Inside a DATAFLOW region run by ant_sim::Region (ant_sim_region.h, used by ant_dataflow.h)
// every stream is a FIFO of DEPTH elements (default 2, as in Vitis HLS): a write to a full stream
// and a read from an empty one block the process, and the region runs another. When no process
// can go on, the region has deadlocked: that is reported (which process waits on which stream,
// how full it is) and every blocked call throws ant_sim::Deadlock, so the C simulation fails
// with a message instead of hanging.
//
// Outside a region (sequential code, as Vitis C simulation runs everything) the stream is an
// unbounded FIFO and reading an empty one is reported and aborts.
#ifndef ANTQ_SHIM_HLS_STREAM_H
#define ANTQ_SHIM_HLS_STREAM_H

#include <ucontext.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ant_sim {

struct Deadlock : std::runtime_error {
    explicit Deadlock(const std::string &what) : std::runtime_error(what) {}
};

// One process of a region: its coroutine and what it is waiting for.
struct Process {
    std::string name;
    std::function<void()> body;
    std::string waiting;          // empty while it runs
    std::function<bool()> ready;  // while blocked: whether it could go on now
    bool finished = false;
    std::exception_ptr error;
    ucontext_t ctx;
    void *stack = nullptr;
};

// The state shared by the processes of one running DATAFLOW region.
struct RegionState {
    std::vector<Process *> procs;
    ucontext_t scheduler;
    bool failed = false;
    std::string report;
    unsigned long long moves = 0;  // elements written or read in the region so far

    void resume(Process *p);  // scheduler -> p, back when p blocks or ends
    void yield(Process *p) { swapcontext(&p->ctx, &scheduler); }
};

inline Process *&current_process() {
    static thread_local Process *p = nullptr;
    return p;
}
inline RegionState *&current_region() {
    static thread_local RegionState *r = nullptr;
    return r;
}
inline void RegionState::resume(Process *p) {
    current_process() = p;
    swapcontext(&scheduler, &p->ctx);
    current_process() = nullptr;
}

}  // namespace ant_sim

namespace hls {

template <typename T, int DEPTH = 2>
class stream {
    static_assert(DEPTH >= 1, "a stream needs a depth of at least 1");

   public:
    stream() : name_("stream") {}
    explicit stream(const char *name) : name_(name) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;

    void write(const T &v) {
        ant_sim::RegionState *r = ant_sim::current_region();
        if (!r) {
            q_.push_back(v);
            return;
        }
        wait(r, [&] { return q_.size() < static_cast<size_t>(DEPTH); }, "writing");
        q_.push_back(v);
        ++r->moves;
    }
    T read() {
        ant_sim::RegionState *r = ant_sim::current_region();
        if (!r) {
            if (q_.empty()) {
                std::fprintf(stderr, "hls::stream '%s': read while empty (deadlock in hardware)\n",
                             name_.c_str());
                std::abort();
            }
            T v = q_.front();
            q_.pop_front();
            return v;
        }
        wait(r, [&] { return !q_.empty(); }, "reading");
        T v = q_.front();
        q_.pop_front();
        ++r->moves;
        return v;
    }
    void read(T &v) { v = read(); }
    // Non-blocking access: a process that polls lets the others run first, so it cannot spin
    // the region forever (the shim's processes never poll; these keep the stream API whole).
    bool read_nb(T &v) {
        poll();
        if (q_.empty()) return false;
        v = q_.front();
        q_.pop_front();
        moved();
        return true;
    }
    bool write_nb(const T &v) {
        poll();
        if (ant_sim::current_region() && q_.size() >= static_cast<size_t>(DEPTH)) return false;
        q_.push_back(v);
        moved();
        return true;
    }
    bool empty() {
        poll();
        return q_.empty();
    }
    bool full() {
        poll();
        return ant_sim::current_region() && q_.size() >= static_cast<size_t>(DEPTH);
    }
    std::size_t size() const { return q_.size(); }
    void operator<<(const T &v) { write(v); }
    void operator>>(T &v) { v = read(); }

   private:
    template <typename Ready>
    void wait(ant_sim::RegionState *r, Ready ready, const char *what) {
        if (ready()) return;
        ant_sim::Process *me = ant_sim::current_process();
        me->waiting = std::string(what) + " '" + name_ + "' (depth " + std::to_string(DEPTH) + ", holds " +
                      std::to_string(q_.size()) + ")";
        me->ready = ready;
        while (!ready() && !r->failed) r->yield(me);
        me->waiting.clear();
        me->ready = nullptr;
        if (r->failed) throw ant_sim::Deadlock(r->report);
    }
    static void moved() {
        if (ant_sim::RegionState *r = ant_sim::current_region()) ++r->moves;
    }
    void poll() {
        ant_sim::RegionState *r = ant_sim::current_region();
        ant_sim::Process *me = ant_sim::current_process();
        if (!r || !me) return;
        me->waiting = "polling '" + name_ + "'";
        me->ready = [] { return true; };
        r->yield(me);
        me->waiting.clear();
        me->ready = nullptr;
        if (r->failed) throw ant_sim::Deadlock(r->report);
    }

    std::string name_;
    std::deque<T> q_;
};

}  // namespace hls

#endif

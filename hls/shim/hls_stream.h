// hls_stream.h: a g++ stand-in for Xilinx's hls::stream<T, DEPTH> that can deadlock like hardware.
//
// Inside a DATAFLOW region run by ant_sim::Region (ant_dataflow.h), every process is a thread
// and every stream is a FIFO of DEPTH elements (default 2, as in Vitis HLS): a write to a full
// stream and a read from an empty one block. When every process of the region is blocked, the
// region has deadlocked: that is reported (which process waits on which stream, how full it
// is) and every blocked call throws ant_sim::Deadlock, so the C simulation fails with a message
// instead of hanging. A region also gives up after ANT_SIM_STALL_S seconds without progress.
//
// Outside a region (sequential code, as Vitis C simulation runs everything) the stream is an
// unbounded FIFO and reading an empty one is reported and aborts.
#ifndef ANTQ_SHIM_HLS_STREAM_H
#define ANTQ_SHIM_HLS_STREAM_H

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef ANT_SIM_STALL_S
#define ANT_SIM_STALL_S 120
#endif

namespace ant_sim {

struct Deadlock : std::runtime_error {
    explicit Deadlock(const std::string &what) : std::runtime_error(what) {}
};

// What one process of a region is doing right now (for the deadlock report).
struct Process {
    std::string name;
    std::string waiting;          // empty while it runs
    std::function<bool()> ready;  // while blocked: whether it could go on now
    bool finished = false;
};

// The state shared by the processes of one running DATAFLOW region.
struct RegionState {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Process *> procs;
    int running = 0;  // processes neither blocked nor finished
    bool failed = false;
    std::string report;
    std::chrono::steady_clock::time_point progress = std::chrono::steady_clock::now();

    void deadlock_check() {  // mu held
        if (running > 0 || failed) return;
        std::string r = "DATAFLOW deadlock: every process is blocked:";
        bool any = false;
        for (const Process *p : procs)
            if (!p->finished) {
                if (p->ready && p->ready()) return;  // woken, not yet running again
                r += "\n  " + p->name + " " + p->waiting;
                any = true;
            }
        if (!any) return;
        failed = true;
        report = r;
        cv.notify_all();
    }
};

inline RegionState *&current_region() {
    static thread_local RegionState *r = nullptr;
    return r;
}
inline Process *&current_process() {
    static thread_local Process *p = nullptr;
    return p;
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
        std::unique_lock<std::mutex> lock(r->mu);
        wait(r, lock, [&] { return q_.size() < static_cast<size_t>(DEPTH); }, "writing");
        q_.push_back(v);
        touch(r);
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
        std::unique_lock<std::mutex> lock(r->mu);
        wait(r, lock, [&] { return !q_.empty(); }, "reading");
        T v = q_.front();
        q_.pop_front();
        touch(r);
        return v;
    }
    void read(T &v) { v = read(); }
    bool read_nb(T &v) {
        ant_sim::RegionState *r = ant_sim::current_region();
        std::unique_lock<std::mutex> lock = r ? std::unique_lock<std::mutex>(r->mu) : std::unique_lock<std::mutex>();
        if (q_.empty()) return false;
        v = q_.front();
        q_.pop_front();
        if (r) touch(r);
        return true;
    }
    bool empty() {
        ant_sim::RegionState *r = ant_sim::current_region();
        std::unique_lock<std::mutex> lock = r ? std::unique_lock<std::mutex>(r->mu) : std::unique_lock<std::mutex>();
        return q_.empty();
    }
    bool full() {
        ant_sim::RegionState *r = ant_sim::current_region();
        std::unique_lock<std::mutex> lock = r ? std::unique_lock<std::mutex>(r->mu) : std::unique_lock<std::mutex>();
        return r && q_.size() >= static_cast<size_t>(DEPTH);
    }
    std::size_t size() const { return q_.size(); }
    void operator<<(const T &v) { write(v); }
    void operator>>(T &v) { v = read(); }

   private:
    template <typename Ready>
    void wait(ant_sim::RegionState *r, std::unique_lock<std::mutex> &lock, Ready ready, const char *what) {
        if (ready()) return;
        ant_sim::Process *me = ant_sim::current_process();
        me->waiting = std::string(what) + " '" + name_ + "' (depth " + std::to_string(DEPTH) + ", holds " +
                      std::to_string(q_.size()) + ")";
        me->ready = ready;
        --r->running;
        r->deadlock_check();
        while (!ready() && !r->failed) {
            if (r->cv.wait_for(lock, std::chrono::seconds(1)) == std::cv_status::timeout &&
                std::chrono::steady_clock::now() - r->progress > std::chrono::seconds(ANT_SIM_STALL_S)) {
                r->failed = true;
                r->report = "DATAFLOW stall: no stream moved for " + std::to_string(ANT_SIM_STALL_S) +
                            " s; " + me->name + " is " + me->waiting;
                r->cv.notify_all();
            }
        }
        ++r->running;
        me->waiting.clear();
        me->ready = nullptr;
        if (r->failed) throw ant_sim::Deadlock(r->report);
    }
    void touch(ant_sim::RegionState *r) {
        r->progress = std::chrono::steady_clock::now();
        r->cv.notify_all();
    }

    std::string name_;
    std::deque<T> q_;
};

}  // namespace hls

#endif

// ant_sim_region.h: runs the processes of a DATAFLOW region concurrently, as hardware does (g++ only).
//
// Vitis C simulation runs a DATAFLOW region's processes one after another with unbounded
// streams, so a stream that is too shallow for the design, or a process that reads more than its
// producer writes, only shows on the board. Here every process runs on its own stack and the
// streams are bounded (hls_stream.h): a process runs until it would block on a full or empty
// stream, then the next process that can go on runs. The interleaving is the one a Kahn network
// of bounded FIFOs allows, so the results (and whether the region deadlocks) do not depend on the
// order chosen, and the order is fixed (round robin), so every run is the same on every machine.
// When no process can go on and some have not finished, the region has deadlocked: Deadlock is
// thrown with each blocked process and the stream it waits on, the moment it happens.
//
// The processes are coroutines on the calling thread (POSIX ucontext), not OS threads: a switch
// costs well under a microsecond instead of a futex round trip, which keeps the emulator's csim
// level usable for whole models.
#ifndef ANTQ_SHIM_REGION_H
#define ANTQ_SHIM_REGION_H

#include <sys/mman.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "hls_stream.h"

#ifndef ANT_SIM_STACK_BYTES
#define ANT_SIM_STACK_BYTES (8u << 20)  // reserved, not committed: pages are touched on use
#endif

namespace ant_sim {

class Region {
   public:
    explicit Region(const char *name) : name_(name) {}
    Region(const Region &) = delete;
    Region &operator=(const Region &) = delete;
    ~Region() {
        for (auto &p : procs_)
            if (p->stack) munmap(p->stack, ANT_SIM_STACK_BYTES);
    }

    void spawn(const char *name, std::function<void()> body) {
        auto p = std::make_unique<Process>();
        p->name = std::string(name_) + "/" + name;
        p->body = std::move(body);
        state_.procs.push_back(p.get());
        procs_.push_back(std::move(p));
    }

    // Run every process to its end; throws Deadlock (or the first process's own error).
    void run() {
        RegionState *outer = current_region();
        Process *outer_proc = current_process();
        current_region() = &state_;
        for (auto &p : procs_) start(p.get());
        schedule();
        current_region() = outer;
        current_process() = outer_proc;
        if (state_.failed) throw Deadlock(state_.report);
        for (auto &p : procs_)
            if (p->error) std::rethrow_exception(p->error);
    }

   private:
    void start(Process *p) {
        void *stack = mmap(nullptr, ANT_SIM_STACK_BYTES, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) throw std::bad_alloc();
        p->stack = stack;
        getcontext(&p->ctx);
        p->ctx.uc_stack.ss_sp = stack;
        p->ctx.uc_stack.ss_size = ANT_SIM_STACK_BYTES;
        p->ctx.uc_link = &state_.scheduler;
        const auto bits = reinterpret_cast<std::uintptr_t>(p);
        makecontext(&p->ctx, reinterpret_cast<void (*)()>(&Region::entry), 2,
                    static_cast<unsigned>(bits >> 32), static_cast<unsigned>(bits & 0xffffffffu));
    }

    static void entry(unsigned hi, unsigned lo) {
        auto *p = reinterpret_cast<Process *>((static_cast<std::uintptr_t>(hi) << 32) | lo);
        try {
            p->body();
        } catch (...) {
            p->error = std::current_exception();
        }
        p->finished = true;
    }  // returns to uc_link: the scheduler

    // Round robin over the processes that can go on; a deadlock when none can and not all ended.
    void schedule() {
        RegionState &s = state_;
        for (;;) {
            bool pending = false, ran = false, ended = false;
            const unsigned long long moves = s.moves;
            for (Process *p : s.procs) {
                if (p->finished) continue;
                pending = true;
                if (p->ready && !p->ready()) continue;
                ran = true;
                s.resume(p);
                ended |= p->finished;
            }
            if (!pending) return;
            if (!ran || (s.moves == moves && !ended && started_)) break;  // blocked, or only polling
            started_ = true;
        }
        std::string r = "DATAFLOW deadlock: every process is blocked:";
        for (const Process *p : s.procs)
            if (!p->finished) r += "\n  " + p->name + " " + p->waiting;
        s.failed = true;
        s.report = r;
        for (Process *p : s.procs)  // unwind every blocked process (its wait throws Deadlock)
            if (!p->finished) s.resume(p);
    }

    const char *name_;
    bool started_ = false;  // past the first round (in which every process starts)
    RegionState state_;
    std::vector<std::unique_ptr<Process>> procs_;
};

}  // namespace ant_sim

#endif

// ant_sim_region.h: runs the processes of a DATAFLOW region concurrently, as hardware does (g++ only).
//
// Vitis C simulation runs a DATAFLOW region's processes one after another with unbounded
// streams, so a stream that is too shallow for the design, or a process that reads more than its
// producer writes, only shows on the board. Here every process is a thread and the streams are
// bounded (hls_stream.h): such a design deadlocks, and the region reports it (Deadlock, with each
// process and the stream it waits on) instead of hanging.
#ifndef ANTQ_SHIM_REGION_H
#define ANTQ_SHIM_REGION_H

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hls_stream.h"

namespace ant_sim {

class Region {
   public:
    explicit Region(const char *name) : name_(name) {}
    Region(const Region &) = delete;
    Region &operator=(const Region &) = delete;

    void spawn(const char *name, std::function<void()> body) {
        auto p = std::make_unique<Process>();
        p->name = std::string(name_) + "/" + name;
        state_.procs.push_back(p.get());
        bodies_.emplace_back(p.get(), std::move(body));
        procs_.push_back(std::move(p));
    }

    // Start every process, wait for all of them; throws Deadlock (or the first process's error).
    void run() {
        state_.running = static_cast<int>(bodies_.size());
        std::vector<std::thread> threads;
        std::vector<std::exception_ptr> errors(bodies_.size());
        for (size_t i = 0; i < bodies_.size(); ++i) {
            threads.emplace_back([this, i, &errors] {
                current_region() = &state_;
                current_process() = bodies_[i].first;
                try {
                    bodies_[i].second();
                } catch (...) {
                    errors[i] = std::current_exception();
                }
                std::lock_guard<std::mutex> lock(state_.mu);
                bodies_[i].first->finished = true;
                --state_.running;
                state_.deadlock_check();
                state_.cv.notify_all();
            });
        }
        for (auto &t : threads) t.join();
        if (state_.failed) throw Deadlock(state_.report);
        for (auto &e : errors)
            if (e) std::rethrow_exception(e);
    }

   private:
    const char *name_;
    RegionState state_;
    std::vector<std::unique_ptr<Process>> procs_;
    std::vector<std::pair<Process *, std::function<void()>>> bodies_;
};

}  // namespace ant_sim

#endif

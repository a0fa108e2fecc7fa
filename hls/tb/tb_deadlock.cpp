// tb_deadlock.cpp: the C simulation catches a DATAFLOW deadlock instead of hanging (make csim).
//
//   tb_deadlock deep|shallow
//
// A producer writes a long and a short path alternately; the consumer drains the long path
// first. With a FIFO on the short path that holds a whole block (deep) the region finishes; with
// one that holds two tokens (shallow) the producer blocks on it while the consumer waits on the
// long path: a deadlock, as on the board. Vitis C simulation would run both to completion (one
// process after another, unbounded streams). Exit 0 when the run ends as its variant must: deep
// finishes with the right sum, shallow is reported as a deadlock.
#include <cstdio>
#include <cstring>

#include "ant_dataflow.h"

namespace {

constexpr int kBlock = 8;

template <int D>
void produce(hls::stream<int, D> &short_path, hls::stream<int, kBlock> &long_path) {
    for (int i = 0; i < kBlock; ++i) {
        short_path.write(i);
        long_path.write(10 * i);
    }
}

template <int D>
void consume(hls::stream<int, D> &short_path, hls::stream<int, kBlock> &long_path, int *sum) {
    int s = 0;
    for (int i = 0; i < kBlock; ++i) s += long_path.read();
    for (int i = 0; i < kBlock; ++i) s += short_path.read();
    *sum = s;
}

template <int D>
int region(int *sum) {
    hls::stream<int, D> short_path("short_path");
    hls::stream<int, kBlock> long_path("long_path");
    ANT_DATAFLOW_BEGIN("split_merge")
    ANT_PROCESS("produce", produce<D>(short_path, long_path))
    ANT_PROCESS("consume", consume<D>(short_path, long_path, sum))
    ANT_DATAFLOW_END()
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    const bool shallow = argc > 1 && !std::strcmp(argv[1], "shallow");
    int sum = 0;
    try {
        if (shallow) region<2>(&sum);
        else region<kBlock>(&sum);
    } catch (const ant_sim::Deadlock &e) {
        std::printf("%s\n", e.what());
        return shallow ? 0 : 1;
    }
    const int want = 11 * kBlock * (kBlock - 1) / 2;
    std::printf("split_merge finished: sum %d (want %d)\n", sum, want);
    return !shallow && sum == want ? 0 : 1;
}

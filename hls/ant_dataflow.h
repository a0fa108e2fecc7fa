// ant_dataflow.h: one DATAFLOW region, written once, run as hardware runs it.
//
//   ANT_DATAFLOW_BEGIN(region name)
//   ANT_PROCESS(name, call(...))      one per process, in the order Vitis sees them
//   ANT_DATAFLOW_END()
//
// Under Vitis (synthesis and its own C simulation) this is `#pragma HLS DATAFLOW` followed by the
// plain calls. With the g++ shim (hls/shim) the processes run as concurrent threads over bounded
// streams (ant_sim::Region), so a too-shallow stream or a token-count mismatch deadlocks and is
// reported, as it would hang on the board.
#ifndef ANT_DATAFLOW_H
#define ANT_DATAFLOW_H

#include <hls_stream.h>

#if defined(ANTQ_SHIM_HLS_STREAM_H) && !defined(__SYNTHESIS__)
#include <ant_sim_region.h>
#define ANT_DATAFLOW_BEGIN(name) { ant_sim::Region ant_region_(name);
#define ANT_PROCESS(name, ...) ant_region_.spawn(name, [&]() { __VA_ARGS__; });
#define ANT_DATAFLOW_END() ant_region_.run(); }
#else
#define ANT_PRAGMA_(x) _Pragma(#x)
#define ANT_DATAFLOW_BEGIN(name) ANT_PRAGMA_(HLS DATAFLOW)
#define ANT_PROCESS(name, ...) __VA_ARGS__;
#define ANT_DATAFLOW_END()
#endif

#endif

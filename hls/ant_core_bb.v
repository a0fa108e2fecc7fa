// ant_core_bb.v: the RTL-blackbox face of overlay/rtl/ant_core.v for Vitis HLS
// (hls/ant_core_bb.json; hls/ant_core.h declares the C++ side, ant_core_bb()).
//
// HLS calls ant_core_bb() once per ant_gemm call, with ap_ctrl_chain and two hls::stream
// arguments in the FIFO protocol; each stream element is {tlast, tdata} (ant_core.h: core_in_t,
// core_out_t). One call's input is a stats request, every job of the call and a closing stats
// request (docs/contracts.md section 10; hls/ant_gemm.cpp feed()). One ap_start serves that whole
// call: the wrapper forwards the FIFO reads/writes to the core's AXI-Stream ports and follows the
// stream's structure with a step counter (a beat taken while no steps are left is a config word:
// a stats request is counted, a job loads its k, a k = 0 word without stats is just taken, as
// the core takes it). Once the second stats request is taken it reads no more input, and when
// the core is idle (every output beat, the closing stats answer included, has been written) it
// raises ap_done, with a one-cycle ap_ready in its first cycle; ap_done holds until ap_continue,
// and then the wrapper is idle again.
//
// ap_ce: while it is low no FIFO read or write happens (the core sees s_axis_tvalid and
// m_axis_tready low) and the control state holds; ap_ready is only shown in a cycle with ap_ce
// high, so it counts once. The core itself has no clock enable: it keeps running (steps in
// flight, readouts into its output buffer, the cycle counters) and waits at its stream ports.
`timescale 1ns / 1ps
`default_nettype none

module ant_core_bb #(
    // PE rows R (antq.toolchain.vitis.wrapper_source sets the board's array here)
    parameter ROWS   = 8,
    // PE columns C (likewise)
    parameter COLS   = 8,
    // s_axis tdata width, derived as in ant_core: max(64, 32 * ceil(4 (R + C) / 32)); do not override
    parameter DATA_W = (4 * (ROWS + COLS) + 63) / 64 * 64
) (
    input  wire              ap_clk,
    input  wire              ap_rst,
    input  wire              ap_ce,
    input  wire              ap_start,
    input  wire              ap_continue,
    output wire              ap_idle,
    output wire              ap_done,
    output wire              ap_ready,
    input  wire [DATA_W:0]   s_axis_dout,     // {tlast, tdata}
    input  wire              s_axis_empty_n,
    output wire              s_axis_read,
    output wire [32:0]       m_axis_din,      // {tlast, tdata}
    input  wire              m_axis_full_n,
    output wire              m_axis_write
);
    // S_IDLE: waiting for ap_start; S_RUN: forwarding the call's input; S_DRAIN: the closing stats
    // request is taken, waiting for the core to be idle; S_DONE: ap_done until ap_continue
    localparam [1:0] S_IDLE = 2'd0, S_RUN = 2'd1, S_DRAIN = 2'd2, S_DONE = 2'd3;
    reg  [1:0]  state;
    reg  [23:0] steps_left;   // step beats of the open job still to come
    reg         stats_seen;   // the call's first stats request has been taken
    reg         ready_q;      // ap_ready still to show (the first cycle of S_DONE)

    wire              core_s_tready, core_m_tvalid, core_m_tlast, core_idle;
    wire [31:0]       core_m_tdata;
    wire              in_valid = ap_ce && (state == S_RUN) && s_axis_empty_n;
    wire              in_fire  = in_valid && core_s_tready;
    wire              out_ready = ap_ce && m_axis_full_n;
    wire              out_fire = core_m_tvalid && out_ready;

    // the beat taken now, if it is a config word (no steps left): what kind it is
    wire [23:0]       cfg_k    = s_axis_dout[23:0];
    wire              is_cfg   = (steps_left == 24'd0);
    wire              is_stats = is_cfg && s_axis_dout[34] && (cfg_k == 24'd0);

    ant_core #(.ROWS(ROWS), .COLS(COLS), .DATA_W(DATA_W)) core (
        .clk(ap_clk), .rst(ap_rst),
        .s_axis_tdata(s_axis_dout[DATA_W-1:0]), .s_axis_tvalid(in_valid),
        .s_axis_tready(core_s_tready), .s_axis_tlast(s_axis_dout[DATA_W]),
        .m_axis_tdata(core_m_tdata), .m_axis_tvalid(core_m_tvalid),
        .m_axis_tready(out_ready), .m_axis_tlast(core_m_tlast), .idle(core_idle)
    );

    assign s_axis_read  = in_fire;
    assign m_axis_din   = {core_m_tlast, core_m_tdata};
    assign m_axis_write = out_fire;
    assign ap_idle      = (state == S_IDLE);
    assign ap_done      = (state == S_DONE);
    assign ap_ready     = (state == S_DONE) && ready_q && ap_ce;

    always @(posedge ap_clk) begin
        if (ap_rst) begin
            state      <= S_IDLE;
            steps_left <= 24'd0;
            stats_seen <= 1'b0;
            ready_q    <= 1'b0;
        end else if (ap_ce) begin
            case (state)
                S_IDLE: if (ap_start) begin
                    state      <= S_RUN;
                    steps_left <= 24'd0;
                    stats_seen <= 1'b0;
                end
                S_RUN: if (in_fire) begin
                    if (!is_cfg) begin
                        steps_left <= steps_left - 24'd1;
                    end else if (is_stats) begin
                        stats_seen <= 1'b1;
                        if (stats_seen) state <= S_DRAIN;  // the closing request: no more input
                    end else begin
                        steps_left <= cfg_k;               // a job (k = 0: a no-op, nothing to count)
                    end
                end
                S_DRAIN: if (core_idle) begin
                    state   <= S_DONE;
                    ready_q <= 1'b1;
                end
                default: begin
                    ready_q <= 1'b0;
                    if (ap_continue) state <= S_IDLE;
                end
            endcase
        end
    end
endmodule

`default_nettype wire

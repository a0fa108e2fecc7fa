// ant_core_bb.v: the RTL-blackbox face of overlay/rtl/ant_core.v for Vitis HLS
// (hls/ant_core_bb.json; hls/ant_core.h declares the C++ side, ant_core()).
//
// HLS calls ant_core() once per job with ap_ctrl_chain and two hls::stream arguments in the FIFO
// protocol; each stream element is {tlast, tdata} (ant_core.h: core_in_t, core_out_t). This
// wrapper forwards the FIFO reads/writes to the core's AXI-Stream ports and raises ap_done when
// the job is over: after the last output beat for an emitting job, else once the core is idle
// again after the input's tlast.
`timescale 1ns / 1ps
module ant_core_bb #(
    parameter ROWS   = 8,
    parameter COLS   = 8,
    parameter DATA_W = ((4 * (ROWS + COLS) + 31) / 32 * 32 > 64) ? (4 * (ROWS + COLS) + 31) / 32 * 32 : 64
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
    localparam S_IDLE = 2'd0, S_IN = 2'd1, S_OUT = 2'd2, S_DONE = 2'd3;
    reg [1:0] state;
    reg       first, emit;

    wire              core_s_tready, core_m_tvalid, core_m_tlast, core_idle;
    wire [31:0]       core_m_tdata;
    wire              in_valid = (state == S_IN) && s_axis_empty_n;
    wire              in_fire  = in_valid && core_s_tready;
    wire              out_fire = core_m_tvalid && m_axis_full_n;

    ant_core #(.ROWS(ROWS), .COLS(COLS), .DATA_W(DATA_W)) core (
        .clk(ap_clk), .rst(ap_rst),
        .s_axis_tdata(s_axis_dout[DATA_W-1:0]), .s_axis_tvalid(in_valid),
        .s_axis_tready(core_s_tready), .s_axis_tlast(s_axis_dout[DATA_W]),
        .m_axis_tdata(core_m_tdata), .m_axis_tvalid(core_m_tvalid),
        .m_axis_tready(m_axis_full_n), .m_axis_tlast(core_m_tlast), .idle(core_idle)
    );

    assign s_axis_read  = in_fire;
    assign m_axis_din   = {core_m_tlast, core_m_tdata};
    assign m_axis_write = out_fire;
    assign ap_idle      = (state == S_IDLE);
    assign ap_done      = (state == S_DONE);
    assign ap_ready     = (state == S_DONE);

    always @(posedge ap_clk) begin
        if (ap_rst) begin
            state <= S_IDLE;
            first <= 1'b0;
            emit  <= 1'b0;
        end else begin
            case (state)
                S_IDLE: if (ap_start) begin
                    state <= S_IN;
                    first <= 1'b1;
                end
                S_IN: if (in_fire) begin
                    if (first) emit <= s_axis_dout[33];  // config beat: bit 33 = emit
                    first <= 1'b0;
                    if (s_axis_dout[DATA_W] && !first) state <= S_OUT;  // tlast of the last step
                end
                S_OUT: if (emit ? (out_fire && core_m_tlast) : core_idle) state <= S_DONE;
                default: if (ap_continue) state <= S_IDLE;
            endcase
        end
    end
endmodule

// ant_core: the ANT PE array and its control behind AXI-Stream (docs/contracts.md §10).
//
// One job on s_axis: beat 0 is the config word, beats 1..K are the K reduction steps
//   config  [23:0] k   [25:24] a_kind  [26] a_signed  [27] a_hi
//           [29:28] w_kind  [30] w_signed  [31] w_hi  [32] acc  [33] emit  [63:34] reserved (0)
//   step    bits 4i+3:4i = activation code of row i, bits 4R+4j+3:4R+4j = weight code of
//           column j (one step of an activation tile block, then one of a weight tile block)
// acc = 0 clears the accumulators before the job, acc = 1 adds to what the previous jobs left.
// With emit = 1 the core then sends the R*C accumulators on m_axis, row-major (beat r*C + c
// is PE (r, c)), TLAST on the last; emitting does not change the accumulators.
//
// The core counts K; s_axis_tlast (1 on beat K) is not needed and is ignored. A config word
// with k = 0 (outside the contract's 1 .. 2^24-1) is tolerated: no steps, then acc/emit apply. s_axis_tready
// is high while the core waits for a config word or for steps, so bubbles (tvalid low) just
// become zero steps in the array: nothing is lost or duplicated. m_axis holds tdata/tlast
// stable while tvalid is high and tready is low (a registered output stage).
//
// Timing: IDLE -(config)-> RUN -(K steps)-> FLUSH (R + C - 2 cycles, the array drains)
// -> EMIT (R*C beats, if emit) -> IDLE. `idle` is high in IDLE. A job of K steps takes
// 1 + K + (R + C - 2) cycles, plus R*C + 1 with emit, when the streams never stall.
//
// Clock and reset: one clock; rst is synchronous and active high. Reset at any time, also in
// the middle of a job, returns the core to IDLE with cleared accumulators, an empty array and
// m_axis_tvalid low; a partly sent job is dropped (the sender must restart it from beat 0).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module ant_core #(
    // PE rows R (antq.core.arch.ARRAY_ROWS)
    parameter ROWS         = 8,
    // PE columns C (antq.core.arch.ARRAY_COLS)
    parameter COLS         = 8,
    // signed accumulator width = m_axis_tdata width (antq.core.arch.ACC_BITS; the contract says 32)
    parameter ACC_W        = 32,
    // 0: decoders at the array edges (the paper's arrangement); 1: a decoder pair in every PE
    parameter DECODE_IN_PE = 0,
    // s_axis_tdata width, derived: max(64, 32 * ceil(4 (R + C) / 32)); do not override
    parameter DATA_W       = ((4 * (ROWS + COLS) + 31) / 32 * 32 > 64) ?
                             (4 * (ROWS + COLS) + 31) / 32 * 32 : 64
) (
    input  wire              clk,
    input  wire              rst,

    input  wire [DATA_W-1:0] s_axis_tdata,
    input  wire              s_axis_tvalid,
    output wire              s_axis_tready,
    input  wire              s_axis_tlast,

    output reg  [ACC_W-1:0]  m_axis_tdata,
    output reg               m_axis_tvalid,
    input  wire              m_axis_tready,
    output reg               m_axis_tlast,

    output wire              idle
);

    localparam NPE     = ROWS * COLS;
    localparam SEL_W   = (NPE > 1) ? $clog2(NPE) : 1;
    // FLUSH + 1 cycles between the last step and the next state. A step accepted in cycle T
    // is in a_step/w_step in T+1 and in PE (R-1, C-1)'s accumulator at the end of T+R+C-1.
    // After a job without emit the next config is accepted in T+FLUSH+2 at the earliest. It
    // clears (clr_q) at the end of T+FLUSH+3, which must not come before that last
    // accumulation (FLUSH >= R+C-4; a clear on the same edge wins, as the new job wants), and
    // in the PE-decoded variant it changes the type config from T+FLUSH+3 on, while the old
    // steps must still decode with the old one (FLUSH >= R+C-3). The readout needs no wait:
    // PE (r, c) is read in EMIT cycle r*C + c or later, after it is final.
    localparam FLUSH   = (ROWS + COLS > 3) ? ROWS + COLS - 3 : 0;
    localparam FLUSH_W = $clog2(FLUSH + 2);

    localparam [1:0] ST_IDLE = 2'd0, ST_RUN = 2'd1, ST_FLUSH = 2'd2, ST_EMIT = 2'd3;

    reg  [1:0]          state;
    reg  [23:0]         k_left;     // steps still to come in RUN
    reg  [FLUSH_W-1:0]  flush_cnt;
    reg  [SEL_W-1:0]    rd_idx;     // next PE to read in EMIT
    reg                 emit_q;
    reg                 clr_q;

    // the job's type config, held for the whole job
    reg  [1:0]          a_kind_q, w_kind_q;
    reg                 a_signed_q, a_hi_q, w_signed_q, w_hi_q;

    // the current step (all zero when there is none)
    reg  [4*ROWS-1:0]   a_step;
    reg  [4*COLS-1:0]   w_step;

    wire [ACC_W-1:0]    rd_data;

    assign s_axis_tready = !rst && (state == ST_IDLE || state == ST_RUN);
    assign idle          = (state == ST_IDLE);

    wire s_fire = s_axis_tvalid && s_axis_tready;

    // config word fields (beat 0)
    wire [23:0] cfg_k    = s_axis_tdata[23:0];
    wire        cfg_acc  = s_axis_tdata[32];
    wire        cfg_emit = s_axis_tdata[33];

    // reserved config bits, the bits above the last step field, and tlast are not used
    wire unused_in = &{1'b0, s_axis_tdata, s_axis_tlast};

    always @(posedge clk) begin
        if (rst) begin
            state         <= ST_IDLE;
            k_left        <= 24'd0;
            flush_cnt     <= {FLUSH_W{1'b0}};
            rd_idx        <= {SEL_W{1'b0}};
            emit_q        <= 1'b0;
            clr_q         <= 1'b0;
            a_kind_q      <= 2'd0;
            w_kind_q      <= 2'd0;
            a_signed_q    <= 1'b0;
            a_hi_q        <= 1'b0;
            w_signed_q    <= 1'b0;
            w_hi_q        <= 1'b0;
            a_step        <= {4*ROWS{1'b0}};
            w_step        <= {4*COLS{1'b0}};
            m_axis_tdata  <= {ACC_W{1'b0}};
            m_axis_tvalid <= 1'b0;
            m_axis_tlast  <= 1'b0;
        end else begin
            a_step <= {4*ROWS{1'b0}};
            w_step <= {4*COLS{1'b0}};
            clr_q  <= 1'b0;
            case (state)
                ST_IDLE: begin
                    if (s_fire) begin
                        {w_hi_q, w_signed_q, w_kind_q, a_hi_q, a_signed_q, a_kind_q}
                                  <= s_axis_tdata[31:24];
                        k_left    <= cfg_k;
                        emit_q    <= cfg_emit;
                        clr_q     <= !cfg_acc;
                        flush_cnt <= FLUSH[FLUSH_W-1:0];
                        state     <= (cfg_k == 24'd0) ? ST_FLUSH : ST_RUN;
                    end
                end
                ST_RUN: begin
                    if (s_fire) begin
                        a_step <= s_axis_tdata[4*ROWS-1:0];
                        w_step <= s_axis_tdata[4*(ROWS+COLS)-1:4*ROWS];
                        k_left <= k_left - 24'd1;
                        if (k_left == 24'd1) begin
                            state <= ST_FLUSH;
                        end
                    end
                end
                ST_FLUSH: begin
                    if (flush_cnt == {FLUSH_W{1'b0}}) begin
                        rd_idx <= {SEL_W{1'b0}};
                        state  <= emit_q ? ST_EMIT : ST_IDLE;
                    end else begin
                        flush_cnt <= flush_cnt - 1'b1;
                    end
                end
                default: begin  // ST_EMIT: one beat per cycle through the output register
                    if (m_axis_tvalid && m_axis_tready && m_axis_tlast) begin
                        m_axis_tvalid <= 1'b0;
                        m_axis_tlast  <= 1'b0;
                        state         <= ST_IDLE;
                    end else if (!m_axis_tvalid || m_axis_tready) begin
                        m_axis_tdata  <= rd_data;
                        m_axis_tvalid <= 1'b1;
                        m_axis_tlast  <= ({{(32-SEL_W){1'b0}}, rd_idx} == NPE - 1);
                        rd_idx        <= rd_idx + 1'b1;
                    end
                end
            endcase
        end
    end

    ant_array #(
        .ROWS(ROWS),
        .COLS(COLS),
        .ACC_W(ACC_W),
        .DECODE_IN_PE(DECODE_IN_PE)
    ) array (
        .clk(clk), .rst(rst), .clr(clr_q),
        .a_kind(a_kind_q), .a_signed(a_signed_q), .a_hi(a_hi_q),
        .w_kind(w_kind_q), .w_signed(w_signed_q), .w_hi(w_hi_q),
        .a_codes(a_step), .w_codes(w_step),
        .rd_sel(rd_idx), .rd_data(rd_data)
    );

endmodule

`resetall

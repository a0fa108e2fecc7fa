// ant_core: the ANT PE array, its stall-free job stream and its cycle counters behind AXI-Stream
// (docs/contracts.md §10 is the contract, with the exact timing rules this module implements).
//
// s_axis carries jobs back to back, one beat per cycle. A job is a config beat and K step beats:
//   config  [23:0] k   [25:24] a_kind  [26] a_signed  [27] a_hi
//           [29:28] w_kind  [30] w_signed  [31] w_hi  [32] acc  [33] emit  [34] stats
//           [63:35] reserved (0)
//   step    bits 4i+3:4i = activation code of row i, bits 4R+4j+3:4R+4j = weight code of
//           column j (one step of an activation tile block, then one of a weight tile block)
// acc = 0 clears the accumulators in front of the job's first step (the clear rides the config
// beat's slot through the array), acc = 1 adds to what the previous jobs left. emit = 1 captures the sums after the job's last step into the PEs' shadow registers
// and sends them on m_axis, row-major (beat r*C + c is PE (r, c)), TLAST on the last, while the
// next jobs already run. A config beat with stats = 1 and k = 0 is a stats request: four beats
// [total, busy, stall_in, stall_out] follow on m_axis after every result still pending (TLAST
// on the fourth), and the counters restart. k = 0 without stats is outside the contract: the
// beat is taken and ignored. s_axis_tlast is not needed (the core counts K) and is ignored.
//
// Everything a step needs (its codes, its job's types, the clr/last markers) travels with it
// through the skew, so the array never drains between jobs. The only input stalls:
//   - the last step of an emitting job is held until the previous emitting job's readout has
//     started and has at most READ_AHEAD shadows left to read, all of which fit into the output
//     buffer (OUT_CAP beats read and not yet sent, counting them): then the rest of that
//     readout is read in the next cycles, before the new sums reach the shadows;
//   - a stats request is held while an earlier one still waits for its turn (never in the data
//     mover's use: one request at the start and one at the end of a call).
// Output: shadow -> one registered mux stage -> the m_axis register, with a FIFO behind it so
// that the OUT_CAP beats in flight never need the sink. A job's last step accepted in cycle a
// gives its first result beat in cycle a + 6 when the output is free and the sink ready.
//
// Counters (ACC_W bits, free-running, reset to 0; a stats answer reports the cycles since the
// previous answer's snapshot, or reset, up to and including its own, and restarts them):
//   total     every cycle
//   busy      a step is in the array (the FLIGHT cycles after it was taken), or output work is
//             pending (an emitting job's last step or a stats request was taken and its last
//             beat has not been sent yet)
//   stall_in  s_axis_tready && !s_axis_tvalid while input is expected: after a beat other than a
//             stats request was taken (a job is open, or the next one is due)
//   stall_out m_axis_tvalid && !m_axis_tready
//
// Clock and reset: one clock; rst is synchronous and active high. Reset at any time returns the
// core to idle: no job open, an empty array, no results pending, cleared counters and
// m_axis_tvalid low; a partly sent job is dropped (the sender restarts it from its config beat).
// `idle` is high when no job is open, no step is in the array and no output is pending.

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
    // s_axis_tdata width, derived: 64 * ceil(4 (R + C) / 64), whole 64-bit words; do not override
    parameter DATA_W       = (4 * (ROWS + COLS) + 63) / 64 * 64
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

    localparam NPE    = ROWS * COLS;
    localparam ROW_W  = (ROWS > 1) ? $clog2(ROWS) : 1;
    localparam COL_W  = (COLS > 1) ? $clog2(COLS) : 1;
    // beats of the current output task still to read: up to NPE - 1, or 3 of a stats answer
    localparam LEFT_W = $clog2(((NPE > 4) ? NPE : 4) + 1);
    // cycles a taken step stays in the array: step register, edge register, R + C - 2 hops and
    // the two PE stages (docs/contracts.md §10)
    localparam FLIGHT = ROWS + COLS + 1;
    localparam FL_W   = $clog2(FLIGHT + 1);
    localparam FIFO_D = 5;

    // beats an emitting job's last step may leave to read of the previous readout
    localparam [LEFT_W-1:0] READ_AHEAD = 4;
    // output beats read and not yet sent, at most: the mux stage, m_axis and the FIFO
    localparam [2:0]        OUT_CAP    = 3'd6;
    localparam              NPE_M1     = NPE - 1;
    localparam [LEFT_W-1:0] LAST_BEAT  = NPE_M1[LEFT_W-1:0];
    localparam [LEFT_W-1:0] STATS_LEFT = 3;
    localparam [LEFT_W-1:0] ONE        = 1;

    // ---- input side ----
    reg                 job_open;   // config taken, steps to come
    reg  [23:0]         k_left;
    reg                 k_one;      // k_left == 1: the next step is the job's last
    reg                 emit_q;
    reg  [7:0]          cfg_q;      // {w_hi, w_signed, w_kind, a_hi, a_signed, a_kind}
    reg                 expect_q;   // input is expected (for stall_in)
    reg  [FL_W-1:0]     flight;     // cycles until the last taken step has left the array

    // the step register (all zero when there is no step; a clear in the slot of an acc = 0
    // job's config beat)
    reg  [4*ROWS-1:0]   step_a;
    reg  [4*COLS-1:0]   step_w;
    reg                 step_clr, step_last;

    // ---- output tasks: readouts (NPE beats) and stats answers (4 beats), in order ----
    reg                 r_pend;     // a readout is committed and has not started
    reg  [1:0]          r_wait;     // cycles until its PE (0, 0) has captured
    reg                 s_pend;     // a stats answer waits
    reg                 s_first;    // ... ahead of the pending readout
    reg                 cur_v;      // a task is part-way read
    reg                 cur_s;      // ... and it is a stats answer
    reg  [LEFT_W-1:0]   cur_left;   // its beats still to read
    reg  [1:0]          st_idx;     // next stats word
    reg  [ROW_W-1:0]    rd_row;     // next shadow to read
    reg  [COL_W-1:0]    rd_col;
    reg  [2:0]          out_cnt;    // beats read and not yet sent

    // the mux stage (beats read in the previous cycle) and the FIFO
    reg                 v1, s1, last1;
    reg  [1:0]          idx1;
    reg  [ACC_W:0]      fifo [0:FIFO_D-1];  // {tlast, tdata}, fifo[0] the oldest
    reg  [2:0]          f_cnt;

    // ---- counters and the snapshot a stats answer sends ----
    reg  [ACC_W-1:0]    c_total, c_busy, c_in, c_out;
    reg  [ACC_W-1:0]    snap [0:3];

    wire [ACC_W-1:0]    rd_data;

    // ---- handshakes and hold rules ----
    wire [23:0] cfg_k        = s_axis_tdata[23:0];
    wire        cfg_zero     = (cfg_k == 24'd0);
    wire        cfg_is_stats = s_axis_tdata[34] && cfg_zero;

    wire head_s  = s_pend && (s_first || !r_pend);
    wire head_ok = head_s || (r_pend && r_wait == 2'd0);
    wire issue   = (out_cnt < OUT_CAP) && (cur_v || head_ok);
    wire start   = issue && !cur_v;
    wire s_start = start && head_s;
    wire r_start = start && !head_s;
    wire iss_s   = cur_v ? cur_s : head_s;

    wire read_ahead_ok = (cur_left <= READ_AHEAD) &&
                         ({1'b0, cur_left[2:0]} + {1'b0, out_cnt} <= {1'b0, OUT_CAP});
    wire commit_ok  = !r_pend && (!(cur_v && !cur_s) || read_ahead_ok);
    wire hold_last  = job_open && k_one && emit_q && !commit_ok;
    wire hold_stats = s_axis_tvalid && !job_open && cfg_is_stats && s_pend && !s_start;

    assign s_axis_tready = !rst && !hold_last && !hold_stats;

    wire s_fire    = s_axis_tvalid && s_axis_tready;
    wire cfg_fire  = s_fire && !job_open;
    wire step_fire = s_fire && job_open;
    wire commit    = step_fire && k_one && emit_q;
    wire stats_req = cfg_fire && cfg_is_stats;

    wire m_xfer = m_axis_tvalid && m_axis_tready;
    wire m_free = !m_axis_tvalid || m_axis_tready;
    wire pop    = m_free && (f_cnt != 3'd0);
    wire push   = v1 && !(m_free && f_cnt == 3'd0);

    wire busy   = (flight != {FL_W{1'b0}}) || r_pend || s_pend || cur_v || (out_cnt != 3'd0);
    wire st_in  = s_axis_tready && !s_axis_tvalid && expect_q;
    wire st_out = m_axis_tvalid && !m_axis_tready;

    assign idle = !job_open && !busy;

    wire [ACC_W:0] beat = {last1, s1 ? snap[idx1] : rd_data};

    // reserved config bits, the bits above the last step field, and tlast are not used
    wire unused_in = &{1'b0, s_axis_tdata, s_axis_tlast};

    // ---- input: jobs, steps and the step register ----
    always @(posedge clk) begin
        if (rst) begin
            job_open   <= 1'b0;
            k_left     <= 24'd0;
            k_one      <= 1'b0;
            emit_q     <= 1'b0;
            cfg_q      <= 8'd0;
            expect_q   <= 1'b0;
            flight     <= {FL_W{1'b0}};
            step_a     <= {4*ROWS{1'b0}};
            step_w     <= {4*COLS{1'b0}};
            step_clr   <= 1'b0;
            step_last  <= 1'b0;
        end else begin
            step_a     <= {4*ROWS{1'b0}};
            step_w     <= {4*COLS{1'b0}};
            step_clr   <= 1'b0;
            step_last  <= 1'b0;
            if (cfg_fire && !cfg_zero) begin
                job_open   <= 1'b1;
                k_left     <= cfg_k;
                k_one      <= (cfg_k == 24'd1);
                emit_q     <= s_axis_tdata[33];
                step_clr   <= !s_axis_tdata[32];
                cfg_q      <= s_axis_tdata[31:24];
            end
            if (step_fire) begin
                step_a     <= s_axis_tdata[4*ROWS-1:0];
                step_w     <= s_axis_tdata[4*(ROWS+COLS)-1:4*ROWS];
                step_last  <= k_one && emit_q;
                k_left     <= k_left - 24'd1;
                k_one      <= (k_left == 24'd2);
                if (k_one) begin
                    job_open <= 1'b0;
                end
            end
            if (s_fire) begin
                expect_q <= !stats_req;
            end
            if (step_fire) begin
                flight <= FLIGHT[FL_W-1:0];
            end else if (flight != {FL_W{1'b0}}) begin
                flight <= flight - 1'b1;
            end
        end
    end

    // ---- output tasks and the read engine ----
    always @(posedge clk) begin
        if (rst) begin
            r_pend   <= 1'b0;
            r_wait   <= 2'd0;
            s_pend   <= 1'b0;
            s_first  <= 1'b0;
            cur_v    <= 1'b0;
            cur_s    <= 1'b0;
            cur_left <= {LEFT_W{1'b0}};
            st_idx   <= 2'd0;
            rd_row   <= {ROW_W{1'b0}};
            rd_col   <= {COL_W{1'b0}};
            out_cnt  <= 3'd0;
            v1       <= 1'b0;
            s1       <= 1'b0;
            last1    <= 1'b0;
            idx1     <= 2'd0;
        end else begin
            if (commit) begin
                r_pend <= 1'b1;
                r_wait <= 2'd3;
            end else if (r_wait != 2'd0) begin
                r_wait <= r_wait - 2'd1;
            end
            if (r_start) begin
                r_pend <= 1'b0;
            end
            s_pend <= (s_pend && !s_start) || stats_req;
            if (stats_req) begin
                s_first <= !(r_pend && !r_start);
            end else if (r_start) begin
                s_first <= 1'b1;
            end

            if (issue) begin
                cur_s <= iss_s;
                if (iss_s) begin
                    st_idx   <= start ? 2'd1 : st_idx + 2'd1;
                    cur_left <= start ? STATS_LEFT : cur_left - 1'b1;
                    cur_v    <= start || (cur_left != ONE);
                end else begin
                    cur_left <= start ? LAST_BEAT : cur_left - 1'b1;
                    cur_v    <= start ? (NPE > 1) : (cur_left != ONE);
                    if ({{(32-COL_W){1'b0}}, rd_col} == COLS - 1) begin
                        rd_col <= {COL_W{1'b0}};
                        rd_row <= ({{(32-ROW_W){1'b0}}, rd_row} == ROWS - 1) ? {ROW_W{1'b0}} : rd_row + 1'b1;
                    end else begin
                        rd_col <= rd_col + 1'b1;
                    end
                end
            end
            v1      <= issue;
            s1      <= iss_s;
            idx1    <= start ? 2'd0 : st_idx;
            last1   <= start ? (!head_s && NPE == 1) : (cur_left == ONE);
            out_cnt <= out_cnt + {2'b00, issue} - {2'b00, m_xfer};
        end
    end

    // ---- m_axis register and the FIFO behind it ----
    always @(posedge clk) begin
        if (rst) begin
            m_axis_tdata  <= {ACC_W{1'b0}};
            m_axis_tvalid <= 1'b0;
            m_axis_tlast  <= 1'b0;
            f_cnt         <= 3'd0;
        end else begin
            if (m_free) begin
                if (f_cnt != 3'd0) begin
                    {m_axis_tlast, m_axis_tdata} <= fifo[0];
                    m_axis_tvalid <= 1'b1;
                end else if (v1) begin
                    {m_axis_tlast, m_axis_tdata} <= beat;
                    m_axis_tvalid <= 1'b1;
                end else begin
                    m_axis_tvalid <= 1'b0;
                end
            end
            f_cnt <= f_cnt + {2'b00, push} - {2'b00, pop};
        end
    end

    genvar i;
    generate
        for (i = 0; i < FIFO_D; i = i + 1) begin : g_fifo
            // after a pop entry i takes entry i + 1; a push lands behind the last kept entry
            wire [2:0] slot = f_cnt - {2'b00, pop};
            wire [ACC_W:0] next = (i + 1 < FIFO_D) ? fifo[(i + 1) % FIFO_D] : fifo[i];
            always @(posedge clk) begin
                if (push && slot == i) begin
                    fifo[i] <= beat;
                end else if (pop) begin
                    fifo[i] <= next;
                end
            end
        end
    endgenerate

    // ---- counters ----
    always @(posedge clk) begin
        if (rst) begin
            c_total <= {ACC_W{1'b0}};
            c_busy  <= {ACC_W{1'b0}};
            c_in    <= {ACC_W{1'b0}};
            c_out   <= {ACC_W{1'b0}};
            snap[0] <= {ACC_W{1'b0}};
            snap[1] <= {ACC_W{1'b0}};
            snap[2] <= {ACC_W{1'b0}};
            snap[3] <= {ACC_W{1'b0}};
        end else if (s_start) begin
            snap[0] <= c_total + 1'b1;
            snap[1] <= c_busy + {{(ACC_W-1){1'b0}}, busy};
            snap[2] <= c_in + {{(ACC_W-1){1'b0}}, st_in};
            snap[3] <= c_out + {{(ACC_W-1){1'b0}}, st_out};
            c_total <= {ACC_W{1'b0}};
            c_busy  <= {ACC_W{1'b0}};
            c_in    <= {ACC_W{1'b0}};
            c_out   <= {ACC_W{1'b0}};
        end else begin
            c_total <= c_total + 1'b1;
            c_busy  <= c_busy + {{(ACC_W-1){1'b0}}, busy};
            c_in    <= c_in + {{(ACC_W-1){1'b0}}, st_in};
            c_out   <= c_out + {{(ACC_W-1){1'b0}}, st_out};
        end
    end

    ant_array #(
        .ROWS(ROWS),
        .COLS(COLS),
        .ACC_W(ACC_W),
        .DECODE_IN_PE(DECODE_IN_PE)
    ) array (
        .clk(clk), .rst(rst),
        .a_kind(cfg_q[1:0]), .a_signed(cfg_q[2]), .a_hi(cfg_q[3]),
        .w_kind(cfg_q[5:4]), .w_signed(cfg_q[6]), .w_hi(cfg_q[7]),
        .a_codes(step_a), .w_codes(step_w),
        .clr(step_clr), .last(step_last),
        .rd_row(rd_row), .rd_col(rd_col), .rd_data(rd_data)
    );

endmodule

`resetall

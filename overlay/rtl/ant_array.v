// ant_array: an R x C output-stationary systolic array of ant_pe with a shadowed, pipelined readout.
//
// Each cycle the array takes one reduction step: the 4-bit activation codes of its R rows and
// the 4-bit weight codes of its C columns (all zero when there is no step: code 0 is zero in
// every format), the type config of the step's job, and the markers: `clr` (on a bubble in
// front of a job with acc = 0: clear the accumulators) and `last` (on the last step of a job
// with emit = 1: capture the sums into the shadow registers). PE (r, c) accumulates
// sum_k a[r][k] * w[c][k]. Everything a step needs travels with it, so jobs with other types or
// acc/emit settings follow each other without a gap.
//
// Data flow: the edge registers sample the step (decoded, for DECODE_IN_PE = 0) at the end of
// the cycle it is presented in, say p. Row r's operand and markers then take r cycles of skew to
// PE (r, 0), column c's operand c cycles to PE (0, c), and every PE hands its operands on to its
// right and lower neighbour one cycle later, so the step is in stage A of PE (r, c) in cycle
// p + 1 + r + c and in its accumulator (and, with `last`, its shadow) from cycle p + 3 + r + c on;
// a clear presented in cycle p has cleared PE (r, c) from cycle p + 3 + r + c on.
//
// DECODE_IN_PE = 0 (the paper's arrangement): R + C ant_decoders sit at the array edges and the
//   decoded {sign, M, S} (9 bits) travels through the skew registers and the array.
// DECODE_IN_PE = 1 (for the cost report): the raw codes travel with their type config
//   {kind, signed, hi} (8 bits) and every PE decodes both operands itself.
//
// Readout (registered, two stages): rd_row / rd_col in cycle t select the shadow of PE
// (rd_row, rd_col); every row's rd_col shadow is registered at the end of t (a C:1 mux per row)
// and rd_data in cycle t + 1 is the selected row's (an R:1 mux), for the caller to register. A
// capture at the same clock edge as the read is not seen: the read returns the old value.
// rd_row / rd_col must stay below R / C. rst (synchronous, active high) clears the
// accumulators, the edge, skew, pipeline and pass-through registers and the markers.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module ant_array #(
    // PE rows R (antq.core.arch.ARRAY_ROWS); row r accumulates output row m0 + r
    parameter ROWS         = 8,
    // PE columns C (antq.core.arch.ARRAY_COLS); column c accumulates output column n0 + c
    parameter COLS         = 8,
    // signed accumulator width (antq.core.arch.ACC_BITS)
    parameter ACC_W        = 32,
    // 0: decoders at the array edges (decoded operands travel); 1: a decoder pair in every PE
    parameter DECODE_IN_PE = 0,
    // readout select widths, derived: do not override
    parameter ROW_W        = (ROWS > 1) ? $clog2(ROWS) : 1,
    parameter COL_W        = (COLS > 1) ? $clog2(COLS) : 1
) (
    input  wire                clk,
    input  wire                rst,
    input  wire [1:0]          a_kind,
    input  wire                a_signed,
    input  wire                a_hi,
    input  wire [1:0]          w_kind,
    input  wire                w_signed,
    input  wire                w_hi,
    input  wire [4*ROWS-1:0]   a_codes,
    input  wire [4*COLS-1:0]   w_codes,
    input  wire                clr,
    input  wire                last,
    input  wire [ROW_W-1:0]    rd_row,
    input  wire [COL_W-1:0]    rd_col,
    output wire [ACC_W-1:0]    rd_data
);

    localparam OP_W = (DECODE_IN_PE != 0) ? 8 : 9;
    localparam NPE  = ROWS * COLS;

    // Operand links, unpacked (Icarus is slow on wide packed vectors with many part-selects):
    // a_link[r*(COLS+1) + c] enters PE (r, c) from the left, with its markers c_link (clr)
    // and l_link (last); w_link[c*(ROWS+1) + r] enters it from above.
    wire [OP_W-1:0]  a_link [0:ROWS*(COLS+1)-1];
    wire             c_link [0:ROWS*(COLS+1)-1];
    wire             l_link [0:ROWS*(COLS+1)-1];
    wire [OP_W-1:0]  w_link [0:COLS*(ROWS+1)-1];
    wire [ACC_W-1:0] shadow [0:NPE-1];
    wire [ACC_W-1:0] acc    [0:NPE-1];

    genvar r, c, d;

    // ---- array edges: (decode,) register and skew ----
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_a_edge
            wire [OP_W-1:0] op;
            if (DECODE_IN_PE != 0) begin : g_raw
                assign op = {a_kind, a_signed, a_hi, a_codes[4*r +: 4]};
            end else begin : g_dec
                wire       sign;
                wire [3:0] m;
                wire [3:0] s;
                ant_decoder dec (
                    .code(a_codes[4*r +: 4]), .kind(a_kind), .is_signed(a_signed), .hi(a_hi),
                    .sign(sign), .m(m), .s(s)
                );
                assign op = {sign, m, s};
            end
            // pipe[0] is the edge register, pipe[1..r] the skew
            reg [OP_W-1:0] pipe  [0:r];
            reg [1:0]      mpipe [0:r];
            always @(posedge clk) begin
                pipe[0]  <= rst ? {OP_W{1'b0}} : op;
                mpipe[0] <= rst ? 2'b00 : {clr, last};
            end
            for (d = 1; d <= r; d = d + 1) begin : g_stage
                always @(posedge clk) begin
                    pipe[d]  <= rst ? {OP_W{1'b0}} : pipe[d-1];
                    mpipe[d] <= rst ? 2'b00 : mpipe[d-1];
                end
            end
            assign a_link[r*(COLS+1)] = pipe[r];
            assign c_link[r*(COLS+1)] = mpipe[r][1];
            assign l_link[r*(COLS+1)] = mpipe[r][0];
        end

        for (c = 0; c < COLS; c = c + 1) begin : g_w_edge
            wire [OP_W-1:0] op;
            if (DECODE_IN_PE != 0) begin : g_raw
                assign op = {w_kind, w_signed, w_hi, w_codes[4*c +: 4]};
            end else begin : g_dec
                wire       sign;
                wire [3:0] m;
                wire [3:0] s;
                ant_decoder dec (
                    .code(w_codes[4*c +: 4]), .kind(w_kind), .is_signed(w_signed), .hi(w_hi),
                    .sign(sign), .m(m), .s(s)
                );
                assign op = {sign, m, s};
            end
            reg [OP_W-1:0] pipe [0:c];
            always @(posedge clk) begin
                pipe[0] <= rst ? {OP_W{1'b0}} : op;
            end
            for (d = 1; d <= c; d = d + 1) begin : g_stage
                always @(posedge clk) begin
                    pipe[d] <= rst ? {OP_W{1'b0}} : pipe[d-1];
                end
            end
            assign w_link[c*(ROWS+1)] = pipe[c];
        end

        // ---- the PE grid ----
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                ant_pe #(
                    .ACC_W(ACC_W),
                    .DECODE(DECODE_IN_PE)
                ) pe (
                    .clk(clk), .rst(rst),
                    .a_in(a_link[r*(COLS+1) + c]),
                    .w_in(w_link[c*(ROWS+1) + r]),
                    .clr_in(c_link[r*(COLS+1) + c]),
                    .last_in(l_link[r*(COLS+1) + c]),
                    .a_out(a_link[r*(COLS+1) + c + 1]),
                    .w_out(w_link[c*(ROWS+1) + r + 1]),
                    .clr_out(c_link[r*(COLS+1) + c + 1]),
                    .last_out(l_link[r*(COLS+1) + c + 1]),
                    .acc(acc[r*COLS + c]),
                    .shadow(shadow[r*COLS + c])
                );
            end
        end
    endgenerate

    // ---- readout: a C:1 mux per row into row_q, then an R:1 mux ----
    reg [ACC_W-1:0] row_q [0:ROWS-1];
    reg [ROW_W-1:0] rd_row_q;

    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_rd_row
            always @(posedge clk) begin
                row_q[r] <= shadow[r*COLS + {{(32-COL_W){1'b0}}, rd_col}];
            end
        end
    endgenerate

    always @(posedge clk) begin
        rd_row_q <= rd_row;
    end

    assign rd_data = row_q[rd_row_q];

    // The last column's activations and markers and the last row's weights leave the array
    // unused, and the accumulators are read only through the shadows.
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_a_sink
            wire unused_a = &{1'b0, a_link[r*(COLS+1) + COLS], c_link[r*(COLS+1) + COLS],
                              l_link[r*(COLS+1) + COLS]};
        end
        for (c = 0; c < COLS; c = c + 1) begin : g_w_sink
            wire unused_w = &{1'b0, w_link[c*(ROWS+1) + ROWS]};
        end
        for (d = 0; d < NPE; d = d + 1) begin : g_acc_sink
            wire unused_acc = &{1'b0, acc[d]};
        end
    endgenerate

endmodule

`resetall

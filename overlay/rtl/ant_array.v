// ant_array: an R x C output-stationary systolic array of ant_pe.
//
// Each cycle the array takes one reduction step: the 4-bit activation codes of its R rows and
// the 4-bit weight codes of its C columns (all zero when there is no step: code 0 is zero in
// every format). PE (r, c) accumulates sum_k a[r][k] * w[c][k].
//
// Data flow: row r's operand enters PE (r, 0) after r cycles of skew, column c's operand enters
// PE (0, c) after c cycles, and every PE hands its operands on to its right and lower
// neighbour one cycle later, so step k meets in PE (r, c) exactly r + c cycles after it was
// presented. A step presented in cycle t is in every accumulator from cycle t + R + C - 1 on
// (LATENCY below).
//
// DECODE_IN_PE = 0 (the paper's arrangement): R + C ant_decoders sit at the array edges and the
//   decoded {sign, M, S} (9 bits) travels through the skew registers and the array.
// DECODE_IN_PE = 1 (for the cost report): the raw codes travel and every PE decodes both
//   operands itself; the type config is broadcast.
//
// The type config must stay constant while steps are in flight (the PE-decoded variant
// decodes them on the way); ant_core holds it for a whole job and drains between jobs.
//
// Readout: rd_data = accumulator of PE (rd_sel / C, rd_sel % C), a combinational narrow mux
// (rd_sel >= R*C reads 0). clr zeroes every accumulator; rst (synchronous, active high) clears
// the accumulators, the skew registers and the pass-through registers.

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
    // readout select width, derived: do not override
    parameter SEL_W        = (ROWS * COLS > 1) ? $clog2(ROWS * COLS) : 1
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                clr,
    input  wire [1:0]          a_kind,
    input  wire                a_signed,
    input  wire                a_hi,
    input  wire [1:0]          w_kind,
    input  wire                w_signed,
    input  wire                w_hi,
    input  wire [4*ROWS-1:0]   a_codes,
    input  wire [4*COLS-1:0]   w_codes,
    input  wire [SEL_W-1:0]    rd_sel,
    output wire [ACC_W-1:0]    rd_data
);

    localparam OP_W = (DECODE_IN_PE != 0) ? 4 : 9;
    localparam NPE  = ROWS * COLS;

    wire [3:0] a_cfg = {a_kind, a_signed, a_hi};
    wire [3:0] w_cfg = {w_kind, w_signed, w_hi};

    // Operand links, unpacked (Icarus is slow on wide packed vectors with many part-selects):
    // a_link[r*(COLS+1) + c] enters PE (r, c) from the left; w_link[c*(ROWS+1) + r] from above.
    wire [OP_W-1:0]  a_link [0:ROWS*(COLS+1)-1];
    wire [OP_W-1:0]  w_link [0:COLS*(ROWS+1)-1];
    wire [ACC_W-1:0] acc    [0:NPE-1];

    genvar r, c, d;

    // ---- array edges: (decode and) skew ----
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_a_edge
            wire [OP_W-1:0] op;
            if (DECODE_IN_PE != 0) begin : g_raw
                assign op = a_codes[4*r +: 4];
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
            if (r == 0) begin : g_noskew
                assign a_link[0] = op;
            end else begin : g_skew
                reg [OP_W-1:0] pipe [0:r-1];
                always @(posedge clk) begin
                    pipe[0] <= rst ? {OP_W{1'b0}} : op;
                end
                for (d = 1; d < r; d = d + 1) begin : g_stage
                    always @(posedge clk) begin
                        pipe[d] <= rst ? {OP_W{1'b0}} : pipe[d-1];
                    end
                end
                assign a_link[r*(COLS+1)] = pipe[r-1];
            end
        end

        for (c = 0; c < COLS; c = c + 1) begin : g_w_edge
            wire [OP_W-1:0] op;
            if (DECODE_IN_PE != 0) begin : g_raw
                assign op = w_codes[4*c +: 4];
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
            if (c == 0) begin : g_noskew
                assign w_link[0] = op;
            end else begin : g_skew
                reg [OP_W-1:0] pipe [0:c-1];
                always @(posedge clk) begin
                    pipe[0] <= rst ? {OP_W{1'b0}} : op;
                end
                for (d = 1; d < c; d = d + 1) begin : g_stage
                    always @(posedge clk) begin
                        pipe[d] <= rst ? {OP_W{1'b0}} : pipe[d-1];
                    end
                end
                assign w_link[c*(ROWS+1)] = pipe[c-1];
            end
        end

        // ---- the PE grid ----
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                ant_pe #(
                    .ACC_W(ACC_W),
                    .DECODE(DECODE_IN_PE)
                ) pe (
                    .clk(clk), .rst(rst), .clr(clr),
                    .a_cfg(a_cfg), .w_cfg(w_cfg),
                    .a_in(a_link[r*(COLS+1) + c]),
                    .w_in(w_link[c*(ROWS+1) + r]),
                    .a_out(a_link[r*(COLS+1) + c + 1]),
                    .w_out(w_link[c*(ROWS+1) + r + 1]),
                    .acc(acc[r*COLS + c])
                );
            end
        end
    endgenerate

    // ---- readout ----
    generate
        if ((1 << SEL_W) == NPE) begin : g_rd_pow2
            assign rd_data = acc[rd_sel];
        end else begin : g_rd_mux
            wire [31:0] sel32 = {{(32-SEL_W){1'b0}}, rd_sel};
            assign rd_data = (sel32 < NPE) ? acc[rd_sel] : {ACC_W{1'b0}};
        end
    endgenerate

    // The last column's activations and the last row's weights leave the array unused.
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_a_sink
            wire unused_a = &{1'b0, a_link[r*(COLS+1) + COLS]};
        end
        for (c = 0; c < COLS; c = c + 1) begin : g_w_sink
            wire unused_w = &{1'b0, w_link[c*(ROWS+1) + ROWS]};
        end
    endgenerate

endmodule

`resetall

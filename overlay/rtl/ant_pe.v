// ant_pe: the unified ANT processing element (output-stationary), two pipeline stages.
//
// Stage A (the cycle a step's operands are at a_in/w_in): the 4x4 mantissa product shifted by
// S_a + S_w, registered with its sign (mag_q, neg_q). Stage B (the next cycle): the signed
// accumulator adds +-mag_q; a 4x4-bit multiplier and a shifter replace the int/PoT/float/flint
// datapaths. The operands go on, registered, to the PE on the right (activation) and below
// (weight), so a step meets its neighbours one cycle later (output-stationary dataflow).
//
// Job markers travel with the activation (clr_in/last_in, registered to clr_out/last_out,
// which also steer stage B of this PE):
//   clr    rides the bubble (zero codes) in front of a job with acc = 0: the accumulator is
//          cleared instead of added to (a synchronous reset of its flip-flops, no LUT), so
//          that job's steps start from zero while the previous job's are already in;
//   last   the last step of a job with emit = 1: the sum including this product is also
//          captured into `shadow` (flip-flops with a clock enable), which the array reads out
//          while the next job already accumulates.
// A zero code (M = 0) is a bubble: the array is fed zeros when there is no step.
//
// Widths: M_a*M_w < 2^8 and S_a + S_w <= 28; the shifted magnitude is |a|*|w| <= 2^14 * 2^14
// (pot4u x pot4u), so it is formed in MAG_W = 29 bits. The conditional negation rides on the
// accumulator adder's carry-in: acc + (mag ^ {neg}) + neg, one carry chain. The accumulator
// cannot overflow within antq.core.arch.max_k steps (docs/contracts.md §6) and wraps modulo
// 2^ACC_W exactly like the reference.
//
// Operand bus:
//   DECODE = 0  (edge-decoded, the paper's arrangement) {sign, M[3:0], S[3:0]}, 9 bits, from an
//               ant_decoder at the array edge.
//   DECODE = 1  (PE-decoded, for the cost comparison) {kind[1:0], signed, hi, code[3:0]}, 8 bits:
//               the raw code with its job's type config; this PE decodes it with its own
//               ant_decoder, so each step is decoded with the types of its own job.
//
// Reset: `rst` is synchronous, active high, and clears the accumulator, both pipeline
// registers, the markers and the pass-through; `shadow` keeps its value (it is only read after
// a capture).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module ant_pe #(
    // accumulator width (antq.core.arch.ACC_BITS), at least MAG_W = 29
    parameter ACC_W  = 32,
    // 0: operands arrive decoded {sign, M, S}; 1: raw 4-bit codes with their type config
    parameter DECODE = 0,
    // operand bus width, derived from DECODE: do not override
    parameter OP_W   = (DECODE != 0) ? 8 : 9
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire [OP_W-1:0]         a_in,
    input  wire [OP_W-1:0]         w_in,
    input  wire                    clr_in,
    input  wire                    last_in,
    output reg  [OP_W-1:0]         a_out,
    output reg  [OP_W-1:0]         w_out,
    output reg                     clr_out,
    output reg                     last_out,
    output reg  signed [ACC_W-1:0] acc,
    output reg  [ACC_W-1:0]        shadow
);

    wire       a_sign, w_sign;
    wire [3:0] a_m, w_m;
    wire [3:0] a_s, w_s;

    generate
        if (DECODE != 0) begin : g_decode
            ant_decoder a_dec (
                .code(a_in[3:0]), .kind(a_in[7:6]), .is_signed(a_in[5]), .hi(a_in[4]),
                .sign(a_sign), .m(a_m), .s(a_s)
            );
            ant_decoder w_dec (
                .code(w_in[3:0]), .kind(w_in[7:6]), .is_signed(w_in[5]), .hi(w_in[4]),
                .sign(w_sign), .m(w_m), .s(w_s)
            );
        end else begin : g_decoded
            assign {a_sign, a_m, a_s} = a_in;
            assign {w_sign, w_m, w_s} = w_in;
        end
    endgenerate

    localparam MAG_W = 29;

    // stage A: the shifted product
    wire [7:0]       mant  = a_m * w_m;
    wire [4:0]       shamt = {1'b0, a_s} + {1'b0, w_s};
    wire [MAG_W-1:0] mag   = {{(MAG_W-8){1'b0}}, mant} << shamt;

    reg  [MAG_W-1:0] mag_q;
    reg              neg_q;

    // stage B: acc +- mag_q, neg_q on the carry-in (or 0 on a clear)
    wire [ACC_W-1:0] flip = {{(ACC_W-MAG_W){1'b0}}, mag_q} ^ {ACC_W{neg_q}};
    wire [ACC_W:0]   sum  = {acc, 1'b1} + {flip, neg_q};
    wire             unused_cin = sum[0];  // the carry-in position

    always @(posedge clk) begin
        if (rst) begin
            a_out     <= {OP_W{1'b0}};
            w_out     <= {OP_W{1'b0}};
            clr_out   <= 1'b0;
            last_out  <= 1'b0;
            mag_q     <= {MAG_W{1'b0}};
            neg_q     <= 1'b0;
            acc       <= {ACC_W{1'b0}};
        end else begin
            a_out     <= a_in;
            w_out     <= w_in;
            clr_out   <= clr_in;
            last_out  <= last_in;
            mag_q     <= mag;
            neg_q     <= a_sign ^ w_sign;
            acc       <= clr_out ? {ACC_W{1'b0}} : sum[ACC_W:1];
        end
    end

    // the shadow: clock enable = the marker, data = the accumulator's own next value
    always @(posedge clk) begin
        if (last_out) begin
            shadow <= sum[ACC_W:1];
        end
    end

endmodule

`resetall

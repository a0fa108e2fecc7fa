// ant_pe: the unified ANT processing element (output-stationary).
//
// Every cycle it adds sign_a^sign_w ? -(M_a*M_w << (S_a+S_w)) : +(M_a*M_w << (S_a+S_w)) to
// its signed accumulator and passes its operands on, registered, to the PE on its right
// (activation) and below (weight). A 4x4-bit multiplier and a shifter replace the
// int/PoT/float/flint datapaths; the accumulator cannot overflow within antq.core.arch.max_k steps
// (docs/contracts.md §6), and the sum is taken modulo 2^ACC_W exactly like the reference.
//
// Widths: M_a*M_w < 2^8 and S_a + S_w <= 28; the shifted magnitude is |a|*|w| <= 2^14 * 2^14
// (pot4u x pot4u), so it is formed in MAG_W = 29 bits. The conditional negation rides on the
// accumulator adder's carry-in: acc + (mag ^ {neg}) + neg, one carry chain.
//
// Operand bus:
//   DECODE = 0  (edge-decoded, the paper's arrangement) {sign, M[3:0], S[3:0]}, 9 bits, from an
//               ant_decoder at the array edge; a_cfg/w_cfg are ignored.
//   DECODE = 1  (PE-decoded, for the cost comparison) the raw 4-bit code; this PE decodes it
//               with its own ant_decoder using a_cfg/w_cfg = {kind[1:0], signed, hi}.
// A zero code (M = 0) is a bubble: the array is fed zeros whenever there is no step.
//
// Readout: `acc` is the accumulator; the array reads it through a narrow mux. `clr` clears it
// (the first cycle of a job with acc = 0); `rst` is synchronous, active high, and clears the
// accumulator and the pass-through registers.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module ant_pe #(
    // accumulator width (antq.core.arch.ACC_BITS), at least MAG_W = 29
    parameter ACC_W  = 32,
    // 0: operands arrive decoded {sign, M, S}; 1: raw 4-bit codes decoded inside this PE
    parameter DECODE = 0,
    // operand bus width, derived from DECODE: do not override
    parameter OP_W   = (DECODE != 0) ? 4 : 9
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    clr,
    input  wire [3:0]              a_cfg,
    input  wire [3:0]              w_cfg,
    input  wire [OP_W-1:0]         a_in,
    input  wire [OP_W-1:0]         w_in,
    output reg  [OP_W-1:0]         a_out,
    output reg  [OP_W-1:0]         w_out,
    output reg  signed [ACC_W-1:0] acc
);

    wire       a_sign, w_sign;
    wire [3:0] a_m, w_m;
    wire [3:0] a_s, w_s;

    generate
        if (DECODE != 0) begin : g_decode
            ant_decoder a_dec (
                .code(a_in), .kind(a_cfg[3:2]), .is_signed(a_cfg[1]), .hi(a_cfg[0]),
                .sign(a_sign), .m(a_m), .s(a_s)
            );
            ant_decoder w_dec (
                .code(w_in), .kind(w_cfg[3:2]), .is_signed(w_cfg[1]), .hi(w_cfg[0]),
                .sign(w_sign), .m(w_m), .s(w_s)
            );
        end else begin : g_decoded
            assign {a_sign, a_m, a_s} = a_in;
            assign {w_sign, w_m, w_s} = w_in;
            wire unused_cfg = &{1'b0, a_cfg, w_cfg};  // config is applied at the array edge
        end
    endgenerate

    localparam MAG_W = 29;

    wire [7:0]       mant  = a_m * w_m;
    wire [4:0]       shamt = {1'b0, a_s} + {1'b0, w_s};
    wire [MAG_W-1:0] mag   = {{(MAG_W-8){1'b0}}, mant} << shamt;
    wire             neg   = a_sign ^ w_sign;
    wire [ACC_W-1:0] flip  = {{(ACC_W-MAG_W){1'b0}}, mag} ^ {ACC_W{neg}};
    wire [ACC_W:0]   sum   = {acc, 1'b1} + {flip, neg};  // acc + flip + neg: neg on the carry-in
    wire             unused_cin = sum[0];                  // the carry-in position

    always @(posedge clk) begin
        if (rst) begin
            a_out <= {OP_W{1'b0}};
            w_out <= {OP_W{1'b0}};
            acc   <= {ACC_W{1'b0}};
        end else begin
            a_out <= a_in;
            w_out <= w_in;
            acc   <= clr ? {ACC_W{1'b0}} : sum[ACC_W:1];
        end
    end

endmodule

`resetall

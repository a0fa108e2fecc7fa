// ant_decoder: one 4-bit ANT code to the PE form (sign, M, S), value = (-1)^sign * (M << S).
//
// The bit-level source of truth is antq.core.formats (docs/contracts.md §2-§4); this module is
// checked against it exhaustively (tests/rtl/test_ant_decoder.py). Purely combinational.
//
//   kind (antq.core.formats.KIND_IDS)  int 0, pot 1, flint 2, float 3
//   is_signed                     two's complement for int, sign-magnitude (bit 3) otherwise
//   hi                            the code is the high nibble of an int8: +4 on the shift (§4);
//                                 only int codes have int8 nibbles, so other kinds ignore it
//
//   int    M = |value|, S = 0                    (int4s 1000 -> sign 1, M = 8)
//   pot    M = (mag != 0), S = max(mag - 1, 0)   (mag = low 3 bits signed, 4 bits unsigned)
//   float  unsigned E3M1: e = code[3:1], f = code[0]; M = e ? 2 + f : f, S = max(e - 1, 0)
//          signed E3M0 is the same as pot4s
//   flint  H = top magnitude bit, L = the bits below it:
//          H = 0 -> M = L, S = 0; H = 1, L != 0 -> M = L, S = 2*LZD(L) + 1;
//          H = 1, L = 0 -> M = 2^(n-2), S = n   (n = 4 unsigned, 3 signed)
//
// Code 0 decodes to M = 0 in every format, so a zero code contributes nothing; so does the
// unused sign-magnitude "-0" (1000 signed, non-int): sign 1, M = 0. S fits 4 bits: at most
// 14 (pot4u), and 4 for an int8 high nibble (int shifts are otherwise 0).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module ant_decoder (
    input  wire [3:0] code,
    input  wire [1:0] kind,
    input  wire       is_signed,
    input  wire       hi,
    output reg        sign,
    output reg  [3:0] m,
    output reg  [3:0] s
);

    localparam [1:0] KIND_INT = 2'd0, KIND_POT = 2'd1, KIND_FLINT = 2'd2, KIND_FLOAT = 2'd3;

    // pot magnitude (float4s is E3M0 = pot4s, so it shares this path)
    wire [3:0] pot_mag = is_signed ? {1'b0, code[2:0]} : code;
    wire       pot_nz  = |pot_mag;

    always @* begin
        sign = is_signed & code[3];
        m    = 4'd0;
        s    = 4'd0;
        case (kind)
            KIND_INT: begin
                m = sign ? (~code + 4'd1) : code;
                s = {1'b0, hi, 2'b00};
            end
            KIND_POT: begin
                m  = {3'b000, pot_nz};
                s = pot_nz ? pot_mag - 4'd1 : 4'd0;
            end
            KIND_FLOAT: begin
                if (is_signed) begin
                    m  = {3'b000, pot_nz};
                    s = pot_nz ? pot_mag - 4'd1 : 4'd0;
                end else if (code[3:1] == 3'd0) begin
                    m = {3'b000, code[0]};
                end else begin
                    m  = {2'b00, 1'b1, code[0]};
                    s = {1'b0, code[3:1]} - 4'd1;
                end
            end
            KIND_FLINT: begin
                if (is_signed) begin  // n = 3: H = code[2], L = code[1:0]
                    if (!code[2]) begin
                        m = {2'b00, code[1:0]};
                    end else if (code[1:0] == 2'd0) begin
                        m  = 4'd2;
                        s = 4'd3;
                    end else begin
                        m  = {2'b00, code[1:0]};
                        s = code[1] ? 4'd1 : 4'd3;
                    end
                end else begin  // n = 4: H = code[3], L = code[2:0]
                    if (!code[3]) begin
                        m = {1'b0, code[2:0]};
                    end else if (code[2:0] == 3'd0) begin
                        m  = 4'd4;
                        s = 4'd4;
                    end else begin
                        m  = {1'b0, code[2:0]};
                        s = code[2] ? 4'd1 : (code[1] ? 4'd3 : 4'd5);
                    end
                end
            end
        endcase
    end

endmodule

`resetall

// int8_pe: baseline PE for the cost report, an int8 MAC.
//
// The same structure as ant_pe and int4_pe (registered pass-through, ACC_W-bit accumulator
// with clr and synchronous reset, accumulator readout port); only the multiply differs: a
// signed 9x9 multiplier on operands that the array edge has sign- or zero-extended from
// int8s/int8u codes.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module int8_pe #(
    // accumulator width (antq.core.arch.ACC_BITS)
    parameter ACC_W = 32
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    clr,
    input  wire signed [8:0]       a_in,
    input  wire signed [8:0]       w_in,
    output reg  signed [8:0]       a_out,
    output reg  signed [8:0]       w_out,
    output reg  signed [ACC_W-1:0] acc
);

    wire signed [17:0] prod = a_in * w_in;

    always @(posedge clk) begin
        if (rst) begin
            a_out <= 9'sd0;
            w_out <= 9'sd0;
            acc   <= {ACC_W{1'b0}};
        end else begin
            a_out <= a_in;
            w_out <= w_in;
            acc   <= clr ? {ACC_W{1'b0}} : acc + {{(ACC_W-18){prod[17]}}, prod};
        end
    end

endmodule

`resetall

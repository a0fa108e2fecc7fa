// int4_pe: baseline PE for the cost report, an int4-only MAC.
//
// The same structure as ant_pe: registered operand pass-through to the right/lower
// neighbours, the same ACC_W-bit accumulator with clr and synchronous reset, and the same
// readout (the accumulator port). Only the multiply differs: a signed 5x5 multiplier on
// operands that the array edge has sign- or zero-extended from int4s/int4u codes.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module int4_pe #(
    // accumulator width (antq.core.arch.ACC_BITS)
    parameter ACC_W = 32
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    clr,
    input  wire signed [4:0]       a_in,
    input  wire signed [4:0]       w_in,
    output reg  signed [4:0]       a_out,
    output reg  signed [4:0]       w_out,
    output reg  signed [ACC_W-1:0] acc
);

    wire signed [9:0] prod = a_in * w_in;

    always @(posedge clk) begin
        if (rst) begin
            a_out <= 5'sd0;
            w_out <= 5'sd0;
            acc   <= {ACC_W{1'b0}};
        end else begin
            a_out <= a_in;
            w_out <= w_in;
            acc   <= clr ? {ACC_W{1'b0}} : acc + {{(ACC_W-10){prod[9]}}, prod};
        end
    end

endmodule

`resetall

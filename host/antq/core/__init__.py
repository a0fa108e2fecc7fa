"""The contracts, numpy only: formats, accelerator geometry, register map, stream format, tiling,
quantizer, packing, the exact reference GEMM, the requantization epilogue, the .antq container
and the golden vectors."""

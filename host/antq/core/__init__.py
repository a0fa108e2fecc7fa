"""The contracts, in numpy: formats, accelerator geometry, register map, stream format, tiling,
quantizer, packing, the exact reference GEMM, the requantization epilogue, the .antq container and
the golden vectors. Packing and im2col run in one small C++ kernel (:mod:`antq.core.native`, built
with g++ on first use)."""

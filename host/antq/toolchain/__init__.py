"""Tools around the package: paths and caches, the g++ HLS builds, Verilator, Yosys, the emulation .hwh."""

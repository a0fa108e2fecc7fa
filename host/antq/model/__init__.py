"""Models: the integer model and its host ops (numpy only, what runs on the board), and the torch
side that produces it: fake quantization, calibration, export, baselines, the zoo, datasets, report."""

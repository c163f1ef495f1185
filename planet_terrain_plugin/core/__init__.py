"""Planet Terrain core: model contract, preprocessing, onnxruntime session, calibration, bodies, grid.

Nothing here imports Qt or torch, so ``export/``, ``training/``, benchmarks and scripts can use it as is.
"""

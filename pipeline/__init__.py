"""cmkd: CNN/Transformer cross-model knowledge distillation for audio classification.

Data flows audio -> features (Zarr) -> teacher -> cached predictions (Zarr) -> student -> report;
one module per step, see README.md.
"""

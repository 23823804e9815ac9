"""Chapter pipelines: one module per chapter, its analysis steps as plain functions (no plotting).

Layers, top-down (nothing imports upward): notebooks -> ``studies`` -> (samplers, perturb, train,
models) -> (saliency, metrics / stats, data, cache). ``viz`` draws what these functions return.
"""

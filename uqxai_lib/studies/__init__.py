"""Chapter pipelines: one module per study chapter (``derm``, ...), plain functions, no plotting.

Layers, top-down: notebooks -> ``studies`` -> (samplers, perturb, train, models) -> (saliency,
metrics / stats, data, cache). A notebook reads: data -> model -> ``studies.<chapter>`` calls ->
``viz.<chapter>`` figures -> prose. Nothing here imports ``viz``.
"""

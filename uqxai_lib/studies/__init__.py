"""Chapter pipelines: one module per chapter (``primer``, ``ecg``, ``mri``, ``derm``) with its analysis
steps as plain functions on tensors and small records (no plotting; figures live in ``uqxai_lib.viz``).

Layers, top-down: notebooks -> studies -> (samplers, perturb, train, models) -> (saliency,
metrics/stats, data, cache). A study module never imports ``viz``.
"""

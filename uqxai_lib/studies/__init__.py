"""Chapter pipelines: one module per chapter, its analysis steps as plain functions (no plotting).

Layers, top-down (nothing imports upward):

- ``notebooks/*.py``: prose and short calls
- ``uqxai_lib.studies``: a chapter's steps (run a sampler over a test set, per-item scores, tables, records)
- ``uqxai_lib.samplers``, ``perturb``, ``train``, ``models``: uncertainty sources, perturbations, training
- ``uqxai_lib.saliency``, ``metrics``, ``stats``, ``conformal``, ``data``, ``cache``: maps, scores, statistics, data, caching

``uqxai_lib.viz`` draws what the studies compute and imports none of the layers above it.
"""

"""The chapters' analysis steps: one module per chapter, plain functions on tensors and small
records (no plotting). A notebook reads as data → model → ``studies.<chapter>`` → ``viz.<chapter>``.

Layers, top-down (nothing imports upward):

1. ``notebooks/*.py`` — prose and short calls;
2. ``uqxai_lib.studies`` — each chapter's pipeline steps, scores, comparison tables, headline records;
3. ``samplers``, ``perturb``, ``train``, ``models`` — sources of explanation stacks, noise, training;
4. ``saliency``, ``metrics`` / ``stats``, ``data``, ``cache`` — maps, scores and statistics, data, caching.

``viz`` and ``widgets`` sit beside the studies: they draw data they are given and call nothing above.
"""

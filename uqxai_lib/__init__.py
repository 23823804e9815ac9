"""uqxai_lib: uncertainty of explanations in medical deep learning.

The house, top-down (each layer imports only from the layers below it, never upward):

- ``notebooks/*.py`` — the chapters: prose and short calls, no algorithms;
- ``studies`` — each chapter's analysis steps (``studies.primer``, ...), plain functions, no plotting;
- ``samplers``, ``perturb``, ``train``, ``models`` — explanation stacks (MC dropout, test-time
  perturbations, Rashomon sets), noise models, the training loop, the networks;
- ``saliency``, ``metrics`` / ``stats`` / ``aggregate``, ``data``, ``cache`` — N-D Grad-CAM /
  Grad-CAM++, scores and statistics, data sets, caching.

Beside them: ``viz`` and ``widgets`` draw what they are given (no model, no statistic), ``report``
formats results records as book text, ``run`` / ``bench`` drive papermill and the benchmarks.
"""

__version__ = "0.1.0"

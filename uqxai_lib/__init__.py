"""uqxai_lib: uncertainty of explanations in medical deep learning.

Modules: ``saliency`` (N-D Grad-CAM / Grad-CAM++), ``samplers`` (MC dropout, test-time
perturbations, Rashomon sets), ``aggregate``, ``metrics``, ``perturb``, ``models``, ``data``,
``train``, ``cache``, ``viz``, ``widgets`` and ``run`` (papermill driver).
"""

__version__ = "0.1.0"

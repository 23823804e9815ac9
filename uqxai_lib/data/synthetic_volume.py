"""Seeded synthetic brain volumes (3-D phantoms) with the four classes of the 2-D MRI phantom.

The volumetric companion of :mod:`uqxai_lib.data.synthetic_mri` (same classes, same
:class:`~uqxai_lib.data.LabeledArrays` conventions, one volume per patient). Each volume
``[1, D, H, W]`` (default 32³; axes: z inferior→superior, y anterior→posterior, x left→right) is
rendered from a few shapes:

* **head**: an ellipsoid (size, aspect and centre vary) with a bright scalp shell, a dark bone
  shell and a thin CSF rim;
* **brain**: an ellipsoid of white matter inside a grey-matter shell, a dark midline falx, two
  dark lateral ventricles (size varies) and smooth tissue texture;
* **distractors**: a few small bright spots (vessels, calcifications, choroid plexus) in every
  class, placed anywhere in the brain; they are *not* tumour and not in the mask;
* **acquisition**: a smooth multiplicative bias field and Rician noise, then a fixed window [0, 1].

Classes (:data:`CLASSES`, as in :mod:`~uqxai_lib.data.synthetic_mri`):

``glioma``
    irregular intra-axial mass deep in one hemisphere, heterogeneous, with a dark oedema halo;
``meningioma``
    round, homogeneously bright mass on the brain's surface (extra-axial: it sits under the bone
    and indents the brain);
``no_tumor``
    healthy anatomy (and distractors) only;
``pituitary``
    small bright round mass on the midline, inferior and anterior (the sella at the skull base).

``mask`` marks the tumour itself (glioma: the mass without its oedema) and is empty for
``no_tumor``; every tumour voxel lies inside the head's bone shell (meningioma) or the brain
(glioma, pituitary). ``ambiguity`` is the share of tumours drawn faint (low contrast) or small,
so a good classifier still errs on a few volumes.

>>> d = make_synthetic_volume(n_patients=8, size=16, seed=0)
>>> tuple(d.x.shape), d.x.dtype, tuple(d.mask.shape), d.classes
((8, 1, 16, 16, 16), torch.float32, (8, 16, 16, 16), ('glioma', 'meningioma', 'no_tumor', 'pituitary'))
>>> bool((d.mask[d.y == 2].sum() == 0).item())
True
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import LabeledArrays
from . import uniform as _u
from .synthetic_mri import CLASSES, SARTAJ_CLASS_FRACTIONS, _one_thread, check_phantom, patient_classes

__all__ = ["CLASSES", "MEAN", "STD", "N_DISTRACTORS", "make_synthetic_volume", "denormalize"]

#: Normalisation of the gray volume: ``x = (v - MEAN) / STD`` (about zero mean, unit scale).
MEAN = 0.3
STD = 0.3
#: bright non-tumour spots per volume (drawn uniformly from this range)
N_DISTRACTORS = (2, 5)

GLIOMA, MENINGIOMA, NO_TUMOR, PITUITARY = range(4)
_SEED_OFFSET = 130_363


def denormalize(x: Tensor) -> Tensor:
    """``[N, 1, D, H, W]`` normalised volumes -> gray ``[N, D, H, W]`` in [0, 1] for display.

    >>> v = torch.rand(2, 4, 4, 4)
    >>> bool(torch.allclose(denormalize(((v - MEAN) / STD)[:, None]), v, atol=1e-6))
    True
    """
    return (x[:, 0] * STD + MEAN).clamp(0, 1)


def _smooth(n: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    z = torch.randn(n, 1, cells, cells, cells, generator=g)
    return F.interpolate(z, size=(size,) * 3, mode="trilinear", align_corners=False)[:, 0] * 1.3


def _params(y: Tensor, ambiguity: float, g: torch.Generator) -> dict[str, Tensor]:
    n = len(y)
    amb = (torch.rand(n, generator=g) < ambiguity) & (y != NO_TUMOR)
    p = {
        "ax": _u(g, n, lo=0.74, hi=0.86), "ay": _u(g, n, lo=0.82, hi=0.94), "az": _u(g, n, lo=0.72, hi=0.84),
        "cx": _u(g, n, lo=-0.04, hi=0.04), "cy": _u(g, n, lo=-0.04, hi=0.04), "cz": _u(g, n, lo=-0.04, hi=0.04),
        "vent": _u(g, n, lo=0.7, hi=1.3), "wm": _u(g, n, lo=0.42, hi=0.5), "gm": _u(g, n, lo=0.28, hi=0.34),
    }
    contrast = torch.where(amb, _u(g, n, lo=0.15, hi=0.35), _u(g, n, lo=0.7, hi=1.0))
    # tumour centre in the brain frame (unit sphere = brain surface), radius in brain units
    ang, elev = _u(g, n, hi=2 * math.pi), _u(g, n, lo=-0.6, hi=0.6)
    d = torch.stack([torch.cos(ang) * torch.cos(elev), torch.sin(ang) * torch.cos(elev), torch.sin(elev)], 1)
    gl_r = _u(g, n, lo=0.15, hi=0.35)
    gl_c = d * gl_r[:, None]
    gl_c[:, 0] = torch.where(gl_c[:, 0].abs() < 0.15, 0.3 * torch.sign(gl_c[:, 0] + 1e-3), gl_c[:, 0])  # a hemisphere
    me_c = d * _u(g, n, lo=0.95, hi=1.05)[:, None]
    pi_c = torch.stack([torch.randn(n, generator=g) * 0.03, _u(g, n, lo=-0.4, hi=-0.25),
                        _u(g, n, lo=-0.45, hi=-0.3)], 1)
    centre = torch.where((y == GLIOMA)[:, None], gl_c, torch.where((y == MENINGIOMA)[:, None], me_c, pi_c))
    radius = torch.where(y == GLIOMA, _u(g, n, lo=0.42, hi=0.56),
                         torch.where(y == MENINGIOMA, _u(g, n, lo=0.42, hi=0.56), _u(g, n, lo=0.26, hi=0.32)))
    radius = torch.where(amb & (torch.rand(n, generator=g) < 0.5), radius * 0.7, radius)
    p.update(
        tx=centre[:, 0], ty=centre[:, 1], tz=centre[:, 2], radius=torch.where(y == NO_TUMOR, 0.0, radius),
        contrast=torch.where(y == NO_TUMOR, 0.0, contrast),
        irregular=torch.where(y == GLIOMA, _u(g, n, lo=0.1, hi=0.3), _u(g, n, lo=0.0, hi=0.04)),
        oedema=torch.where(y == GLIOMA, _u(g, n, lo=0.4, hi=1.0), 0.0),
        harm=torch.randn(n, 3, generator=g), ambiguous=amb,
    )
    k = torch.randint(N_DISTRACTORS[0], N_DISTRACTORS[1] + 1, (n,), generator=g)
    spots = torch.stack([_u(g, n, N_DISTRACTORS[1], lo=-0.7, hi=0.7) for _ in range(3)], -1)  # [N, K, 3]
    p["spots"] = spots
    p["spot_on"] = torch.arange(N_DISTRACTORS[1])[None] < k[:, None]
    p["spot_r"] = _u(g, n, N_DISTRACTORS[1], lo=0.05, hi=0.09)
    return p


def _render(pp: dict[str, Tensor], y: Tensor, size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    n = len(y)
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    pz, py, px = torch.meshgrid(lin, lin, lin, indexing="ij")
    vox = 2.0 / size

    def col(v: Tensor) -> Tensor:
        return v[:, None, None, None]

    ex = (px[None] - col(pp["cx"])) / col(pp["ax"])
    ey = (py[None] - col(pp["cy"])) / col(pp["ay"])
    ez = (pz[None] - col(pp["cz"])) / col(pp["az"])
    rho = torch.sqrt(ex**2 + ey**2 + ez**2)
    soft = 0.6 * vox / col(pp["ay"])

    def inside(r: float) -> Tensor:
        return torch.sigmoid((r - rho) / soft)

    head, scalp_in, bone_in, brain_edge = inside(1.0), inside(0.9), 0.84, 0.8
    skull_in, brain = inside(bone_in), inside(brain_edge)
    bx, by, bz = ex / brain_edge, ey / brain_edge, ez / brain_edge  # brain frame
    depth = (brain_edge - rho) * col(pp["ay"])
    tex = _smooth(n, size, 5, g) * 0.03
    cortex = torch.sigmoid((0.1 - depth) / (0.5 * vox))
    tissue = col(pp["wm"]) * (1 - cortex) + col(pp["gm"]) * cortex + tex
    falx = torch.exp(-((bx * brain_edge * col(pp["ax"]) / (0.8 * vox)) ** 2)) * torch.sigmoid((by.abs() - 0.4) / 0.05)
    tissue = tissue * (1 - 0.6 * falx)
    vs = col(pp["vent"])
    vent = torch.zeros_like(rho)
    for side in (-1.0, 1.0):
        q = (((bx - side * 0.14 * vs) / (0.08 * vs)) ** 2 + ((by + 0.05) / (0.34 * vs)) ** 2
             + ((bz - 0.1) / (0.2 * vs)) ** 2)
        vent = torch.maximum(vent, torch.sigmoid((1 - q) * 3))
    tissue = tissue * (1 - vent) + 0.12 * vent
    # distractors: bright small spots, never tumour
    spots = torch.zeros_like(rho)
    for j in range(pp["spots"].shape[1]):
        c = pp["spots"][:, j]
        q = ((bx - col(c[:, 0])) ** 2 + (by - col(c[:, 1])) ** 2 + (bz - col(c[:, 2])) ** 2).sqrt()
        spot = col(pp["spot_on"][:, j].float()) * torch.sigmoid((col(pp["spot_r"][:, j]) - q) / 0.02)
        spots = torch.maximum(spots, spot)
    tissue = tissue * (1 - spots) + 0.75 * spots

    r0 = col(pp["radius"]).clamp_min(1e-3)
    tu, tv, tw = (bx - col(pp["tx"])) / r0, (by - col(pp["ty"])) / r0, (bz - col(pp["tz"])) / r0
    trho = torch.sqrt(tu**2 + tv**2 + tw**2)
    h = pp["harm"]
    border = 1.0 + col(pp["irregular"]) * (col(h[:, 0]) * torch.sin(3 * tu + col(h[:, 1])) * torch.cos(2 * tv)
                                           + col(h[:, 2]) * torch.sin(2 * tw - tu)) / 2
    edge = (border - trho) * r0 * brain_edge * col(pp["ay"]) / vox  # ~ voxels to the tumour border
    is_men = (y == MENINGIOMA)[:, None, None, None]
    is_gl = (y == GLIOMA)[:, None, None, None]
    has = (y != NO_TUMOR)[:, None, None, None]
    support = torch.where(is_men, skull_in, brain)
    mass = torch.sigmoid(edge / 0.7) * support
    mask = (edge > 0) & has & torch.where(is_men, rho < bone_in, rho < brain_edge)
    c = col(pp["contrast"])
    het = _smooth(n, size, 6, g) * 0.08
    lesion = torch.where(is_gl, 1.0 - 0.75 * torch.sigmoid((0.6 - trho) / 0.08) + het, 1.0 + 0.3 * het)  # glioma: ring
    rel = trho / border
    oed = 0.7 * c * col(pp["oedema"]) * torch.exp(-((rel / 1.8) ** 4)) * brain * (1 - mass) * is_gl
    tissue = tissue * (1 - oed) + 0.2 * oed
    w = c * mass * has
    img = 0.55 * (head - scalp_in) + 0.08 * (scalp_in - skull_in) + 0.1 * (skull_in - brain) + tissue * brain
    img = img * (1 - w) + lesion * w * torch.where(is_men, torch.ones_like(brain), brain)
    img = img * head
    bias = 0.1 * _smooth(n, size, 3, g)
    img = img * torch.exp(bias)
    sigma = col(_u(g, n, lo=0.01, hi=0.035))
    noise = torch.randn(2, n, size, size, size, generator=g) * sigma
    img = torch.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    img = img.clamp(0, 1)  # a fixed window: tumours keep their contrast to the tissue in every volume
    return img, mask, rho < brain_edge


def make_synthetic_volume(n_patients: int = 400, *, size: int = 32,
                          class_fractions: Sequence[float] = SARTAJ_CLASS_FRACTIONS, ambiguity: float = 0.12,
                          seed: int = 0, chunk: int = 16, with_brain: bool = False):
    """Generate a seeded set of synthetic brain volumes, one per patient.

    Returns :class:`~uqxai_lib.data.LabeledArrays`: ``x`` float32 ``[N, 1, size, size, size]``
    (normalised with :data:`MEAN` / :data:`STD`), ``y`` int64, ``mask`` bool ``[N, size, size, size]``
    (the tumour; empty for ``no_tumor``), ``group`` = patient id, ``classes`` = :data:`CLASSES`.
    Class counts follow ``class_fractions`` exactly (largest remainder), shuffled; the global RNG is
    untouched (a private generator seeded by ``seed``). ``with_brain=True`` returns ``(data, brain)``
    with the bool brain masks ``[N, size, size, size]`` as well (for tests and figures).
    """
    fr = check_phantom(n_patients, size, 12, ambiguity, class_fractions, unit="voxels")
    g = torch.Generator().manual_seed(int(seed) + _SEED_OFFSET)
    y = patient_classes(fr, n_patients, g)
    pp = _params(y, ambiguity, g)
    vols, masks, brains = [], [], []
    with _one_thread():
        for s in range(0, n_patients, chunk):
            rows = torch.arange(s, min(n_patients, s + chunk))
            v, m, b = _render({k: t[rows] for k, t in pp.items()}, y[rows], size, g)
            vols.append(v)
            masks.append(m)
            brains.append(b)
    x = ((torch.cat(vols) - MEAN) / STD)[:, None].float()
    data = LabeledArrays(x=x, y=y.clone(), classes=CLASSES, mask=torch.cat(masks), group=torch.arange(n_patients))
    return (data, torch.cat(brains)) if with_brain else data

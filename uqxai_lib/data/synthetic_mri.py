"""Seeded synthetic axial brain-MRI slices with four SARTAJ-like classes: the embedded default data
of the ``mri_mc_dropout`` chapter.

Each image is a T1-weighted-looking axial slice rendered from a handful of shapes:

* **head**: an ellipse (size, aspect, in-plane rotation and position vary) with a bright scalp-fat
  ring, a dark bone ring and a thin CSF rim;
* **brain**: grey-matter cortex with gyri and sulci (a folded boundary and dark radial sulci), brighter
  white matter, a midline falx, two lateral ventricles (dark, size varies), smooth tissue texture;
* **acquisition**: a smooth multiplicative bias field and Rician noise (the magnitude of a complex
  signal with Gaussian noise in both channels), then windowing to [0, 1] like an exported JPEG.

Classes (:data:`CLASSES`, the alphabetical order of the SARTAJ folders):

``glioma``
    irregular intra-axial mass inside a hemisphere: heterogeneous, often with a bright enhancing rim
    and a dark necrotic core, surrounded by dark oedema that fades out;
``meningioma``
    well-bounded, round, homogeneously bright extra-axial mass sitting on the brain's edge (it
    indents the brain from the dura);
``no_tumor``
    healthy anatomy only;
``pituitary``
    small, bright, round mass on the midline just anterior of the ventricles (the sella region at the
    skull base).

The ground-truth ``mask`` marks the tumour itself (glioma: the mass without its oedema), empty for
``no_tumor``. Tumours cover a few percent of the slice (pituitary the least), like the clearly
visible masses of SARTAJ, so that a small network trained for a few CPU minutes at 32 px learns
the classes. Size, contrast and position vary and overlap between classes on purpose: some tumours
are faint or tiny (they look like ``no_tumor``), some gliomas sit near the cortex with little oedema
(they look like meningiomas), some meningiomas sit on the falx near the midline (they look like
pituitary tumours). The ``ambiguity`` knob sets how many such borderline cases there are, so a good
classifier still errs on a few percent of slices.

Everything is vectorised over images with torch; generation runs at thousands of 64x64 slices per
second on a laptop CPU.

>>> d = make_synthetic_mri(n_patients=8, size=32, seed=0)
>>> tuple(d.x.shape), d.x.dtype, tuple(d.mask.shape), d.classes
((8, 3, 32, 32), torch.float32, (8, 32, 32), ('glioma', 'meningioma', 'no_tumor', 'pituitary'))
>>> bool((d.mask[d.y == 2].sum() == 0).item())
True
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import DataError, LabeledArrays
from . import uniform as _u

__all__ = [
    "CLASSES",
    "check_phantom",
    "patient_classes",
    "MEAN",
    "STD",
    "SARTAJ_CLASS_FRACTIONS",
    "make_synthetic_mri",
    "synthetic_mri_attributes",
    "normalize_gray",
    "denormalize",
]

CLASSES = ("glioma", "meningioma", "no_tumor", "pituitary")
#: Per-channel normalisation (ImageNet statistics, so local pretrained weights fit too).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: Class shares of the whole SARTAJ set (926 / 937 / 500 / 901 of 3,264 images).
SARTAJ_CLASS_FRACTIONS = (926 / 3264, 937 / 3264, 500 / 3264, 901 / 3264)

GLIOMA, MENINGIOMA, NO_TUMOR, PITUITARY = range(4)
_SEED_OFFSET = 104_729
_N_HARM = 6  # boundary harmonics of the glioma and the cortex


def normalize_gray(img: Tensor) -> Tensor:
    """Gray image in [0, 1], shape [N, H, W] -> 3-channel normalised float32 [N, 3, H, W].

    The gray value is copied to three channels (as in SARTAJ's JPEGs) and normalised with
    :data:`MEAN` / :data:`STD`.
    """
    m = torch.tensor(MEAN, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return ((img[:, None].expand(-1, 3, -1, -1) - m) / s).float()


def denormalize(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize_gray` for display: [N, 3, H, W] -> gray [N, H, W] in [0, 1].

    >>> img = torch.rand(2, 5, 5)
    >>> bool(torch.allclose(denormalize(normalize_gray(img)), img, atol=1e-6))
    True
    """
    m = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * s + m).mean(1).clamp(0, 1)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run elementwise rendering on one intra-op thread (restored afterwards).

    The rendering is hundreds of small elementwise ops on cache-sized chunks; OpenMP threading
    does not pay off there and is many times slower when the cores are shared.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _smooth_noise(n: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    """Low-frequency noise [N, H, W], roughly unit scale (bilinear upsampling of a coarse grid)."""
    z = torch.randn(n, 1, cells, cells, generator=g)
    return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)[:, 0] * 1.3


def _harmonics(cos1: Tensor, sin1: Tensor, amp: Tensor, phase: Tensor) -> Tensor:
    """sum_k amp_k cos(k theta + phase_k), k = 1..K, from cos(theta), sin(theta) [N, H, W].

    Uses the angle-addition recursion instead of K transcendental calls; amp, phase [N, K].
    """
    out = torch.zeros_like(cos1)
    ck, sk = cos1, sin1
    for j in range(amp.shape[1]):
        a = amp[:, j, None, None]
        out = out + a * torch.cos(phase[:, j, None, None]) * ck - a * torch.sin(phase[:, j, None, None]) * sk
        ck, sk = ck * cos1 - sk * sin1, sk * cos1 + ck * sin1
    return out


def _patient_params(y: Tensor, ambiguity: float, g: torch.Generator) -> dict[str, Tensor]:
    """Anatomy and tumour parameters of each patient (shared by all slices of one patient)."""
    n = len(y)
    amb = torch.rand(n, generator=g) < ambiguity  # borderline cases
    p = {
        # head ellipse (semi-axes in image units), rotation, centre
        "ax": _u(g, n, lo=0.62, hi=0.76),
        "ay": _u(g, n, lo=0.78, hi=0.92),
        "rot": torch.randn(n, generator=g) * 0.12,
        "cx": _u(g, n, lo=-0.05, hi=0.05),
        "cy": _u(g, n, lo=-0.04, hi=0.04),
        "scalp": _u(g, n, lo=0.06, hi=0.10),  # scalp thickness (head units)
        "bone": _u(g, n, lo=0.035, hi=0.06),
        "gyri": torch.randint(14, 24, (n,), generator=g).float(),
        "gyri_phase": _u(g, n, hi=2 * math.pi),
        "cortex_harm": torch.randn(n, _N_HARM, generator=g) * 0.012,
        "cortex_phase": _u(g, n, _N_HARM, hi=2 * math.pi),
        "vent": _u(g, n, lo=0.7, hi=1.4),  # ventricle size
        "wm": _u(g, n, lo=0.56, hi=0.66),
        "gm": _u(g, n, lo=0.38, hi=0.46),
    }
    # --- tumour: size, contrast, position (brain frame: unit circle = brain edge) ---
    faint = amb & (torch.rand(n, generator=g) < 0.5)
    contrast = _u(g, n, lo=0.75, hi=1.0)
    contrast = torch.where(faint, _u(g, n, lo=0.12, hi=0.35), contrast)
    radius = torch.zeros(n)
    tx, ty = torch.zeros(n), torch.zeros(n)
    irregular = torch.zeros(n)
    oedema = torch.zeros(n)
    necrosis = torch.zeros(n)
    swap = amb & ~faint  # location / look borrowed from a neighbouring class

    # glioma: inside a hemisphere, irregular, oedema; borderline ones near the cortex, regular, dry
    gl = y == GLIOMA
    r = _u(g, n, lo=0.3, hi=0.55)
    rad = torch.where(swap, _u(g, n, lo=0.5, hi=0.6), _u(g, n, lo=0.1, hi=0.4))
    ang = _u(g, n, hi=2 * math.pi)
    radius = torch.where(gl, r, radius)
    tx = torch.where(gl, rad * torch.cos(ang), tx)
    ty = torch.where(gl, rad * torch.sin(ang), ty)
    irregular = torch.where(gl, torch.where(swap, _u(g, n, lo=0.0, hi=0.06), _u(g, n, lo=0.08, hi=0.25)), irregular)
    oedema = torch.where(gl, torch.where(swap, _u(g, n, lo=0.0, hi=0.15), _u(g, n, lo=0.35, hi=1.0)), oedema)
    necrosis = torch.where(gl, _u(g, n, lo=0.0, hi=1.0) * (r > 0.38), necrosis)

    # meningioma: on the brain's edge (extra-axial); borderline ones on the falx near the sella
    me = y == MENINGIOMA
    r = _u(g, n, lo=0.28, hi=0.48)
    ang = _u(g, n, hi=2 * math.pi)
    edge = _u(g, n, lo=0.92, hi=1.05)
    mx, my = edge * torch.cos(ang), edge * torch.sin(ang)
    fx = torch.randn(n, generator=g) * 0.04  # falx / skull-base position, anterior midline
    fy = _u(g, n, lo=-0.55, hi=-0.3)
    radius = torch.where(me, torch.where(swap, _u(g, n, lo=0.2, hi=0.28), r), radius)
    tx = torch.where(me, torch.where(swap, fx, mx), tx)
    ty = torch.where(me, torch.where(swap, fy, my), ty)
    irregular = torch.where(me, _u(g, n, lo=0.0, hi=0.03), irregular)

    # pituitary: small, midline, anterior of the ventricles; borderline ones larger and off-centre
    pi = y == PITUITARY
    r = torch.where(swap, _u(g, n, lo=0.26, hi=0.34), _u(g, n, lo=0.17, hi=0.27))
    radius = torch.where(pi, r, radius)
    tx = torch.where(pi, torch.randn(n, generator=g) * torch.where(swap, 0.12, 0.03), tx)
    ty = torch.where(pi, _u(g, n, lo=-0.38, hi=-0.22), ty)
    irregular = torch.where(pi, _u(g, n, lo=0.0, hi=0.04), irregular)

    p.update(
        radius=radius, tx=tx, ty=ty, irregular=irregular, oedema=oedema, necrosis=necrosis,
        contrast=torch.where(y == NO_TUMOR, torch.zeros(n), contrast),
        harm=torch.randn(n, _N_HARM, generator=g),
        harm_phase=_u(g, n, _N_HARM, hi=2 * math.pi),
        oedema_scale=_u(g, n, lo=1.5, hi=2.3),
        ambiguous=amb & (y != NO_TUMOR),
    )
    return p


def _render(pp: dict[str, Tensor], y: Tensor, size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Render slices of the given patients (parameters already indexed per slice).

    Returns (gray image [N, H, W] in [0, 1], tumour mask bool [N, H, W]).
    """
    n = len(y)
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    py, px = torch.meshgrid(lin, lin, indexing="ij")  # x to the right, y down (posterior)
    pixel = 2.0 / size

    def col(v: Tensor) -> Tensor:
        return v[:, None, None]

    # --- head frame: per-slice pose jitter on top of the patient's pose ---
    rot = col(pp["rot"] + torch.randn(n, generator=g) * 0.03)
    cos, sin = torch.cos(rot), torch.sin(rot)
    dx = px[None] - col(pp["cx"])
    dy = py[None] - col(pp["cy"])
    ax, ay = col(pp["ax"]), col(pp["ay"])
    ex = (cos * dx + sin * dy) / ax  # elliptic head coordinates: unit circle = outer scalp
    ey = (-sin * dx + cos * dy) / ay
    rho = torch.sqrt(ex**2 + ey**2)
    inv = 1.0 / rho.clamp_min(1e-6)
    cos1, sin1 = ex * inv, ey * inv  # cos / sin of the polar angle
    soft = 0.6 * pixel / ay  # edge softness in head units

    def inside(r_edge: Tensor | float) -> Tensor:
        return torch.sigmoid((r_edge - rho) / soft)

    scalp_in = 1.0 - col(pp["scalp"])
    bone_in = scalp_in - col(pp["bone"])
    fold = _harmonics(cos1, sin1, pp["cortex_harm"], pp["cortex_phase"])
    brain_edge = bone_in - 0.03 + fold  # thin CSF rim between bone and brain
    head = inside(1.0)
    scalp = head - inside(scalp_in)
    skull_in = inside(bone_in)
    brain = inside(brain_edge)
    # brain frame: unit circle = brain edge (for anatomy and tumour placement)
    bx = ex / brain_edge
    by = ey / brain_edge
    depth = (brain_edge - rho) * ay  # distance to the cortex surface, image units

    # --- tissue: white matter, cortex with irregular sulci, falx, ventricles ---
    tex = _smooth_noise(n, size, 7, g) * 0.025 + _smooth_noise(n, size, 16, g) * 0.015
    cortex = torch.sigmoid((0.09 - depth) / (0.4 * pixel + 0.01))
    tissue = col(pp["wm"]) * (1 - cortex) + col(pp["gm"]) * cortex + tex
    theta = torch.atan2(sin1, cos1)
    ph = col(pp["gyri_phase"])
    folds = torch.cos(col(pp["gyri"]) * theta + ph) + torch.cos(0.62 * col(pp["gyri"]) * theta - 2 * ph + 1.3 * torch.sin(3 * theta))
    sulcus_depth = 0.045 + 0.035 * torch.sin(5 * theta + 2 * ph)
    sulci = torch.sigmoid((folds - 1.1) * 8) * torch.sigmoid((sulcus_depth - depth) / 0.012)
    tissue = tissue * (1 - 0.55 * sulci)
    falx = torch.exp(-((ex * ax / (0.7 * pixel + 0.004)) ** 2)) * torch.sigmoid((by.abs() - 0.5) / 0.03)
    tissue = tissue * (1 - 0.6 * falx)
    vs = col(pp["vent"])
    vent = torch.zeros_like(rho)
    for side in (-1.0, 1.0):  # lateral ventricles: frontal horns diverge anteriorly (up)
        vx = (bx - side * (0.09 + 0.5 * by**2) * vs) / (0.05 * vs)
        vy = (by + 0.03) / (0.28 * vs)
        vent = torch.maximum(vent, torch.sigmoid((1 - vx**2 - vy**2) * 3))
    tissue = tissue * (1 - vent) + 0.12 * vent

    # --- tumour (brain frame) ---
    r0 = col(pp["radius"]).clamp_min(1e-3)
    tu = (bx - col(pp["tx"])) / r0
    tv = (by - col(pp["ty"])) / r0
    trho = torch.sqrt(tu**2 + tv**2)
    tinv = 1.0 / trho.clamp_min(1e-6)
    amp = col(pp["irregular"])[:, :, 0] * pp["harm"] / torch.arange(1, _N_HARM + 1, dtype=torch.float32)
    border = 1.0 + _harmonics(tu * tinv, tv * tinv, amp, pp["harm_phase"])
    edge = (border - trho) * r0 * ay / pixel  # signed distance to the tumour border, ~pixels
    is_men = (y == MENINGIOMA)[:, None, None]
    is_gl = (y == GLIOMA)[:, None, None]
    has_tumour = (y != NO_TUMOR)[:, None, None]
    mass = torch.sigmoid(edge / 0.7) * torch.where(is_men, skull_in, brain)
    mask = (edge > 0) & has_tumour & torch.where(is_men, rho < bone_in, rho < brain_edge)
    c = col(pp["contrast"])

    het = _smooth_noise(n, size, 9, g) * 0.08
    rel = trho / border
    rim = torch.exp(-(((rel - 0.85) / 0.14) ** 2))
    nec = col(pp["necrosis"]) * torch.sigmoid((0.55 - rel) / 0.08)
    lesion = torch.where(is_gl, 0.5 + 0.35 * rim - 0.3 * nec + het, torch.where(is_men, 0.86, 0.8) + 0.3 * het)
    oed = col(pp["oedema"]) * torch.exp(-((rel / col(pp["oedema_scale"])) ** 4)) * brain * (1 - mass)
    oed = 0.7 * c * oed * is_gl
    tissue = tissue * (1 - oed) + 0.2 * oed
    w = c * mass * has_tumour
    tissue = tissue * (1 - w) + lesion * w

    # --- compose: scalp fat, bone (dark), CSF rim, brain; meningioma also covers the CSF rim ---
    img = 0.82 * scalp + 0.08 * (inside(scalp_in) - skull_in) + 0.1 * (skull_in - brain) + tissue * brain
    img = torch.where(is_men, img * (1 - w) + lesion * w, img) * head

    # --- acquisition: bias field, Rician noise, windowing like an exported JPEG ---
    grad_dir = _u(g, n, hi=2 * math.pi)
    slope = col(_u(g, n, lo=0.0, hi=0.25))
    bias = 0.15 * _smooth_noise(n, size, 3, g) + slope * (torch.cos(col(grad_dir)) * px + torch.sin(col(grad_dir)) * py)
    img = img * torch.exp(bias)
    sigma = col(_u(g, n, lo=0.015, hi=0.06))
    noise = torch.randn(2, n, size, size, generator=g) * sigma
    img = torch.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    top = torch.kthvalue(img.flatten(1), int(0.995 * size * size), dim=1).values.clamp_min(1e-3)
    gamma = col(_u(g, n, lo=0.85, hi=1.15))
    img = (img / col(top)).clamp(0, 1) ** gamma
    return img, mask


def _render_rows(
    pp: dict[str, Tensor], y_pat: Tensor, rows: Tensor, multi: bool, size: int, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Render the slices whose patients are ``rows``; ``multi``: patients have several slices."""
    sp = {k: v[rows].clone() for k, v in pp.items()}
    if multi:  # another slice through the same head: tumour cross-section and ventricles change
        m = len(rows)
        sp["radius"] = sp["radius"] * _u(g, m, lo=0.75, hi=1.0)
        sp["vent"] = sp["vent"] * _u(g, m, lo=0.85, hi=1.15)
    return _render(sp, y_pat[rows], size, g)


def check_phantom(n_patients: int, size: int, min_size: int, ambiguity: float, class_fractions: Sequence[float],
                  unit: str = "pixels") -> Tensor:
    """The brain phantoms' argument checks (2-D slices and 3-D volumes): ``DataError`` naming the
    bad argument; returns the class fractions as float64 ``[len(CLASSES)]``."""
    if n_patients < 1:
        raise DataError(f"n_patients must be >= 1, got {n_patients}")
    if size < min_size:
        raise DataError(f"size must be >= {min_size} {unit}, got {size}")
    if not 0.0 <= ambiguity <= 1.0:
        raise DataError(f"ambiguity must be in [0, 1], got {ambiguity}")
    fr = torch.as_tensor(list(class_fractions), dtype=torch.float64)
    if fr.shape != (len(CLASSES),) or (fr < 0).any() or fr.sum() <= 0:
        raise DataError(
            f"class_fractions must be {len(CLASSES)} non-negative shares for {CLASSES}, got {list(class_fractions)}"
        )
    return fr


def patient_classes(fr: Tensor, n_patients: int, generator: torch.Generator) -> Tensor:
    """Exact class counts from the fractions ``fr`` (largest remainder), shuffled with ``generator``.

    >>> patient_classes(torch.tensor([0.5, 0.25, 0.25, 0.0]), 8, torch.Generator().manual_seed(0)).bincount().tolist()
    [4, 2, 2]
    """
    fr = fr / fr.sum()
    counts = torch.floor(fr * n_patients).long()
    rest = n_patients - int(counts.sum())
    counts[torch.argsort(fr * n_patients - counts, descending=True)[:rest]] += 1
    y = torch.repeat_interleave(torch.arange(len(fr)), counts)
    return y[torch.randperm(n_patients, generator=generator)]


def _draw_patients(n_patients, slices_per_patient, class_fractions, ambiguity, seed, size=64):
    """Validated arguments -> (generator, per-patient classes, parameters, patient of each slice, multi-slice)."""
    fr = check_phantom(n_patients, size, 16, ambiguity, class_fractions)
    lo, hi = (slices_per_patient, slices_per_patient) if isinstance(slices_per_patient, int) else slices_per_patient
    if not 1 <= lo <= hi:
        raise DataError(f"slices_per_patient must be >= 1 (or a range lo <= hi), got {slices_per_patient}")

    # offset, so that a group_split(seed=seed) does not replay the label permutation
    g = torch.Generator().manual_seed(int(seed) + _SEED_OFFSET)
    y_pat = patient_classes(fr, n_patients, g)
    pp = _patient_params(y_pat, ambiguity, g)

    n_slices = torch.randint(lo, hi + 1, (n_patients,), generator=g)
    patient_of = torch.repeat_interleave(torch.arange(n_patients), n_slices)
    return g, y_pat, pp, patient_of, hi > 1


def make_synthetic_mri(
    n_patients: int = 1000,
    slices_per_patient: int | tuple[int, int] = 1,
    *,
    size: int = 64,
    class_fractions: Sequence[float] = SARTAJ_CLASS_FRACTIONS,
    ambiguity: float = 0.12,
    seed: int = 0,
    chunk: int = 32,
) -> LabeledArrays:
    """Generate a seeded set of synthetic axial brain-MRI slices.

    Parameters
    ----------
    n_patients:
        Number of patients (groups); each has one tumour class and one anatomy.
    slices_per_patient:
        Slices per patient: an int, or an inclusive range ``(lo, hi)`` drawn uniformly per patient.
        Slices of one patient share head shape and tumour, with small changes in pose, ventricle
        size and tumour cross-section (so splits must respect ``group``).
    size:
        Image side in pixels (64 for quick profiles, 224 for paper scale).
    class_fractions:
        Share of patients per class in :data:`CLASSES` order (default: SARTAJ's class shares).
    ambiguity:
        Share of tumour patients drawn as borderline cases (faint tumours, or a location/look
        borrowed from a neighbouring class). 0 gives a nearly separable set; the default 0.12 leaves
        a few percent of slices that a good classifier gets wrong.
    seed:
        Seed of a private generator (global RNG state untouched).
    chunk:
        Slices rendered at once (memory bound).

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 3, size, size] (gray copied to 3 channels, normalised with
        :data:`MEAN` / :data:`STD`); ``y`` int64 class index; ``mask`` bool [N, size, size] (tumour,
        empty for ``no_tumor``); ``group`` int64 patient id; ``classes`` = :data:`CLASSES`.
    """
    g, y_pat, pp, patient_of, multi = _draw_patients(n_patients, slices_per_patient, class_fractions, ambiguity,
                                                     seed, size)
    imgs, masks = [], []
    with _one_thread():
        for start in range(0, len(patient_of), chunk):
            imgs_masks = _render_rows(pp, y_pat, patient_of[start : start + chunk], multi, size, g)
            imgs.append(imgs_masks[0])
            masks.append(imgs_masks[1])
    return LabeledArrays(
        x=normalize_gray(torch.cat(imgs)),
        y=y_pat[patient_of].clone(),
        classes=CLASSES,
        mask=torch.cat(masks),
        group=patient_of.clone(),
    )


def synthetic_mri_attributes(
    n_patients: int = 1000,
    slices_per_patient: int | tuple[int, int] = 1,
    *,
    class_fractions: Sequence[float] = SARTAJ_CLASS_FRACTIONS,
    ambiguity: float = 0.12,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Generator attributes of each slice of :func:`make_synthetic_mri` with the same arguments (no rendering).

    Replays the patient draws of :func:`make_synthetic_mri` (same seed, same order), so row ``i``
    describes slice ``i`` of the data set: ``y`` (class), ``group`` (patient), ``ambiguous`` (drawn
    as a borderline case: faint, or with a neighbouring class's location / look), ``faint``
    (borderline by low contrast), ``contrast`` (tumour contrast, 0 for ``no_tumor``) and ``radius``
    (tumour radius in brain units, 0 for ``no_tumor``). The image size does not change the draws.

    >>> a = synthetic_mri_attributes(n_patients=8, seed=0)
    >>> bool(torch.equal(a["y"], make_synthetic_mri(n_patients=8, size=32, seed=0).y))
    True
    """
    _, y_pat, pp, patient_of, _ = _draw_patients(n_patients, slices_per_patient, class_fractions, ambiguity, seed)
    tumour = y_pat != NO_TUMOR
    faint = pp["ambiguous"] & (pp["contrast"] < 0.5)
    per_patient = {"y": y_pat, "ambiguous": pp["ambiguous"], "faint": faint & tumour,
                   "contrast": pp["contrast"], "radius": torch.where(tumour, pp["radius"],
                                                                     torch.zeros_like(pp["radius"]))}
    out = {k: v[patient_of].clone() for k, v in per_patient.items()}
    out["group"] = patient_of.clone()
    return out

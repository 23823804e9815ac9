"""Seeded synthetic dermoscopy images: the embedded default data of the ``derm_vic`` chapter.

Each image shows skin (base tone, smooth blotches, pores, vignetting, hairs) with one pigmented
lesion. The lesion's look follows the ABCD dermoscopy rule of thumb:

* **benign** (nevus-like): roughly symmetric, regular border, one brown tone;
* **malignant** (melanoma-like): asymmetric, irregular border, several colours (dark brown,
  black, red-brown), blue-white structures and dark dots.

How strongly a lesion shows the malignant signs is a per-lesion *atypia* score drawn from two
overlapping distributions (benign low, malignant high), so some nevi look atypical and some
melanomas look harmless: a classifier cannot be perfect. Every lesion is photographed
``images_per_lesion`` times with small changes (position, rotation, scale, light, hairs), so the
``group`` (lesion id) must be respected when splitting, exactly as for HAM10000.

Everything is vectorised over images with torch; generation runs at thousands of 64x64 images
per second on a laptop CPU.

>>> d = make_synthetic_derm(n_lesions=8, images_per_lesion=2, size=32, seed=0)
>>> tuple(d.x.shape), d.x.dtype, tuple(d.mask.shape), d.classes
((16, 3, 32, 32), torch.float32, (16, 32, 32), ('benign', 'malignant'))
>>> bool((d.group[0::2] == d.group[1::2]).all())
True
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import DataError, LabeledArrays
from . import uniform as _u

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "make_synthetic_derm",
    "add_ink_marks",
    "normalize_rgb",
    "denormalize",
]

CLASSES = ("benign", "malignant")
#: Per-channel normalisation (ImageNet statistics, so local pretrained weights fit too).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_N_HARM = 8  # border harmonics k = 1..8
_FIELD_CELLS = 6  # coarse grid of the lesion colour fields
_N_DOTS = 10
_N_HAIRS = 6


def normalize_rgb(img: Tensor) -> Tensor:
    """RGB in [0, 1], shape [N, 3, H, W] -> normalised float32 (``(img - MEAN) / STD``)."""
    m = torch.tensor(MEAN, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return ((img - m) / s).float()


def denormalize(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize_rgb`, clipped to [0, 1] (for display).

    >>> img = torch.rand(2, 3, 4, 4)
    >>> bool(torch.allclose(denormalize(normalize_rgb(img)), img, atol=1e-6))
    True
    """
    m = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * s + m).clamp(0, 1)


def _lesion_params(n: int, atypia: Tensor, g: torch.Generator) -> dict[str, Tensor]:
    """Per-lesion parameters (shared by all images of one lesion)."""
    a = atypia.view(n, 1)
    k = torch.arange(1, _N_HARM + 1, dtype=torch.float32).view(1, -1)
    # border: low harmonics (asymmetry) and high harmonics (irregularity) grow with atypia
    base_amp = 0.035 + 0.02 * torch.rand(n, 1, generator=g)
    amp = base_amp / k  # a regular, slightly elliptic outline for everyone
    amp = amp + a * torch.where(k <= 3, 0.16, 0.10 * (3.0 / k) ** 0.5) * _u(g, n, _N_HARM, lo=0.3, hi=1.0)
    params = {
        "radius": _u(g, n, lo=0.32, hi=0.55),
        "harm_amp": amp,
        "harm_phase": _u(g, n, _N_HARM, hi=2 * math.pi),
        # colour fields in the lesion frame: smooth noise on a coarse grid (3 fields)
        "field": torch.randn(n, 3, _FIELD_CELLS, _FIELD_CELLS, generator=g),
        # benign tone: one brown; malignant tones blend in with atypia
        "brown": torch.stack(
            [_u(g, n, lo=0.42, hi=0.62), _u(g, n, lo=0.26, hi=0.38), _u(g, n, lo=0.14, hi=0.24)], 1
        ),
        "atypia": atypia,
        # blue-white veil: position inside the lesion and size
        "veil_pos": torch.randn(n, 2, generator=g) * 0.35,
        "veil_size": _u(g, n, lo=0.25, hi=0.45),
        # dots: positions (lesion frame, inside the unit disc); how many are shown grows with atypia
        "dot_r": torch.sqrt(torch.rand(n, _N_DOTS, generator=g)) * 0.85,
        "dot_t": _u(g, n, _N_DOTS, hi=2 * math.pi),
    }
    params["n_dots"] = torch.floor(atypia.clamp(0, 1) * _N_DOTS * _u(g, n, lo=0.5, hi=1.2))
    return params


def _gauss_kernel(sigma: float) -> Tensor:
    r = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.max()


def _splat(n: int, size: int, ix: Tensor, iy: Tensor, weight: Tensor, sigma: float) -> Tensor:
    """Draw points (pixel coords ix, iy [N, P]; weight [N, P]) as Gaussian blobs: [N, H, W] in [0, 1]."""
    xi = ix.round().long()
    yi = iy.round().long()
    ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (weight > 0)
    flat = torch.zeros(n, size * size)
    idx = (yi.clamp(0, size - 1) * size + xi.clamp(0, size - 1))
    flat.scatter_reduce_(1, idx, (weight * ok).float(), reduce="amax")
    img = flat.view(n, 1, size, size)
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    # separable max-free blur: peak of an isolated point stays 1
    img = F.conv2d(img, k.view(1, 1, 1, -1), padding=(0, r))
    img = F.conv2d(img, k.view(1, 1, -1, 1), padding=(r, 0))
    return img[:, 0].clamp(0, 1)


def _smooth_noise(n: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    """Low-frequency noise [N, H, W], roughly unit scale."""
    z = torch.randn(n, 1, cells, cells, generator=g)
    return F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)[:, 0]


def _segment_distance(px: Tensor, py: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance from grid points to segments. px, py [H, W]; a, b [N, M, 2] -> [N, M, H, W]."""
    ab = b - a
    denom = (ab**2).sum(-1).clamp_min(1e-8)[..., None, None]
    apx = px - a[..., 0, None, None]
    apy = py - a[..., 1, None, None]
    t = ((apx * ab[..., 0, None, None] + apy * ab[..., 1, None, None]) / denom).clamp(0, 1)
    dx = apx - t * ab[..., 0, None, None]
    dy = apy - t * ab[..., 1, None, None]
    return torch.sqrt(dx**2 + dy**2)


def _border(theta: Tensor, amp: Tensor, phase: Tensor, bins: int = 256) -> Tensor:
    """Border radius 1 + sum_k amp_k cos(k theta + phase_k), tabulated on ``bins`` angles and
    linearly interpolated at ``theta`` [N, H, W] (cheap: no [N, K, H, W] intermediate)."""
    n = len(amp)
    grid = torch.arange(bins + 1, dtype=torch.float32) / bins * 2 * math.pi - math.pi
    k = torch.arange(1, amp.shape[1] + 1, dtype=torch.float32)
    table = 1.0 + (amp[:, :, None] * torch.cos(k[None, :, None] * grid[None, None] + phase[:, :, None])).sum(1)
    pos = (theta + math.pi) / (2 * math.pi) * bins
    i0 = pos.floor().long().clamp(0, bins - 1)
    w = pos - i0
    flat = i0.view(n, -1)
    t0 = torch.gather(table, 1, flat).view_as(theta)
    t1 = torch.gather(table, 1, flat + 1).view_as(theta)
    return t0 * (1 - w) + t1 * w


def _render(lp: dict[str, Tensor], lesion_of: Tensor, size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Render images for rows ``lesion_of`` (index into lesion params). Returns (rgb [N,3,H,W] in [0,1], mask)."""
    n = len(lesion_of)
    p = {k: v[lesion_of] for k, v in lp.items()}
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    py, px = torch.meshgrid(lin, lin, indexing="ij")  # [H, W], x to the right, y down
    pixel = 2.0 / size

    # --- per-image pose: small changes between photos of one lesion ---
    rot = _u(g, n, hi=2 * math.pi)
    scale = _u(g, n, lo=0.85, hi=1.15)
    cx = _u(g, n, lo=-0.15, hi=0.15)
    cy = _u(g, n, lo=-0.15, hi=0.15)
    cos, sin = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
    dx = px[None] - cx[:, None, None]
    dy = py[None] - cy[:, None, None]
    r0 = (p["radius"] * scale)[:, None, None]
    u = (cos * dx + sin * dy) / r0  # lesion frame, lesion radius ~ 1
    v = (-sin * dx + cos * dy) / r0
    rho = torch.sqrt(u**2 + v**2)
    theta = torch.atan2(v, u)

    # --- lesion outline ---
    border = _border(theta, p["harm_amp"], p["harm_phase"])
    edge = (border - rho) * r0 / pixel  # signed distance in pixels (approx.)
    mask = edge > 0
    alpha = torch.sigmoid(edge / 0.8)

    # --- lesion colour: smooth fields sampled in the lesion frame (same lesion, same pattern) ---
    a = p["atypia"][:, None, None]
    fields = F.grid_sample(
        p["field"], torch.stack([u, v], -1) / 1.6, mode="bilinear", padding_mode="border", align_corners=False
    )  # [N, 3, H, W], ~unit scale
    f1, f2, f3 = fields[:, 0], fields[:, 1], fields[:, 2]
    brown = p["brown"][:, :, None, None]
    # benign: one tone, a little darker in the centre (symmetric); mild mottling
    shade = 1.0 - 0.18 * (1 - rho.clamp(0, 1)) + 0.04 * f1
    col = brown * shade[:, None]
    dark = torch.tensor([0.16, 0.09, 0.07]).view(1, 3, 1, 1)
    red = torch.tensor([0.62, 0.26, 0.22]).view(1, 3, 1, 1)
    light = torch.tensor([0.70, 0.50, 0.36]).view(1, 3, 1, 1)
    ac = a.clamp(0, 1)
    # malignant: several colours in patches whose extent grows with atypia
    w_dark = (torch.sigmoid((f1 - 1.0 + 1.0 * a) * 5) * ac)[:, None]
    w_red = (torch.sigmoid((f2 - 1.2 + 0.9 * a) * 5) * ac)[:, None]
    w_light = (torch.sigmoid((f3 - 1.1 + 0.7 * a) * 5) * ac)[:, None]
    col = col * (1 - w_dark) + dark * w_dark
    col = col * (1 - w_red) + red * w_red
    col = col * (1 - w_light) + light * w_light
    # blue-white veil: a whitish-blue blob, present when atypia is high
    vd2 = (u - p["veil_pos"][:, 0, None, None]) ** 2 + (v - p["veil_pos"][:, 1, None, None]) ** 2
    veil = torch.exp(-vd2 / (2 * p["veil_size"][:, None, None] ** 2))
    veil = (veil * ((a - 0.45) * 2.2).clamp(0, 0.85))[:, None]
    blue = torch.tensor([0.52, 0.60, 0.74]).view(1, 3, 1, 1)
    col = col * (1 - veil) + blue * veil
    # dark dots / globules: lesion-frame positions mapped to pixels, splatted as small blobs
    du = p["dot_r"] * torch.cos(p["dot_t"])
    dv = p["dot_r"] * torch.sin(p["dot_t"])
    r0v = r0[:, :, 0]
    ix = ((cos[:, :, 0] * du - sin[:, :, 0] * dv) * r0v + cx[:, None] + 1) / pixel - 0.5
    iy = ((sin[:, :, 0] * du + cos[:, :, 0] * dv) * r0v + cy[:, None] + 1) / pixel - 0.5
    on = (torch.arange(_N_DOTS)[None, :] < p["n_dots"][:, None]).float()
    dots = (_splat(n, size, ix, iy, on, sigma=max(0.6, size / 70)) * 0.85)[:, None]
    col = col * (1 - dots) + dark * dots

    # --- skin ---
    tone = torch.stack(
        [_u(g, n, lo=0.78, hi=0.92), _u(g, n, lo=0.58, hi=0.72), _u(g, n, lo=0.48, hi=0.60)], 1
    )[:, :, None, None]
    blotch = _smooth_noise(n, size, 5, g) * 0.035
    skin = tone * (1 + blotch[:, None])
    img = skin + (col - skin) * alpha[:, None]
    img = img + torch.randn(n, 3, size, size, generator=g) * 0.015

    # --- hairs: two-segment dark polylines, drawn as dense point trails ---
    m, steps = _N_HAIRS, max(16, size // 2)
    start = _u(g, n, m, 2, lo=-1.1, hi=1.1)
    ang = _u(g, n, m, hi=2 * math.pi)
    bend = ang + torch.randn(n, m, generator=g) * 0.35
    length = _u(g, n, m, lo=0.4, hi=1.0)
    mid = start + length[..., None] * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    end = mid + length[..., None] * torch.stack([torch.cos(bend), torch.sin(bend)], -1)
    present = (torch.rand(n, m, generator=g) < _u(g, n, 1, lo=0.0, hi=0.8)).float()
    t = torch.linspace(0, 1, steps).view(1, 1, -1, 1)
    pts = torch.cat([start[:, :, None] + t * (mid - start)[:, :, None], mid[:, :, None] + t * (end - mid)[:, :, None]],
                    2)
    w = present[:, :, None].expand(n, m, 2 * steps).reshape(n, -1)
    pts = pts.reshape(n, -1, 2)
    hair = _splat(n, size, (pts[..., 0] + 1) / pixel - 0.5, (pts[..., 1] + 1) / pixel - 0.5, w,
                  sigma=max(0.5, size / 160))
    hair_col = torch.tensor([0.18, 0.12, 0.10]).view(1, 3, 1, 1)
    img = img + (hair_col - img) * 0.8 * hair[:, None]

    # --- light: brightness and vignetting of the dermatoscope ---
    bright = _u(g, n, lo=0.9, hi=1.08)[:, None, None, None]
    vig_r = _u(g, n, lo=1.05, hi=1.6)[:, None, None]
    vig = torch.sigmoid((vig_r - torch.sqrt(px**2 + py**2)[None]) * 8)
    img = img * bright * (0.35 + 0.65 * vig[:, None])
    return img.clamp(0, 1), mask


def make_synthetic_derm(
    n_lesions: int = 600,
    images_per_lesion: int | tuple[int, int] = (1, 3),
    *,
    size: int = 64,
    malignant_fraction: float = 0.195,
    separation: float = 3.0,
    spurious: float = 0.0,
    seed: int = 0,
    chunk: int = 256,
) -> LabeledArrays:
    """Generate a seeded synthetic dermoscopy set.

    Parameters
    ----------
    n_lesions:
        Number of distinct lesions (groups).
    images_per_lesion:
        Photos per lesion: an int, or an inclusive range ``(lo, hi)`` drawn uniformly per lesion.
    size:
        Image side in pixels (square images).
    malignant_fraction:
        Share of malignant *lesions* (HAM10000: 19.5 % of images are mel/bcc/akiec).
    separation:
        Distance between the means of the benign and malignant atypia distributions in units of
        their (common) SD. An ideal reader of the atypia score reaches a balanced accuracy of about
        Phi(separation / 2) (0.93 for the default 3.0); images add noise, so a CNN scores lower.
    spurious:
        Strength in [0, 1] of an ink-mark shortcut: malignant images get a purple ink mark with
        probability ``(1 + spurious) / 2 * 0.5``, benign ones with ``(1 - spurious) / 2 * 0.5``.
        0 (default) adds no marks. To make the cue appear in training only, generate without it and
        call :func:`add_ink_marks` on the training subset.
    seed:
        Seed of a private generator (global RNG state untouched).
    chunk:
        Images rendered at once (memory bound).

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 3, size, size] normalised with :data:`MEAN`/:data:`STD`; ``y`` int64
        (0 benign, 1 malignant); ``mask`` bool [N, size, size] (lesion); ``group`` int64 lesion id;
        ``classes = ("benign", "malignant")``.
    """
    if n_lesions < 1:
        raise DataError(f"n_lesions must be >= 1, got {n_lesions}")
    if size < 16:
        raise DataError(f"size must be >= 16 pixels, got {size}")
    if not 0.0 < malignant_fraction < 1.0:
        raise DataError(f"malignant_fraction must be in (0, 1), got {malignant_fraction}")
    if not 0.0 <= spurious <= 1.0:
        raise DataError(f"spurious must be in [0, 1], got {spurious}")
    lo, hi = (images_per_lesion, images_per_lesion) if isinstance(images_per_lesion, int) else images_per_lesion
    if not 1 <= lo <= hi:
        raise DataError(f"images_per_lesion must be >= 1 (or a range lo <= hi), got {images_per_lesion}")

    # offset the seed: a generator seeded with ``seed`` itself would replay the permutation that
    # group_split(..., seed=seed) draws and so put all malignant lesions into one split
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 0x5D3A)
    n_mal = int(round(malignant_fraction * n_lesions))
    y_lesion = torch.zeros(n_lesions, dtype=torch.long)
    y_lesion[torch.randperm(n_lesions, generator=g)[:n_mal]] = 1
    # atypia: benign ~ N(0.22, s), malignant ~ N(0.22 + separation * s, s), s = 0.14
    s = 0.14
    atypia = torch.randn(n_lesions, generator=g) * s + 0.22 + y_lesion * separation * s
    atypia = atypia.clamp(0.0, 1.1)
    lp = _lesion_params(n_lesions, atypia, g)

    counts = torch.randint(lo, hi + 1, (n_lesions,), generator=g)
    lesion_of = torch.repeat_interleave(torch.arange(n_lesions), counts)
    imgs, masks = [], []
    for start in range(0, len(lesion_of), chunk):
        im, mk = _render(lp, lesion_of[start : start + chunk], size, g)
        imgs.append(im)
        masks.append(mk)
    img = torch.cat(imgs)
    data = LabeledArrays(
        x=normalize_rgb(img),
        y=y_lesion[lesion_of].clone(),
        classes=CLASSES,
        mask=torch.cat(masks),
        group=lesion_of.clone(),
    )
    if spurious > 0:
        data = add_ink_marks(data, spurious, seed=int(seed) + 7919)
    return data


def add_ink_marks(data: LabeledArrays, strength: float, *, seed: int, rate: float = 0.5) -> LabeledArrays:
    """Return a copy of ``data`` with purple ink marks correlated with the label (a shortcut).

    A malignant image gets a mark with probability ``rate * (1 + strength) / 2``, a benign one
    with ``rate * (1 - strength) / 2``; ``strength = 1`` marks only malignant images. Marks are
    short thick strokes near the image border (like a surgeon's skin marker), outside the mask.
    Apply it to the training subset only to build a spurious cue that does not hold at test time.
    """
    if not 0.0 <= strength <= 1.0:
        raise DataError(f"strength must be in [0, 1], got {strength}")
    n, _, h, w = data.x.shape
    g = torch.Generator().manual_seed(int(seed))
    p = rate * (1 + strength * (2 * data.y.float() - 1)) / 2
    marked = torch.rand(n, generator=g) < p
    lin = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    py, px = torch.meshgrid(lin, lin, indexing="ij")
    side = torch.randint(0, 4, (n,), generator=g)
    t = _u(g, n, lo=-0.6, hi=0.6)
    pos = torch.stack([torch.full((n,), 0.8), t], -1)
    rot = side.float() * math.pi / 2
    rx = torch.cos(rot) * pos[:, 0] - torch.sin(rot) * pos[:, 1]
    ry = torch.sin(rot) * pos[:, 0] + torch.cos(rot) * pos[:, 1]
    a = torch.stack([rx, ry], -1)[:, None]
    direction = torch.stack([-torch.sin(rot), torch.cos(rot)], -1)[:, None]
    b = a + 0.35 * direction
    d = _segment_distance(px, py, a, b)[:, 0]
    ink = torch.exp(-((d / (3.0 / h)) ** 2)) * marked[:, None, None]
    if data.mask is not None:
        ink = ink * (~data.mask).float()
    img = denormalize(data.x)
    purple = torch.tensor([0.35, 0.15, 0.45]).view(1, 3, 1, 1)
    img = img * (1 - 0.9 * ink[:, None]) + purple * 0.9 * ink[:, None]
    return LabeledArrays(
        x=normalize_rgb(img), y=data.y.clone(), classes=data.classes,
        mask=None if data.mask is None else data.mask.clone(),
        group=None if data.group is None else data.group.clone(),
    )

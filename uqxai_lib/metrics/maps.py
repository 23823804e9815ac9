"""Metrics on maps and stacks of maps: ranks, Spearman, thresholds, regions, overlap, mass in mask, SUE."""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .base import as_tensor, flatten_spatial, out_dtype, resolve_ndim_spatial, work_dtype


# --------------------------------------------------------------------------------------------
# ranks and Spearman
# --------------------------------------------------------------------------------------------
def rankdata(x: Tensor, dim: int = -1) -> Tensor:
    """Average (1-based) ranks along ``dim``, ties get the mean of their ranks (``scipy.stats.rankdata``).

    Vectorised: one sort, tie groups found by comparing neighbours; the first and last sorted
    position of each group come from cumulative max / min, so no Python loop and exact integer
    arithmetic (returned as float64, float32 on MPS).

    >>> rankdata(torch.tensor([0., 2., 0., 1.]))
    tensor([1.5000, 4.0000, 1.5000, 3.0000], dtype=torch.float64)
    """
    x = as_tensor(x, "x")
    xm = x.movedim(dim, -1)
    n = xm.shape[-1]
    if n == 0:
        raise ValueError("rankdata: cannot rank an empty dimension")
    s, idx = xm.sort(dim=-1, stable=True)
    pos = torch.arange(n, device=x.device).expand(s.shape)
    new = torch.ones(s.shape, dtype=torch.bool, device=x.device)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    last = torch.ones_like(new)
    last[..., :-1] = new[..., 1:]
    start = torch.where(new, pos, torch.zeros_like(pos)).cummax(dim=-1).values
    end = torch.where(last, pos, torch.full_like(pos, n)).flip(-1).cummin(dim=-1).values.flip(-1)
    r_sorted = (start + end).to(work_dtype(x)) / 2 + 1
    r = torch.empty_like(r_sorted).scatter_(-1, idx, r_sorted)
    return r.movedim(-1, dim)


def _pearson_last(a: Tensor, b: Tensor) -> Tensor:
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    num = (a * b).sum(-1)
    den = torch.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return (num / den).clamp(-1.0, 1.0)  # 0/0 -> NaN survives clamp


def spearman(a: Tensor, b: Tensor, *, ndim_spatial: int | None = None) -> Tensor:
    r"""Spearman rank correlation of two (batches of) maps over their flattened spatial dims.

    :math:`\rho(a, b) = \mathrm{corr}(\mathrm{rank}(a), \mathrm{rank}(b))`, Pearson correlation of the
    average ranks (ties share the mean rank), i.e. exactly ``scipy.stats.spearmanr(a.ravel(), b.ravel())``.

    Parameters
    ----------
    a, b : Tensor ``[..., *spatial]``
        Broadcastable against each other (e.g. a stack ``[S, B, *sp]`` against a reference ``[B, *sp]``).
    ndim_spatial : int, optional
        Number of trailing dims that are spatial. Default: ``max(a.ndim, b.ndim) - 1`` (inputs
        ``[B, *spatial]``), or 1 for 1-D inputs (one map).

    Returns
    -------
    Tensor ``[...]`` (the leading dims; 0-dim for a single pair), dtype of the inputs.
    NaN exactly where scipy gives NaN: when either map is constant (all positions tied, e.g. an
    all-zero Grad-CAM) and when either map contains NaN.

    Examples
    --------
    >>> a = torch.tensor([[0., 0., 1., 2.], [1., 1., 1., 1.]])
    >>> b = torch.tensor([[0., 0., 2., 3.], [0., 1., 2., 3.]])
    >>> spearman(a, b)
    tensor([1., nan])
    >>> round(float(spearman(torch.tensor([1., 2., 3.]), torch.tensor([3., 1., 2.]))), 4)
    -0.5
    """
    a, b = as_tensor(a, "a"), as_tensor(b, "b")
    out = out_dtype(a, b)
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError as e:
        raise ValueError(f"spearman: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from e
    nd = resolve_ndim_spatial(a, ndim_spatial, 1, "spearman")
    fa, fb = flatten_spatial(a, nd), flatten_spatial(b, nd)
    rho = _pearson_last(rankdata(fa), rankdata(fb))
    has_nan = torch.zeros(rho.shape, dtype=torch.bool, device=rho.device)
    if fa.is_floating_point():
        has_nan |= fa.isnan().any(-1)
    if fb.is_floating_point():
        has_nan |= fb.isnan().any(-1)
    rho = torch.where(has_nan, torch.full_like(rho, math.nan), rho)
    return rho.to(out)


def repeatability(maps: Tensor, reference: Tensor, *, ndim_spatial: int | None = None) -> Tensor:
    r"""Mean Spearman :math:`\rho` of each sampled map against a reference map (Salvi et al. 2025, §4.2).

    .. math:: \mathrm{rep}_b = \frac{1}{|S_b|}\sum_{s \in S_b} \rho\big(M^{(s)}_b, M^{\mathrm{ref}}_b\big)

    where :math:`S_b` are the samples whose :math:`\rho` is defined (``nanmean``: a constant sampled
    map is skipped); NaN when no sample is defined (e.g. the reference map itself is constant).

    Parameters
    ----------
    maps : Tensor ``[S, B, *spatial]``
    reference : Tensor ``[B, *spatial]`` (e.g. the deterministic map, or the consensus).
    ndim_spatial : int, optional
        Default ``reference.ndim - 1``.

    Returns
    -------
    Tensor ``[B]``, dtype of the inputs.

    >>> ref = torch.tensor([[0., 1., 2., 3.]])
    >>> maps = torch.stack([ref, ref.flip(-1), torch.zeros_like(ref)])
    >>> repeatability(maps, ref)
    tensor([0.])
    """
    maps, reference = as_tensor(maps, "maps"), as_tensor(reference, "reference")
    if maps.ndim != reference.ndim + 1 or maps.shape[1:] != reference.shape:
        raise ValueError(
            f"repeatability: maps must be [S, *reference.shape]; got maps {tuple(maps.shape)} and "
            f"reference {tuple(reference.shape)}"
        )
    nd = resolve_ndim_spatial(reference, ndim_spatial, 1, "repeatability")
    rho = spearman(maps, reference.unsqueeze(0), ndim_spatial=nd)
    return torch.nanmean(rho, dim=0)


# --------------------------------------------------------------------------------------------
# thresholds and binary regions
# --------------------------------------------------------------------------------------------
def quantile_threshold(maps: Tensor, q: float, *, ndim_spatial: int | None = None) -> Tensor:
    """Per-map ``q``-quantile with linear interpolation (``numpy.quantile(..., method="linear")``).

    Uses a sort instead of :func:`torch.quantile` (which refuses inputs above 16 M elements).
    Returns ``[...]`` (leading dims).

    >>> quantile_threshold(torch.tensor([[0., 1., 2., 3., 4.]]), 0.9)
    tensor([3.6000])
    """
    maps = as_tensor(maps, "maps")
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    nd = resolve_ndim_spatial(maps, ndim_spatial, 1, "quantile_threshold")
    f = flatten_spatial(maps, nd)
    s = f.sort(dim=-1).values.to(work_dtype(f))
    n = s.shape[-1]
    p = float(q) * (n - 1)
    lo, hi = int(math.floor(p)), int(math.ceil(p))
    t = p - lo
    a, b = s[..., lo], s[..., hi]
    d = b - a
    thr = b - d * (1 - t) if t >= 0.5 else a + d * t  # numpy's _lerp
    return thr.to(out_dtype(maps))


def otsu_threshold(maps: Tensor, *, bins: int = 256, ndim_spatial: int | None = None) -> Tensor:
    r"""Per-map Otsu threshold (``skimage.filters.threshold_otsu`` semantics, ``bins``-bin histogram).

    The histogram spans ``[min, max]`` of each map; the threshold is the centre of the bin ``k`` that
    maximises the between-class variance :math:`w_0(k) w_1(k) (\mu_0(k) - \mu_1(k))^2` (first
    maximum), and the foreground is ``map > threshold``. A constant map returns its value (empty
    foreground).

    >>> otsu_threshold(torch.tensor([[0., 0., 0., 1., 1.]]), bins=2)
    tensor([0.2500])
    """
    maps = as_tensor(maps, "maps")
    nd = resolve_ndim_spatial(maps, ndim_spatial, 1, "otsu_threshold")
    f = flatten_spatial(maps, nd).to(work_dtype(maps))
    lo = f.amin(-1, keepdim=True)
    hi = f.amax(-1, keepdim=True)
    width = (hi - lo) / bins
    safe = torch.where(width > 0, width, torch.ones_like(width))
    idx = ((f - lo) / safe).floor().clamp(0, bins - 1).long()
    counts = torch.zeros(f.shape[:-1] + (bins,), dtype=f.dtype, device=f.device).scatter_add_(-1, idx,
                                                                                              torch.ones_like(f))
    centers = lo + (torch.arange(bins, device=f.device, dtype=f.dtype) + 0.5) * width
    w0 = counts.cumsum(-1)
    w1 = counts.flip(-1).cumsum(-1).flip(-1)
    m0 = (counts * centers).cumsum(-1) / w0.clamp(min=1)
    m1 = (counts * centers).flip(-1).cumsum(-1).flip(-1) / w1.clamp(min=1)
    var = w0[..., :-1] * w1[..., 1:] * (m0[..., :-1] - m1[..., 1:]) ** 2
    k = var.argmax(-1, keepdim=True)
    thr = centers.gather(-1, k).squeeze(-1)
    thr = torch.where(width.squeeze(-1) > 0, thr, lo.squeeze(-1))
    return thr.to(out_dtype(maps))


Rule = str | tuple


def binarize(maps: Tensor, rule: Rule = "otsu", *, ndim_spatial: int | None = None) -> Tensor:
    r"""Binary salient region of each map by an explicit rule.

    Rules (``M`` one map, thresholds computed per map):

    * ``"otsu"`` - :math:`M_i > T_{\mathrm{Otsu}}(M)` (:func:`otsu_threshold`, 256 bins).
    * ``("quantile", q)`` - :math:`M_i \ge Q_q(M)` and :math:`M_i > 0`: the top :math:`1-q` share
      of positions, ties at the quantile included (:func:`quantile_threshold`).
    * ``("fraction_of_max", t)`` - :math:`M_i \ge t \max M` and :math:`M_i > 0`, ``0 < t <= 1``.

    Parameters
    ----------
    maps : Tensor ``[..., *spatial]``
    rule : see above (a list ``["quantile", 0.9]`` from YAML is accepted too).
    ndim_spatial : int, optional
        Default ``maps.ndim - 1``; pass ``maps.ndim - 2`` for a stack ``[S, B, *spatial]``.

    Returns
    -------
    bool Tensor, same shape as ``maps``.

    >>> m = torch.tensor([[0., 1., 2., 3., 4.]])
    >>> binarize(m, ("quantile", 0.6))
    tensor([[False, False, False,  True,  True]])
    >>> binarize(m, ("fraction_of_max", 0.5))
    tensor([[False, False,  True,  True,  True]])
    >>> binarize(torch.tensor([[0., 0., 0., 5., 6.]]))
    tensor([[False, False, False,  True,  True]])
    """
    maps = as_tensor(maps, "maps")
    nd = resolve_ndim_spatial(maps, ndim_spatial, 1, "binarize")
    expand = (Ellipsis,) + (None,) * nd
    if isinstance(rule, list):
        rule = tuple(rule)
    if rule == "otsu":
        return maps > otsu_threshold(maps, ndim_spatial=nd)[expand]
    if isinstance(rule, tuple) and len(rule) == 2 and rule[0] == "quantile":
        thr = quantile_threshold(maps, float(rule[1]), ndim_spatial=nd)
        return (maps >= thr[expand].to(maps.dtype)) & (maps > 0)
    if isinstance(rule, tuple) and len(rule) == 2 and rule[0] == "fraction_of_max":
        t = float(rule[1])
        if not 0.0 < t <= 1.0:
            raise ValueError(f"fraction_of_max must be in (0, 1], got {t}")
        mx = flatten_spatial(maps, nd).amax(-1)
        return (maps >= (t * mx)[expand]) & (maps > 0)
    raise ValueError(
        f"unknown binarisation rule {rule!r}; use 'otsu', ('quantile', q) or ('fraction_of_max', t)"
    )


def _pair_sets(pred: Tensor, true: Tensor, ndim_spatial: int | None, name: str) -> tuple[Tensor, Tensor, Tensor]:
    pred, true = as_tensor(pred, "pred"), as_tensor(true, "true")
    if pred.dtype != torch.bool or true.dtype != torch.bool:
        raise TypeError(f"{name}: pred and true must be bool masks (use metrics.binarize first); "
                        f"got {pred.dtype} and {true.dtype}")
    nd = resolve_ndim_spatial(pred if pred.ndim <= true.ndim else true, ndim_spatial, 1, name)
    try:
        pred, true = torch.broadcast_tensors(pred, true)
    except RuntimeError as e:
        raise ValueError(f"{name}: shapes {tuple(pred.shape)} and {tuple(true.shape)} do not broadcast") from e
    p, t = flatten_spatial(pred, nd), flatten_spatial(true, nd)
    inter = (p & t).sum(-1).to(torch.float64)
    return inter, p.sum(-1).to(torch.float64), t.sum(-1).to(torch.float64)


def iou(pred: Tensor, true: Tensor, *, ndim_spatial: int | None = None) -> Tensor:
    r"""Intersection over union :math:`|P \cap T| / |P \cup T|` per map; two empty regions give 1.

    ``pred`` and ``true`` are bool ``[..., *spatial]`` (broadcastable); ``ndim_spatial`` defaults to
    ``min(pred.ndim, true.ndim) - 1``. Returns float32 ``[...]``.

    >>> p = torch.tensor([[True, True, False, False], [False, False, False, False]])
    >>> t = torch.tensor([[True, False, True, False], [False, False, False, False]])
    >>> iou(p, t)
    tensor([0.3333, 1.0000])
    """
    inter, sp, st = _pair_sets(pred, true, ndim_spatial, "iou")
    union = sp + st - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter)).float()


def dice(pred: Tensor, true: Tensor, *, ndim_spatial: int | None = None) -> Tensor:
    r"""Dice coefficient :math:`2|P \cap T| / (|P| + |T|)` per map; two empty regions give 1.

    Same conventions as :func:`iou`; for one pair ``dice = 2 iou / (1 + iou)``.

    >>> p = torch.tensor([[True, True, False, False]])
    >>> t = torch.tensor([[True, False, True, False]])
    >>> dice(p, t)
    tensor([0.5000])
    """
    inter, sp, st = _pair_sets(pred, true, ndim_spatial, "dice")
    tot = sp + st
    return torch.where(tot > 0, 2 * inter / tot.clamp(min=1), torch.ones_like(inter)).float()


def mass_in_mask(maps: Tensor, mask: Tensor, *, ndim_spatial: int | None = None) -> Tensor:
    r"""Share of each map's mass inside the ground-truth mask: :math:`\sum_i M_i m_i / \sum_i M_i`.

    ``maps`` must be non-negative (post-ReLU, or linearly upsampled, maps are); a map with zero total
    mass gives NaN. ``mask`` is bool ``[..., *spatial]``, broadcastable against ``maps`` (a mask
    ``[B, *sp]`` serves a stack ``[S, B, *sp]``); ``ndim_spatial`` defaults to ``mask.ndim - 1``.
    An evenly spread map scores the mask's area share, which is the chance level to compare with.

    >>> mass_in_mask(torch.tensor([[1., 3., 0., 0.]]), torch.tensor([[False, True, True, False]]))
    tensor([0.7500])
    """
    maps, mask = as_tensor(maps, "maps"), as_tensor(mask, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"mass_in_mask: mask must be bool, got {mask.dtype}")
    if bool((maps < 0).any()):
        raise ValueError("mass_in_mask: maps must be non-negative (apply .clamp(min=0) or use post-ReLU maps)")
    nd = resolve_ndim_spatial(mask, ndim_spatial, 1, "mass_in_mask")
    try:
        m, k = torch.broadcast_tensors(maps, mask)
    except RuntimeError as e:
        raise ValueError(f"mass_in_mask: shapes {tuple(maps.shape)} and {tuple(mask.shape)} do not broadcast") from e
    wd = work_dtype(maps)
    fm = flatten_spatial(m, nd).to(wd)
    inside = (fm * flatten_spatial(k, nd)).sum(-1)
    total = fm.sum(-1)
    res = torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)),
                      torch.full_like(total, math.nan))
    return res.to(out_dtype(maps))


def pointing_game(maps: Tensor, mask: Tensor, *, ndim_spatial: int | None = None, ties: str = "any",
                  nowhere: float = math.nan) -> Tensor:
    r"""Pointing game (Zhang et al. 2018): 1.0 where the map's maximum lies inside the mask, else 0.0.

    ``ties="any"``: a hit needs *some* position of maximal value inside the mask; ``ties="first"``:
    only the first maximal position (row-major, ``argmax``) counts. A map whose maximum is <= 0 (e.g.
    all zero) points nowhere and scores ``nowhere`` (NaN by default; 0.0 counts it as a miss); an
    empty mask gives NaN. Shapes as in :func:`mass_in_mask`; the mean over maps is the hit rate (the
    "energy-based" variant is :func:`mass_in_mask`). Maps at a coarser resolution than the mask are
    upsampled first (:func:`uqxai_lib.saliency.upsample`).

    >>> pointing_game(torch.tensor([[0., 3., 1.], [2., 0., 2.], [0., 0., 0.]]),
    ...               torch.tensor([[False, True, False], [True, False, False], [True, False, False]]))
    tensor([1., 1., nan])
    >>> pointing_game(torch.tensor([[2., 0., 2.]]), torch.tensor([[False, False, True]]), ties="first")
    tensor([0.])
    """
    maps, mask = as_tensor(maps, "maps"), as_tensor(mask, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"pointing_game: mask must be bool, got {mask.dtype}")
    if ties not in ("any", "first"):
        raise ValueError(f"pointing_game: ties must be 'any' or 'first', got {ties!r}")
    nd = resolve_ndim_spatial(mask, ndim_spatial, 1, "pointing_game")
    try:
        m, k = torch.broadcast_tensors(maps, mask)
    except RuntimeError as e:
        raise ValueError(f"pointing_game: shapes {tuple(maps.shape)} and {tuple(mask.shape)} do not broadcast") from e
    fm, fk = flatten_spatial(m, nd), flatten_spatial(k, nd)
    top = fm.max(-1, keepdim=True).values
    if ties == "any":
        hit = ((fm == top) & fk).any(-1).float()
    else:
        hit = fk.gather(-1, fm.argmax(-1, keepdim=True)).squeeze(-1).float()
    hit = torch.where(top.squeeze(-1) <= 0, torch.full_like(hit, float(nowhere)), hit)
    return torch.where(~fk.any(-1), torch.full_like(hit, math.nan), hit)


# --------------------------------------------------------------------------------------------
# SUE
# --------------------------------------------------------------------------------------------
def sue(maps: Tensor, *, quantile: float = 0.9, ndim_spatial: int | None = None, reference: Tensor | None = None,
        empty: Literal["agree", "nan", "skip"] = "agree") -> Tensor:
    r"""Spatial Uncertainty Estimation: agreement of the most salient region across a stack of maps.

    SUE (Seoni et al. 2024, as used by Salvi et al. 2025, §4.1) measures the spatial consistency of
    the most salient region across ``S`` perturbed explanations of one input. Our definition: with
    :math:`R_s = \{ i : M^{(s)}_i \ge Q_q(M^{(s)}),\ M^{(s)}_i > 0 \}` the top :math:`1-q` share of
    positions of map :math:`s` (ties at the quantile included, see :func:`binarize`),

    .. math::

        \mathrm{SUE} = \binom{S}{2}^{-1} \sum_{s < t} J(R_s, R_t), \qquad
        J(R_s, R_t) = \frac{|R_s \cap R_t|}{|R_s \cup R_t|},

    with :math:`J = 1` when both regions are empty (two all-zero maps agree) and :math:`J = 0` when
    exactly one is. SUE is in :math:`[0, 1]`, 1 = the salient region never moves.

    Variants (the defaults give the definition above, bit for bit):

    * ``reference`` ``[B, *spatial]`` (e.g. the map of the clean input): SUE is instead the mean
      Jaccard of each map's region with the reference's region, :math:`S^{-1}\sum_s J(R_s, R_{\mathrm{ref}})`;
    * ``empty="nan"``: an input any of whose regions (or the reference's) is empty gets NaN instead
      of a score — an all-zero map has no salient region to agree on, so it is excluded, never
      counted as perfect agreement. :func:`empty_regions` counts such inputs.
    * ``empty="skip"`` (the protocol's rule, :data:`uqxai_lib.rules.EMPTY_REGION_RULE`): only the
      pairs that involve an empty region are undefined and skipped; the score is the mean over the
      defined pairs, NaN when none is defined.

    Parameters
    ----------
    maps : Tensor ``[S, B, *spatial]``, ``S >= 2``, no NaN.
    quantile : float in [0, 1]
        ``q`` above; 0.9 keeps the top 10 % of positions.
    ndim_spatial : int, optional
        Default ``maps.ndim - 2``.
    reference : Tensor ``[B, *spatial]``, optional
        Compare every map with this map instead of every pair of maps.
    empty : ``"agree"`` (default), ``"nan"`` or ``"skip"``
        How inputs with an empty region are scored (see above).

    Returns
    -------
    Tensor ``[B]``, dtype of ``maps``. Vectorised: intersections of all pairs are one batched
    matrix product :math:`R R^\top` of the binary masks.

    >>> m = torch.tensor([[[0., 1., 5.]], [[0., 1., 5.]], [[5., 1., 0.]]])   # S=3, B=1, n=3
    >>> sue(m, quantile=0.5)   # regions {1,2}, {1,2}, {0,1}: J = 1, 1/3, 1/3
    tensor([0.5556])
    """
    maps = as_tensor(maps, "maps")
    if maps.ndim < 2:
        raise ValueError(f"sue: maps must be [S, B, *spatial], got shape {tuple(maps.shape)}")
    if maps.shape[0] < 2:
        raise ValueError(f"sue needs at least S=2 maps per input to compare, got S={maps.shape[0]}")
    nd = resolve_ndim_spatial(maps, ndim_spatial, 2, "sue")
    if maps.ndim - nd != 2:
        if maps.ndim - nd == 1:
            raise ValueError(f"sue: maps of shape {tuple(maps.shape)} have no batch dim; use maps[:, None]")
        raise ValueError(f"sue: with ndim_spatial={nd}, maps {tuple(maps.shape)} is not [S, B, *spatial]")
    if maps.is_floating_point() and bool(maps.isnan().any()):
        raise ValueError("sue: maps contain NaN")
    if empty not in ("agree", "nan", "skip"):
        raise ValueError(f"sue: empty must be 'agree' (all-empty pairs count as J = 1), 'nan' (inputs with an empty "
                         f"region excluded) or 'skip' (pairs with an empty region excluded), got {empty!r}")
    if reference is not None:
        return _sue_to_reference(maps, as_tensor(reference, "reference"), quantile, nd, empty)
    regions = flatten_spatial(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd)  # [S, B, n]
    n = regions.shape[-1]
    # counts are exact in float32 below 2**24 positions; the ratios are formed in float64
    cd = torch.float32 if n < 2**24 else work_dtype(maps)
    r = regions.transpose(0, 1).to(cd)  # [B, S, n]
    wd = work_dtype(maps)
    inter = (r @ r.transpose(1, 2)).to(wd)  # [B, S, S]
    size = regions.sum(-1).transpose(0, 1).to(wd)  # [B, S]
    union = size[:, :, None] + size[:, None, :] - inter
    jac = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
    s = maps.shape[0]
    iu = torch.triu_indices(s, s, offset=1, device=maps.device)
    if empty == "skip":
        defined = (size[:, :, None] > 0) & (size[:, None, :] > 0)
        pairs = torch.where(defined, jac, torch.full_like(jac, math.nan))[:, iu[0], iu[1]]
        return torch.nanmean(pairs, -1).to(out_dtype(maps))
    out = jac[:, iu[0], iu[1]].mean(-1)
    if empty == "nan":
        out = torch.where((size == 0).any(1), torch.full_like(out, math.nan), out)
    return out.to(out_dtype(maps))


def _sue_to_reference(maps: Tensor, reference: Tensor, quantile: float, nd: int, empty: str) -> Tensor:
    """Mean Jaccard of each map's top region with the reference map's top region ([B])."""
    if tuple(reference.shape) != tuple(maps.shape[1:]):
        raise ValueError(f"sue: reference must be [B, *spatial] = {tuple(maps.shape[1:])}, got {tuple(reference.shape)}")
    if reference.is_floating_point() and bool(reference.isnan().any()):
        raise ValueError("sue: reference contains NaN")
    wd = work_dtype(maps)
    r = flatten_spatial(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd)  # [S, B, n]
    ref = flatten_spatial(binarize(reference, ("quantile", quantile), ndim_spatial=nd), nd)  # [B, n]
    inter = (r & ref[None]).sum(-1).to(wd)
    union = (r | ref[None]).sum(-1).to(wd)
    jac = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))  # [S, B]
    if empty == "skip":
        defined = (r.sum(-1) > 0) & (ref.sum(-1) > 0)[None]
        return torch.nanmean(torch.where(defined, jac, torch.full_like(jac, math.nan)), 0).to(out_dtype(maps))
    out = jac.mean(0)
    if empty == "nan":
        bad = (r.sum(-1) == 0).any(0) | (ref.sum(-1) == 0)
        out = torch.where(bad, torch.full_like(out, math.nan), out)
    return out.to(out_dtype(maps))


def empty_regions(maps: Tensor, *, quantile: float = 0.9, ndim_spatial: int | None = None) -> Tensor:
    """Which inputs of a stack ``[S, B, *spatial]`` have at least one empty top region (an all-zero
    map: no position is both ``>= Q_q`` and ``> 0``); bool ``[B]``. These are the inputs
    ``sue(..., empty="nan")`` excludes.

    >>> empty_regions(torch.tensor([[[0., 1.], [0., 0.]], [[1., 0.], [2., 1.]]]))
    tensor([False,  True])
    """
    maps = as_tensor(maps, "maps")
    nd = maps.ndim - 2 if ndim_spatial is None else int(ndim_spatial)
    if maps.ndim - nd != 2:
        raise ValueError(f"empty_regions: maps must be [S, B, *spatial], got shape {tuple(maps.shape)}")
    return (flatten_spatial(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd).sum(-1) == 0).any(0)

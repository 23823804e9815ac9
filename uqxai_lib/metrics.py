r"""Metrics on stacks of saliency maps and on predictions: pure, batched torch functions.

Modelled on the torchmetrics functional API: every function takes tensors and returns tensors (or a
small record of Python numbers for the table builders), never touches global state, and is
doctested. Floating inputs keep their dtype (float32 in -> float32 out, float64 -> float64);
bool / integer inputs give float32. Internally, ranks and sums are accumulated in float64 where the
device supports it, then cast back.

Shape conventions
-----------------
* A *map* is a tensor ``[..., *spatial]``. Functions that reduce over the spatial dimensions take a
  keyword ``ndim_spatial`` (the number of **trailing** dimensions that are spatial, as in
  :func:`uqxai_lib.saliency.normalize`). Its default is stated per function: ``ndim - 1`` for a batch
  ``[B, *spatial]`` and ``ndim - 2`` for a stack ``[S, B, *spatial]``; a 1-D input is one map.
* A *stack* is ``[S, B, *spatial]``: ``S`` explanations (MC passes, test-time draws, pruned models)
  of each of ``B`` inputs.
* Binary regions are bool tensors of the same shapes.

Salient region
--------------
Where a rule picks "the most salient region" of a map :math:`M` it is (see :func:`binarize`)

.. math:: R_q(M) = \{\, i : M_i \ge Q_q(M) \ \text{and}\ M_i > 0 \,\}

with :math:`Q_q` the ``q``-quantile of the map's values (linear interpolation, ``numpy.quantile``'s
default); ties at the quantile are included, zeros (post-ReLU "no evidence") never are.
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = [
    "GroupComparison",
    "aurc",
    "auroc",
    "binarize",
    "classification_summary",
    "compare_groups",
    "dice",
    "entropy",
    "iou",
    "mass_in_mask",
    "mutual_information",
    "otsu_threshold",
    "pointing_game",
    "predictive_entropy",
    "quantile_threshold",
    "rank_average",
    "rankdata",
    "repeatability",
    "risk_coverage",
    "spearman",
    "sue",
    "empty_regions",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _out_dtype(*ts: Tensor) -> torch.dtype:
    fl = [t.dtype for t in ts if t.is_floating_point()]
    if not fl:
        return torch.float32
    dt = fl[0]
    for d in fl[1:]:
        dt = torch.promote_types(dt, d)
    return dt


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def _as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:  # pragma: no cover - message only
        raise TypeError(f"{name} must be a tensor (or array-like), got {type(x).__name__}") from e


def _nsp(t: Tensor, ndim_spatial: int | None, lead: int, name: str) -> int:
    """Resolve ``ndim_spatial``: given, else ``t.ndim - lead`` (at least 1)."""
    nd = max(t.ndim - lead, 1) if ndim_spatial is None else int(ndim_spatial)
    if nd < 1 or nd > t.ndim:
        raise ValueError(
            f"{name}: ndim_spatial={ndim_spatial} does not fit a tensor of shape {tuple(t.shape)}; "
            f"pass 1 <= ndim_spatial <= {t.ndim}"
        )
    return nd


def _flat(t: Tensor, nd: int) -> Tensor:
    """``[..., *spatial]`` -> ``[..., n]`` (last ``nd`` dims flattened)."""
    return t.reshape(tuple(t.shape[: t.ndim - nd]) + (-1,))


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
    x = _as_tensor(x, "x")
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
    r_sorted = (start + end).to(_work_dtype(x)) / 2 + 1
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
    a, b = _as_tensor(a, "a"), _as_tensor(b, "b")
    out = _out_dtype(a, b)
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError as e:
        raise ValueError(f"spearman: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from e
    nd = _nsp(a, ndim_spatial, 1, "spearman")
    fa, fb = _flat(a, nd), _flat(b, nd)
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
    maps, reference = _as_tensor(maps, "maps"), _as_tensor(reference, "reference")
    if maps.ndim != reference.ndim + 1 or maps.shape[1:] != reference.shape:
        raise ValueError(
            f"repeatability: maps must be [S, *reference.shape]; got maps {tuple(maps.shape)} and "
            f"reference {tuple(reference.shape)}"
        )
    nd = _nsp(reference, ndim_spatial, 1, "repeatability")
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
    maps = _as_tensor(maps, "maps")
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    nd = _nsp(maps, ndim_spatial, 1, "quantile_threshold")
    f = _flat(maps, nd)
    s = f.sort(dim=-1).values.to(_work_dtype(f))
    n = s.shape[-1]
    p = float(q) * (n - 1)
    lo, hi = int(math.floor(p)), int(math.ceil(p))
    t = p - lo
    a, b = s[..., lo], s[..., hi]
    d = b - a
    thr = b - d * (1 - t) if t >= 0.5 else a + d * t  # numpy's _lerp
    return thr.to(_out_dtype(maps))


def otsu_threshold(maps: Tensor, *, bins: int = 256, ndim_spatial: int | None = None) -> Tensor:
    r"""Per-map Otsu threshold (``skimage.filters.threshold_otsu`` semantics, ``bins``-bin histogram).

    The histogram spans ``[min, max]`` of each map; the threshold is the centre of the bin ``k`` that
    maximises the between-class variance :math:`w_0(k) w_1(k) (\mu_0(k) - \mu_1(k))^2` (first
    maximum), and the foreground is ``map > threshold``. A constant map returns its value (empty
    foreground).

    >>> otsu_threshold(torch.tensor([[0., 0., 0., 1., 1.]]), bins=2)
    tensor([0.2500])
    """
    maps = _as_tensor(maps, "maps")
    nd = _nsp(maps, ndim_spatial, 1, "otsu_threshold")
    f = _flat(maps, nd).to(_work_dtype(maps))
    lo = f.amin(-1, keepdim=True)
    hi = f.amax(-1, keepdim=True)
    width = (hi - lo) / bins
    safe = torch.where(width > 0, width, torch.ones_like(width))
    idx = ((f - lo) / safe).floor().clamp(0, bins - 1).long()
    counts = torch.zeros(f.shape[:-1] + (bins,), dtype=f.dtype, device=f.device).scatter_add_(-1, idx, torch.ones_like(f))
    centers = lo + (torch.arange(bins, device=f.device, dtype=f.dtype) + 0.5) * width
    w0 = counts.cumsum(-1)
    w1 = counts.flip(-1).cumsum(-1).flip(-1)
    m0 = (counts * centers).cumsum(-1) / w0.clamp(min=1)
    m1 = (counts * centers).flip(-1).cumsum(-1).flip(-1) / w1.clamp(min=1)
    var = w0[..., :-1] * w1[..., 1:] * (m0[..., :-1] - m1[..., 1:]) ** 2
    k = var.argmax(-1, keepdim=True)
    thr = centers.gather(-1, k).squeeze(-1)
    thr = torch.where(width.squeeze(-1) > 0, thr, lo.squeeze(-1))
    return thr.to(_out_dtype(maps))


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
    maps = _as_tensor(maps, "maps")
    nd = _nsp(maps, ndim_spatial, 1, "binarize")
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
        mx = _flat(maps, nd).amax(-1)
        return (maps >= (t * mx)[expand]) & (maps > 0)
    raise ValueError(
        f"unknown binarisation rule {rule!r}; use 'otsu', ('quantile', q) or ('fraction_of_max', t)"
    )


def _pair_sets(pred: Tensor, true: Tensor, ndim_spatial: int | None, name: str) -> tuple[Tensor, Tensor, Tensor]:
    pred, true = _as_tensor(pred, "pred"), _as_tensor(true, "true")
    if pred.dtype != torch.bool or true.dtype != torch.bool:
        raise TypeError(f"{name}: pred and true must be bool masks (use metrics.binarize first); "
                        f"got {pred.dtype} and {true.dtype}")
    nd = _nsp(pred if pred.ndim <= true.ndim else true, ndim_spatial, 1, name)
    try:
        pred, true = torch.broadcast_tensors(pred, true)
    except RuntimeError as e:
        raise ValueError(f"{name}: shapes {tuple(pred.shape)} and {tuple(true.shape)} do not broadcast") from e
    p, t = _flat(pred, nd), _flat(true, nd)
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
    maps, mask = _as_tensor(maps, "maps"), _as_tensor(mask, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"mass_in_mask: mask must be bool, got {mask.dtype}")
    if bool((maps < 0).any()):
        raise ValueError("mass_in_mask: maps must be non-negative (apply .clamp(min=0) or use post-ReLU maps)")
    nd = _nsp(mask, ndim_spatial, 1, "mass_in_mask")
    try:
        m, k = torch.broadcast_tensors(maps, mask)
    except RuntimeError as e:
        raise ValueError(f"mass_in_mask: shapes {tuple(maps.shape)} and {tuple(mask.shape)} do not broadcast") from e
    wd = _work_dtype(maps)
    fm = _flat(m, nd).to(wd)
    inside = (fm * _flat(k, nd)).sum(-1)
    total = fm.sum(-1)
    res = torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)),
                      torch.full_like(total, math.nan))
    return res.to(_out_dtype(maps))


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
    maps, mask = _as_tensor(maps, "maps"), _as_tensor(mask, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"pointing_game: mask must be bool, got {mask.dtype}")
    if ties not in ("any", "first"):
        raise ValueError(f"pointing_game: ties must be 'any' or 'first', got {ties!r}")
    nd = _nsp(mask, ndim_spatial, 1, "pointing_game")
    try:
        m, k = torch.broadcast_tensors(maps, mask)
    except RuntimeError as e:
        raise ValueError(f"pointing_game: shapes {tuple(maps.shape)} and {tuple(mask.shape)} do not broadcast") from e
    fm, fk = _flat(m, nd), _flat(k, nd)
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
    maps = _as_tensor(maps, "maps")
    if maps.ndim < 2:
        raise ValueError(f"sue: maps must be [S, B, *spatial], got shape {tuple(maps.shape)}")
    if maps.shape[0] < 2:
        raise ValueError(f"sue needs at least S=2 maps per input to compare, got S={maps.shape[0]}")
    nd = _nsp(maps, ndim_spatial, 2, "sue")
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
        return _sue_to_reference(maps, _as_tensor(reference, "reference"), quantile, nd, empty)
    regions = _flat(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd)  # [S, B, n]
    n = regions.shape[-1]
    # counts are exact in float32 below 2**24 positions; the ratios are formed in float64
    cd = torch.float32 if n < 2**24 else _work_dtype(maps)
    r = regions.transpose(0, 1).to(cd)  # [B, S, n]
    wd = _work_dtype(maps)
    inter = (r @ r.transpose(1, 2)).to(wd)  # [B, S, S]
    size = regions.sum(-1).transpose(0, 1).to(wd)  # [B, S]
    union = size[:, :, None] + size[:, None, :] - inter
    jac = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
    s = maps.shape[0]
    iu = torch.triu_indices(s, s, offset=1, device=maps.device)
    if empty == "skip":
        defined = (size[:, :, None] > 0) & (size[:, None, :] > 0)
        pairs = torch.where(defined, jac, torch.full_like(jac, math.nan))[:, iu[0], iu[1]]
        return torch.nanmean(pairs, -1).to(_out_dtype(maps))
    out = jac[:, iu[0], iu[1]].mean(-1)
    if empty == "nan":
        out = torch.where((size == 0).any(1), torch.full_like(out, math.nan), out)
    return out.to(_out_dtype(maps))


def _sue_to_reference(maps: Tensor, reference: Tensor, quantile: float, nd: int, empty: str) -> Tensor:
    """Mean Jaccard of each map's top region with the reference map's top region ([B])."""
    if tuple(reference.shape) != tuple(maps.shape[1:]):
        raise ValueError(f"sue: reference must be [B, *spatial] = {tuple(maps.shape[1:])}, got {tuple(reference.shape)}")
    if reference.is_floating_point() and bool(reference.isnan().any()):
        raise ValueError("sue: reference contains NaN")
    wd = _work_dtype(maps)
    r = _flat(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd)  # [S, B, n]
    ref = _flat(binarize(reference, ("quantile", quantile), ndim_spatial=nd), nd)  # [B, n]
    inter = (r & ref[None]).sum(-1).to(wd)
    union = (r | ref[None]).sum(-1).to(wd)
    jac = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))  # [S, B]
    if empty == "skip":
        defined = (r.sum(-1) > 0) & (ref.sum(-1) > 0)[None]
        return torch.nanmean(torch.where(defined, jac, torch.full_like(jac, math.nan)), 0).to(_out_dtype(maps))
    out = jac.mean(0)
    if empty == "nan":
        bad = (r.sum(-1) == 0).any(0) | (ref.sum(-1) == 0)
        out = torch.where(bad, torch.full_like(out, math.nan), out)
    return out.to(_out_dtype(maps))


def empty_regions(maps: Tensor, *, quantile: float = 0.9, ndim_spatial: int | None = None) -> Tensor:
    """Which inputs of a stack ``[S, B, *spatial]`` have at least one empty top region (an all-zero
    map: no position is both ``>= Q_q`` and ``> 0``); bool ``[B]``. These are the inputs
    ``sue(..., empty="nan")`` excludes.

    >>> empty_regions(torch.tensor([[[0., 1.], [0., 0.]], [[1., 0.], [2., 1.]]]))
    tensor([False,  True])
    """
    maps = _as_tensor(maps, "maps")
    nd = maps.ndim - 2 if ndim_spatial is None else int(ndim_spatial)
    if maps.ndim - nd != 2:
        raise ValueError(f"empty_regions: maps must be [S, B, *spatial], got shape {tuple(maps.shape)}")
    return (_flat(binarize(maps, ("quantile", quantile), ndim_spatial=nd), nd).sum(-1) == 0).any(0)


# --------------------------------------------------------------------------------------------
# AUROC and group comparison
# --------------------------------------------------------------------------------------------
def _check_labels(labels: Tensor) -> Tensor:
    if labels.dtype == torch.bool:
        return labels
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be bool or 0/1 (1 = positive)")
    return labels == 1


def auroc(scores: Tensor, labels: Tensor) -> Tensor:
    r"""Area under the ROC curve of ``scores`` for ``labels`` (1/True = positive), ties count 1/2.

    Computed from the Mann–Whitney relation with average ranks :math:`r_i` of all scores:

    .. math:: \mathrm{AUROC} = \frac{U}{n_1 n_0}, \qquad U = \sum_{i: y_i=1} r_i - \frac{n_1(n_1+1)}{2}
              = \#\{(i,j): y_i=1, y_j=0, s_i > s_j\} + \tfrac12 \#\{\ldots s_i = s_j\}.

    ``scores`` ``[..., N]`` (batched over leading dims), ``labels`` ``[..., N]`` or ``[N]``.
    Returns ``[...]`` (0-dim for one set) in the scores' dtype; NaN where one class is absent.

    >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    tensor(0.7500)
    """
    scores, labels = _as_tensor(scores, "scores"), _as_tensor(labels, "labels")
    pos = _check_labels(labels)
    try:
        scores, pos = torch.broadcast_tensors(scores, pos)
    except RuntimeError as e:
        raise ValueError(f"auroc: scores {tuple(scores.shape)} and labels {tuple(labels.shape)} do not broadcast") from e
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError("auroc: need at least one score")
    r = rankdata(scores)
    wd = r.dtype
    n1 = pos.sum(-1).to(wd)
    n0 = (~pos).sum(-1).to(wd)
    u = (r * pos.to(wd)).sum(-1) - n1 * (n1 + 1) / 2
    den = n1 * n0
    res = torch.where(den > 0, u / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(den, math.nan))
    return res.to(_out_dtype(scores))


class GroupComparison(NamedTuple):
    """Summary of ``values`` in group a vs group b (Python numbers; NaN where undefined)."""

    mean_a: float
    sd_a: float
    n_a: int
    mean_b: float
    sd_b: float
    n_b: int
    mwu_p: float
    auroc: float

    def as_dict(self) -> dict:
        """The fields as a plain dict (for tables / results JSON)."""
        return dict(self._asdict())


def _mean_sd(v: Tensor) -> tuple[float, float, int]:
    n = int(v.numel())
    mean = float(v.mean()) if n else math.nan
    sd = float(v.std(correction=1)) if n > 1 else math.nan
    return mean, sd, n


def compare_groups(values: Tensor, in_group_a: Tensor, *, higher_in: Literal["a", "b"] = "a") -> GroupComparison:
    """Compare a per-sample value (SUE, repeatability, ...) between group a and group b.

    Parameters
    ----------
    values : Tensor ``[N]``; NaN entries are dropped (``n_a``, ``n_b`` count the kept ones).
    in_group_a : bool Tensor ``[N]``; the rest is group b.
    higher_in : "a" or "b"
        Orientation of ``auroc``: with "a" it is :math:`P(v_a > v_b) + P(v_a = v_b)/2` (the AUROC
        of ``values`` for telling a from b, > 0.5 when a is higher); with "b" the same for b.

    Returns
    -------
    GroupComparison(mean_a, sd_a, n_a, mean_b, sd_b, n_b, mwu_p, auroc) with sample SDs
    (``ddof=1``, NaN for n < 2) and ``mwu_p`` the two-sided ``scipy.stats.mannwhitneyu`` p-value
    (``method="auto"``; NaN when a group is empty, as is ``auroc``).

    >>> g = compare_groups(torch.tensor([0.9, 0.8, 0.95, 0.3, 0.5]), torch.tensor([1, 1, 1, 0, 0]).bool())
    >>> g.n_a, g.n_b, g.auroc, round(g.mwu_p, 3)
    (3, 2, 1.0, 0.2)
    """
    values, grp = _as_tensor(values, "values"), _as_tensor(in_group_a, "in_group_a")
    if higher_in not in ("a", "b"):
        raise ValueError(f"higher_in must be 'a' or 'b', got {higher_in!r}")
    values = values.detach().reshape(-1).cpu().to(torch.float64)
    grp = _check_labels(grp.detach().reshape(-1).cpu())
    if values.shape != grp.shape:
        raise ValueError(f"compare_groups: values has {values.numel()} entries but in_group_a has {grp.numel()}")
    keep = ~values.isnan()
    values, grp = values[keep], grp[keep]
    a, b = values[grp], values[~grp]
    ma, sa, na = _mean_sd(a)
    mb, sb, nb = _mean_sd(b)
    if na and nb:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(a.numpy(), b.numpy(), alternative="two-sided").pvalue)
        lab = grp if higher_in == "a" else ~grp
        auc = float(auroc(values, lab))
    else:
        p = auc = math.nan
    return GroupComparison(ma, sa, na, mb, sb, nb, p, auc)


# --------------------------------------------------------------------------------------------
# classification and predictive uncertainty
# --------------------------------------------------------------------------------------------
def classification_summary(probs: Tensor, y: Tensor, positive: int = 1) -> dict:
    """Accuracy, balanced accuracy, sensitivity, specificity and confusion matrix of argmax predictions.

    Parameters
    ----------
    probs : Tensor ``[N, C]`` (probabilities or logits; only the argmax is used).
    y : Tensor ``[N]`` of class indices in ``[0, C)``.
    positive : int
        Class whose sensitivity (recall) and specificity (recall of "not positive") are reported:
        the usual binary pair; one-vs-rest for ``C > 2``.

    Returns
    -------
    dict with Python numbers: ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present
    in ``y``), ``sensitivity``, ``specificity`` (NaN when undefined), ``n``, and ``confusion``
    ``[C][C]`` ints, rows = true class, columns = predicted.

    >>> s = classification_summary(torch.tensor([[.9, .1], [.2, .8], [.6, .4], [.3, .7]]), torch.tensor([0, 1, 1, 1]))
    >>> s["accuracy"], s["sensitivity"], s["specificity"], s["confusion"]
    (0.75, 0.6666666666666666, 1.0, [[1, 0], [1, 2]])
    """
    probs, y = _as_tensor(probs, "probs"), _as_tensor(y, "y")
    if probs.ndim != 2:
        raise ValueError(f"classification_summary: probs must be [N, C], got {tuple(probs.shape)}")
    n, c = probs.shape
    y = y.detach().reshape(-1).long().cpu()
    if y.numel() != n:
        raise ValueError(f"classification_summary: probs has {n} rows but y has {y.numel()}")
    if n and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ValueError(f"classification_summary: labels must be in [0, {c}), got range [{int(y.min())}, {int(y.max())}]")
    if not 0 <= positive < c:
        raise ValueError(f"classification_summary: positive={positive} is not a class index in [0, {c})")
    pred = probs.detach().argmax(-1).cpu()
    conf = torch.zeros(c, c, dtype=torch.long).index_put_((y, pred), torch.ones(n, dtype=torch.long), accumulate=True)
    support = conf.sum(1)
    recalls = [float(conf[k, k]) / float(support[k]) for k in range(c) if support[k] > 0]
    tp = float(conf[positive, positive])
    p_n = float(support[positive])
    neg_total = float(n) - p_n
    tn = float(n) - p_n - float(conf[:, positive].sum()) + tp
    return {
        "accuracy": float(conf.diag().sum()) / n if n else math.nan,
        "balanced_accuracy": sum(recalls) / len(recalls) if recalls else math.nan,
        "sensitivity": tp / p_n if p_n else math.nan,
        "specificity": tn / neg_total if neg_total else math.nan,
        "n": int(n),
        "confusion": conf.tolist(),
    }


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    r"""Shannon entropy :math:`-\sum_c p_c \log p_c` (nats) along ``dim``, with :math:`0 \log 0 = 0`.

    >>> entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    tensor([0.6931, 0.0000])
    """
    probs = _as_tensor(probs, "probs")
    p = probs if probs.is_floating_point() else probs.float()
    return torch.special.entr(p).sum(dim)


def _check_stack(probs: Tensor, name: str) -> Tensor:
    probs = _as_tensor(probs, "probs")
    if probs.ndim != 3:
        raise ValueError(f"{name}: probs must be [S, B, C] (S samples), got shape {tuple(probs.shape)}")
    return probs if probs.is_floating_point() else probs.float()


def predictive_entropy(probs: Tensor) -> Tensor:
    r"""Entropy of the mean predictive distribution: :math:`H\big(\tfrac1S \sum_s p^{(s)}\big)`.

    ``probs`` ``[S, B, C]`` (softmax outputs of S stochastic passes) -> ``[B]`` in nats.

    >>> predictive_entropy(torch.tensor([[[1., 0.]], [[0., 1.]]]))
    tensor([0.6931])
    """
    probs = _check_stack(probs, "predictive_entropy")
    return entropy(probs.mean(0))


def mutual_information(probs: Tensor) -> Tensor:
    r"""Mutual information (BALD): :math:`H(\bar p) - \tfrac1S \sum_s H(p^{(s)})`, clamped at 0.

    The epistemic part of the predictive entropy; 0 when all passes agree. ``[S, B, C]`` -> ``[B]``.

    >>> mutual_information(torch.tensor([[[1., 0.], [.5, .5]], [[0., 1.], [.5, .5]]]))
    tensor([0.6931, 0.0000])
    """
    probs = _check_stack(probs, "mutual_information")
    return (entropy(probs.mean(0)) - entropy(probs).mean(0)).clamp(min=0)


def risk_coverage(correct: Tensor, confidence: Tensor) -> tuple[Tensor, Tensor]:
    """Risk–coverage curve of selective prediction: accept the most confident samples first.

    For each distinct confidence level :math:`t` (descending) the accepted set is
    :math:`\\{i : c_i \\ge t\\}`; coverage is its share of all samples and risk its error rate. Tied
    confidences enter together, so the curve does not depend on the order of ties.

    Returns ``(coverage[K], risk[K])``, float64, K = number of distinct confidences.

    >>> cov, risk = risk_coverage(torch.tensor([1, 0, 1, 1]), torch.tensor([.9, .8, .8, .3]))
    >>> cov.tolist(), [round(r, 4) for r in risk.tolist()]
    ([0.25, 0.75, 1.0], [0.0, 0.3333, 0.25])
    """
    correct, confidence = _as_tensor(correct, "correct"), _as_tensor(confidence, "confidence")
    correct = correct.detach().reshape(-1).cpu()
    confidence = confidence.detach().reshape(-1).cpu().to(torch.float64)
    if correct.numel() != confidence.numel() or correct.numel() == 0:
        raise ValueError(f"risk_coverage: correct ({correct.numel()}) and confidence ({confidence.numel()}) "
                         "must be non-empty and of equal length")
    if bool(confidence.isnan().any()):
        raise ValueError("risk_coverage: confidence contains NaN")
    ok = _check_labels(correct).to(torch.float64)
    order = confidence.argsort(descending=True, stable=True)
    c, e = confidence[order], 1 - ok[order]
    n = c.numel()
    last = torch.ones(n, dtype=torch.bool)
    last[:-1] = c[1:] != c[:-1]
    k = torch.arange(1, n + 1, dtype=torch.float64)
    errs = e.cumsum(0)
    return (k / n)[last], (errs / k)[last]


def aurc(correct: Tensor, confidence: Tensor) -> float:
    r"""Area under the risk–coverage curve: :math:`\sum_k r_k (c_k - c_{k-1})`, :math:`c_0 = 0`.

    Without ties this is the mean over :math:`k = 1..N` of the risk among the :math:`k` most
    confident samples (Geifman et al. 2019); lower is better.

    >>> round(aurc(torch.tensor([1, 0, 1, 1]), torch.tensor([.9, .8, .8, .3])), 4)
    0.2292
    """
    cov, risk = risk_coverage(correct, confidence)
    widths = torch.diff(cov, prepend=cov.new_zeros(1))
    return float((risk * widths).sum())


def rank_average(*scores: Tensor) -> Tensor:
    """Average of the normalised ranks (in [0, 1]) of several scores of the same items (float32 ``[N]``).

    Each score is ranked with :func:`rankdata` (ties get their average rank) and mapped to
    ``(rank - 1) / (N - 1)``, so the combination is invariant to monotone rescaling of each score
    (e.g. a combined confidence from an explanation score and −entropy). One item gives 0.5.

    >>> rank_average(torch.tensor([0.1, 0.9, 0.5]), torch.tensor([3.0, 1.0, 2.0])).tolist()
    [0.5, 0.5, 0.5]
    """
    if not scores:
        raise ValueError("rank_average needs at least one score")
    vs = [_as_tensor(s, "scores").detach().reshape(-1).cpu().to(torch.float64) for s in scores]
    n = len(vs[0])
    if any(len(v) != n for v in vs):
        raise ValueError(f"rank_average: all scores must have the same length, got {[len(v) for v in vs]}")
    if any(bool(v.isnan().any()) for v in vs):
        raise ValueError("rank_average: scores contain NaN; replace undefined scores first (e.g. nan_to_num)")
    if n < 2:
        return torch.full((n,), 0.5)
    ranks = torch.stack([(rankdata(v) - 1) / (n - 1) for v in vs])
    return ranks.mean(0).to(torch.float32)

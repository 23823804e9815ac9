"""Metrics on predictions: AUROC, group comparisons, predictive uncertainty, risk-coverage."""
from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from .base import as_tensor, out_dtype
from .maps import rankdata


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
    scores, labels = as_tensor(scores, "scores"), as_tensor(labels, "labels")
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
    return res.to(out_dtype(scores))


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
    values, grp = as_tensor(values, "values"), as_tensor(in_group_a, "in_group_a")
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
    probs, y = as_tensor(probs, "probs"), as_tensor(y, "y")
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
    probs = as_tensor(probs, "probs")
    p = probs if probs.is_floating_point() else probs.float()
    return torch.special.entr(p).sum(dim)


def _check_stack(probs: Tensor, name: str) -> Tensor:
    probs = as_tensor(probs, "probs")
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
    correct, confidence = as_tensor(correct, "correct"), as_tensor(confidence, "confidence")
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
    vs = [as_tensor(s, "scores").detach().reshape(-1).cpu().to(torch.float64) for s in scores]
    n = len(vs[0])
    if any(len(v) != n for v in vs):
        raise ValueError(f"rank_average: all scores must have the same length, got {[len(v) for v in vs]}")
    if any(bool(v.isnan().any()) for v in vs):
        raise ValueError("rank_average: scores contain NaN; replace undefined scores first (e.g. nan_to_num)")
    if n < 2:
        return torch.full((n,), 0.5)
    ranks = torch.stack([(rankdata(v) - 1) / (n - 1) for v in vs])
    return ranks.mean(0).to(torch.float32)

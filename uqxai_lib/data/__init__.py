"""Data sets: seeded synthetic sets (the embedded default) and loaders for the real ones.

Every loader returns :class:`LabeledArrays`; splits are made by group (subject, patient, lesion)
so that no group lands in two splits.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import Tensor


class DataError(ValueError):
    """Missing, corrupt or malformed data; the message says what is wrong and how to fix it.

    ``problems`` (when given) is the complete list of problems; the message shows the first
    :data:`MAX_LISTED` of them and a count (:func:`problem_report`).
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems is not None else None


#: How many problems a :class:`DataError` message lists before it gives a count of the rest.
MAX_LISTED = 20


def problem_report(title: str, problems: Sequence[str], advice: str | Sequence[str] = "",
                   *, limit: int = MAX_LISTED) -> str:
    """``title`` with a count, the first ``limit`` problems as ``  - `` items, ``... and K more``, then advice.

    >>> print(problem_report("set 'x' is incomplete", ["missing a", "missing b", "missing c"], "get them", limit=2))
    set 'x' is incomplete (3 problem(s)):
      - missing a
      - missing b
      - ... and 1 more
    get them
    """
    items = [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        items.append(f"  - ... and {len(problems) - limit} more")
    tips = [advice] if isinstance(advice, str) else list(advice)
    return "\n".join([f"{title} ({len(problems)} problem(s)):", *items, *[t for t in tips if t]])


def data_error(title: str, problems: Sequence[str], advice: str | Sequence[str] = "") -> DataError:
    """A :class:`DataError` whose message is :func:`problem_report` and which keeps every problem."""
    return DataError(problem_report(title, problems, advice), problems)


@dataclass
class LabeledArrays:
    """Inputs with labels and optional ground-truth relevance masks and group ids.

    x: float32 [N, C, *spatial]; y: int64 [N]; mask: bool [N, *spatial] or None;
    group: int64 [N] (subject / patient / lesion id) or None; classes: class names.
    """

    x: Tensor
    y: Tensor
    classes: tuple[str, ...]
    mask: Tensor | None = None
    group: Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        for f in ("y", "mask", "group"):
            v = getattr(self, f)
            if v is not None and len(v) != n:
                raise DataError(f"LabeledArrays.{f} has {len(v)} rows but x has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor | Sequence[int]) -> "LabeledArrays":
        index = torch.as_tensor(index, dtype=torch.long)
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v[index] if isinstance(v, Tensor) else v
        return LabeledArrays(**kw)

    def to(self, device: torch.device | str) -> "LabeledArrays":
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if isinstance(v, Tensor):
                kw[k] = v.to(device)
        return LabeledArrays(**kw)


def group_split(
    groups: Tensor, fractions: Sequence[float], *, seed: int
) -> list[Tensor]:
    """Split row indices into len(fractions) parts so that no group is in two parts.

    Groups are shuffled with ``seed`` and assigned greedily until each part holds about its
    fraction of the rows. Returns sorted LongTensors of row indices.

    >>> g = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    >>> parts = group_split(g, [0.6, 0.2, 0.2], seed=0)
    >>> sorted(torch.cat(parts).tolist()) == list(range(10))
    True
    >>> all(set(g[a].tolist()).isdisjoint(g[b].tolist()) for a in parts for b in parts if a is not b)
    True
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f <= 0 for f in fractions):
        raise ValueError(f"fractions must be positive and sum to 1, got {list(fractions)}")
    groups = torch.as_tensor(groups)
    uniq, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < len(fractions):
        raise DataError(
            f"{len(uniq)} groups cannot fill {len(fractions)} splits; provide more subjects"
        )
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(uniq), generator=gen)
    n = len(groups)
    targets = [f * n for f in fractions]
    part_of_group = torch.empty(len(uniq), dtype=torch.long)
    filled = [0.0] * len(fractions)
    # every part gets at least one group, then each group goes to the part furthest below target
    for i, gi in enumerate(order.tolist()):
        if i < len(fractions):
            p = i
        else:
            p = max(range(len(fractions)), key=lambda j: targets[j] - filled[j])
        part_of_group[gi] = p
        filled[p] += counts[gi].item()
    row_part = part_of_group[inverse]
    return [torch.nonzero(row_part == p).flatten() for p in range(len(fractions))]


def uniform(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """``shape`` float32 draws from U(lo, hi) with generator ``g`` (shared by the synthetic generators)."""
    return torch.rand(*shape, generator=g) * (hi - lo) + lo

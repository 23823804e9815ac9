"""A chapter's parameters as the runner would pass them: its ``parameters`` cell's defaults
overlaid with one profile (``uqxai_lib/profiles/<name>.yaml``).

Chapters that reuse another chapter's data and models (the cross-study chapter) read them here,
so they follow that chapter's profile instead of copying its numbers.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Any

from .run import REPO_ROOT, load_profile

__all__ = ["notebook_defaults", "chapter_parameters"]


def notebook_defaults(name: str, notebooks_dir: pathlib.Path | None = None) -> dict[str, Any]:
    """Literal values assigned at top level of ``notebooks/<name>.py``'s ``parameters`` cell.

    Raises ``ValueError`` naming the notebook when it has no such cell or a non-literal value.
    """
    import jupytext

    path = pathlib.Path(notebooks_dir or REPO_ROOT / "notebooks") / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no notebook {path}; chapter names are the files in notebooks/ without .py")
    nb = jupytext.read(path)
    for cell in nb.cells:
        if "parameters" in (cell.metadata.get("tags") or []):
            out: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        raise ValueError(f"{path.name}: parameter {node.targets[0].id!r} is not a literal; "
                                         "parameters cells hold literals only") from None
            return out
    raise ValueError(f"{path.name} has no cell tagged 'parameters'")


def chapter_parameters(name: str, profile: str, *, notebooks_dir: pathlib.Path | None = None,
                       profiles_dir: pathlib.Path | None = None) -> dict[str, Any]:
    """Defaults of ``name``'s parameters cell, overlaid with its ``profile`` (as ``uqxai_lib.run`` does)."""
    params = notebook_defaults(name, notebooks_dir)
    params.update(load_profile(name, profile, pathlib.Path(profiles_dir or REPO_ROOT / "uqxai_lib" / "profiles")))
    return params

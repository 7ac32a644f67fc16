"""Rate-limit groups: which models share one set of per-minute limits.

The rate-limits page (https://platform.claude.com/docs/en/api/rate-limits) lists limits per *model
class*, and some classes pool several models: "Opus rate limit is a total limit that applies to
combined traffic across Claude Opus 4.8, Opus 4.7, Opus 4.6, and Opus 4.5" and "Sonnet 4.x rate
limit is a total limit that applies to combined traffic across Sonnet 4.6 and Sonnet 4.5. Claude
Sonnet 5 has a separate rate limit and is not part of this combined bucket." The Rate Limits API
lists the same groups (``group.type: "model_group"``, a ``display_name`` such as ``Claude Sonnet
4.x``, and ``models``: "Model names this entry's limits apply to, including aliases").

Every other model is its own group here, named by its display name, so an alias and its dated id
(``claude-haiku-4-5`` and ``claude-haiku-4-5-20251001``) share one group.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from ...models import catalog

__all__ = ["ModelGroup", "GROUPS_SOURCE", "group_of", "model_groups", "group_id"]

GROUPS_SOURCE = "https://platform.claude.com/docs/en/api/rate-limits"

# Display names of the models each documented combined group pools (rate-limits page footnotes).
_COMBINED = {
    "Claude Opus 4.x": ("Claude Opus 4.8", "Claude Opus 4.7", "Claude Opus 4.6", "Claude Opus 4.5"),
    "Claude Sonnet 4.x": ("Claude Sonnet 4.6", "Claude Sonnet 4.5"),
}
_POOLED = {member: group for group, members in _COMBINED.items() for member in members}


def group_id(kind: str, name: str) -> str:
    """The group's opaque id (``rlg_...``): "the same in every organization and never changes" (SDK)."""
    return "rlg_" + hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ModelGroup:
    """One model group: its id, its display name, and the model ids (aliases included) it covers."""

    id: str
    display_name: str
    models: tuple[str, ...]


def _name_of(model_id: str) -> str:
    spec = catalog().get(model_id)
    if spec is None:
        return model_id  # not a catalogued model: its own group
    return _POOLED.get(spec.display_name, spec.display_name)


@functools.lru_cache(maxsize=512)
def group_of(model_id: str) -> ModelGroup:
    """The group whose limits a request to ``model_id`` draws on."""
    name = _name_of(model_id)
    members = tuple(sorted(m for m in catalog() if _name_of(m) == name)) or (model_id,)
    return ModelGroup(group_id("model_group", name), name, members)


def model_groups() -> list[ModelGroup]:
    """Every model group of the catalogue, in a stable order (by display name)."""
    names = sorted({_name_of(m) for m in catalog()})
    return [group_of(next(m for m in sorted(catalog()) if _name_of(m) == n)) for n in names]

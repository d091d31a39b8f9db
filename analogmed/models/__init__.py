"""Networks from plain JSON-able specs.

``build_model(spec)`` dispatches on ``spec["family"]``: ``"zoo"`` -> :func:`analogmed.models.zoo.build_zoo`;
``"space"`` -> ``analogmed.space.builder.build_candidate``; ``"mednasbench"`` ->
``analogmed.space.mednasbench.build_mednasbench``. ``model_id(spec)`` is a stable short id.
Output of every model: logits [B, out_channels, *S] (segmentation) or [B, out_channels]
(classification head).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from torch import nn

from analogmed.errors import UserError

FAMILIES = ("zoo", "space", "mednasbench")


def _architecture_cls():
    """The search space's Architecture class (analogmed.space.architecture, or re-exported by analogmed.space)."""
    try:
        from analogmed.space.architecture import Architecture
    except ModuleNotFoundError as exc:
        if exc.name != "analogmed.space.architecture":
            raise
        from analogmed.space import Architecture  # type: ignore[attr-defined]
    return Architecture


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build the network described by ``spec`` (see module docstring)."""
    if not isinstance(spec, dict):
        raise UserError(f"a model spec must be a dict with a 'family' key, not {type(spec).__name__}")
    family = spec.get("family")
    if family == "zoo":
        from analogmed.models.zoo import build_zoo
        return build_zoo(spec)
    if family == "space":
        from analogmed.space.builder import build_candidate
        if "arch" not in spec:
            raise UserError("a 'space' model spec needs an 'arch' entry (an Architecture dict)")
        return build_candidate(_architecture_cls().from_dict(spec["arch"]))
    if family == "mednasbench":
        from analogmed.space.mednasbench import build_mednasbench
        return build_mednasbench(spec)
    raise UserError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")


def model_id(spec: dict[str, Any]) -> str:
    """Stable short id: for "space" the Architecture id, else the sha256 of the canonical JSON (12 hex)."""
    if spec.get("family") == "space":
        return _architecture_cls().from_dict(spec["arch"]).id
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{spec.get('family', 'x')}-{spec.get('name', '')}-{digest}".replace("--", "-")


def model_label(spec: dict[str, Any]) -> str:
    """Human label for figures and logs: the architecture label (e.g. ``C16-E32-C64``) of a "space" spec,
    the zoo name (and size) of a "zoo" spec, else :func:`model_id`. Tables keep the id as well."""
    family = spec.get("family")
    if family == "space":
        try:
            return _architecture_cls().from_dict(spec["arch"]).label
        except (UserError, KeyError, TypeError, ValueError):
            return model_id(spec)
    if family == "zoo" and spec.get("name"):
        return f"{spec['name']} ({spec['size']})" if spec.get("size") else str(spec["name"])
    return str(spec.get("label") or spec.get("name") or model_id(spec))


__all__ = ["build_model", "model_id", "model_label", "FAMILIES"]

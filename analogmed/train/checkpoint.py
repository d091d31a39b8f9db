"""Checkpoints: a trained model with everything needed to rebuild it alone.

A checkpoint file (``torch.save`` of a plain dict, loaded with ``weights_only=True``) holds
``format`` ("analogmed-checkpoint"), ``version``, ``spec`` (model spec, see
:func:`analogmed.models.build_model`), ``task_spec`` (``get_task(**task_spec)``), ``seed``,
``recipe`` (plain dict of the training settings), ``metrics`` (plain dict) and ``state_dict``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analogmed.errors import UserError

FORMAT = "analogmed-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A model plus its description: ``model``, ``spec``, ``task_spec``, ``seed``, ``recipe``, ``metrics``."""

    model: nn.Module
    spec: dict[str, Any]
    task_spec: dict[str, Any]
    seed: int
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def task(self):
        """The task the model was trained on (``get_task(**task_spec)``)."""
        from analogmed.data import get_task
        return get_task(**self.task_spec)

    @property
    def model_id(self) -> str:
        from analogmed.models import model_id
        return model_id(self.spec)


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """Load ``state_dict`` into ``model``; UserError naming the first mismatch if they differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    shape = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or extra or shape:
        what = (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}" if extra else
                f"shape of {shape[0]!r} {tuple(state_dict[shape[0]].shape)} != {tuple(own[shape[0]].shape)}")
        raise UserError(f"{source} does not match the model ({what}); "
                        "use a checkpoint trained for this model spec")
    model.load_state_dict(state_dict)
    return model


def nonfinite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in ``state`` (a state dict, nested dicts/lists allowed, as
    aihwkit's analog tiles store them) that hold NaN or infinite values."""
    if isinstance(state, torch.Tensor):
        return [prefix] if torch.is_floating_point(state) and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, dict):
        return [k for key, v in state.items() for k in nonfinite_tensors(v, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(state, (list, tuple)):
        return [k for i, v in enumerate(state) for k in nonfinite_tensors(v, f"{prefix}[{i}]")]
    return []


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically; UserError (nothing written) if a weight is NaN or infinite."""
    from analogmed.io import atomic_path

    state = ckpt.model.state_dict()
    bad = nonfinite_tensors(state)
    if bad:
        raise UserError(f"refusing to save {path}: {len(bad)} of {len(state)} tensors hold NaN/inf values "
                        f"(first {bad[0]!r}); training diverged, train again with a lower learning rate")
    blob = {"format": FORMAT, "version": VERSION, "spec": ckpt.spec, "task_spec": ckpt.task_spec,
            "seed": int(ckpt.seed), "recipe": ckpt.recipe, "metrics": ckpt.metrics,
            "state_dict": {k: v.detach().cpu() for k, v in ckpt.model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> Checkpoint:
    """Read a checkpoint and rebuild its model from the spec alone (UserError on bad files)."""
    from analogmed.models import build_model

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist; pass the .pt file written by analogmed train")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of several kinds
        raise UserError(f"{path} is not an analogmed checkpoint ({type(exc).__name__}); "
                        "pass the .pt file written by analogmed train") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{path} is not an analogmed checkpoint; pass the .pt file written by analogmed train")
    if blob.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {blob.get('version')} is not supported (need {VERSION})")
    model = build_model(blob["spec"])
    load_weights(model, blob["state_dict"], source=f"checkpoint {path}")
    model.eval()
    ranges = ((blob.get("recipe") or {}).get("hwa") or {}).get("input_ranges")
    if ranges:  # learned by hardware-aware training; used instead of calibration when made analog
        model.analogmed_input_ranges = {str(k): float(v) for k, v in ranges.items()}
    return Checkpoint(model=model, spec=blob["spec"], task_spec=blob["task_spec"], seed=int(blob["seed"]),
                      recipe=dict(blob.get("recipe") or {}), metrics=dict(blob.get("metrics") or {}))

"""Study files (TOML) -> a validated :class:`StudyConfig` (pydantic; unknown keys are errors).

A study is the cross product  models x tasks x presets x repetitions, each hardware instance
drifted to every time of the grid. Format (see ``studies/README.md``)::

    name = "drift-months"          # study name (results go to runs/studies/<name>/)
    seed = 0                       # base seed: training, programming, drift and read noise
    repetitions = 3                # hardware instances per (model, task, preset)
    presets = ["pcm", "hermes"]    # hardware/*.toml names or TOML paths
    split = "val"                  # split that is scored
    engine = "fast"                # analog forwards: "fast" (default) or "aihwkit"
    variation = "instances"        # "instances": re-program per repetition; "reads": re-drift one instance
    months = 12                    # drift grid: 1 s, 1 h, 1 d, 1 w, every 30 d up to 12 months
    # times_s = [1, 3600, 86400]   # ... or explicit times in seconds (1 s, 1 d, 30 d always added)

    [train]                        # analogmed.train.TrainConfig for models that are trained here
    epochs = 30
    lr = 3e-3

    [[tasks]]                      # analogmed.data.get_task(**table)
    name = "mni152-tissue"
    spatial_dims = 2
    size = 32

    [[models]]                     # exactly one of arch / zoo / checkpoint
    arch = "C16-E32-C64"           # search-space label (analogmed.space.Architecture.from_label)
    group = "pyramidal"            # optional tag used by the figures (e.g. isotropic vs pyramidal)
    [[models]]
    zoo = "unet"                   # analogmed.models.zoo name, size "small"
    [[models]]
    checkpoint = "runs/x.pt"       # a trained checkpoint: evaluated on its own task
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analogmed.tomlfile import load_model, parse_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainSection(_Strict):
    """Training recipe for models built from ``arch``/``zoo`` (fields of :class:`analogmed.train.TrainConfig`)."""

    epochs: int = Field(20, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(8, ge=1)
    augment: bool = True
    schedule: str = "cosine"
    hwa_epochs: int = Field(20, ge=1, description="hardware-aware fine-tuning epochs (models with hwa = true)")
    hwa_lr: float = Field(1e-3, gt=0)
    hwa_preset: str = "pcm"

    def digital(self) -> dict:
        """The fields of :class:`analogmed.train.TrainConfig` (digital training)."""
        return self.model_dump(exclude={"hwa_epochs", "hwa_lr", "hwa_preset"})


class ModelEntry(_Strict):
    """One network: a search-space ``arch`` label, a ``zoo`` name, or a trained ``checkpoint`` path."""

    arch: Optional[str] = None
    zoo: Optional[str] = None
    size: str = "small"
    checkpoint: Optional[str] = None
    group: Optional[str] = None
    label: Optional[str] = None
    hwa: bool = False  # digital training, then hardware-aware fine-tuning ([train] hwa_*)

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("arch", "zoo", "checkpoint") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of arch, zoo or checkpoint")
        if self.hwa and self.checkpoint:
            raise ValueError("hwa = true needs arch or zoo (fine-tune a checkpoint with analogmed train --hwa)")
        return self

    @property
    def name(self) -> str:
        """Display label (``label`` or the arch/zoo/checkpoint string; ``+hwa`` for hardware-aware)."""
        base = self.label or self.arch or self.zoo or Path(self.checkpoint).stem
        return f"{base}+hwa" if self.hwa and not self.label else base


class UQSection(_Strict):
    """Optional ``[uq]``: Monte Carlo uncertainty (``analogmed.uq.uq_evaluate``) per model, preset and t."""

    times_s: list[float] = Field(default_factory=lambda: [86400.0], min_length=1)
    samples: int = Field(10, ge=2, description="Monte Carlo hardware instances per t (R >= 2)")
    presets: Optional[list[str]] = None  # default: the study's presets


class StudyConfig(_Strict):
    """A validated study file (see module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    seed: int = 0
    repetitions: int = Field(3, ge=1)
    presets: list[str] = Field(min_length=1)
    split: Literal["train", "val", "test"] = "val"
    months: Optional[int] = Field(None, ge=1)
    times_s: Optional[list[float]] = None
    batch_size: int = Field(8, ge=1)
    train: TrainSection = TrainSection()
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    models: list[ModelEntry] = Field(min_length=1)
    plots: dict[str, Any] = Field(default_factory=dict)
    uq: Optional[UQSection] = None
    engine: Literal["fast", "aihwkit"] = "fast"            # analog forward engine (analogmed.analog.fast)
    variation: Literal["instances", "reads"] = "instances"  # re-program per repetition | re-read one instance

    @model_validator(mode="after")
    def _check(self):
        if self.months is not None and self.times_s is not None:
            raise ValueError("give either months or times_s, not both")
        if any(not m.checkpoint for m in self.models) and not self.tasks:
            raise ValueError("models built from arch/zoo need at least one [[tasks]] table")
        for t in self.tasks:
            if "name" not in t:
                raise ValueError("every [[tasks]] table needs a name (e.g. name = \"mni152-tissue\")")
        return self

    def grid(self) -> tuple[float, ...]:
        """The drift-time grid (s), always containing 1 s, 1 d and 30 d."""
        from analogmed.evaluate.robustness import DEFAULT_TIMES_S, check_times, month_grid

        if self.times_s is not None:
            return check_times(self.times_s)
        return check_times(month_grid(self.months) if self.months is not None else DEFAULT_TIMES_S)

    def fingerprint(self) -> str:
        """sha256 (16 hex) of everything that changes results (not ``description``/``plots``)."""
        blob = self.model_dump(exclude={"description", "plots", "uq"})  # [uq] rows carry their own key
        for key, default in (("engine", "fast"), ("variation", "instances")):
            if blob.get(key) == default:  # studies written before these keys existed keep their fingerprint
                blob.pop(key)
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def parse_study(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    """Validate a parsed study dict (UserError with the key path on the first problem)."""
    return parse_model(StudyConfig, data, source, "study", "studies/README.md")


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML file (a bare name is looked up in the shipped ``studies/``)."""
    return load_model(StudyConfig, path, "study", "studies/README.md", "a .toml study file")

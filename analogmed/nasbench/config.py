"""Benchmark build files (TOML) -> a validated :class:`BenchConfig` (pydantic; unknown keys are errors).

A build file describes one analog MED-NAS-Bench: the task(s), the search space (a supernet's width
schedule and block letters), which candidates to score, and how (presets, hardware instances, drift
grid). Format (``studies/nasbench-*.toml``, documented in ``docs/nasbench.md``)::

    name = "nasbench-mni152-2d"     # results go to runs/nasbench/<name>/
    seed = 0                        # base seed: supernet, sampling, programming, drift, read noise
    candidates = 300                # N uniformly sampled | "all" | ["C8-E16", "Id-B16", ...]
    presets = ["pcm"]
    repetitions = 5                 # hardware instances per (candidate, preset)
    times_s = [1, 3600, 86400, 2592000]   # or months = 12 (1 s, 1 d and 30 d are always added)

    [[tasks]]                       # analogmed.data.get_task(**table); spatial dims from the task
    name = "mni152-tissue"
    spatial_dims = 2

    [supernet]                      # trained here (cached by content hash) unless checkpoint is given
    widths = [8, 16, 32, 32]        # the space: width of level l; its length is the maximum depth
    blocks = ["Identity", "A", "B", "C", "D", "E", "F", "G"]
    epochs = 400

    [standalone]                    # the supernet-vs-stand-alone ranking check
    k = 30                          # candidates also trained from scratch ...
    seeds = 2                       # ... with this many seeds (split-half ceiling needs 2)
    epochs = 60
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analogmed.tomlfile import load_model, parse_model

#: The issue's drift grid: 1 s, 1 h, 1 d, 30 d.
DEFAULT_BENCH_TIMES_S = (1.0, 3600.0, 86_400.0, 2_592_000.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupernetSection(_Strict):
    """The weight-sharing supernet: a trained ``checkpoint`` (``analogmed supernet train``) or the
    settings to train one (``widths``, ``blocks``, ``epochs``, ``lr``, ``batch_size``, ``augment``)."""

    checkpoint: Optional[str] = None
    widths: Optional[list[int]] = None
    blocks: Optional[list[str]] = None
    epochs: int = Field(200, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(8, ge=1)
    augment: bool = False


class StandaloneSection(_Strict):
    """Stand-alone training of ``k`` of the candidates from scratch with ``seeds`` seeds (``seed``,
    ``seed + 1``, ...), then the same digital and analog evaluation (the ranking check)."""

    k: int = Field(0, ge=0)
    seeds: int = Field(2, ge=1)
    epochs: int = Field(30, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(8, ge=1)


class BenchConfig(_Strict):
    """A validated benchmark build file (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    seed: int = 0
    tasks: list[dict[str, Any]] = Field(min_length=1)
    supernet: SupernetSection = SupernetSection()
    candidates: Union[int, Literal["all"], list[str]] = 20
    presets: list[str] = Field(default_factory=lambda: ["pcm"], min_length=1)
    repetitions: int = Field(5, ge=1)
    months: Optional[int] = Field(None, ge=1)
    times_s: Optional[list[float]] = None
    split: Literal["train", "val", "test"] = "val"
    batch_size: int = Field(8, ge=1)
    recalibrate_bn: bool = True
    finetune_epochs: int = Field(0, ge=0, description="train every inherited sub-network this many epochs first")
    finetune_lr: float = Field(1e-3, gt=0)
    hwa: bool = False
    hwa_epochs: int = Field(5, ge=1)
    hwa_lr: float = Field(1e-3, gt=0)
    hwa_preset: str = "pcm"
    platforms: Optional[list[str]] = None
    latency_input_size: Optional[list[int]] = None  # digital latency priced at this size (default: the task's)
    engine: str = "auto"
    standalone: StandaloneSection = StandaloneSection()

    @model_validator(mode="after")
    def _check(self):
        if self.months is not None and self.times_s is not None:
            raise ValueError("give either months or times_s, not both")
        for t in self.tasks:
            if "name" not in t:
                raise ValueError("every [[tasks]] table needs a name (e.g. name = \"mni152-tissue\")")
        if isinstance(self.candidates, int) and self.candidates < 1:
            raise ValueError("candidates must be >= 1, \"all\" or a list of architecture labels")
        if isinstance(self.candidates, list) and not self.candidates:
            raise ValueError("the candidate list is empty; give labels such as \"C8-E16\"")
        if self.supernet.checkpoint and len(self.tasks) > 1:
            raise ValueError("supernet.checkpoint holds one task's supernet; give one [[tasks]] table")
        if len(set(self.presets)) != len(self.presets):
            raise ValueError("a preset is listed twice; remove the duplicate")
        return self

    def grid(self) -> tuple[float, ...]:
        """The drift-time grid (s), always containing 1 s, 1 d and 30 d."""
        from analogmed.evaluate.robustness import check_times, month_grid

        if self.times_s is not None:
            return check_times(self.times_s)
        return check_times(month_grid(self.months) if self.months is not None else DEFAULT_BENCH_TIMES_S)

    def fingerprint(self, engine: str | None = None) -> str:
        """sha256 (16 hex) of everything that changes results (not ``description``), with the resolved
        analog ``engine``."""
        blob = self.model_dump(exclude={"description"})
        blob["engine"] = engine or self.engine
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def parse_bench(data: dict[str, Any], source: str = "<dict>") -> BenchConfig:
    """Validate a parsed benchmark dict (UserError with the key path on the first problem)."""
    return parse_model(BenchConfig, data, source, "benchmark", "docs/nasbench.md")


def load_bench_config(path: str | Path) -> BenchConfig:
    """Read and validate a benchmark TOML file (a bare name is looked up in the shipped ``studies/``)."""
    return load_model(BenchConfig, path, "benchmark", "docs/nasbench.md", "a .toml build file")


__all__ = ["BenchConfig", "DEFAULT_BENCH_TIMES_S", "StandaloneSection", "SupernetSection", "load_bench_config",
           "parse_bench"]

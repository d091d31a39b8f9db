"""Search files (TOML) -> a validated :class:`SearchConfig` (pydantic; unknown keys are errors).

Format (see ``docs/search.md``)::

    name = "search-mni152"            # results go to runs/search/<name>/ (or --out)
    platform = "raspberry-pi3"        # raspberry-pi3 | laptop-ryzen7-6800h | this-machine | hermes
    objectives = ["digital", "analog"]  # or objective = "analog"
    methods = ["mias", "mt-mias", "mt-mias-c", "random", "evolution", "nsga2"]  # or method = "nsga2"
    budget = 40                       # evaluations per (objective, method, seed)
    seeds = [0, 1, 2]                 # search seeds (the supernets and evaluations use `seed`)
    seed = 0                          # base seed: supernet training, analog evaluation, stand-alone training

    [[tasks]]                         # analogmed.data.get_task(**table); >= 2 tasks for mt-mias*
    name = "mni152-tissue"
    [[tasks]]
    name = "mni152-brainmask"

    [supernet]                        # one weight-sharing supernet per task
    widths = [8, 16, 32]
    epochs = 40
    [analog]                          # the analog-aware objective
    preset = "pcm"
    repeats = 3                       # R hardware instances per evaluation
    avm_penalty = 1.0                 # alpha = 1-day score - avm_penalty * max(AVM, 0)
    [mias]
    warmup = 0.5                      # share of the budget spent on random sub-networks (Avg(alpha))
    [evolution]
    population = 10
    sample = 3
    [nsga2]
    population = 8
    [select]
    max_latency_ms = 5.0              # selected architecture: best alpha at or under this latency
    [standalone]                      # the "(T)" rows: selected architectures trained from scratch
    epochs = 20
    repeats = 3                       # analog hardware instances for their 1-day score / AVM
    [deploy]                          # mt-mias-c: the smallest deployable supernet, one sub-network per task
    tolerance = 0.02                  # alpha a task may give up for a smaller supernet
    max_latency_ms = 3.0              # per task (default [select] max_latency_ms); max_params = ...

An analog MED-NAS-Bench table can replace the evaluations (``[analog] alpha_source = "nasbench"``,
``nasbench = "<shipped name, .json/.parquet path or build folder>"`` or a list, one table per task).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analogmed.tomlfile import load_model, parse_model

PLATFORMS = ("raspberry-pi3", "laptop-ryzen7-6800h", "this-machine", "hermes")
METHODS = ("mias", "mt-mias", "mt-mias-c", "random", "evolution", "nsga2")
OBJECTIVES = ("digital", "analog")
#: Methods that use the hardware cost when choosing (the talk's "Hardware aware" column).
HARDWARE_AWARE = {"mias": True, "mt-mias": True, "mt-mias-c": True, "random": False, "evolution": False,
                  "nsga2": True}
MULTI_TASK_METHODS = ("mt-mias", "mt-mias-c")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupernetSection(_Strict):
    """Supernet training per task (:class:`analogmed.train.supernet.SupernetConfig`)."""

    widths: list[int] = Field(default_factory=lambda: [8, 16, 32], min_length=1)
    blocks: Optional[list[str]] = None          # default: every block of the spatial dims
    epochs: int = Field(40, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(8, ge=1)


class AnalogSection(_Strict):
    """The analog-aware objective: alpha = 1-day score over ``repeats`` instances - penalty * max(AVM, 0)."""

    preset: str = "pcm"
    repeats: int = Field(3, ge=1)
    avm_penalty: float = Field(1.0, ge=0)
    alpha_source: Literal["evaluate", "nasbench"] = "evaluate"
    nasbench: Optional[Union[str, list[str]]] = None   # table name(s) / path(s) for alpha_source = "nasbench"

    @model_validator(mode="after")
    def _source(self):
        if self.alpha_source == "nasbench" and not self.nasbench:
            raise ValueError('alpha_source = "nasbench" needs nasbench = "<shipped name or path of a table>"')
        if self.alpha_source == "evaluate" and self.nasbench:
            raise ValueError('nasbench is given but alpha_source is "evaluate"; set alpha_source = "nasbench"')
        return self


class MiasSection(_Strict):
    warmup: float = Field(0.5, gt=0, lt=1)


class EvolutionSection(_Strict):
    population: int = Field(10, ge=2)
    sample: int = Field(3, ge=1)


class Nsga2Section(_Strict):
    population: int = Field(8, ge=2)


class SelectSection(_Strict):
    max_latency_ms: Optional[float] = Field(None, gt=0)


class DeploySection(_Strict):
    """MT-MIAS-C's deployable supernet (:mod:`analogmed.search.deploy`): one sub-network per task, the smallest
    supernet holding them within the budgets."""

    enabled: bool = True
    tolerance: float = Field(0.02, ge=0)            # alpha a task may give up for a smaller supernet
    max_latency_ms: Optional[float] = Field(None, gt=0)   # per task; default [select] max_latency_ms
    max_params: Optional[int] = Field(None, ge=1)         # weights of the deployable supernet


class StandaloneSection(_Strict):
    enabled: bool = True
    epochs: int = Field(20, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(8, ge=1)
    repeats: int = Field(3, ge=1)
    methods: Optional[list[str]] = None         # default: every method of the file


class SearchConfig(_Strict):
    """A validated search file (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    platform: str = "raspberry-pi3"
    objectives: list[Literal["digital", "analog"]] = Field(default_factory=lambda: ["digital"], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["random"], min_length=1)
    budget: int = 20
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    seed: int = 0
    split: Literal["val", "test"] = "val"
    tasks: list[dict[str, Any]] = Field(min_length=1)
    supernet: SupernetSection = SupernetSection()
    analog: AnalogSection = AnalogSection()
    mias: MiasSection = MiasSection()
    evolution: EvolutionSection = EvolutionSection()
    nsga2: Nsga2Section = Nsga2Section()
    select: SelectSection = SelectSection()
    standalone: StandaloneSection = StandaloneSection()
    deploy: DeploySection = DeploySection()

    @model_validator(mode="before")
    @classmethod
    def _singular(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for one, many in (("method", "methods"), ("objective", "objectives")):
                if one in data:
                    if many in data:
                        raise ValueError(f"give either {one} or {many}, not both")
                    v = data.pop(one)
                    data[many] = v if isinstance(v, list) else [v]
        return data

    @field_validator("platform")
    @classmethod
    def _platform(cls, v: str) -> str:
        if v not in PLATFORMS:
            raise ValueError(f"unknown platform {v!r}; use one of {', '.join(PLATFORMS)}")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for m in v:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; use one of {', '.join(METHODS)}")
        if len(set(v)) != len(v):
            raise ValueError("a method is listed twice")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"budget {v} is invalid; give at least 1 evaluation")
        return v

    @model_validator(mode="after")
    def _check(self):
        for t in self.tasks:
            if "name" not in t:
                raise ValueError("every [[tasks]] table needs a name (e.g. name = \"mni152-tissue\")")
        names = [json.dumps(t, sort_keys=True) for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("a task is listed twice")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("a seed is listed twice")
        for m in self.standalone.methods or []:
            if m not in self.methods:
                raise ValueError(f"standalone.methods: {m!r} is not one of the file's methods")
        return self

    def fingerprint(self, *sections: str) -> str:
        """sha256 (16 hex) of the named fields (all result-changing fields if none)."""
        blob = self.model_dump(include=set(sections) if sections else None,
                               exclude=None if sections else {"description", "name"})
        an = blob.get("analog")
        if an is not None and an.get("alpha_source") == "evaluate":   # fingerprints of files before these keys
            an.pop("alpha_source")
            an.pop("nasbench")
        dep = blob.get("deploy")
        if dep is not None and dep == DeploySection().model_dump():
            blob.pop("deploy")
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def parse_search(data: dict[str, Any], source: str = "<dict>") -> SearchConfig:
    """Validate a parsed search dict (UserError with the key path on the first problem)."""
    return parse_model(SearchConfig, data, source, "search", "docs/search.md")


def load_search(path: str | Path) -> SearchConfig:
    """Read and validate a search TOML file (a bare name is looked up in the shipped ``studies/``)."""
    return load_model(SearchConfig, path, "search", "docs/search.md", "a .toml search file")


__all__ = ["DeploySection", "HARDWARE_AWARE", "METHODS", "MULTI_TASK_METHODS", "OBJECTIVES", "PLATFORMS",
           "SearchConfig", "load_search", "parse_search"]

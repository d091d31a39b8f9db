"""Optuna samplers for the searched space: random, regularised evolution, NSGA-II, MIAS / MT-MIAS / MT-MIAS-C.

Every trial suggests one categorical parameter per level (``l0``, ``l1``, ...; level 0 never Zero)
and reports two values: ``alpha`` (maximise) and ``latency_ms`` (minimise). Every random draw of a
trial is seeded from ``(seed, n)`` (the same stream for every method, NSGA-II aside) where ``n`` is
the number of trials completed before it (plus, in a batch asked before any is told, the batch's
trials asked before it), so a search killed and resumed draws exactly what an uninterrupted one
would have drawn.

* :class:`SeededRandomSampler`: every level uniform among its choices.
* :class:`RegularizedEvolutionSampler` (Real et al., AAAI 2019): the first ``population`` trials are
  random; then a tournament of ``sample`` trials drawn from the last ``population`` completed ones
  (ageing), the best by ``alpha`` (hardware-unaware, as the talk's EA row) is mutated at one level
  that changes the network (a level up to one below the current depth).
* :class:`SeededNSGAIISampler`: Optuna's NSGA-II, its generators re-seeded per trial.
* :class:`MIASSampler`: the first ``warmup`` share of the budget is random (it measures
  ``Avg(alpha(A containing o))``); then it proposes architectures best first by the MIAS score
  (see :func:`mias_level_scores`): ``mias`` and ``mt-mias`` at the supernet's full number of
  blocks, ``mt-mias-c`` round robin over every number of blocks 1..D (the relaxed number of blocks).
"""
from __future__ import annotations

import random
import statistics
from typing import Any, Callable

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler
from optuna.trial import TrialState

from analogmed.seeding import derive_seed
from analogmed.space.blocks import ZERO


def param_names(depth: int) -> list[str]:
    return [f"l{i}" for i in range(depth)]


def distributions(space) -> dict[str, CategoricalDistribution]:
    return {f"l{i}": CategoricalDistribution(space.choices(i)) for i in range(space.depth)}


def encoding_of(params: dict[str, Any], depth: int) -> tuple[str, ...]:
    return tuple(params[f"l{i}"] for i in range(depth))


def _completed(study) -> list:
    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)


def _running_before(study, trial) -> list:
    """The trials still running that were asked before ``trial`` (a batch asked before any was told)."""
    return sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number < trial.number), key=lambda t: t.number)


def trial_index(study, trial) -> int:
    """``n`` of the module docstring: the trials completed before ``trial`` plus those of its batch asked
    before it (equal to the completed count when trials run one at a time)."""
    return len(_completed(study)) + len(_running_before(study, trial))


class _Seeded(BaseSampler):
    """Per-trial seeded RNG (``self.rng``) from (seed, method, completed trials)."""

    method = "random"

    def __init__(self, space, seed: int):
        self.space, self.seed = space, int(seed)
        self.rng = random.Random(seed)
        self.n, self.pending = 0, []

    def before_trial(self, study, trial) -> None:
        # one stream for every method (common random numbers): MIAS's warm-up and evolution's first
        # population draw the very architectures random search draws with the same seed
        self.n = trial_index(study, trial)
        self.pending = _running_before(study, trial)
        self.rng = random.Random(derive_seed(self.seed, "draw", self.n))

    def random_params(self) -> dict[str, Any]:
        return {f"l{i}": self.rng.choice(self.space.choices(i)) for i in range(self.space.depth)}

    def infer_relative_search_space(self, study, trial):
        return distributions(self.space)

    def sample_relative(self, study, trial, search_space):
        return self.random_params()

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.rng.choice(param_distribution.choices)


class SeededRandomSampler(_Seeded):
    method = "random"


class RegularizedEvolutionSampler(_Seeded):
    """Regularised (ageing) evolution on ``alpha`` (module docstring)."""

    method = "evolution"

    def __init__(self, space, seed: int, population: int = 10, sample: int = 3):
        super().__init__(space, seed)
        self.population, self.sample = int(population), int(sample)

    def mutate(self, params: dict[str, Any]) -> dict[str, Any]:
        enc = encoding_of(params, self.space.depth)
        depth = len(self.space.canonical(enc))
        child = dict(params)
        level = self.rng.randrange(min(depth + 1, self.space.depth))
        options = [c for c in self.space.choices(level) if c != enc[level]]
        child[f"l{level}"] = self.rng.choice(options)
        return child

    def sample_relative(self, study, trial, search_space):
        done = _completed(study)
        if len(done) < self.population:
            return self.random_params()
        pool = done[-self.population:]
        contenders = self.rng.sample(pool, min(self.sample, len(pool)))
        parent = max(contenders, key=lambda t: (t.values[0], -t.number))
        return self.mutate(parent.params)


class SeededNSGAIISampler(NSGAIISampler):
    """Optuna's NSGA-II with its generators re-seeded from (seed, completed trials) before every trial."""

    def __init__(self, seed: int, population_size: int = 8):
        super().__init__(population_size=population_size, seed=seed)
        self._base_seed = int(seed)

    def before_trial(self, study, trial) -> None:
        n = trial_index(study, trial)
        self._rng.rng.seed(derive_seed(self._base_seed, "nsga2", n))
        self._random_sampler._rng.rng.seed(derive_seed(self._base_seed, "nsga2-random", n))
        super().before_trial(study, trial)


def mias_level_scores(space, importances, sigma: dict | None, level_latency: Callable[[int, str], float],
                      trials: list[tuple[tuple[str, ...], dict[str, float]]]) -> dict[tuple[int, str], float]:
    """``J_{l,o}``, the per-level MIAS term of every (level, op).

    For every task ``t``: ``s_{t,l,o} * Avg_t(alpha(A containing o)) / Lat(l, o)``, divided by its
    maximum over the ops of the level (so tasks and levels weigh the same), then averaged over tasks;
    MT-MIAS adds ``sigma_{l,o}`` (``sigma`` given). ``Avg`` runs over ``trials`` (canonical encoding,
    ``{task name: alpha}``) whose level ``l`` holds ``o``; an op no trial contains gets the mean
    alpha of all trials. ``Lat(l, o)`` is floored at 1 % of the level's median (Identity is almost free).
    """
    out: dict[tuple[int, str], float] = {}
    names = space.keys
    for lv in range(space.depth):
        ops = space.letters
        lats = {o: level_latency(lv, o) for o in ops}
        floor = max(0.01 * statistics.median(lats.values()), 1e-9)
        per_task = []
        for ti, name in enumerate(names):
            every = [a[name] for _, a in trials] or [1.0]
            prior = statistics.fmean(every)
            raw = {}
            for o in ops:
                hits = [a[name] for enc, a in trials if len(enc) > lv and enc[lv] == o]
                avg = statistics.fmean(hits) if hits else prior
                raw[o] = importances[ti].score[(lv, o)] * avg / max(lats[o], floor)
            top = max(abs(v) for v in raw.values()) or 1.0
            per_task.append({o: v / top for o, v in raw.items()})
        for o in ops:
            out[(lv, o)] = statistics.fmean(p[o] for p in per_task) + (sigma[(lv, o)] if sigma else 0.0)
    return out


class MIASSampler(_Seeded):
    """MIAS, MT-MIAS and MT-MIAS-C as a sampler (module docstring).

    Args:
        space: the search space; seed; budget: evaluations of the run; warmup: random share.
        importances: one :class:`~analogmed.search.importance.Importance` per task.
        sigma: ``task_similarity`` (MT-MIAS, MT-MIAS-C) or ``None`` (MIAS).
        level_latency: ``Lat(l, o)`` in ms; relax: True for MT-MIAS-C (every number of blocks).
    """

    def __init__(self, space, seed: int, budget: int, warmup: float, importances, sigma, level_latency,
                 relax: bool = False, method: str = "mias"):
        super().__init__(space, seed)
        self.method = method
        self.n_warmup = max(1, min(budget - 1, int(round(warmup * budget)))) if budget > 1 else 0
        self.importances, self.sigma, self.relax = importances, sigma, relax
        self._lat_cache: dict[tuple[int, str], float] = {}
        self._level_latency = level_latency

    def level_latency(self, lv: int, o: str) -> float:
        if (lv, o) not in self._lat_cache:
            self._lat_cache[(lv, o)] = self._level_latency(lv, o)
        return self._lat_cache[(lv, o)]

    def ranked(self, trials) -> list[tuple[float, tuple[str, ...]]]:
        """Every candidate of the method's depths with its MIAS score (sum of ``J`` over levels), best first."""
        J = mias_level_scores(self.space, self.importances, self.sigma, self.level_latency, trials)
        depths = range(1, self.space.depth + 1) if self.relax else [self.space.depth]
        cands = [(sum(J[(lv, o)] for lv, o in enumerate(key)), key) for d in depths for key in self.space.enumerate(d)]
        return sorted(cands, key=lambda c: (-c[0], c[1]))

    def proposal(self, study) -> tuple[str, ...] | None:
        done = _completed(study)
        if self.n < self.n_warmup:
            return None
        names = self.space.keys
        trials = []
        for t in done:
            enc = self.space.canonical(encoding_of(t.params, self.space.depth))
            res = t.user_attrs.get("res", {})
            trials.append((enc, {n: res.get(f"alpha_{n}", t.values[0]) for n in names}))
        seen = {enc for enc, _ in trials}
        for t in self.pending:   # the batch's earlier proposals (asked, not told yet)
            if len(t.params) == self.space.depth:
                seen.add(self.space.canonical(encoding_of(t.params, self.space.depth)))
        ranked = [key for _, key in self.ranked(trials) if key not in seen]
        if not ranked:
            return None
        if self.relax:  # round robin over the number of blocks
            step = self.n - self.n_warmup
            for k in range(self.space.depth):
                want = (step + k) % self.space.depth + 1
                pick = next((key for key in ranked if len(key) == want), None)
                if pick is not None:
                    return pick
        return ranked[0]

    def sample_relative(self, study, trial, search_space):
        key = self.proposal(study)
        if key is None:
            return self.random_params()
        params = self.random_params()   # levels beyond the depth are ignored; Zero ends the net
        for i in range(self.space.depth):
            params[f"l{i}"] = key[i] if i < len(key) else ZERO
        return params


def make_sampler(method: str, space, seed: int, cfg, importances=None, sigma=None, level_latency=None) -> BaseSampler:
    """The sampler of ``method`` (a :data:`~analogmed.search.config.METHODS` name) for one run."""
    if method == "random":
        return SeededRandomSampler(space, seed)
    if method == "evolution":
        return RegularizedEvolutionSampler(space, seed, cfg.evolution.population, cfg.evolution.sample)
    if method == "nsga2":
        return SeededNSGAIISampler(seed, cfg.nsga2.population)
    return MIASSampler(space, seed, cfg.budget, cfg.mias.warmup, importances,
                       sigma if method in ("mt-mias", "mt-mias-c") else None, level_latency,
                       relax=method == "mt-mias-c", method=method)


optuna.logging.set_verbosity(optuna.logging.WARNING)

__all__ = ["MIASSampler", "RegularizedEvolutionSampler", "SeededNSGAIISampler", "SeededRandomSampler",
           "distributions", "encoding_of", "make_sampler", "mias_level_scores", "param_names"]

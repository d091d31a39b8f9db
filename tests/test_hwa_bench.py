"""scripts/hwa_bench.py: variant names (``budget+<variant>``) and the cache keys of earlier runs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("hwa_bench", Path(__file__).parents[1] / "scripts" / "hwa_bench.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_resolve_variant_kinds():
    assert bench.resolve_variant("recipe") == ("hwa", {})
    assert bench.resolve_variant("budget") == ("budget", bench._R13)
    assert bench.resolve_variant("budget-last") == ("budget", {**bench._R13, "select": "last"})
    # budget+<variant>: <variant>'s overrides, fine-tuning the budget checkpoint
    assert bench.resolve_variant("budget+recipe") == ("budget+", {})
    kind, over = bench.resolve_variant("budget+adcout-tlog")
    assert kind == "budget+" and over == {**bench._R13, "noise_compensation": "output", "noise_time_min_s": 1.0}
    assert bench.resolve_variant("budget+recipe13") == ("budget+", bench._R13)
    assert bench.resolve_variant("budget+ep80") == ("budget+", {"epochs": 80})


@pytest.mark.parametrize("name", ["nope", "budget+nope", "budget+budget", "budget+budget-last"])
def test_resolve_variant_unknown(name):
    with pytest.raises(ValueError, match="unknown variant"):
        bench.resolve_variant(name)


def test_keys_ignore_new_knobs_at_their_old_values():
    """Checkpoints cached before a knob existed keep their key: the knob at the value that reproduces the
    older recipe is left out, any other value changes the key."""
    old = {"epochs": 40, "lr": 0.003}
    assert bench._key(["k", "budget+", old]) == bench._key(["k", "budget+", {**old, "noise_time_min_s": 0.0,
                                                                           "select_times_s": []}])
    assert bench._key(["k", "budget+", old]) != bench._key(["k", "budget+", {**old, "noise_time_min_s": 1.0}])
    assert bench._key(["k", "budget+", old]) != bench._key(["k", True, old])


def test_measured_variants_keep_their_schedule_when_the_default_changes():
    """The budget control (plain 40 + 40 noise-free epochs) and the #13-era variants pin the 40-epoch,
    3-instance schedule they were measured with; "now-ep80-sel6" is pcm's own recipe since 2026-11-26."""
    from analogmed.analog.presets import load_preset

    for v in ("budget", "budget-last", "recipe13", "adcout-tlog", "adcout-tlog-rh", "old-lr3e-4"):
        over = bench.resolve_variant(v)[1]
        assert over["select_instances"] == 3 and over["select_every"] == 0 and over["epochs"] in (20, 40), v
    assert bench.resolve_variant("budget")[1]["epochs"] == 40
    training = load_preset("pcm").spec.training.model_dump()
    assert {**training, **bench.VARIANTS["now-ep80-sel6"]} == training

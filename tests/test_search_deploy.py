"""MT-MIAS-C's smallest deployable supernet (analogmed.search.deploy) on hand-built cases."""
from __future__ import annotations

import pytest

from analogmed.search.deploy import smallest_deployable, union_levels

# per task: (key, alpha, latency ms)
TASK0 = [(("B", "C"), 0.80, 2.0), (("B",), 0.79, 1.0), (("C", "C"), 0.70, 1.5), (("F", "F"), 0.90, 5.0)]
TASK1 = [(("C", "C"), 0.85, 2.0), (("B", "C"), 0.84, 2.0), (("B", "B"), 0.60, 1.0)]
PARAMS = {(0, "B"): 10, (0, "C"): 20, (1, "B"): 30, (1, "C"): 40, (0, "F"): 100, (1, "F"): 200}


def _params(lv: int, o: str) -> int:
    return PARAMS[(lv, o)]


def test_union_levels():
    assert union_levels([("B", "C"), ("C",), ("B", "Identity", "A")]) == [["B", "C"], ["C", "Identity"], ["A"]]


def test_smallest_deployable_hand_computed():
    # cap 3 ms drops F-F (the best of task 0); tolerance 0.02 admits task 0: B-C (.80), B (.79); task 1: C-C (.85),
    # B-C (.84). Combinations: B-C+C-C and B+C-C need L0 {B, C}, L1 {C} (3 blocks); B-C+B-C and B+B-C need
    # L0 {B}, L1 {C} (2 blocks, 10 + 40 = 50 weights); the tie goes to the higher mean alpha: (.80 + .84) / 2.
    d = smallest_deployable([TASK0, TASK1], _params, None, max_latency_ms=3.0, tolerance=0.02)
    assert d.feasible and d.choices == [("B", "C"), ("B", "C")]
    assert d.levels == [["B"], ["C"]] and d.n_blocks == 2 and d.params == 50
    assert d.alpha == [0.80, 0.84] and d.latency_ms == [2.0, 2.0] and d.combinations == 4
    assert d.level_text() == "L0: B; L1: C"


def test_no_tolerance_gives_each_task_its_best():
    # tolerance 0: task 0 must use B-C, task 1 C-C -> L0 {B, C}, L1 {C}: 3 blocks, 10 + 20 + 40 weights (+ 7 fixed)
    d = smallest_deployable([TASK0, TASK1], _params, lambda depth: 7 * depth, max_latency_ms=3.0)
    assert d.choices == [("B", "C"), ("C", "C")] and d.levels == [["B", "C"], ["C"]]
    assert d.n_blocks == 3 and d.params == 70 + 14


def test_weight_count_breaks_a_tie_in_blocks():
    # tolerance 0.2 also admits C-C (.70) for task 0: C-C + C-C needs 2 blocks too, but 20 + 40 = 60 > 50 weights
    d = smallest_deployable([TASK0, TASK1], _params, None, max_latency_ms=3.0, tolerance=0.2)
    assert d.choices == [("B", "C"), ("B", "C")] and d.params == 50


def test_budgets_that_nothing_fits():
    d = smallest_deployable([TASK0, TASK1], _params, None, max_latency_ms=3.0, max_params=45, tolerance=0.02)
    assert not d.feasible and "45 weights" in d.reason
    d = smallest_deployable([TASK0, TASK1], _params, None, max_latency_ms=0.5)
    assert not d.feasible and "task 0" in d.reason
    # without a latency cap F-F (.90) is task 0's best and must be used: L0 {C, F}, L1 {C, F}
    d = smallest_deployable([TASK0, TASK1], _params, None)
    assert d.choices == [("F", "F"), ("C", "C")] and d.params == pytest.approx(100 + 200 + 20 + 40)

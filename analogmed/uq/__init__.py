"""Uncertainty quantification: Monte Carlo over analog hardware instances (and MC dropout).

```python
from analogmed.uq import analog_mc, uq_metrics, uq_evaluate
probs = analog_mc(model, task, "pcm", t_inference_s=86_400, samples=25)   # [R, N, C, *S]
rows = uq_evaluate(model, task, "pcm", times_s=[1, 86_400], samples=25)   # digital vs MC dropout vs analog MC
```
"""
from analogmed.uq.mc import analog_mc, digital_predict, has_dropout, mc_dropout, split_batches, uq_evaluate
from analogmed.uq.metrics import (brier_score, expected_calibration_error, mutual_information, predictive_entropy,
                                  reliability, uq_metrics)

__all__ = ["analog_mc", "digital_predict", "mc_dropout", "has_dropout", "split_batches", "uq_evaluate",
           "uq_metrics", "predictive_entropy", "mutual_information", "expected_calibration_error",
           "brier_score", "reliability"]

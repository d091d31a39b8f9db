"""Analog in-memory computing: hardware presets, conversion to aihwkit layers, program and drift.

```python
from analogmed.analog import load_preset, to_analog, program, drift, conversion_report
preset = load_preset("pcm")          # hardware/pcm.toml, or a path to your own TOML
amodel = to_analog(model, preset)    # every Conv/Linear/ConvTranspose/attention projection analog
program(amodel, seed=1)              # a fresh hardware instance
drift(amodel, 86_400, seed=2)        # its weights one day later
```
"""
from analogmed.analog.convert import (calibrate, conversion_report, digital_mvm_layers, drift, program,
                                      to_analog)
from analogmed.analog.presets import Preset, list_presets, load_preset

__all__ = ["Preset", "load_preset", "list_presets", "to_analog", "calibrate", "program", "drift",
           "conversion_report", "digital_mvm_layers"]

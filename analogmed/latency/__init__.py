"""analogmed.latency: what a network costs on digital edge hardware and on an analog chip.

Modules (data flows top to bottom):

* :mod:`~.platform` -- platform specs in ``digital/<name>.toml`` (and host profiling);
* :mod:`~.ops` -- the priced ops (:class:`~.ops.Op`, key ``kind|2d|in>out|HxW``) and their modules;
* :mod:`~.counting` -- FLOPs/bytes/kernels of a module; :mod:`~.timing` -- medians of forwards;
* :mod:`~.lut` -- latency lookup tables (CSV, provenance per row), measuring them;
* :mod:`~.model` -- the analytical (roofline) model for platforms we cannot time;
* :mod:`~.grid` -- the op grid a LUT covers and random search-space candidates;
* :mod:`~.validate` -- LUT-vs-end-to-end and model-vs-measured checks (MAPE, Kendall tau);
* :mod:`~.candidate` -- candidate latency (ms) and energy (mJ) from a LUT;
* :mod:`~.analog_cost` -- tiles, MVMs, latency and energy on IBM's HERMES AIMC chip;
* :mod:`~.report` -- one candidate on every target (``analogmed cost``);
* :mod:`~.bench` -- digital vs analog forward speed (``analogmed bench``).
"""
from analogmed.latency.analog_cost import HERMES_FOUR_PHASE, HERMES_ONE_PHASE, analog_cost, model_analog_cost
from analogmed.latency.candidate import digital_cost, load_table
from analogmed.latency.lut import LatencyTable, read_lut, write_lut
from analogmed.latency.ops import Op
from analogmed.latency.platform import Platform, list_platforms, load_platform

__all__ = ["HERMES_FOUR_PHASE", "HERMES_ONE_PHASE", "LatencyTable", "Op", "Platform", "analog_cost",
           "digital_cost", "list_platforms", "load_platform", "load_table", "model_analog_cost",
           "read_lut", "write_lut"]

"""analogmed: medical image segmentation networks on analog in-memory computing hardware.

Data flows one way: ``data`` (tasks) -> ``models``/``space`` (networks) -> ``train`` ->
``analog`` (aihwkit conversion, program/drift) -> ``evaluate`` (metrics, drift robustness) /
``uq`` -> ``study`` (runner, store) -> ``plots``. ``latency`` prices networks on digital and
analog platforms. ``cli`` is a thin layer over all of it.
"""
__version__ = "0.1.0"

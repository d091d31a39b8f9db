"""Tasks and loaders: one registry, selectable by name.

>>> from analogmed.data import get_task, list_tasks
>>> task = get_task("mni152-tissue", spatial_dims=2, seed=0)
>>> ds = task.dataset("train", augment=True)   # items {"image": [C,*S], "label": [1,*S]}

Tasks: ``mni152-tissue`` (built-in brain MRI, offline), ``synthetic-2d``, ``synthetic-3d`` (MONAI
generators), ``msd`` (Medical Segmentation Decathlon folder, ``root=``), ``chestxray14`` (NIH
ChestX-ray14 folder, ``root=``). ``get_task(**task.spec)`` rebuilds a task.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from analogmed.data.task import SPLITS, Task
from analogmed.errors import UserError


def _mni(**kw):
    from analogmed.data.mni152 import make_mni152_task
    return make_mni152_task(**kw)


def _mni_brain(**kw):
    from analogmed.data.mni152_brainmask import make_mni152_brainmask_task
    return make_mni152_brainmask_task(**kw)


def _syn2(**kw):
    from analogmed.data.synthetic import make_synthetic_task
    return make_synthetic_task(2, **kw)


def _syn3(**kw):
    from analogmed.data.synthetic import make_synthetic_task
    return make_synthetic_task(3, **kw)


def _msd(**kw):
    from analogmed.data.msd import make_msd_task
    return make_msd_task(**kw)


def _cxr(**kw):
    from analogmed.data.chestxray import make_chestxray_task
    return make_chestxray_task(**kw)


_REGISTRY: dict[str, tuple[Callable[..., Task], str]] = {
    "mni152-tissue": (_mni, "built-in MNI152 brain MRI: background / grey / white matter (2D slices, 3D patches)"),
    "mni152-brainmask": (_mni_brain, "built-in MNI152 brain MRI: brain extraction, background / brain (same images)"),
    "synthetic-2d": (_syn2, "MONAI create_test_image_2d circles (tests, quick checks)"),
    "synthetic-3d": (_syn3, "MONAI create_test_image_3d spheres (tests, quick checks)"),
    "msd": (_msd, "Medical Segmentation Decathlon task folder (root=..., Task01..Task10)"),
    "chestxray14": (_cxr, "NIH ChestX-ray14 multi-label classification (root=...), F1"),
}


def _factory_params(name: str, required: bool = False) -> set[str]:
    mod = {"mni152-tissue": "mni152", "mni152-brainmask": "mni152_brainmask", "synthetic-2d": "synthetic",
           "synthetic-3d": "synthetic", "msd": "msd", "chestxray14": "chestxray"}[name]
    import importlib
    m = importlib.import_module(f"analogmed.data.{mod}")
    fn = {"mni152": "make_mni152_task", "mni152_brainmask": "make_mni152_brainmask_task",
          "synthetic": "make_synthetic_task", "msd": "make_msd_task", "chestxray": "make_chestxray_task"}[mod]
    sig = inspect.signature(getattr(m, fn)).parameters
    params = {k for k, p in sig.items() if not required or p.default is inspect.Parameter.empty}
    if mod == "synthetic":
        params.discard("spatial_dims")
    return params


def list_tasks() -> dict[str, str]:
    """Registered task names -> one-line description."""
    return {k: v[1] for k, v in _REGISTRY.items()}


def get_task(name: str, **kw: Any) -> Task:
    """Build task ``name`` with options ``kw`` (see each loader); UserError on bad names/options."""
    if name not in _REGISTRY:
        raise UserError(f"unknown task {name!r}; valid tasks: {', '.join(_REGISTRY)}")
    allowed = _factory_params(name)
    if name.startswith("synthetic-") and kw.get("spatial_dims") not in (None, int(name[10])):
        raise UserError(f"task {name!r} is {name[10]}D; use synthetic-{kw['spatial_dims']}d instead")
    kw.pop("spatial_dims", None) if name.startswith("synthetic-") else None
    bad = sorted(set(kw) - allowed)
    if bad:
        raise UserError(f"task {name!r} has no option {bad[0]!r}; valid options: {', '.join(sorted(allowed))}")
    missing = sorted(_factory_params(name, required=True) - set(kw))
    if missing:
        hint = f" (e.g. -o {missing[0]}=/data/Task04_Hippocampus)" if missing[0] == "root" else ""
        raise UserError(f"task {name!r} needs the option {missing[0]!r}{hint}; see analogmed data show --help")
    return _REGISTRY[name][0](**kw)


__all__ = ["Task", "SPLITS", "get_task", "list_tasks"]

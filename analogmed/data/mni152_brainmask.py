"""``mni152-brainmask``: brain extraction on the MNI152 2009 template (beside ``mni152-tissue``).

Same images, slices, patches and splits as :mod:`analogmed.data.mni152` (the arrays are that
task's cached resampled volume), a different target: **brain vs background** (``num_classes=2``).

Label rule: the tissue mask of ``mni152-tissue`` (grey or white matter probability >= 0.5) with its
enclosed holes filled (``scipy.ndimage.binary_fill_holes``), slice by slice in 2D and on the whole
volume in 3D, so the ventricles and other CSF enclosed by tissue count as brain; skull, scalp and
the outer CSF are background. It is a brain mask derived from the shipped probability maps, not a
hand-drawn skull-stripping mask.

The two tasks share the input image, the spatial size and the splits: the multi-task search
(:mod:`analogmed.search`) trains one supernet per task and compares the same op across them.
"""
from __future__ import annotations

import numpy as np

from analogmed.data.task import ArrayTask
from analogmed.errors import UserError

CLASS_NAMES = ("background", "brain")


def _fill(mask: np.ndarray, per_slice: bool) -> np.ndarray:
    from scipy.ndimage import binary_fill_holes

    if per_slice:  # [N, H, W]: fill every 2D slice on its own
        return np.stack([binary_fill_holes(m) for m in mask]).astype(np.int64)
    return binary_fill_holes(mask).astype(np.int64)


def make_mni152_brainmask_task(spatial_dims: int = 2, size: int | None = None, seed: int = 0) -> ArrayTask:
    """Build the ``mni152-brainmask`` task (see the module docstring).

    2D items: ``{"image": [1, size, size], "label": [1, size, size]}`` (label 0/1); 3D: ``size``^3 patches.
    """
    from analogmed.data.mni152 import make_mni152_task

    if spatial_dims not in (2, 3):
        raise UserError(f"mni152-brainmask: spatial_dims must be 2 or 3, not {spatial_dims!r}")
    tissue = make_mni152_task(spatial_dims=spatial_dims, size=size, seed=seed)
    arrays = {}
    for split in ("train", "val", "test"):
        img, lab = tissue.arrays[split]
        brain = lab[:, 0] > 0                          # [N, *S]
        if spatial_dims == 2:
            filled = _fill(brain, per_slice=True)
        else:  # 3D patches: fill each patch volume
            filled = np.stack([_fill(b, per_slice=False) for b in brain])
        arrays[split] = (img, filled[:, None].astype(np.int64))
    size = tissue.image_size[0]
    spec = {"name": "mni152-brainmask", "spatial_dims": spatial_dims, "size": size, "seed": int(seed)}
    return ArrayTask(arrays, name="mni152-brainmask", kind="segmentation", spatial_dims=spatial_dims,
                     in_channels=1, num_classes=2, class_names=CLASS_NAMES,
                     image_size=(size,) * spatial_dims, spec=spec, seed=int(seed))

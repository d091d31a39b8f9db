"""``mni152-tissue``: brain tissue segmentation on the MNI152 2009 template shipped with nilearn.

Source: nilearn's ``load_mni152_template`` / ``load_mni152_gm_template`` /
``load_mni152_wm_template`` at ``resolution=2`` (2 mm isotropic, 99 x 117 x 95 voxels), a real
T1-weighted brain MRI with grey- and white-matter probability maps, available offline.

Classes (``num_classes=3``): 0 background, 1 grey matter, 2 white matter. Rule: with grey
probability ``p_gm`` and white probability ``p_wm`` (resampled linearly to the output grid),
``label = argmax([0.5, p_gm, p_wm])`` -- a voxel is tissue when its larger tissue probability reaches
the background threshold 0.5 (CSF and non-brain are background).

Intensity: the T1 image divided by its 99.5th percentile inside the brain box, clipped to [0, 1].

Geometry: the volume is cropped to the tissue bounding box (``p_gm`` or ``p_wm`` >= 0.5) plus a
4-voxel margin and padded to a square in-plane.

* 2D (``spatial_dims=2``): axial slices (along z) whose tissue fraction is >= 2 %, resampled to
  ``size x size`` (default 64 x 64, i.e. about 3.1 mm pixels). Split by
  :func:`~analogmed.data.splits.block_split`: blocks of 6 consecutive slices, 1 slice dropped between
  blocks, and in every group of 5 blocks one seeded block goes to val and one to test (about
  60/20/20 % of slices; 36/12/12 slices at the defaults).
* 3D (``spatial_dims=3``): the cropped volume is resampled to ``3*size + 2*2`` voxels per axis and
  cut into a 3 x 3 x 3 grid of ``size``^3 patches (default 32^3) with 2-voxel gaps between patches;
  patches with < 10 % tissue are dropped and the rest split by a seeded permutation (70/15/15).

Train-time augmentation: MONAI flips, affine and intensity transforms (see
:func:`analogmed.data.task.seg_augment`). Resampled arrays are cached under
``analogmed.paths.cache_dir()/mni152`` (atomic writes), so only the first call pays the ~3 s.
"""
from __future__ import annotations

import numpy as np

from analogmed.data.splits import block_split, case_split
from analogmed.data.task import ArrayTask, resize
from analogmed.errors import UserError

CLASS_NAMES = ("background", "grey_matter", "white_matter")
TISSUE_THRESHOLD = 0.5
_CACHE_VERSION = 1
SLICE_BLOCK, SLICE_GAP, SLICE_GROUP = 6, 1, 5
PATCH_GAP, PATCH_GRID = 2, 3


def _load_volume() -> tuple[np.ndarray, np.ndarray]:
    """Return (image [X,Y,Z] in [0,1], probs [2,X,Y,Z] (gm, wm)), cropped and padded in-plane."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=2).get_fdata().astype(np.float32)
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata().astype(np.float32)
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata().astype(np.float32)
    tissue = np.maximum(gm, wm) >= TISSUE_THRESHOLD
    lo = [max(int(np.nonzero(tissue.any(axis=tuple(a for a in range(3) if a != ax)))[0][0]) - 4, 0)
          for ax in range(3)]
    hi = [min(int(np.nonzero(tissue.any(axis=tuple(a for a in range(3) if a != ax)))[0][-1]) + 5,
              tissue.shape[ax]) for ax in range(3)]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    t1, gm, wm = t1[sl], gm[sl], wm[sl]
    scale = float(np.percentile(t1[t1 > 0], 99.5))
    t1 = np.clip(t1 / scale, 0.0, 1.0)
    # pad x/y to a square so in-plane resampling keeps the aspect ratio
    side = max(t1.shape[0], t1.shape[1])
    pads = [((side - s) // 2, side - s - (side - s) // 2) for s in t1.shape[:2]] + [(0, 0)]
    t1, gm, wm = (np.pad(a, pads) for a in (t1, gm, wm))
    return t1, np.stack([gm, wm])


def _labels(probs: np.ndarray) -> np.ndarray:
    """``argmax([0.5, p_gm, p_wm])`` over axis 0 -> int64 class indices."""
    bg = np.full((1,) + probs.shape[1:], TISSUE_THRESHOLD, dtype=probs.dtype)
    return np.argmax(np.concatenate([bg, probs]), axis=0).astype(np.int64)


def _build_2d(size: int) -> dict[str, np.ndarray]:
    t1, probs = _load_volume()
    tissue_frac = (_labels(probs) > 0).mean(axis=(0, 1))
    zs = np.nonzero(tissue_frac >= 0.02)[0]
    imgs = resize(np.moveaxis(t1[..., zs], -1, 0), (size, size))            # [N, s, s]
    pr = np.stack([resize(np.moveaxis(p[..., zs], -1, 0), (size, size)) for p in probs])  # [2,N,s,s]
    return {"image": imgs.astype(np.float32), "label": _labels(pr).astype(np.uint8),
            "z": zs.astype(np.int64)}


def _build_3d(size: int) -> dict[str, np.ndarray]:
    t1, probs = _load_volume()
    edge = PATCH_GRID * size + (PATCH_GRID - 1) * PATCH_GAP
    img = resize(t1[None], (edge,) * 3)[0]
    pr = resize(probs, (edge,) * 3)
    return {"image": img.astype(np.float32), "label": _labels(pr).astype(np.uint8)}


def _cached(spatial_dims: int, size: int) -> dict[str, np.ndarray]:
    from analogmed.io import atomic_path
    from analogmed.paths import cache_dir

    path = cache_dir() / "mni152" / f"v{_CACHE_VERSION}_{spatial_dims}d_{size}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # a corrupt cache entry is rebuilt
            pass
    arrays = _build_2d(size) if spatial_dims == 2 else _build_3d(size)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays


def make_mni152_task(spatial_dims: int = 2, size: int | None = None, seed: int = 0) -> ArrayTask:
    """Build the ``mni152-tissue`` task (see module docstring for the rules)."""
    if spatial_dims not in (2, 3):
        raise UserError(f"mni152-tissue: spatial_dims must be 2 or 3, not {spatial_dims!r}")
    size = int(size if size is not None else (64 if spatial_dims == 2 else 32))
    if size < 16 or size % 16:
        raise UserError(f"mni152-tissue: size must be a multiple of 16 (>= 16), not {size}")
    arr = _cached(spatial_dims, size)
    if spatial_dims == 2:
        idx = block_split(len(arr["image"]), SLICE_BLOCK, SLICE_GAP, seed, group=SLICE_GROUP)
        arrays = {s: (arr["image"][ix][:, None], arr["label"][ix][:, None].astype(np.int64))
                  for s, ix in idx.items()}
    else:
        img, lab = arr["image"], arr["label"]
        starts = [i * (size + PATCH_GAP) for i in range(PATCH_GRID)]
        patches = []
        for x in starts:
            for y in starts:
                for z in starts:
                    sl = (slice(x, x + size), slice(y, y + size), slice(z, z + size))
                    if (lab[sl] > 0).mean() >= 0.10:
                        patches.append((img[sl][None], lab[sl][None].astype(np.int64)))
        idx = case_split(len(patches), seed)
        arrays = {s: (np.stack([patches[i][0] for i in ix]), np.stack([patches[i][1] for i in ix]))
                  for s, ix in idx.items()}
    spec = {"name": "mni152-tissue", "spatial_dims": spatial_dims, "size": size, "seed": int(seed)}
    return ArrayTask(arrays, name="mni152-tissue", kind="segmentation", spatial_dims=spatial_dims,
                     in_channels=1, num_classes=3, class_names=CLASS_NAMES,
                     image_size=(size,) * spatial_dims, spec=spec, seed=int(seed))

"""``msd``: Medical Segmentation Decathlon tasks in their real on-disk layout.

A task folder (``Task01_BrainTumour`` ... ``Task10_Colon``) holds ``dataset.json``, ``imagesTr/`` and
``labelsTr/`` with NIfTI files (``.nii.gz``). ``dataset.json`` gives ``modality``
(``{"0": "FLAIR", ...}``: image channels; 4D images [X, Y, Z, C] become C channels), ``labels``
(``{"0": "background", ...}``: class names) and ``training`` (a list of ``{"image", "label"}``
paths relative to the task folder).

``get_task("msd", root=FOLDER)`` takes the task folder itself, or a folder holding it together with
``msd_task="Task04_Hippocampus"`` (also ``"4"``, ``"04"`` or ``"hippocampus"``).

Preprocessing (per case): each channel clipped to its 0.5/99.5 percentiles and scaled to [0, 1].

* 2D: axial slices (last axis), resampled to ``size x size`` (default 64); the image linearly,
  the label by nearest neighbour. ``slices="foreground"`` (default) keeps the slices with any
  foreground label, ``slices="all"`` every slice.
* 3D: the case is resampled to a cube of ``grid * size`` voxels per axis and cut into ``grid``^3
  patches of ``size``^3 (default ``size=32``, ``grid=1``: the whole case as one patch).

Split: by case (patient) with a seeded permutation, 70/15/15 %, so no patient is in two splits.
Volumes are loaded lazily and kept in memory once read.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from analogmed.data.splits import case_split
from analogmed.data.task import Task, resize
from analogmed.errors import UserError

MSD_TASKS = ("Task01_BrainTumour", "Task02_Heart", "Task03_Liver", "Task04_Hippocampus",
             "Task05_Prostate", "Task06_Lung", "Task07_Pancreas", "Task08_HepaticVessel",
             "Task09_Spleen", "Task10_Colon")


def resolve_msd_folder(root: str | Path, msd_task: str | None = None) -> Path:
    """Find the MSD task folder from ``root`` (the folder itself or its parent + ``msd_task``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"msd: folder {str(root)!r} does not exist; pass root=<MSD task folder>")
    if msd_task is None:
        if root.name not in MSD_TASKS:
            raise UserError(f"msd: folder name {root.name!r} is not an MSD task; expected one of "
                            f"{', '.join(MSD_TASKS)} (or pass msd_task=... with the parent folder)")
        return root
    key = str(msd_task).strip().lower()
    for t in MSD_TASKS:
        num, label = t[4:6], t[7:].lower()
        if key in (t.lower(), num, num.lstrip("0"), label, f"task{num}"):
            cand = root / t
            if not cand.is_dir():
                if root.name == t:
                    return root
                raise UserError(f"msd: {t} not found under {str(root)!r}; download and unpack it there")
            return cand
    raise UserError(f"msd: unknown msd_task {msd_task!r}; use one of {', '.join(MSD_TASKS)}")


def read_dataset_json(folder: Path) -> dict:
    """Read and check ``folder/dataset.json`` (UserError if missing or malformed)."""
    path = folder / "dataset.json"
    if not path.is_file():
        raise UserError(f"msd: {path} is missing; the task folder must hold the MSD dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"msd: {path} is not valid JSON ({exc}); restore the original file") from None
    if not isinstance(meta, dict):
        raise UserError(f"msd: {path} must hold a JSON object with modality, labels and training")
    for key in ("modality", "labels", "training"):
        if key not in meta:
            raise UserError(f"msd: {path} has no {key!r} entry; restore the original dataset.json")
    if not isinstance(meta["training"], list) or not all(
            isinstance(c, dict) and "image" in c and "label" in c for c in meta["training"]):
        raise UserError(f"msd: {path}: 'training' must be a list of {{'image': ..., 'label': ...}}")
    try:
        labels = {int(k): str(v) for k, v in meta["labels"].items()}
        modality = {int(k): str(v) for k, v in meta["modality"].items()}
    except (AttributeError, ValueError):
        raise UserError(f"msd: {path}: 'labels' and 'modality' must map integer strings to names") from None
    if sorted(labels) != list(range(len(labels))) or sorted(modality) != list(range(len(modality))):
        raise UserError(f"msd: {path}: 'labels'/'modality' keys must be 0..N-1")
    meta["labels"], meta["modality"] = labels, modality
    return meta


def load_nifti(path: Path) -> np.ndarray:
    """Load a NIfTI file as float32 (UserError if missing or not NIfTI)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    if not path.is_file():
        raise UserError(f"msd: {path} is missing; check the paths listed in dataset.json")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ImageFileError("not NIfTI")
        return np.asarray(img.dataobj, dtype=np.float32)
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise UserError(f"msd: {path} is not a readable NIfTI file ({type(exc).__name__}); "
                        "replace it with the original .nii.gz") from None


def _normalise(img: np.ndarray) -> np.ndarray:
    """Per channel: clip to the 0.5/99.5 percentiles, scale to [0, 1]. img [C, *S]."""
    out = np.empty_like(img, dtype=np.float32)
    for c in range(img.shape[0]):
        lo, hi = np.percentile(img[c], (0.5, 99.5))
        out[c] = np.clip((img[c] - lo) / (hi - lo), 0, 1) if hi > lo else 0.0
    return out


class MSDTask(Task):
    """An MSD task read lazily from disk (see module docstring)."""

    def __init__(self, folder: Path, meta: dict, cases: dict[str, list[int]], size: int, grid: int = 1,
                 slices: str = "foreground", **kw):
        super().__init__(**kw)
        self.folder, self.meta, self.cases, self.size = folder, meta, cases, size
        self.grid, self.slices = grid, slices
        self._load = lru_cache(maxsize=None)(self._load_case)
        self._index: dict[str, list[tuple[int, int]]] = {}

    def _load_case(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        entry = self.meta["training"][case]
        ip = self.folder / str(entry["image"])
        lp = self.folder / str(entry["label"])
        img, lab = load_nifti(ip), load_nifti(lp)
        img = img[None] if img.ndim == 3 else np.moveaxis(img, -1, 0)  # [C, X, Y, Z]
        if img.ndim != 4 or lab.ndim != 3:
            raise UserError(f"msd: {ip.name}: expected a 3D or 4D image and a 3D label, got "
                            f"{img.ndim - 1}D/{lab.ndim}D; check the file")
        if img.shape[0] != self.in_channels:
            raise UserError(f"msd: {ip.name} has {img.shape[0]} channels but dataset.json declares "
                            f"{self.in_channels} modalities; fix dataset.json or the image")
        if img.shape[1:] != lab.shape:
            raise UserError(f"msd: image {ip.name} shape {img.shape[1:]} does not match label "
                            f"{lp.name} shape {lab.shape}; use the matching label file")
        if lab.min() < 0 or lab.max() > self.num_classes - 1 or not np.all(lab == np.round(lab)):
            raise UserError(f"msd: label {lp.name} has values outside 0..{self.num_classes - 1} "
                            f"(max {lab.max():g}); dataset.json declares {self.num_classes} classes")
        return _normalise(img), lab.astype(np.int64)

    def _items(self, split: str) -> list[tuple[int, int]]:
        """(case, slice) pairs for 2D, (case, patch) for 3D."""
        if split not in self._index:
            items = []
            for case in self.cases[split]:
                if self.spatial_dims == 3:
                    items += [(case, k) for k in range(self.grid ** 3)]
                else:
                    _, lab = self._load(case)
                    keep = lab.any(axis=(0, 1)) if self.slices == "foreground" else np.ones(lab.shape[2], bool)
                    items += [(case, int(z)) for z in np.nonzero(keep)[0]]
            self._index[split] = items
        return self._index[split]

    def _split_size(self, split: str) -> int:
        return len(self._items(split))

    def _item(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        case, z = self._items(split)[i]
        img, lab = self._load(case)
        if self.spatial_dims == 3:
            shape = (self.grid * self.size,) * 3
            gx, rem = divmod(z, self.grid ** 2)
            gy, gz = divmod(rem, self.grid)
            sl = (slice(None),) + tuple(slice(g * self.size, (g + 1) * self.size) for g in (gx, gy, gz))
            return (resize(img, shape)[sl],
                    resize(lab[None].astype(np.float32), shape, "nearest")[sl].astype(np.int64))
        shape = (self.size,) * 2
        return (resize(img[..., z], shape),
                resize(lab[None, ..., z].astype(np.float32), shape, "nearest").astype(np.int64))


def make_msd_task(root: str, msd_task: str | None = None, spatial_dims: int = 2, size: int | None = None,
                  seed: int = 0, grid: int = 1, slices: str = "foreground") -> MSDTask:
    """Build an MSD task from its folder (see module docstring)."""
    if spatial_dims not in (2, 3):
        raise UserError(f"msd: spatial_dims must be 2 or 3, not {spatial_dims!r}")
    size = int(size if size is not None else (64 if spatial_dims == 2 else 32))
    if size < 16 or size % 16:
        raise UserError(f"msd: size must be a multiple of 16 (>= 16), not {size}")
    if not (isinstance(grid, int) and 1 <= grid <= 8):
        raise UserError(f"msd: grid must be an integer 1..8, not {grid!r}")
    if slices not in ("foreground", "all"):
        raise UserError(f"msd: slices must be 'foreground' or 'all', not {slices!r}")
    folder = resolve_msd_folder(root, msd_task)
    meta = read_dataset_json(folder)
    n = len(meta["training"])
    if n == 0:
        raise UserError(f"msd: {folder / 'dataset.json'} lists no training cases")
    labels, modality = meta["labels"], meta["modality"]
    spec = {"name": "msd", "root": str(folder.resolve()), "spatial_dims": spatial_dims,
            "size": size, "seed": int(seed), "grid": grid, "slices": slices}
    return MSDTask(folder, meta, case_split(n, seed), size, grid, slices, name=f"msd-{folder.name}",
                   kind="segmentation", spatial_dims=spatial_dims, in_channels=len(modality),
                   num_classes=len(labels), class_names=tuple(labels[k] for k in range(len(labels))),
                   image_size=(size,) * spatial_dims, spec=spec, seed=int(seed))

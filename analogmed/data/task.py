"""The :class:`Task` object: what a network is trained and scored on.

A task knows its kind (segmentation or classification), its shapes and class names, the plain
``spec`` dict that rebuilds it (``get_task(**task.spec)``; it goes into checkpoints), and hands
out one torch ``Dataset`` per split. Items are dicts:

* segmentation: ``{"image": float32 [C, *S], "label": int64 [1, *S]}`` (class indices)
* classification: ``{"image": float32 [C, H, W], "label": float32 [num_classes]}`` (multi-hot)

Train-time augmentation uses MONAI dictionary transforms, seeded from the task seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from analogmed.errors import UserError

SPLITS = ("train", "val", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return split


def resize(array: np.ndarray, size: Sequence[int], mode: str = "bilinear") -> np.ndarray:
    """Resample ``array`` [C, *S] to spatial ``size`` with torch interpolation (float32 out).

    ``mode`` is "bilinear" (2D) / trilinear (3D, chosen automatically) or "nearest".
    """
    t = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)[None]
    nd = t.ndim - 2
    if mode in ("bilinear", "linear"):
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
    kw = {} if mode == "nearest" else {"align_corners": False}
    out = torch.nn.functional.interpolate(t, size=tuple(int(s) for s in size), mode=mode, **kw)
    return out[0].numpy()


def seg_augment(spatial_dims: int, seed: int) -> Callable[[dict], dict]:
    """MONAI train-time augmentation for segmentation items (seeded).

    Random left-right flip (p=0.5), affine (rotation up to ±0.2 rad, scale ±10 %, p=0.7;
    bilinear for the image, nearest for the label), intensity scale ±10 % and shift ±0.1
    (p=0.5 each) and Gaussian noise (std 0.02, p=0.3).
    """
    from monai.transforms import (Compose, RandAffined, RandFlipd, RandGaussianNoised,
                                  RandScaleIntensityd, RandShiftIntensityd)

    rot = (0.2,) if spatial_dims == 2 else (0.2, 0.2, 0.2)
    tr = Compose([
        RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
        RandAffined(keys=["image", "label"], prob=0.7, rotate_range=rot, scale_range=[0.1] * spatial_dims,
                    mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        RandGaussianNoised(keys="image", std=0.02, prob=0.3),
    ])
    tr.set_random_state(seed=int(seed) % (2**32))
    return tr


def cls_augment(seed: int) -> Callable[[dict], dict]:
    """MONAI train-time augmentation for classification items: small affine, intensity scale."""
    from monai.transforms import Compose, RandAffined, RandScaleIntensityd

    tr = Compose([
        RandAffined(keys=["image"], prob=0.5, rotate_range=(0.1,), scale_range=[0.05, 0.05],
                    mode="bilinear", padding_mode="zeros"),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
    ])
    tr.set_random_state(seed=int(seed) % (2**32))
    return tr


class ItemDataset(Dataset):
    """A torch Dataset over ``n`` items produced by ``get_item(i) -> (image, label)`` (numpy).

    With ``transform`` set (train-time augmentation) each access draws new random parameters.
    """

    def __init__(self, n: int, get_item: Callable[[int], tuple[np.ndarray, np.ndarray]], kind: str,
                 transform: Callable[[dict], dict] | None = None):
        self.n = int(n)
        self.get_item = get_item
        self.kind = kind
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        image, label = self.get_item(i)
        image = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
        if self.kind == "segmentation":
            label = torch.as_tensor(np.ascontiguousarray(label)).to(torch.float32)
        else:
            label = torch.as_tensor(np.ascontiguousarray(label), dtype=torch.float32)
        item = {"image": image, "label": label}
        if self.transform is not None:
            item = self.transform(item)
            item = {k: torch.as_tensor(v) for k, v in item.items()}  # MetaTensor -> Tensor
        image = item["image"].as_subclass(torch.Tensor).to(torch.float32)
        label = item["label"].as_subclass(torch.Tensor)
        label = label.round().to(torch.int64) if self.kind == "segmentation" else label.to(torch.float32)
        return {"image": image, "label": label}


@dataclass
class Task:
    """A segmentation or classification task (see module docstring).

    Subclasses implement :meth:`_split_size` and :meth:`_item`; everything else is shared.
    """

    name: str
    kind: str  # "segmentation" | "classification"
    spatial_dims: int
    in_channels: int
    num_classes: int  # incl. background for segmentation; number of labels for classification
    class_names: tuple[str, ...]
    image_size: tuple[int, ...]
    spec: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    # --- to implement -------------------------------------------------------------------------
    def _split_size(self, split: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _item(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    @property
    def foreground_names(self) -> tuple[str, ...]:
        """Class names scored by the metrics (segmentation: all but background)."""
        return self.class_names[1:] if self.kind == "segmentation" else self.class_names

    def split_sizes(self) -> dict[str, int]:
        return {s: self._split_size(s) for s in SPLITS}

    def dataset(self, split: str = "train", augment: bool = False) -> ItemDataset:
        """The torch Dataset of ``split``; ``augment=True`` adds MONAI train-time augmentation."""
        check_split(split)
        n = self._split_size(split)
        if n == 0:
            raise UserError(f"task {self.name!r}: the {split!r} split is empty; "
                            "add more cases/slices or change the split options")
        transform = None
        if augment:
            from analogmed.seeding import derive_seed
            s = derive_seed(self.seed, "augment", split)
            transform = seg_augment(self.spatial_dims, s) if self.kind == "segmentation" else cls_augment(s)
        return ItemDataset(n, lambda i: self._item(split, i), self.kind, transform)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for ``analogmed data show``)."""
        return {"name": self.name, "kind": self.kind, "spatial_dims": self.spatial_dims,
                "in_channels": self.in_channels, "num_classes": self.num_classes,
                "class_names": list(self.class_names), "image_size": list(self.image_size),
                "split_sizes": self.split_sizes(), "spec": self.spec}


class ArrayTask(Task):
    """A task whose splits are held in memory as numpy arrays ``{split: (images, labels)}``.

    ``images[split]`` is [N, C, *S] float32; ``labels[split]`` is [N, 1, *S] (segmentation) or
    [N, num_classes] (classification).
    """

    def __init__(self, arrays: dict[str, tuple[np.ndarray, np.ndarray]], **kw):
        super().__init__(**kw)
        self.arrays = arrays

    def _split_size(self, split: str) -> int:
        return int(len(self.arrays[split][0]))

    def _item(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.arrays[split]
        return x[i], y[i]

"""``synthetic-2d`` / ``synthetic-3d``: MONAI's test-image generators, seeded (tests, quick checks).

Each item is ``monai.data.create_test_image_2d/3d`` with ``num_objs`` random circles/spheres of
``num_classes - 1`` foreground classes, uniform noise up to ``noise_max``; item ``i`` of split ``s``
uses ``RandomState(derive_seed(seed, s, i))``. Split sizes are ``n_train``/``n_val``/``n_test``.
"""
from __future__ import annotations

import numpy as np

from analogmed.data.task import ArrayTask
from analogmed.errors import UserError
from analogmed.seeding import derive_seed


def make_synthetic_task(spatial_dims: int, size: int | None = None, seed: int = 0, num_classes: int = 3,
                        n_train: int = 16, n_val: int = 4, n_test: int = 4, num_objs: int = 6,
                        noise_max: float = 0.2) -> ArrayTask:
    """Build ``synthetic-2d`` (spatial_dims=2) or ``synthetic-3d`` (spatial_dims=3)."""
    from monai.data import create_test_image_2d, create_test_image_3d

    size = int(size if size is not None else (64 if spatial_dims == 2 else 32))
    if size < 16 or size % 16:
        raise UserError(f"synthetic-{spatial_dims}d: size must be a multiple of 16 (>= 16), not {size}")
    if num_classes < 2:
        raise UserError(f"synthetic-{spatial_dims}d: num_classes must be >= 2, not {num_classes}")
    rad_max = max(size // 5, 4)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        xs, ys = [], []
        for i in range(int(n)):
            rs = np.random.RandomState(derive_seed(seed, split, i))
            if spatial_dims == 2:
                x, y = create_test_image_2d(size, size, num_objs=num_objs, rad_max=rad_max, rad_min=3,
                                            noise_max=noise_max, num_seg_classes=num_classes - 1,
                                            random_state=rs)
            else:
                x, y = create_test_image_3d(size, size, size, num_objs=num_objs, rad_max=rad_max,
                                            rad_min=3, noise_max=noise_max,
                                            num_seg_classes=num_classes - 1, random_state=rs)
            xs.append(x[None].astype(np.float32))
            ys.append(y[None].astype(np.int64))
        shape = (0, 1) + (size,) * spatial_dims
        arrays[split] = (np.stack(xs) if xs else np.zeros(shape, np.float32),
                         np.stack(ys) if ys else np.zeros(shape, np.int64))
    name = f"synthetic-{spatial_dims}d"
    spec = {"name": name, "size": size, "seed": int(seed), "num_classes": int(num_classes),
            "n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test),
            "num_objs": int(num_objs), "noise_max": float(noise_max)}
    names = ("background",) + tuple(f"class{k}" for k in range(1, num_classes))
    return ArrayTask(arrays, name=name, kind="segmentation", spatial_dims=spatial_dims, in_channels=1,
                     num_classes=num_classes, class_names=names, image_size=(size,) * spatial_dims,
                     spec=spec, seed=int(seed))

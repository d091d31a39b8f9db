"""``chestxray14``: NIH ChestX-ray14 multi-label classification (14 findings, scored by F1).

Layout (as released): ``Data_Entry_2017.csv`` with columns ``"Image Index"`` (PNG file name),
``"Finding Labels"`` (``"A|B"`` or ``"No Finding"``) and ``"Patient ID"``; the PNG files in
``images/`` (or in the release's ``images_001/images`` ... ``images_012/images`` folders).

Items: the PNG as grey values in [0, 1] resampled to ``size x size`` (default 64) -> image
[1, size, size]; label: multi-hot float32 [14] in the order of :data:`LABELS` ("No Finding" is all
zeros). Split: if ``test_list.txt`` is present the official test list is the test split and the rest
is split into train/val by patient (85/15); otherwise all images are split by patient 70/15/15, seeded
(no patient in two splits). ``limit`` keeps the first N rows of the CSV (quick runs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analogmed.data.splits import case_split
from analogmed.data.task import Task, resize
from analogmed.errors import UserError

LABELS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
          "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
          "Hernia")
CSV_NAME = "Data_Entry_2017.csv"


def _find_images(root: Path) -> dict[str, Path]:
    folders = [root / "images"] + sorted(root.glob("images_*/images"))
    found = {}
    for f in folders:
        if f.is_dir():
            found.update({p.name: p for p in f.glob("*.png")})
    return found


def multi_hot(findings: str, row: int) -> np.ndarray:
    """``"A|B"`` -> multi-hot float32 [14]; ``"No Finding"`` -> zeros. UserError on unknown names."""
    y = np.zeros(len(LABELS), np.float32)
    for name in str(findings).split("|"):
        name = name.strip()
        if name == "No Finding":
            continue
        if name not in LABELS:
            raise UserError(f"chestxray14: {CSV_NAME} row {row}: unknown finding {name!r}; "
                            f"expected 'No Finding' or one of {', '.join(LABELS)}")
        y[LABELS.index(name)] = 1.0
    return y


class ChestXray14Task(Task):
    """ChestX-ray14 read lazily from PNG files (see module docstring)."""

    def __init__(self, files: list[Path], labels: np.ndarray, splits: dict[str, list[int]], size: int, **kw):
        super().__init__(**kw)
        self.files, self.labels, self.splits, self.size = files, labels, splits, size

    def _split_size(self, split: str) -> int:
        return len(self.splits[split])

    def _item(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        k = self.splits[split][i]
        try:
            with Image.open(self.files[k]) as im:
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError):
            raise UserError(f"chestxray14: {self.files[k]} is not a readable PNG; replace it") from None
        return resize(arr[None], (self.size, self.size)), self.labels[k]


def make_chestxray_task(root: str, size: int = 64, seed: int = 0, limit: int | None = None) -> ChestXray14Task:
    """Build the ChestX-ray14 task from its folder (see module docstring)."""
    import pandas as pd

    root_p = Path(root).expanduser()
    csv = root_p / CSV_NAME
    if not csv.is_file():
        raise UserError(f"chestxray14: {csv} is missing; pass root=<folder with {CSV_NAME} and images/>")
    size = int(size)
    if size < 16 or size % 16:
        raise UserError(f"chestxray14: size must be a multiple of 16 (>= 16), not {size}")
    try:
        df = pd.read_csv(csv)
    except Exception as exc:  # pandas raises several parser errors
        raise UserError(f"chestxray14: {csv} is not a readable CSV ({type(exc).__name__})") from None
    for col in ("Image Index", "Finding Labels"):
        if col not in df.columns:
            raise UserError(f"chestxray14: {csv} has no {col!r} column; use the original {CSV_NAME}")
    if limit is not None:
        df = df.head(int(limit))
    images = _find_images(root_p)
    missing = [n for n in df["Image Index"] if n not in images]
    if missing:
        raise UserError(f"chestxray14: {len(missing)} images listed in {CSV_NAME} are missing "
                        f"(first: {missing[0]}); unpack them into {root_p / 'images'}")
    files = [images[n] for n in df["Image Index"]]
    labels = np.stack([multi_hot(f, r + 2) for r, f in enumerate(df["Finding Labels"])]) if len(df) else \
        np.zeros((0, len(LABELS)), np.float32)
    patients = df["Patient ID"].astype(str).tolist() if "Patient ID" in df.columns else \
        [str(n).split("_")[0] for n in df["Image Index"]]
    test_list = root_p / "test_list.txt"
    if test_list.is_file():
        test_names = set(test_list.read_text().split())
        rest = [i for i, n in enumerate(df["Image Index"]) if n not in test_names]
        splits = _by_patient(rest, patients, seed, (0.85, 0.15, 0.0))
        splits["test"] = [i for i, n in enumerate(df["Image Index"]) if n in test_names]
    else:
        splits = _by_patient(list(range(len(df))), patients, seed, (0.7, 0.15, 0.15))
    spec = {"name": "chestxray14", "root": str(root_p.resolve()), "size": size, "seed": int(seed),
            "limit": limit}
    return ChestXray14Task(files, labels, splits, size, name="chestxray14", kind="classification",
                           spatial_dims=2, in_channels=1, num_classes=len(LABELS), class_names=LABELS,
                           image_size=(size, size), spec=spec, seed=int(seed))


def _by_patient(rows: list[int], patients: list[str], seed: int, fractions) -> dict[str, list[int]]:
    ids = sorted({patients[r] for r in rows})
    parts = case_split(len(ids), seed, fractions)
    if fractions[2] == 0.0:  # no test cases wanted: fold them into train
        parts["train"] = sorted(parts["train"] + parts["test"])
        parts["test"] = []
    role = {ids[j]: s for s, js in parts.items() for j in js}
    return {s: [r for r in rows if role[patients[r]] == s] for s in ("train", "val", "test")}

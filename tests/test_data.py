"""Tasks and loaders: mni152-tissue, synthetic, MSD and ChestX-ray14 (generated fixtures), bad input."""
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from analogmed.data import get_task, list_tasks
from analogmed.data.splits import block_split, case_split
from analogmed.errors import UserError


def test_registry_and_unknown_task():
    assert set(list_tasks()) == {"mni152-tissue", "mni152-brainmask", "synthetic-2d", "synthetic-3d", "msd",
                                "chestxray14"}
    with pytest.raises(UserError, match="valid tasks: mni152-tissue"):
        get_task("brats")
    with pytest.raises(UserError, match="no option 'colour'"):
        get_task("synthetic-2d", colour=1)


def test_block_split_has_gaps_and_spans_axis():
    idx = block_split(70, 6, 1, seed=0, group=5)
    assert [len(idx[s]) for s in ("train", "val", "test")] == [36, 12, 12]
    owner = {i: s for s, ix in idx.items() for i in ix}
    for i, s in owner.items():  # neighbouring slices never belong to another split
        for j in (i - 1, i + 1):
            assert owner.get(j, s) == s
    assert min(idx["val"]) < 35 < max(idx["val"])  # one val block in each half of the axis
    assert block_split(70, 6, 1, seed=0) == idx and block_split(70, 6, 1, seed=1) != idx
    c = case_split(10, seed=3)
    assert sorted(sum(c.values(), [])) == list(range(10)) and len(c["val"]) == 2


def test_mni152_2d():
    task = get_task("mni152-tissue", spatial_dims=2, seed=0)
    assert (task.kind, task.num_classes, task.in_channels, task.image_size) == ("segmentation", 3, 1, (64, 64))
    assert task.class_names == ("background", "grey_matter", "white_matter")
    assert task.split_sizes() == {"train": 36, "val": 12, "test": 12}
    item = task.dataset("val")[3]
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 64, 64) and item["label"].dtype == torch.int64
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    x, y = task.arrays["val"]
    counts = np.bincount(y.ravel(), minlength=3) / y.size
    assert counts[1] > 0.1 and counts[2] > 0.05  # both tissues present on val slices
    # T1 contrast: white matter brighter than grey matter, brighter than background
    assert x[y == 2].mean() > x[y == 1].mean() > x[y == 0].mean()
    again = get_task(**task.spec)  # rebuilt from its spec (cached arrays)
    assert np.array_equal(again.arrays["train"][0], task.arrays["train"][0])
    aug = task.dataset("train", augment=True)
    a = aug[0]
    assert a["label"].dtype == torch.int64 and set(a["label"].unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(aug[0]["image"], aug[0]["image"])  # new random draw per access


def test_mni152_3d_patches():
    task = get_task("mni152-tissue", spatial_dims=3, seed=0)
    sizes = task.split_sizes()
    assert all(n >= 1 for n in sizes.values()) and sum(sizes.values()) >= 10
    item = task.dataset("train")[0]
    assert item["image"].shape == (1, 32, 32, 32) and item["label"].shape == (1, 32, 32, 32)
    with pytest.raises(UserError, match="multiple of 16"):
        get_task("mni152-tissue", size=50)


def test_synthetic_seeded():
    a = get_task("synthetic-2d", size=32, seed=1, n_train=2)
    b = get_task("synthetic-2d", size=32, seed=1, n_train=2)
    c = get_task("synthetic-2d", size=32, seed=2, n_train=2)
    assert np.array_equal(a.arrays["train"][0], b.arrays["train"][0])
    assert not np.array_equal(a.arrays["train"][0], c.arrays["train"][0])
    t3 = get_task("synthetic-3d", size=16, n_train=1, n_val=1, n_test=1)
    assert t3.dataset("val")[0]["label"].shape == (1, 16, 16, 16)
    with pytest.raises(UserError, match="empty"):
        get_task("synthetic-2d", n_val=0).dataset("val")


# ---------------------------------------------------------------- MSD fixture (real layout)
def make_msd(root, n_cases=5, name="Task01_BrainTumour", shape=(20, 18, 12), channels=2):
    folder = root / name
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for i in range(n_cases):
        img = rng.normal(size=shape + (channels,)).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        lab[5:12, 4:10, 3:7] = 1
        lab[7:10, 6:8, 4:6] = 2
        nib.save(nib.Nifti1Image(img, np.eye(4)), folder / "imagesTr" / f"case_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.eye(4)), folder / "labelsTr" / f"case_{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"name": "BRATS", "modality": {str(c): f"mod{c}" for c in range(channels)},
            "labels": {"0": "background", "1": "edema", "2": "tumour"}, "numTraining": n_cases,
            "training": training}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def test_msd_loader(tmp_path):
    folder = make_msd(tmp_path)
    task = get_task("msd", root=str(folder), spatial_dims=2, size=32, seed=0)
    assert (task.in_channels, task.num_classes) == (2, 3)
    assert task.class_names == ("background", "edema", "tumour")
    sizes = task.split_sizes()
    assert sizes == {"train": 3 * 4, "val": 4, "test": 4}  # 4 foreground slices per case, 3/1/1 cases
    item = task.dataset("train")[0]
    assert item["image"].shape == (2, 32, 32) and set(item["label"].unique().tolist()) <= {0, 1, 2}
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert sorted(sum(task.cases.values(), [])) == list(range(5))  # split by case
    assert get_task("msd", root=str(folder), size=32, slices="all").split_sizes()["val"] == 12
    t3 = get_task("msd", root=str(tmp_path), msd_task="01", spatial_dims=3, size=16)
    assert t3.dataset("val")[0]["image"].shape == (2, 16, 16, 16)
    assert get_task(**t3.spec).split_sizes() == t3.split_sizes()
    t3g = get_task("msd", root=str(folder), spatial_dims=3, size=16, grid=2)
    assert t3g.split_sizes() == {"train": 24, "val": 8, "test": 8}
    patches = [t3g.dataset("val")[k]["label"] for k in range(8)]
    assert sum(int((p > 0).sum()) for p in patches) > 0


def test_msd_bad_input(tmp_path):
    folder = make_msd(tmp_path)
    with pytest.raises(UserError, match="not an MSD task"):
        get_task("msd", root=str(folder / "imagesTr"))
    meta = json.loads((folder / "dataset.json").read_text())
    # image/label shape mismatch
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), folder / "labelsTr" / "case_000.nii.gz")
    task = get_task("msd", root=str(folder), size=16)
    with pytest.raises(UserError, match="does not match label"):
        task.dataset("train" if 0 in task.cases["train"] else "val" if 0 in task.cases["val"] else "test")
    # label values beyond the declared classes
    nib.save(nib.Nifti1Image(np.full((20, 18, 12), 7, np.uint8), np.eye(4)), folder / "labelsTr" / "case_000.nii.gz")
    with pytest.raises(UserError, match="outside 0..2"):
        task._load_case(0)
    # a file that is not NIfTI
    (folder / "labelsTr" / "case_000.nii.gz").write_text("hello")
    with pytest.raises(UserError, match="not a readable NIfTI"):
        task._load_case(0)
    # malformed and missing dataset.json
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        get_task("msd", root=str(folder))
    (folder / "dataset.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "labels"}))
    with pytest.raises(UserError, match="no 'labels' entry"):
        get_task("msd", root=str(folder))
    (folder / "dataset.json").unlink()
    with pytest.raises(UserError, match="dataset.json is missing"):
        get_task("msd", root=str(folder))


def test_msd_empty_split(tmp_path):
    folder = make_msd(tmp_path, n_cases=1, name="Task04_Hippocampus", channels=1)
    task = get_task("msd", root=str(folder), size=16)
    assert task.in_channels == 1
    with pytest.raises(UserError, match="'val' split is empty"):
        task.dataset("val")


# ---------------------------------------------------------------- ChestX-ray14 fixture
def make_cxr(root, rows):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID"]
    for i, (pid, findings) in enumerate(rows):
        name = f"{pid:08d}_{i:03d}.png"
        Image.fromarray((np.random.default_rng(i).random((40, 40)) * 255).astype(np.uint8)).save(root / "images" / name)
        lines.append(f"{name},{findings},{i},{pid}")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")


def test_chestxray14(tmp_path):
    rows = [(p, f) for p in range(1, 11) for f in ("No Finding", "Effusion|Mass")]
    make_cxr(tmp_path, rows)
    task = get_task("chestxray14", root=str(tmp_path), size=32, seed=0)
    assert (task.kind, task.num_classes, task.class_names[2]) == ("classification", 14, "Effusion")
    assert task.split_sizes() == {"train": 12, "val": 4, "test": 4}  # 6/2/2 patients, 2 images each
    pats = {s: {task.files[k].name[:8] for k in task.splits[s]} for s in ("train", "val", "test")}
    assert not (pats["train"] & pats["val"]) and not (pats["train"] & pats["test"])  # split by patient
    labels = torch.stack([task.dataset("train")[i]["label"] for i in range(len(task.splits["train"]))])
    assert labels.shape[1] == 14 and set(labels.sum(1).tolist()) == {0.0, 2.0}
    assert task.dataset("val")[0]["image"].shape == (1, 32, 32)


def test_chestxray14_bad_input(tmp_path):
    make_cxr(tmp_path, [(1, "Effusion"), (2, "Broken Bone")])
    with pytest.raises(UserError, match="unknown finding 'Broken Bone'"):
        get_task("chestxray14", root=str(tmp_path))
    with pytest.raises(UserError, match="Data_Entry_2017.csv is missing"):
        get_task("chestxray14", root=str(tmp_path / "images"))

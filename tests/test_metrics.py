"""Metrics: per-class Dice/Jaccard with the explicit empty-mask rule, F1, evaluate_model."""
import numpy as np
import torch
from torch import nn

from analogmed.data import get_task
from analogmed.evaluate.metrics import evaluate_model, f1_counts, f1_from_counts, segmentation_scores


def test_dice_jaccard_and_empty_mask_rule():
    y = torch.zeros(3, 1, 4, 4, dtype=torch.long)
    y[0, 0, :2] = 1            # item 0: class 1 on 8 pixels, class 2 absent
    y[1, 0, :2] = 1            # item 1: same
    p = y.clone()
    p[0, 0, 0, :2] = 0         # item 0: 6 of 8 pixels found -> Dice 12/14, IoU 6/8
    p[1, 0, 3, 3] = 2          # item 1: class 2 absent from truth but predicted -> 0
    # item 2: class 1 and 2 absent from truth and prediction -> 1.0 each
    d, j = segmentation_scores(p, y, 3)
    assert torch.allclose(d, torch.tensor([[12 / 14, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(j, torch.tensor([[6 / 8, 1.0], [1.0, 0.0], [1.0, 1.0]]))


def test_f1_counts_and_rule():
    logits = torch.tensor([[5.0, -5, -5], [5, 5, -5], [-5, -5, -5]])
    label = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0]])
    c = f1_counts(logits, label)
    assert c.tolist() == [[1, 1, 0], [1, 0, 0], [0, 1, 0]]
    f1 = f1_from_counts(c)
    assert torch.allclose(f1, torch.tensor([2 / 3, 2 / 3, 1.0], dtype=torch.float64))


class Constant(nn.Module):
    """Always predicts class ``k`` (segmentation)."""

    def __init__(self, k, num_classes):
        super().__init__()
        self.k, self.n = k, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros((x.shape[0], self.n) + x.shape[2:])
        out[:, self.k] = 1.0
        return out


def test_evaluate_model_all_background():
    task = get_task("synthetic-2d", size=32, n_val=5, seed=0)
    scores = evaluate_model(Constant(0, 3), task, "val", batch_size=2)
    y = task.arrays["val"][1]
    # predicting nothing: Dice 1 for items without the class, 0 otherwise
    for k, name in ((1, "class1"), (2, "class2")):
        expect = np.mean([0.0 if (yy == k).any() else 1.0 for yy in y])
        assert abs(scores[f"dice_{name}"] - expect) < 1e-6
    assert scores["score"] == scores["dice_mean"] == (scores["dice_class1"] + scores["dice_class2"]) / 2
    assert set(scores) == {"dice_class1", "dice_class2", "jaccard_class1", "jaccard_class2",
                           "dice_mean", "jaccard_mean", "score"}

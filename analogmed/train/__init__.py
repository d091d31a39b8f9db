"""Training: digital (this package's :mod:`analogmed.train.digital`) and checkpoints.

>>> from analogmed.train import train_model, TrainConfig
>>> ckpt = train_model(spec, task, TrainConfig(epochs=5, seed=0))
"""
from analogmed.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from analogmed.train.digital import TrainConfig, default_loss, fit, resolve_device, train_model

__all__ = ["Checkpoint", "TrainConfig", "default_loss", "fit", "load_checkpoint", "resolve_device",
           "save_checkpoint", "train_model"]

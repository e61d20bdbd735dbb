"""Training methods (LightningModules), encoders, heads and losses."""

from lightning_modules.base import RepresentationModule
from lightning_modules.supcon import SupConModel
from lightning_modules.supervised import SupervisedClassifier

__all__ = ["RepresentationModule", "SupervisedClassifier", "SupConModel"]

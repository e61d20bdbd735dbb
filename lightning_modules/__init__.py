"""Training methods (LightningModules), encoders, heads and losses."""

from lightning_modules.base import RepresentationModule
from lightning_modules.byol import BYOLModel
from lightning_modules.phased import PhasedRepresentationModule
from lightning_modules.sdclr import SDCLRModel
from lightning_modules.supcon import SupConModel
from lightning_modules.supervised import SupervisedClassifier

__all__ = [
    "BYOLModel",
    "PhasedRepresentationModule",
    "RepresentationModule",
    "SDCLRModel",
    "SupConModel",
    "SupervisedClassifier",
]

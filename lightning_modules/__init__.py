"""Training methods (LightningModules), encoders, heads and losses."""

from typing import Any

from lightning_modules.base import RepresentationModule
from lightning_modules.byol import BYOLModel
from lightning_modules.phased import PhasedRepresentationModule
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


def __getattr__(name: str) -> Any:
    # SDCLR reuses callbacks.pruning's mask maths, whose modules import lightning_modules.errors:
    # importing it lazily keeps `import callbacks.pruning` and `import lightning_modules` acyclic
    if name == "SDCLRModel":
        from lightning_modules.sdclr import SDCLRModel

        return SDCLRModel
    raise AttributeError(f"module 'lightning_modules' has no attribute {name!r}")

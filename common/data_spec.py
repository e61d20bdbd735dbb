"""What a training phase trains on, declared by the LightningModule and served by the DataModule."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import check_choice, check_range

#: augmentation names (datamodules/transforms.py builds them)
AUGMENTATIONS = ("supervised", "contrastive", "none")


@dataclass(frozen=True)
class TrainDataSpec:
    """One training phase's data: augmentation name, views per sample, per-device batch size."""

    augmentation: str
    views: int
    batch_size: int

    def __post_init__(self) -> None:
        check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        check_range("views", self.views, low=1)
        check_range("batch_size", self.batch_size, low=1)


__all__ = ["AUGMENTATIONS", "TrainDataSpec"]

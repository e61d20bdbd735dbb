"""Image transforms (torchvision transforms v2 on uint8 ``[3, H, W]`` tensors).

* ``supervised``: RandomCrop(32, padding=4) + horizontal flip (+ vertical flip, as the Sup code of
  Corti et al. does, when ``vflip=True``) — REFERENCE §1, Sup column.
* ``contrastive``: RandomResizedCrop(32, scale=(0.2, 1)), horizontal flip, ColorJitter(0.4, 0.4,
  0.4, 0.1) with p=0.8, RandomGrayscale(p=0.2) — REFERENCE §1, SCL column (Khosla et al. 2020).
* ``none``: only conversion + normalisation (the eval transform).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from common.data_spec import AUGMENTATIONS
from common.errors import check_choice


def _finish(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def build_transform(
    kind: str, *, mean: Sequence[float], std: Sequence[float], size: int = 32, vflip: bool = False
) -> v2.Compose:
    """The train/eval transform ``kind`` in ``AUGMENTATIONS`` for ``size``x``size`` uint8 images."""
    check_choice("augmentation", kind, AUGMENTATIONS)
    if kind == "none":
        return v2.Compose(_finish(mean, std))
    if kind == "supervised":
        ops: list[v2.Transform] = [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()]
        if vflip:
            ops.append(v2.RandomVerticalFlip())
        return v2.Compose(ops + _finish(mean, std))
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ]
        + _finish(mean, std)
    )


class MultiView:
    """Apply ``transform`` ``views`` times independently: one image -> list of ``views`` tensors."""

    def __init__(self, transform: v2.Compose, views: int) -> None:
        self.transform = transform
        self.views = views

    def __call__(self, image: Tensor) -> list[Tensor]:
        return [self.transform(image) for _ in range(self.views)]

"""A generated, learnable 10-class image set for tests and offline smoke runs.

Never used in place of real data: it is chosen explicitly (``configs/data/synthetic.yaml``).
Each class has a smooth random colour field as prototype (4x4 colours upsampled to 32x32); a sample
is its prototype rolled by a random shift of up to ``max_shift`` pixels, scaled in brightness and
with Gaussian pixel noise. Generation is deterministic given ``seed``; train and test splits are
drawn from the same distribution with different streams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from typing_extensions import override

from common.errors import check_range
from datamodules.base import ImageDataModule


def make_synthetic_images(
    n: int, *, num_classes: int, seed: int, stream: int, noise: float = 0.15, max_shift: int = 4
) -> tuple[Tensor, Tensor]:
    """``n`` uint8 images ``[n, 3, 32, 32]`` and balanced labels ``[n]`` (class prototypes from ``seed``)."""
    proto_gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=proto_gen)
    prototypes = F.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    gen = torch.Generator().manual_seed(seed * 1000 + stream + 1)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=gen)]
    images = prototypes[labels].clone()
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    for i in range(n):
        images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    brightness = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    images = images * brightness + noise * torch.randn(images.shape, generator=gen)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels.long()


class SyntheticDataModule(ImageDataModule):
    """Learnable synthetic 10-class 3x32x32 images (``train_size`` / ``test_size`` samples)."""

    name = "synthetic"
    num_classes = 10
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(self, train_size: int = 2000, test_size: int = 500, seed: int = 0, noise: float = 0.15, **kwargs) -> None:
        check_range("data.train_size", train_size, low=1)
        check_range("data.test_size", test_size, low=1)
        check_range("data.noise", noise, low=0)
        kwargs.setdefault("download", False)
        kwargs.setdefault("holdout_size", max(1, train_size // 10))
        super().__init__(**kwargs)
        self.train_size = train_size
        self.test_size = test_size
        self.seed = seed
        self.noise = noise

    @override
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        n = self.train_size if train else self.test_size
        return make_synthetic_images(n, num_classes=self.num_classes, seed=self.seed, stream=0 if train else 1, noise=self.noise)

"""DataModules: CIFAR-10/100, Fashion-MNIST (full, or the embedded subset) and a learnable synthetic set; every batch carries indices."""

from datamodules.base import ImageDataModule
from datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from datamodules.fashion_mnist import FashionMNISTDataModule, FashionMNISTMiniDataModule
from datamodules.synthetic import SyntheticDataModule

__all__ = [
    "ImageDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "FashionMNISTDataModule",
    "FashionMNISTMiniDataModule",
    "SyntheticDataModule",
]

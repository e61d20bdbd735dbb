"""Encoders: the paper's WRN-16-2 exactly, ResNet-18 with the CIFAR stem, probe points."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError
from lightning_modules.backbones import ResNet18, WideResNet, build_backbone, count_parameters


def test_wrn16_2_has_the_papers_parameter_count() -> None:
    encoder = build_backbone("wrn16_2")
    assert count_parameters(encoder) == 690_384
    assert count_parameters(encoder) + count_parameters(nn.Linear(encoder.feature_dim, 10)) == 691_674
    assert encoder.feature_dim == 128
    widths = [m.out_channels for m in encoder.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert sorted(set(widths)) == [16, 32, 64, 128]


def test_wrn16_2_probe_points_are_the_16_of_the_reference() -> None:
    encoder = build_backbone("wrn16_2").eval()
    x = torch.randn(4, 3, 32, 32)
    probes = encoder.probe_features(x)
    assert [p.shape[1] for p in probes] == [16] + [32] * 5 + [64] * 5 + [128] * 5
    # probe 0 = global average pool of the stem conv, computed independently here
    torch.testing.assert_close(probes[0], F.conv2d(x, encoder.conv1.weight, padding=1).mean(dim=(2, 3)))
    # the representation is the pooled output after the last BN-ReLU, not the last probe
    h = encoder(x)
    assert h.shape == (4, 128) and (h >= 0).all()


def test_wrn_depth_and_width_are_configurable() -> None:
    enc = WideResNet(depth=28, widen_factor=10)
    assert enc.feature_dim == 640
    assert len(enc.probe_features(torch.randn(1, 3, 32, 32))) == 1 + 12 * 2 + 9
    with pytest.raises(ConfigError, match=r"depth=15 is not a WideResNet depth"):
        WideResNet(depth=15)


def test_resnet18_uses_the_cifar_stem() -> None:
    enc = ResNet18()
    first = next(m for m in enc.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in enc.modules())
    # torchvision's resnet18 minus its ImageNet stem (7x7 conv) and fc, plus the 3x3 stem
    assert count_parameters(enc) == 11_168_832
    x = torch.randn(2, 3, 32, 32)
    assert enc(x).shape == (2, 512)
    assert [p.shape[1] for p in enc.probe_features(x)] == [64, 64, 64, 128, 128, 256, 256, 512, 512]


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"backbone='vgg' is not allowed; choose one of 'wrn16_2', 'wrn', 'resnet18'"):
        build_backbone("vgg")

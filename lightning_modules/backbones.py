"""Encoders: WideResNet (Zagoruyko & Komodakis 2016) and ResNet-18 with the CIFAR stem.

Every encoder maps images ``[B, C, 32, 32]`` to a representation ``h`` of shape
``[B, feature_dim]`` (global average pool after the last BN-ReLU) and exposes
``probe_features(x)``: the globally-average-pooled hidden representations at successive depths
that prediction depth (Baldock et al. 2021) fits its k-NN probes on, and
``forward_with_probes(x) -> (h, probes)``, both from a single pass (what a test step uses when
prediction depth is on). Classifier and projection
heads live in the LightningModules, not here, so "the encoder" is exactly what gets pruned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.errors import ConfigError, check_choice, check_range


def _pool(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3))


class WideBasicBlock(nn.Module):
    """Pre-activation WRN block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus shortcut.

    When input and output widths differ the shortcut is a 1x1 conv applied to the pre-activated
    input (as in the reference WRN code); otherwise it is the identity.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.shortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor, probes: list[Tensor] | None = None) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if probes is not None:
            probes.append(_pool(out))
        out = self.conv2(out)
        if probes is not None:
            probes.append(_pool(out))
        residual = x if self.shortcut is None else self.shortcut(pre)
        out = out + residual
        if probes is not None and self.equal_in_out:
            probes.append(_pool(out))
        return out


class WideResNet(nn.Module):
    """WideResNet-``depth``-``widen_factor`` encoder (no classifier).

    WRN-16-2: 16 -> 32 -> 64 -> 128 channels, 690,384 parameters, 128-d representation and 16
    probe points (stem conv; per block after ReLU(BN(conv1)) and after conv2; after the residual
    sum where widths match).
    """

    def __init__(self, depth: int = 16, widen_factor: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"depth={depth!r} is not a WideResNet depth; it must be 6n+4 with n >= 1 (10, 16, 22, 28, ...)")
        check_range("widen_factor", widen_factor, low=1)
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for group, stride in enumerate((1, 2, 2)):
            for i in range(n):
                in_planes = widths[group] if i == 0 else widths[group + 1]
                blocks.append(WideBasicBlock(in_planes, widths[group + 1], stride if i == 0 else 1))
        self.blocks = nn.ModuleList(blocks)
        self.bn = nn.BatchNorm2d(widths[3])
        self.feature_dim = widths[3]
        _init_weights(self)

    def _run(self, x: Tensor, probes: list[Tensor] | None) -> Tensor:
        out = self.conv1(x)
        if probes is not None:
            probes.append(_pool(out))
        for block in self.blocks:
            out = block(out, probes)
        return _pool(F.relu(self.bn(out)))

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, None)

    def probe_features(self, x: Tensor) -> list[Tensor]:
        probes: list[Tensor] = []
        self._run(x, probes)
        return probes

    def forward_with_probes(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(forward(x), probe_features(x))`` from one pass through the network."""
        probes: list[Tensor] = []
        return self._run(x, probes), probes


class ResNetBasicBlock(nn.Module):
    """Post-activation ResNet basic block (He et al. 2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 encoder with the CIFAR stem (3x3 conv stride 1, no max-pool); 512-d output.

    Probe points: after the stem and after each of the 8 basic blocks (9 probes).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(2):
                blocks.append(ResNetBasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = 512
        _init_weights(self)

    def _run(self, x: Tensor, probes: list[Tensor] | None) -> Tensor:
        out = self.stem(x)
        if probes is not None:
            probes.append(_pool(out))
        for block in self.blocks:
            out = block(out)
            if probes is not None:
                probes.append(_pool(out))
        return _pool(out)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, None)

    def probe_features(self, x: Tensor) -> list[Tensor]:
        probes: list[Tensor] = []
        self._run(x, probes)
        return probes

    def forward_with_probes(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(forward(x), probe_features(x))`` from one pass through the network."""
        probes: list[Tensor] = []
        return self._run(x, probes), probes


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


BACKBONES = ("wrn16_2", "wrn", "resnet18")


def build_backbone(name: str, *, in_channels: int = 3, depth: int = 16, widen_factor: int = 2) -> WideResNet | ResNet18:
    """Build an encoder by name: ``wrn16_2`` (the paper's), ``wrn`` (``depth``/``widen_factor``), ``resnet18``."""
    check_choice("backbone", name, BACKBONES)
    if name == "wrn16_2":
        return WideResNet(16, 2, in_channels)
    if name == "wrn":
        return WideResNet(depth, widen_factor, in_channels)
    return ResNet18(in_channels)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["WideResNet", "ResNet18", "build_backbone", "BACKBONES", "count_parameters"]

if __name__ == "__main__":  # pragma: no cover - quick manual check
    enc = build_backbone("wrn16_2")
    print(count_parameters(enc) + count_parameters(nn.Linear(enc.feature_dim, 10)))
    print([p.shape for p in enc.probe_features(torch.zeros(2, 3, 32, 32))])

"""Networks. Each takes inputs in [0, 1] and normalises them itself, so attacks work in pixel scale."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from trials.config import ModelConfig
from trials.datasets import DatasetInfo
from trials.exported import read_sidecar, read_weights, sidecar_path  # noqa: F401  (sidecar_path: imported from here)
from trials.safe_torch import UnsafeFile


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three conv layers for digits/MNIST scale inputs; global pooling makes it size-agnostic."""

    def __init__(self, channels: int, classes: int, base: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(channels, base), *conv_bn(base, 2 * base, 2), *conv_bn(2 * base, 4 * base, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * base, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.drop:
            out = F.dropout(out, self.drop, self.training)
        return self.conv2(out) + shortcut


class PreActResNet18(nn.Module):
    """He et al. 2016 pre-activation ResNet-18, as in Rice et al. 2020's robust-overfitting code."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WideResNet(nn.Module):
    """Zagoruyko & Komodakis 2016 WRN-depth-width (pre-activation blocks), e.g. 28-10, 34-10."""

    def __init__(self, channels: int, classes: int, depth: int = 28, width: int = 10):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False)
        layers, cin = [], widths[0]
        for cout, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for i in range(n):
                layers.append(PreActBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build_model(cfg: ModelConfig, info: DatasetInfo) -> nn.Sequential:
    """The configured network adapted to the dataset's channels and classes, behind `Normalize`."""
    if cfg.arch == "small_cnn":
        net: nn.Module = SmallCNN(info.channels, info.classes)
    elif cfg.arch == "preact_resnet18":
        net = PreActResNet18(info.channels, info.classes)
    elif cfg.arch == "wide_resnet":
        net = WideResNet(info.channels, info.classes, cfg.depth, cfg.width)
    else:
        raise ValueError(f"unknown model.arch {cfg.arch!r}")
    return nn.Sequential(Normalize(info.mean, info.std), net)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A model written by `decaylab export`, rebuilt from `path` and its sidecar (`sidecar_path`), in eval mode.

    It takes (N, C, H, W) inputs in [0, 1] and normalises them itself, as RobustBench expects; the
    sidecar also names the dataset, the threat model and the accuracies measured when it was trained.
    Both files are checked first (`trials.exported`): `UnsafeFile` says what is wrong with either, and
    `OldTorch` refuses a torch whose weights-only loader is not yet a safety boundary.
    """
    meta = read_sidecar(path)
    weights = read_weights(path, meta)
    d = meta.dataset
    info = DatasetInfo(d.name, d.channels, d.size, d.classes, tuple(d.mean), tuple(d.std), pad=0, flip=False)
    model = build_model(meta.architecture, info)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # wrong keys or shapes: say which file, in one line
        raise UnsafeFile(f"{path}: the weights do not fit the sidecar's network ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


def decayed_parameters(model: nn.Module, decay: str) -> list[nn.Parameter]:
    """Parameters that weight decay acts on: all, or all but BatchNorm weights and biases."""
    if decay == "all":
        return [p for p in model.parameters() if p.requires_grad]
    kept = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            # _BatchNorm: torch's common base of BatchNorm1d/2d/3d and SyncBatchNorm, no public name
            if isinstance(module, nn.modules.batchnorm._BatchNorm) or name == "bias":  # noqa: SLF001, RUF100
                continue
            kept.append(p)
    return kept


def prunable_weights(model: nn.Module) -> list[nn.Parameter]:
    """Weights of conv and linear layers (what global magnitude pruning acts on)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

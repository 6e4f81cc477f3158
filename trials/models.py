"""Networks. Each takes inputs in [0, 1] and normalises them itself, so attacks work in pixel scale."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from trials.config import ModelConfig
from trials.datasets import DatasetInfo


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


# On a CPU, PyTorch's convolutions (oneDNN) run faster in channels_last than in NCHW on large maps and
# few channels, and slower on small maps with many channels (a PreAct ResNet-18 at batch 16, one
# thread: 64 channels at 32×32 1.33× faster in channels_last, 512 at 4×4 1.7× slower; each
# convolution of three networks timed both ways: `python -m bench.conv_layouts`).
NCHW_ABOVE_CHANNELS = 128  # a convolution with more input channels than this …
NCHW_BELOW_PIXELS = 16 * 16  # … on a map of fewer pixels than this runs in NCHW; every other in channels_last


def conv_layout(channels: int, height: int, width: int) -> torch.memory_format:
    """The memory layout a convolution on a CPU runs faster in, by the shape of its input."""
    if channels > NCHW_ABOVE_CHANNELS and height * width < NCHW_BELOW_PIXELS:
        return torch.contiguous_format
    return torch.channels_last


class _InputLayout:
    """A convolution's forward pre-hook: its input in one memory layout."""

    def __init__(self, layout: torch.memory_format):
        self.layout = layout

    def __call__(self, conv: nn.Module, args: tuple) -> tuple:
        return (args[0].contiguous(memory_format=self.layout), *args[1:])


def conv_input_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Conv2d, torch.Size]:
    """The (C, H, W) input of each Conv2d of `model` that one forward of a (1, *input_shape) zero image
    reaches, in eval mode (no statistics change; the mode is restored)."""
    shapes: dict[nn.Conv2d, torch.Size] = {}

    def probe(conv: nn.Module, args: tuple) -> None:
        shapes.setdefault(conv, args[0].shape[1:])

    probes = [m.register_forward_pre_hook(probe) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for p in probes:
            p.remove()
    return shapes


def cpu_conv_layouts(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """Run each Conv2d of `model` in the layout `conv_layout` picks for the input it gets from
    `input_shape` (C, H, W) inputs: its weight in that layout and its input put into it by a forward
    pre-hook (PyTorch's CPU convolution runs in channels_last when the input or the weight is in it).
    Same results up to float rounding; what a study gets on a CPU when `train.channels_last` is unset.
    A convolution the forward does not reach keeps its layout. Returns `model`."""
    for conv, shape in conv_input_shapes(model, input_shape).items():
        layout = conv_layout(*shape)
        conv.to(memory_format=layout)
        conv.register_forward_pre_hook(_InputLayout(layout))
    return model


def sidecar_path(path: str | Path) -> Path:
    """The JSON file that describes an exported model file (`model.pt` → `model.json`)."""
    return Path(path).with_suffix(".json")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A model written by `decaylab export`, rebuilt from `path` and its sidecar (`sidecar_path`), in eval mode.

    It takes (N, C, H, W) inputs in [0, 1] and normalises them itself, as RobustBench expects; the
    sidecar also names the dataset, the threat model and the accuracies measured when it was trained.
    """
    meta = json.loads(sidecar_path(path).read_text())
    d = meta["dataset"]
    info = DatasetInfo(d["name"], d["channels"], d["size"], d["classes"], tuple(d["mean"]), tuple(d["std"]),
                       pad=0, flip=False)
    model = build_model(ModelConfig.model_validate(meta["architecture"]), info)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def decayed_parameters(model: nn.Module, decay: str) -> list[nn.Parameter]:
    """Parameters that weight decay acts on: all, or all but BatchNorm weights and biases."""
    if decay == "all":
        return [p for p in model.parameters() if p.requires_grad]
    kept = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, nn.modules.batchnorm._BatchNorm) or name == "bias":
                continue
            kept.append(p)
    return kept


def prunable_weights(model: nn.Module) -> list[nn.Parameter]:
    """Weights of conv and linear layers (what global magnitude pruning acts on)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

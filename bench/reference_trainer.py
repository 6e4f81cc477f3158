"""A re-creation, for measurement only, of the training-loop style of Rice, Wong & Kolter (2020).

Written for `bench.trainer_vs_reference` from the published description of locuslab/robust_overfitting's
`train_cifar.py` (no code copied): what makes that style cost ~35 forward-equivalents per PGD-10
training image instead of 23 is reproduced, and nothing else is changed:

- the attack calls `loss.backward()` with the model's parameters requiring grad, so every attack
  step also runs the weight-gradient kernels (then the gradients are zeroed by the optimiser);
- after the attack, one more forward picks the best restart (done even with one restart);
- data come from a `torch.utils.data.DataLoader` over a CPU dataset that augments each example on
  its own, torchvision style (PIL image → RandomCrop with padding → RandomHorizontalFlip → ToTensor);
- after the update, a forward of the clean batch (autograd recording) feeds the log;
- loss and accuracy are read with `.item()` every step.

Weight decay is the optimiser's own (`SGD(weight_decay=λ)`, as there). The model is whatever it is
given (it normalises its inputs itself, as decaylab's do); inputs are in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class PerSampleImages(Dataset):
    """uint8 images (N, C, H, W), augmented one at a time on the CPU."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pad: int, flip: bool):
        images = x.numpy().transpose(0, 2, 3, 1)  # PIL wants H, W, C
        self.images = images[..., 0] if images.shape[-1] == 1 else images
        self.labels = y.numpy()
        ops: list = [transforms.RandomCrop(self.images.shape[1], padding=pad)] if pad else []
        if flip:
            ops.append(transforms.RandomHorizontalFlip())
        self.transform = transforms.Compose([*ops, transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(np.ascontiguousarray(self.images[i]))), int(self.labels[i])


def loader(x: torch.Tensor, y: torch.Tensor, *, batch_size: int, pad: int, flip: bool) -> DataLoader:
    # num_workers=0: on a 2-core machine worker processes would take the cores the model needs, and
    # the augmentation's CPU time stays inside the process whose clock the benchmark reads
    return DataLoader(PerSampleImages(x, y, pad, flip), batch_size=batch_size, shuffle=True, num_workers=0)


def attack_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float, steps: int,
               restarts: int = 1) -> torch.Tensor:
    """L∞ PGD whose backward also fills the weights' `.grad` (the parameters keep requires_grad)."""
    best_loss = torch.zeros(y.shape[0], device=x.device)
    best_delta = torch.zeros_like(x)
    for _ in range(restarts):
        delta = torch.zeros_like(x).uniform_(-eps, eps)
        delta = torch.min(torch.max(delta, -x), 1 - x)
        delta.requires_grad = True
        for _ in range(steps):
            loss = F.cross_entropy(model(x + delta), y)
            loss.backward()
            step = delta + alpha * delta.grad.detach().sign()
            step = torch.clamp(step, -eps, eps)
            delta.data = torch.min(torch.max(step, -x), 1 - x)
            delta.grad.zero_()
        losses = F.cross_entropy(model(x + delta), y, reduction="none")
        better = losses >= best_loss
        best_delta[better] = delta.detach()[better]
        best_loss = torch.max(best_loss, losses)
    return best_delta


def train_epoch(model: nn.Module, batches: DataLoader, optimizer: torch.optim.Optimizer, *, eps: float,
                alpha: float, steps: int, lr_at: Callable[[int], float]) -> dict[str, float]:
    """One epoch; `lr_at(i)` is the learning rate of batch i (set every batch, as there)."""
    model.train()
    robust_loss_sum = robust_correct = clean_loss_sum = clean_correct = n = 0.0
    for i, (x, y) in enumerate(batches):
        optimizer.param_groups[0].update(lr=lr_at(i))
        delta = attack_pgd(model, x, y, eps=eps, alpha=alpha, steps=steps)
        robust_output = model(torch.clamp(x + delta, 0, 1))
        robust_loss = F.cross_entropy(robust_output, y)
        optimizer.zero_grad()
        robust_loss.backward()
        optimizer.step()
        output = model(x)
        loss = F.cross_entropy(output, y)
        robust_loss_sum += robust_loss.item() * y.size(0)
        robust_correct += (robust_output.max(1)[1] == y).sum().item()
        clean_loss_sum += loss.item() * y.size(0)
        clean_correct += (output.max(1)[1] == y).sum().item()
        n += y.size(0)
    return {"train_robust_loss": robust_loss_sum / n, "train_robust_acc": robust_correct / n,
            "train_loss": clean_loss_sum / n, "train_acc": clean_correct / n}

"""A re-creation, for measurement only, of the training loop of Rice, Wong & Kolter (2020).

Written for `bench.trainer_vs_reference` from the published code of locuslab/robust_overfitting
(`train_cifar.py`, `utils.py`; no code copied): the work that loop does per epoch is reproduced, and
`train_epoch`'s switches replace one piece of it at a time by decaylab's, so the benchmark can say
where the difference comes from.

Their data path, as written there:

- once: the training images padded (reflect, by the crop padding) and scaled to float64 in [0, 1],
  kept as a list of (image, label) pairs;
- every epoch: a random crop offset and flip choice drawn for every image (numpy), and a
  `DataLoader` that slices each image's crop (and copies it flipped), then collates the batch;
- per batch: the float64 batch converted to float32.

Their step:

- the attack calls `loss.backward()` with the parameters requiring grad, so every attack step also
  runs the weight-gradient kernels; the projection computes its bounds on every step
  (`max(min(δ, 1 − x), −x)`);
- after the attack, one more forward picks the best restart (done even with one restart);
- after the update, a forward of the clean batch (autograd recording) feeds the log;
- loss and accuracy are read with `.item()` every step.

Weight decay is the optimiser's own (`SGD(weight_decay=λ)`, as there). The model normalises its
inputs itself (as decaylab's do), so inputs are in [0, 1] throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from trials import data as data_mod
from trials.attacks import attack_batch

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class PrePaddedCrops(Dataset):
    """Pre-padded float images; each epoch's crop offsets and flips drawn at once, applied per image."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pad: int, flip: bool, seed: int = 0):
        images = x.numpy()
        if pad:
            images = np.pad(images, [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode="reflect")
        self.pairs = list(zip(images / 255.0, y.tolist(), strict=True))  # float64, as `pad(x) / 255.` gives
        self.size, self.pad, self.flip = x.shape[-1], pad, flip
        self.rng = np.random.default_rng(seed)
        self.new_epoch()

    def new_epoch(self) -> None:
        n, offsets = len(self.pairs), 2 * self.pad + 1
        self.dx, self.dy = self.rng.integers(0, offsets, n), self.rng.integers(0, offsets, n)
        self.flips = self.rng.random(n) < 0.5 if self.flip else np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        image, label = self.pairs[i]
        x0, y0 = self.dx[i], self.dy[i]
        crop = image[:, y0:y0 + self.size, x0:x0 + self.size]
        return (crop[:, :, ::-1].copy() if self.flips[i] else crop), label


class RiceBatches:
    """Their batches: a new draw of crops and flips every epoch, a shuffling DataLoader, float32 on the way out.

    num_workers=0: on a 2-core machine worker processes would take the cores the model needs, and the
    data path's CPU time stays inside the process whose clock the benchmark reads (with workers on a
    GPU machine the same work would overlap the GPU's).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, pad: int, flip: bool):
        self.dataset = PrePaddedCrops(x, y, pad, flip)
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=True, num_workers=0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.dataset.new_epoch()
        return ((x.float(), y.long()) for x, y in self.loader)


class DeviceBatches:
    """decaylab's data path (as `trials.train.train_epoch` runs it): uint8 images on the device, one
    shuffle per epoch, crop and flip as batched tensor ops."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, pad: int, flip: bool, seed: int = 0):
        self.x, self.y, self.batch_size, self.pad, self.flip = x, y, batch_size, pad, flip
        self.gen = torch.Generator(x.device).manual_seed(seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.y), generator=self.gen, device=self.x.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = data_mod.augment(self.x[idx], self.pad, self.flip, self.gen) if self.pad or self.flip else self.x[idx]
            yield data_mod.to_float(xb), self.y[idx]


def _clamp(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    return torch.max(torch.min(x, upper), lower)


def attack_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float, steps: int,
               restarts: int = 1) -> torch.Tensor:
    """Their L∞ PGD: `backward()` fills the weights' `.grad` too; the best restart is picked by one more forward."""
    best_loss = torch.zeros(y.shape[0], device=x.device)
    best_delta = torch.zeros_like(x)
    for _ in range(restarts):
        delta = torch.zeros_like(x).uniform_(-eps, eps)
        delta = _clamp(delta, -x, 1 - x)
        delta.requires_grad = True
        for _ in range(steps):
            loss = F.cross_entropy(model(x + delta), y)
            loss.backward()
            d = torch.clamp(delta + alpha * torch.sign(delta.grad.detach()), min=-eps, max=eps)
            delta.data = _clamp(d, -x, 1 - x)
            delta.grad.zero_()
        losses = F.cross_entropy(model(x + delta), y, reduction="none")
        better = losses >= best_loss
        best_delta[better] = delta.detach()[better]
        best_loss = torch.max(best_loss, losses)
    return best_delta


def train_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer, *, eps: float, alpha: float,
                steps: int, lr_at: Callable[[int], float], lean_attack: bool = False, log_forward: bool = True,
                generator: torch.Generator | None = None) -> dict[str, float]:
    """One epoch of their loop; `lr_at(i)` is the learning rate of batch i (set every batch, as there).

    lean_attack: decaylab's attack instead of theirs (`trials.attacks.attack_batch`: gradients w.r.t. the
    input only, one clamp per step, no restart-picking forward). log_forward=False drops the clean
    logging forward and the per-step `.item()` reads: the metrics are summed on the device and read once.
    """
    model.train()
    logged = [0.0] * 4  # robust loss, robust correct, clean loss, clean correct: read every step, as there
    on_device = torch.zeros(2)  # robust loss, robust correct: summed on the device, read once
    n = 0
    for i, (x, y) in enumerate(batches):
        optimizer.param_groups[0].update(lr=lr_at(i))
        if lean_attack:
            x_adv = attack_batch("pgd", model, x, y, eps=eps, step_size=alpha, steps=steps, generator=generator)
        else:
            x_adv = torch.clamp(x + attack_pgd(model, x, y, eps=eps, alpha=alpha, steps=steps), 0, 1)
        robust_output = model(x_adv)
        robust_loss = F.cross_entropy(robust_output, y)
        optimizer.zero_grad()
        robust_loss.backward()
        optimizer.step()
        n += y.size(0)
        if log_forward:
            output = model(x)
            loss = F.cross_entropy(output, y)
            logged[0] += robust_loss.item() * y.size(0)
            logged[1] += (robust_output.max(1)[1] == y).sum().item()
            logged[2] += loss.item() * y.size(0)
            logged[3] += (output.max(1)[1] == y).sum().item()
        else:
            with torch.no_grad():
                on_device += torch.stack([robust_loss.detach() * y.size(0), (robust_output.argmax(1) == y).sum()])
    values = [v / n for v in logged] if log_forward else [*(on_device / n).tolist(), float("nan"), float("nan")]
    return dict(zip(("train_robust_loss", "train_robust_acc", "train_loss", "train_acc"), values, strict=True))

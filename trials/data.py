"""Datasets as uint8 tensors on the trial's device: splits, subsets, label noise, augmentation.

The datasets themselves are registry entries (`trials.datasets.DATASETS`). Splits are a
function of `data.split_seed` alone, never of the trial seed, so every trial of a study sees
the same train/val/test split and, for a given rate, the same noisy labels. Augmentation runs
on the device as batched tensor ops — no DataLoader workers in the hot loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trials.config import DataConfig
from trials.datasets import DATASETS, DataError, DatasetInfo, RawArrays, dataset_info

__all__ = ["DATASETS", "DataError", "DatasetInfo", "Split", "TrialData", "augment", "load", "to_float"]


@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) uint8
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, n: int | None) -> Split:
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


@dataclass
class TrialData:
    info: DatasetInfo
    train: Split  # labels as trained on (possibly noisy)
    val: Split  # labels as selected on (noisy at the training rate unless data.val_label_noise is clean)
    test: Split
    noisy: torch.Tensor  # (N_train,) bool: labels flipped by label noise
    clean_train_labels: torch.Tensor
    label_noise_actual: float


@functools.lru_cache(maxsize=4)
def _raw(dataset: str, root: str | None, download: bool, image_size: int) -> RawArrays:
    return DATASETS[dataset][1](root, download, image_size)


# ------------------------------------------------------------------------------- splits


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out): round(fraction·n_c) of every class c held out."""
    kept, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        kept.append(idx[k:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def balanced_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices with classes as equal as possible (the first n mod C classes get one more)."""
    classes = np.unique(y)
    per, extra = divmod(n, len(classes))
    chosen = []
    for i, c in enumerate(classes):
        want = per + (1 if i < extra else 0)
        idx = np.flatnonzero(y == c)
        if want > len(idx):
            raise DataError(f"data.subset={n} needs {want} examples of class {c}, only {len(idx)} exist")
        chosen.append(rng.permutation(idx)[:want])
    return np.sort(np.concatenate(chosen))


def symmetric_noise(y: np.ndarray, rate: float, classes: int, seed: int, stream: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly round(rate·n) labels, each to a uniformly chosen *other* class.

    The flipped examples are a prefix of one fixed permutation and each example's wrong label
    is fixed, so a lower rate's noisy set is contained in a higher rate's. `stream` separates
    the splits (0: training, 1: validation) so they draw independent noise.
    """
    rng = np.random.default_rng([seed, 104729, stream] if stream else [seed, 104729])
    order = rng.permutation(len(y))
    offsets = rng.integers(1, classes, size=len(y))
    flipped = np.zeros(len(y), dtype=bool)
    flipped[order[: int(round(rate * len(y)))]] = True
    noisy = np.where(flipped, (y + offsets) % classes, y)
    return noisy, flipped


def split_indices(cfg: DataConfig, y_train: np.ndarray, y_test: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.random.Generator]:
    """(train, val, test-from-train or None) indices and the split generator, from `split_seed` alone."""
    rng = np.random.default_rng(cfg.split_seed)
    pool, test_idx = np.arange(len(y_train)), None
    if y_test is None:  # no official test split: a fixed stratified one
        pool, test_idx = stratified_split(y_train, cfg.test_fraction, rng)
    train_rel, val_rel = stratified_split(y_train[pool], cfg.val_fraction, rng)
    train_idx, val_idx = pool[train_rel], pool[val_rel]
    if cfg.subset is not None:
        train_idx = train_idx[balanced_subset(y_train[train_idx], cfg.subset, rng)]
    return train_idx, val_idx, test_idx, rng


def load(cfg: DataConfig, label_noise: float = 0.0, device: torch.device | str = "cpu") -> TrialData:
    """The trial's data on `device`. Raises DataError when the files are not there."""
    x_all, y_all, x_te, y_te = _raw(cfg.dataset, cfg.root, cfg.download, cfg.image_size)
    train_idx, val_idx, test_idx, rng = split_indices(cfg, y_all, y_te)
    if test_idx is not None:
        x_te, y_te = x_all[test_idx], y_all[test_idx]
    classes = int(max(y_all.max(), y_te.max())) + 1
    info = dataset_info(cfg.dataset, cfg.image_size, classes)
    y_train = y_all[train_idx]
    noisy_y, flipped = symmetric_noise(y_train, label_noise, info.classes, cfg.split_seed)
    y_val = y_all[val_idx]
    if cfg.val_label_noise == "same":
        # the same seeded procedure on the validation split (its own stream): a user selecting
        # checkpoints has only noisy labels, never the true ones
        y_val, _ = symmetric_noise(y_val, label_noise, info.classes, cfg.split_seed, stream=1)
    # Shuffle val/test once (split_seed) so `val_examples`/`test_examples` prefixes are stratified-ish.
    val_order, test_order = rng.permutation(len(val_idx)), rng.permutation(len(y_te))

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(x)).to(device),
                     torch.from_numpy(np.ascontiguousarray(y)).to(device))

    return TrialData(
        info=info,
        train=split(x_all[train_idx], noisy_y),
        val=split(x_all[val_idx][val_order], y_val[val_order]),
        test=split(x_te[test_order], y_te[test_order]),
        noisy=torch.from_numpy(flipped).to(device),
        clean_train_labels=torch.from_numpy(y_train).to(device),
        label_noise_actual=float(flipped.mean()) if len(flipped) else 0.0,
    )


# --------------------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole uint8 batch."""
    n, c, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = torch.rand(n, generator=gen, device=x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def to_float(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 [0, 255] → float [0, 1] (the model normalises internally, so ε is in pixel scale)."""
    out = x.float().div_(255.0)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out

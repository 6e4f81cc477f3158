"""Datasets as uint8 tensors on the trial's device: registry, splits, subsets, label noise, augmentation.

A new dataset is a registry entry (`DATASETS`). Splits are a function of `data.split_seed`
alone, never of the trial seed, so every trial of a study sees the same train/val/test split
and, for a given rate, the same noisy labels. Augmentation runs on the device as batched
tensor ops — no DataLoader workers in the hot loop (DESIGN.md §7).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trials.config import DataConfig


class DataError(Exception):
    """The dataset cannot be read: says where it looked and how to fetch it."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int  # random-crop padding of the standard augmentation (0 = none)
    flip: bool  # horizontal flips preserve the label


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
    val: Split
    test: Split
    noisy: torch.Tensor  # (N_train,) bool: labels flipped by label noise
    clean_train_labels: torch.Tensor
    label_noise_actual: float


RawArrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]  # x/y train, x/y test


# ------------------------------------------------------------------------------ loaders


def _load_digits(cfg: DataConfig) -> RawArrays:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return x, d.target.astype(np.int64), None, None


def _torchvision(cls_name: str, folder: str, split_kw: Callable[[bool], dict]):
    def load(cfg: DataConfig) -> RawArrays:
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        root = str(Path(cfg.root).expanduser())
        try:
            train = cls(root, download=cfg.download, **split_kw(True))
            test = cls(root, download=cfg.download, **split_kw(False))
        except RuntimeError as e:
            raise DataError(
                f"dataset {cfg.dataset!r} not found or incomplete under {root} (looked for "
                f"{Path(root) / folder}; torchvision said: {e}). Set `data.download: true` to fetch it "
                f"there, or on a machine with internet run `python -c \"import torchvision; "
                f"torchvision.datasets.{cls_name}('{root}', download=True{_kw_text(split_kw(True))})\"` "
                f"and copy the directory") from None
        return (*_arrays(train), *_arrays(test))

    return load


def _kw_text(kw: dict) -> str:
    return "".join(f", {k}={v!r}" for k, v in kw.items() if k != "train")


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    x = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if x.ndim == 3:  # MNIST-style (N, H, W)
        x = x[:, None]
    elif x.shape[-1] == 3:  # CIFAR-style (N, H, W, C)
        x = x.transpose(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return np.ascontiguousarray(x, dtype=np.uint8), y.astype(np.int64)


def _load_image_folder(cfg: DataConfig) -> RawArrays:
    root = Path(cfg.root).expanduser()
    train_dir = root / "train"
    # a labelled split has class folders; Tiny ImageNet's test/ holds only unlabelled test/images/
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir() and train_dir.is_dir()
                     and any((root / d / c.name).is_dir() for c in train_dir.iterdir())), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(f"image_folder expects {root}/train/<class>/*.jpg and {root}/val/<class>/ (or "
                        f"test/); found train: {train_dir.is_dir()}, val/test: {test_dir is not None}. "
                        "For Tiny ImageNet, move val/images/* into val/<wnid>/ using val_annotations.txt")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    x_tr, y_tr = _read_folder(train_dir, classes, cfg.image_size)
    x_te, y_te = _read_folder(test_dir, classes, cfg.image_size)
    return x_tr, y_tr, x_te, y_te


def _read_folder(directory: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    xs, ys = [], []
    for label, name in enumerate(classes):
        folder = directory / name
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB").resize((size, size), Image.BILINEAR)
                xs.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise DataError(f"no images (*.jpg, *.png) found under {directory}")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)

DATASETS: dict[str, tuple[DatasetInfo, Callable[[DataConfig], RawArrays]]] = {
    "digits": (DatasetInfo("digits", 1, 8, 10, (0.3,), (0.38,), pad=1, flip=False), _load_digits),
    "mnist": (DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), pad=0, flip=False),
              _torchvision("MNIST", "MNIST/raw", lambda t: {"train": t})),
    "fashion_mnist": (DatasetInfo("fashion_mnist", 1, 28, 10, (0.2860,), (0.3530,), pad=2, flip=True),
                      _torchvision("FashionMNIST", "FashionMNIST/raw", lambda t: {"train": t})),
    "cifar10": (DatasetInfo("cifar10", 3, 32, 10, _CIFAR_MEAN, _CIFAR_STD, pad=4, flip=True),
                _torchvision("CIFAR10", "cifar-10-batches-py", lambda t: {"train": t})),
    "cifar100": (DatasetInfo("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                             pad=4, flip=True),
                 _torchvision("CIFAR100", "cifar-100-python", lambda t: {"train": t})),
    "svhn": (DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                         pad=4, flip=False),
             _torchvision("SVHN", "train_32x32.mat", lambda t: {"split": "train" if t else "test"})),
    "image_folder": (DatasetInfo("image_folder", 3, 64, 0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                 pad=4, flip=True), _load_image_folder),
}


@functools.lru_cache(maxsize=4)
def _raw(cfg_key: tuple) -> RawArrays:
    cfg = DataConfig(**dict(cfg_key))
    return DATASETS[cfg.dataset][1](cfg)


def dataset_info(cfg: DataConfig, classes: int | None = None) -> DatasetInfo:
    info = DATASETS[cfg.dataset][0]
    if cfg.dataset == "image_folder":
        info = DatasetInfo(info.name, 3, cfg.image_size, classes or 0, info.mean, info.std, info.pad, True)
    return info


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


def symmetric_noise(y: np.ndarray, rate: float, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly round(rate·n) labels, each to a uniformly chosen *other* class.

    The flipped examples are a prefix of one fixed permutation and each example's wrong label
    is fixed, so a lower rate's noisy set is contained in a higher rate's.
    """
    rng = np.random.default_rng([seed, 104729])
    order = rng.permutation(len(y))
    offsets = rng.integers(1, classes, size=len(y))
    flipped = np.zeros(len(y), dtype=bool)
    flipped[order[: int(round(rate * len(y)))]] = True
    noisy = np.where(flipped, (y + offsets) % classes, y)
    return noisy, flipped


def load(cfg: DataConfig, label_noise: float, device: torch.device | str = "cpu") -> TrialData:
    """The trial's data on `device`. Raises DataError when the files are not there."""
    key = tuple(sorted((k, v) for k, v in cfg.__dict__.items() if k != "label_noise"))
    x_tr, y_tr, x_te, y_te = _raw(key)
    rng = np.random.default_rng(cfg.split_seed)
    if x_te is None:  # no official test split: a fixed stratified one
        pool, test_idx = stratified_split(y_tr, cfg.test_fraction, rng)
        x_te, y_te = x_tr[test_idx], y_tr[test_idx]
        x_tr, y_tr = x_tr[pool], y_tr[pool]
    train_idx, val_idx = stratified_split(y_tr, cfg.val_fraction, rng)
    if cfg.subset is not None:
        train_idx = train_idx[balanced_subset(y_tr[train_idx], cfg.subset, rng)]
    classes = int(max(y_tr.max(), y_te.max())) + 1
    info = dataset_info(cfg, classes)
    y_train = y_tr[train_idx]
    noisy_y, flipped = symmetric_noise(y_train, label_noise, info.classes, cfg.split_seed)
    # Shuffle val/test once (split_seed) so `val_examples`/`test_examples` prefixes are stratified-ish.
    val_idx, test_order = rng.permutation(val_idx), rng.permutation(len(y_te))

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(x)).to(device),
                     torch.from_numpy(np.ascontiguousarray(y)).to(device))

    return TrialData(
        info=info,
        train=split(x_tr[train_idx], noisy_y),
        val=split(x_tr[val_idx], y_tr[val_idx]),
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

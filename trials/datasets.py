"""The dataset registry: what each dataset is, and how its files are read into uint8 arrays.

Adding a dataset is adding one entry to `DATASETS`: its `DatasetInfo` (shape, classes,
normalisation, augmentation, published split sizes) and a loader returning
`(x_train, y_train, x_test, y_test)` as uint8 (N, C, H, W) and int64 arrays (test None when
the dataset has no official test split: a stratified one is carved out, as for digits).
Torch-free at import (torchvision is imported by the loaders), so the study reader can check
split sizes before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(Exception):
    """The dataset cannot be read: says where it looked and how to fetch it."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int
    classes: int  # 0: read from the files (image_folder)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int  # random-crop padding of the standard augmentation (0 = none)
    flip: bool  # horizontal flips preserve the label
    train_size: int | None = None  # published sizes; None: counted from the files
    test_size: int | None = None  # None with train_size set: no official test split
    torchvision: str | None = None  # torchvision class that reads (and downloads) it
    folder: str = ""  # what the torchvision class looks for under `root`


RawArrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


# ------------------------------------------------------------------------------ loaders


def _load_digits(root: str | None, download: bool, image_size: int) -> RawArrays:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return x, d.target.astype(np.int64), None, None


def _split_kwargs(name: str, train: bool) -> dict:
    return {"split": "train" if train else "test"} if name == "svhn" else {"train": train}


def fetch_command(info: DatasetInfo, root: str) -> str:
    """The one command that downloads a torchvision dataset into `root` (run where there is a network)."""
    kw = "".join(f", {k}={v!r}" for k, v in _split_kwargs(info.name, True).items() if k != "train")
    return (f"python -c \"import torchvision; torchvision.datasets.{info.torchvision}('{root}', "
            f"download=True{kw})\"")


def _load_torchvision(info: DatasetInfo) -> Callable[[str | None, bool, int], RawArrays]:
    def load(root: str | None, download: bool, image_size: int) -> RawArrays:
        import torchvision

        cls = getattr(torchvision.datasets, info.torchvision)
        root = str(Path(root or ".").expanduser())
        try:
            train = cls(root, download=download, **_split_kwargs(info.name, True))
            test = cls(root, download=download, **_split_kwargs(info.name, False))
        except (RuntimeError, OSError) as e:
            raise DataError(
                f"dataset {info.name!r} not found or incomplete under {root} (looked for {Path(root) / info.folder}; "
                f"torchvision said: {str(e)[:200]}). On a machine with internet run `{fetch_command(info, root)}` "
                "and copy the directory here") from None
        return (*_arrays(train), *_arrays(test))

    return load


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data
    x = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if x.ndim == 3:  # MNIST-style (N, H, W)
        x = x[:, None]
    elif x.shape[-1] == 3:  # CIFAR-style (N, H, W, C)
        x = x.transpose(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels
    y = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    return np.ascontiguousarray(x, dtype=np.uint8), y.astype(np.int64)


def _load_image_folder(root: str | None, download: bool, image_size: int) -> RawArrays:
    base = Path(root or ".").expanduser()
    train_dir = base / "train"
    # a labelled split has class folders; Tiny ImageNet's test/ holds only unlabelled test/images/
    test_dir = next((base / d for d in ("test", "val") if (base / d).is_dir() and train_dir.is_dir()
                     and any((base / d / c.name).is_dir() for c in train_dir.iterdir())), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(f"image_folder expects {base}/train/<class>/*.jpg and {base}/val/<class>/ (or "
                        f"test/); found train: {train_dir.is_dir()}, val/test: {test_dir is not None}. "
                        "For Tiny ImageNet, move val/images/* into val/<wnid>/ using val_annotations.txt")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    x_tr, y_tr = _read_folder(train_dir, classes, image_size)
    x_te, y_te = _read_folder(test_dir, classes, image_size)
    return x_tr, y_tr, x_te, y_te


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _read_folder(directory: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    xs, ys = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (directory / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB").resize((size, size), Image.BILINEAR)
                xs.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise DataError(f"no images (*.jpg, *.png) found under {directory}")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


# ----------------------------------------------------------------------------- registry

_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)

_INFOS = [
    DatasetInfo("digits", 1, 8, 10, (0.3,), (0.38,), pad=1, flip=False, train_size=1797),
    DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), pad=0, flip=False, train_size=60_000, test_size=10_000,
                torchvision="MNIST", folder="MNIST/raw"),
    DatasetInfo("fashion_mnist", 1, 28, 10, (0.2860,), (0.3530,), pad=2, flip=True, train_size=60_000,
                test_size=10_000, torchvision="FashionMNIST", folder="FashionMNIST/raw"),
    DatasetInfo("cifar10", 3, 32, 10, _CIFAR_MEAN, _CIFAR_STD, pad=4, flip=True, train_size=50_000, test_size=10_000,
                torchvision="CIFAR10", folder="cifar-10-batches-py"),
    DatasetInfo("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), pad=4, flip=True,
                train_size=50_000, test_size=10_000, torchvision="CIFAR100", folder="cifar-100-python"),
    DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), pad=4, flip=False,
                train_size=73_257, test_size=26_032, torchvision="SVHN", folder="train_32x32.mat"),
    DatasetInfo("image_folder", 3, 64, 0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), pad=4, flip=True),
]


def _loader(info: DatasetInfo) -> Callable[[str | None, bool, int], RawArrays]:
    if info.torchvision:
        return _load_torchvision(info)
    return {"digits": _load_digits, "image_folder": _load_image_folder}[info.name]


DATASETS: dict[str, tuple[DatasetInfo, Callable[[str | None, bool, int], RawArrays]]] = {
    info.name: (info, _loader(info)) for info in _INFOS
}
DATASET_NAMES = tuple(DATASETS)


def dataset_info(name: str, image_size: int = 64, classes: int | None = None) -> DatasetInfo:
    info = DATASETS[name][0]
    if name == "image_folder":
        info = DatasetInfo(info.name, 3, image_size, classes or 0, info.mean, info.std, info.pad, True)
    return info


def image_folder_sizes(root: str) -> tuple[int, int, int]:
    """(train images, test images, classes) of an image_folder root, by counting files."""
    base = Path(root).expanduser()
    train_dir = base / "train"
    classes = sorted(p for p in train_dir.iterdir() if p.is_dir()) if train_dir.is_dir() else []
    test_dir = next((base / d for d in ("test", "val") if (base / d).is_dir()), None)

    def count(directory: Path | None) -> int:
        if directory is None:
            return 0
        return sum(1 for c in classes for p in (directory / c.name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)

    return count(train_dir), count(test_dir), len(classes)

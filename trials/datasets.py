"""The dataset registry: what each dataset is, and how its files are read into uint8 arrays.

Adding a dataset is adding one entry to `DATASETS`: its `DatasetInfo` (shape, classes,
normalisation, augmentation, published split sizes) and a loader returning
`(x_train, y_train, x_test, y_test)` as uint8 (N, C, H, W) and int64 arrays (test None when
the dataset has no official test split: a stratified one is carved out, as for digits).
Torch-free at import (torchvision is imported by the loaders), so the study reader can check
split sizes before anything starts.
"""

from __future__ import annotations

import dataclasses
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
    resized: bool = False  # images of many sizes, resized to `data.image_size` (size is then that)


RawArrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


# ------------------------------------------------------------------------------ loaders


def _load_digits(root: str | None, download: bool, image_size: int) -> RawArrays:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return x, d.target.astype(np.int64), None, None


def _split_kwargs(name: str, train: bool) -> dict:
    return {"split": "train" if train else "test"} if name in ("svhn", "flowers102") else {"train": train}


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
FLOWERS_SPLITS = {"train": ("trnid", "valid"), "test": ("tstid",)}


def _load_flowers102(root: str | None, download: bool, image_size: int) -> RawArrays:
    """Oxford Flowers-102 in torchvision's layout (<root>/flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat,
    setid.mat). The published train and val splits (1,020 images each) are the training pool, the 6,149 test
    images the test split; each image's shorter side is resized to `image_size`, then the centre is cropped.
    The files are read here rather than through torchvision's class, whose checksum test would refuse a copy
    re-saved by another tool; `download` fetches them with torchvision."""
    import torchvision
    from scipy.io import loadmat

    base = Path(root or ".").expanduser() / "flowers-102"
    if download:
        torchvision.datasets.Flowers102(str(base.parent), split="train", download=True)
    needed = [base / "jpg", base / "imagelabels.mat", base / "setid.mat"]
    if not all(p.exists() for p in needed):
        info = DATASETS["flowers102"][0]
        raise DataError(f"dataset 'flowers102' not found or incomplete under {base} (looked for jpg/, "
                        f"imagelabels.mat and setid.mat). On a machine with internet run "
                        f"`{fetch_command(info, str(base.parent))}` and copy the directory here")
    labels = np.asarray(loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"], dtype=np.int64).ravel() - 1
    ids = loadmat(base / "setid.mat", squeeze_me=True)
    arrays = []
    for keys in FLOWERS_SPLITS.values():
        numbers = np.concatenate([np.asarray(ids[k], dtype=np.int64).ravel() for k in keys])
        x = np.stack([_square(base / "jpg" / f"image_{n:05d}.jpg", image_size) for n in numbers])
        arrays += [x, labels[numbers - 1]]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _square(path: Path, size: int) -> np.ndarray:
    """The image at `path` as (3, size, size) uint8: shorter side resized to `size`, centre cropped."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = size / min(img.size)
        w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
        img = img.resize((w, h), Image.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8).transpose(2, 0, 1)


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
    DatasetInfo("flowers102", 3, 64, 102, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), pad=4, flip=True,
                train_size=2_040, test_size=6_149, torchvision="Flowers102", folder="flowers-102", resized=True),
    DatasetInfo("image_folder", 3, 64, 0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), pad=4, flip=True,
                resized=True),
]


def _loader(info: DatasetInfo) -> Callable[[str | None, bool, int], RawArrays]:
    own = {"digits": _load_digits, "image_folder": _load_image_folder, "flowers102": _load_flowers102}
    return own[info.name] if info.name in own else _load_torchvision(info)


DATASETS: dict[str, tuple[DatasetInfo, Callable[[str | None, bool, int], RawArrays]]] = {
    info.name: (info, _loader(info)) for info in _INFOS
}
DATASET_NAMES = tuple(DATASETS)


def dataset_info(name: str, image_size: int = 64, classes: int | None = None) -> DatasetInfo:
    info = DATASETS[name][0]
    if info.resized:
        info = dataclasses.replace(info, size=image_size, classes=info.classes or classes or 0)
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

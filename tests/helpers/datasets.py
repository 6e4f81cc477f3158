"""Write tiny datasets in the on-disk formats torchvision (and `image_folder`) read.

Shared by test_data.py (the loaders) and test_studies.py (every study file on tiny data).
torchvision checks the MD5 of the CIFAR and SVHN files against its own constants; the writers
for those formats take pytest's `monkeypatch` and point the constants at the files written
(pass None to only write the files, e.g. for `decaylab validate`, which checks paths, not content).
Imported by name (`from dataset_writers import ...`), like trial_helpers.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torchvision

# --------------------------------------------------------------------------------- images


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def rgb_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    """(n, 3, size, size) uint8; image 0 is black but for one marker pixel at (channel 1, row 2, col 5)."""
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    x[0] = 0
    x[0, 1, 2, 5] = 200
    return x


def gray_images(n: int, seed: int, size: int = 28) -> np.ndarray:
    """(n, size, size) uint8, MNIST-style (no channel axis)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


# ---------------------------------------------------------------------------------- CIFAR


def write_pickle(path: Path, obj: Any) -> list:
    """Pickle `obj` to `path`; returns torchvision's [filename, md5] entry for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))
    return [path.name, md5(path)]


def write_cifar10(root: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, monkeypatch=None) -> None:
    """root/cifar-10-batches-py/: the training images in 5 batches (NCHW arrays in), a test batch, meta."""
    folder = Path(root) / "cifar-10-batches-py"
    train_list = [write_pickle(folder / f"data_batch_{b + 1}",
                               {"data": xs.reshape(len(xs), 3072), "labels": ys.tolist()})
                  for b, (xs, ys) in enumerate(zip(np.array_split(x_train, 5), np.array_split(y_train, 5),
                                                   strict=True))]
    test_list = [write_pickle(folder / "test_batch",
                              {"data": x_test.reshape(len(x_test), 3072), "labels": y_test.tolist()})]
    _, meta_md5 = write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    if monkeypatch is not None:
        cls = torchvision.datasets.CIFAR10
        monkeypatch.setattr(cls, "train_list", train_list)
        monkeypatch.setattr(cls, "test_list", test_list)
        monkeypatch.setattr(cls, "meta", {"filename": "batches.meta", "key": "label_names", "md5": meta_md5})


def write_cifar100(root: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray, monkeypatch=None) -> None:
    """root/cifar-100-python/: train, test (fine and coarse labels) and meta."""
    folder = Path(root) / "cifar-100-python"
    train = write_pickle(folder / "train", {"data": x_train.reshape(len(x_train), 3072),
                                            "fine_labels": y_train.tolist(), "coarse_labels": [0] * len(y_train)})
    test = write_pickle(folder / "test", {"data": x_test.reshape(len(x_test), 3072),
                                          "fine_labels": y_test.tolist(), "coarse_labels": [0] * len(y_test)})
    _, meta_md5 = write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    if monkeypatch is not None:
        cls = torchvision.datasets.CIFAR100
        monkeypatch.setattr(cls, "train_list", [train])
        monkeypatch.setattr(cls, "test_list", [test])
        monkeypatch.setattr(cls, "meta", {"filename": "meta", "key": "fine_label_names", "md5": meta_md5})


# ----------------------------------------------------------------------------------- SVHN


def write_svhn(root: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray, monkeypatch=None) -> None:
    """root/train_32x32.mat and test_32x32.mat. Labels as SVHN stores them: digit 0 is labelled 10."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    def write(name: str, x: np.ndarray, y: np.ndarray) -> str:
        # SVHN's .mat stores X as (H, W, C, N) and y as (N, 1)
        scipy.io.savemat(root / name, {"X": x.transpose(2, 3, 1, 0), "y": y[:, None].astype(np.uint8)})
        return md5(root / name)

    split_list = {"train": ["", "train_32x32.mat", write("train_32x32.mat", x_train, y_train)],
                  "test": ["", "test_32x32.mat", write("test_32x32.mat", x_test, y_test)],
                  "extra": ["", "extra_32x32.mat", ""]}
    if monkeypatch is not None:
        monkeypatch.setattr(torchvision.datasets.SVHN, "split_list", split_list)


# ---------------------------------------------------------------------------- MNIST style


def write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist_style(root: Path, folder: str, x_train: np.ndarray, y_train: np.ndarray,
                      x_test: np.ndarray, y_test: np.ndarray) -> None:
    """root/<folder>/raw/ idx files (folder: MNIST or FashionMNIST); (N, H, W) images in.

    torchvision checks only that these files exist, so no MD5 patching is needed.
    """
    raw = Path(root) / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", x_train)
    write_idx(raw / "train-labels-idx1-ubyte", y_train)
    write_idx(raw / "t10k-images-idx3-ubyte", x_test)
    write_idx(raw / "t10k-labels-idx1-ubyte", y_test)


# ---------------------------------------------------------------------------- image folder


def write_png(path: Path, color: tuple[int, int, int], size: int = 12) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def write_image(path: Path, pixels: np.ndarray) -> None:
    """An (H, W, 3) uint8 array as an image file; the format follows the suffix (.png, .JPEG, ...)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None)


def write_tiny_imagenet(root: Path, classes: list[str], train_per_class: int, val_per_class: int,
                        size: int = 64, seed: int = 0) -> None:
    """Tiny ImageNet's layout after the usual val re-arrangement, random pixels:

    root/train/<wnid>/images/<wnid>_<i>.JPEG, root/val/<wnid>/val_<i>.JPEG, and the archive's
    unlabelled root/test/images/test_<i>.JPEG (no class folders), which loaders must not take for
    the labelled split.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)

    def pixels() -> np.ndarray:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)

    for wnid in classes:
        for i in range(train_per_class):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", pixels())
        for i in range(val_per_class):
            write_image(root / "val" / wnid / f"val_{wnid}_{i}.JPEG", pixels())
    for i in range(2):
        write_image(root / "test" / "images" / f"test_{i}.JPEG", pixels())


# ---------------------------------------------------------------------------- Flowers-102


def write_flowers102(root: Path, labels: np.ndarray, splits: dict[str, list[int]], size: tuple[int, int] = (24, 16),
                     seed: int = 0) -> None:
    """Oxford Flowers-102 as torchvision lays it out: root/flowers-102/jpg/image_NNNNN.jpg (1-based numbers),
    imagelabels.mat (`labels`, 1-based classes, one per image) and setid.mat (`trnid`, `valid`, `tstid`: image
    numbers). `labels` are 0-based here; images are `size` (width, height), uniform colour per image, so a
    resize and centre crop keeps it."""
    from scipy.io import savemat

    base = Path(root) / "flowers-102"
    rng = np.random.default_rng(seed)
    for number in range(1, len(labels) + 1):
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        write_image(base / "jpg" / f"image_{number:05d}.jpg", np.broadcast_to(colour, (size[1], size[0], 3)).copy())
    savemat(base / "imagelabels.mat", {"labels": (np.asarray(labels) + 1)[None, :]})
    savemat(base / "setid.mat", {k: np.asarray(v)[None, :] for k, v in splits.items()})

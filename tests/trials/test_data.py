"""Datasets: splits, subsets, label noise, augmentation and the on-disk formats."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.datasets import (
    rgb_images,
    write_cifar10,
    write_cifar100,
    write_flowers102,
    write_mnist_style,
    write_png,
    write_svhn,
    write_tiny_imagenet,
)
from helpers.trial import example_multiset
from sklearn.datasets import load_digits

from trials import data as data_mod
from trials.config import DataConfig
from trials.data import DataError, augment, balanced_subset, stratified_split, symmetric_noise

DIGITS_N = 1797


def digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The digits as trials.data stores them: uint8 (N, 1, 8, 8) in 0..255."""
    d = load_digits()
    return np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None], d.target.astype(np.int64)


def load(label_noise: float = 0.0, **kwargs) -> data_mod.TrialData:
    return data_mod.load(DataConfig(dataset="digits", **kwargs), label_noise)


# ------------------------------------------------------------------------------- splits


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.37])
def test_stratified_split_partitions_the_indices_per_class(fraction):
    _, y = digits_raw()
    kept, held = stratified_split(y, fraction, np.random.default_rng(0))
    assert len(np.intersect1d(kept, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(y)))
    for c in range(10):
        n_c = int((y == c).sum())
        assert abs(int((y[held] == c).sum()) - fraction * n_c) <= 1


def test_digits_splits_are_disjoint_and_cover_the_dataset():
    x, y = digits_raw()
    d = load(val_fraction=0.1, test_fraction=0.2)
    sizes = [len(d.train), len(d.val), len(d.test)]
    assert sum(sizes) == DIGITS_N and min(sizes) > 0
    # As multisets of (image, label): digits has duplicate images, so a set comparison would
    # hide an example counted twice; a multiset union equal to the dataset is a partition.
    union = (example_multiset(d.train.x, d.train.y) + example_multiset(d.val.x, d.val.y)
             + example_multiset(d.test.x, d.test.y))
    assert union == example_multiset(x, y)


def test_digits_splits_are_stratified():
    d = load(val_fraction=0.1, test_fraction=0.2)
    train, val, test = (np.bincount(s.y.numpy(), minlength=10) for s in (d.train, d.val, d.test))
    total = train + val + test
    assert np.all(np.abs(test - 0.2 * total) <= 1), "test split not stratified"
    assert np.all(np.abs(val - 0.1 * (train + val)) <= 1), "val split not stratified"


def test_splits_have_the_trial_data_layout():
    d = load()
    for split in (d.train, d.val, d.test):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 8, 8) and split.x.shape[0] == split.y.shape[0]
    assert int(d.train.x.max()) == 255 and d.info.classes == 10


def splits_equal(a: data_mod.TrialData, b: data_mod.TrialData) -> bool:
    return all(torch.equal(getattr(a, s).x, getattr(b, s).x) and torch.equal(getattr(a, s).y, getattr(b, s).y)
               for s in ("train", "val", "test"))


def test_same_split_seed_gives_identical_tensors():
    assert splits_equal(load(split_seed=3), load(split_seed=3))


def test_different_split_seed_gives_a_different_split():
    a, b = load(split_seed=0), load(split_seed=1)
    assert example_multiset(a.val.x, a.val.y) != example_multiset(b.val.x, b.val.y)
    assert example_multiset(a.test.x, a.test.y) != example_multiset(b.test.x, b.test.y)


@pytest.mark.parametrize("n", [100, 105, 333])
def test_subset_is_class_balanced_with_exactly_n_examples(n):
    full, d = load(), load(subset=n)
    assert len(d.train) == n
    counts = np.bincount(d.train.y.numpy(), minlength=10)
    assert counts.max() - counts.min() <= 1
    assert not example_multiset(d.train.x, d.train.y) - example_multiset(full.train.x, full.train.y), \
        "the subset must come from the training split"
    assert example_multiset(d.val.x, d.val.y) == example_multiset(full.val.x, full.val.y)
    assert example_multiset(d.test.x, d.test.y) == example_multiset(full.test.x, full.test.y)


def test_subset_larger_than_a_class_is_a_data_error():
    with pytest.raises(DataError, match="subset"):
        load(subset=5000)


def test_balanced_subset_gives_extra_examples_to_the_first_classes():
    y = np.repeat(np.arange(4), 10)
    idx = balanced_subset(y, 6, np.random.default_rng(0))
    assert np.bincount(y[idx], minlength=4).tolist() == [2, 2, 1, 1]


# --------------------------------------------------------------------------- label noise


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.4])
def test_label_noise_flips_exactly_round_rate_n_training_labels(rate):
    clean, d = load(), load(label_noise=rate)
    n = len(d.train)
    k = round(rate * n)
    flipped = d.train.y != clean.train.y
    assert int(flipped.sum()) == k
    assert torch.equal(flipped, d.noisy)
    assert d.label_noise_actual == k / n
    assert torch.equal(d.clean_train_labels, clean.train.y)
    assert torch.equal(d.train.x, clean.train.x), "noise changes labels, not images"
    assert bool((d.train.y[d.noisy] != d.clean_train_labels[d.noisy]).all())
    assert d.train.y.min() >= 0 and d.train.y.max() < 10
    assert torch.equal(d.test.y, clean.test.y), "test labels changed"
    for split in ("val", "test"):
        assert torch.equal(getattr(d, split).x, getattr(clean, split).x)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.4])
def test_validation_labels_get_the_training_rate_of_noise_unless_clean_is_asked(rate):
    """Selection on noisy validation labels is what a user without the true labels does (the default)."""
    clean, same, oracle = load(), load(label_noise=rate), load(label_noise=rate, val_label_noise="clean")
    n_val = len(clean.val)
    flipped = same.val.y != clean.val.y
    assert int(flipped.sum()) == round(rate * n_val)
    assert bool((same.val.y >= 0).all() and (same.val.y < 10).all())
    assert torch.equal(oracle.val.y, clean.val.y), "val_label_noise: clean keeps the true labels"
    assert torch.equal(same.val.x, clean.val.x) and torch.equal(same.train.y, oracle.train.y)
    assert not torch.equal(flipped, same.noisy[:n_val]), "the validation noise is its own draw"


def test_no_label_noise_flips_nothing():
    d = load(label_noise=0.0)
    assert not bool(d.noisy.any()) and d.label_noise_actual == 0.0
    assert torch.equal(d.train.y, d.clean_train_labels)


def test_lower_noise_rate_flips_a_subset_of_a_higher_rate():
    masks = [load(label_noise=r).noisy for r in (0.1, 0.2, 0.4)]
    for low, high in itertools.pairwise(masks):
        assert bool((low <= high).all()), "a lower rate's flipped set is not inside a higher rate's"
    low, high = load(label_noise=0.1), load(label_noise=0.4)
    assert torch.equal(low.train.y[low.noisy], high.train.y[low.noisy]), "the wrong label changed with the rate"


def test_symmetric_noise_reaches_every_other_class():
    y = np.zeros(5000, dtype=np.int64)
    noisy, flipped = symmetric_noise(y, 0.5, 10, seed=0)
    assert flipped.sum() == 2500
    assert set(np.unique(noisy[flipped]).tolist()) == set(range(1, 10))


# -------------------------------------------------------------------------- augmentation


def images(n: int = 32, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("pad", "flip"), [(2, True), (1, False), (0, True)])
def test_augment_is_a_crop_of_the_zero_padded_input_and_maybe_a_flip(pad, flip):
    x = images()
    out = augment(x, pad, flip, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[2:]
    moved = 0
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        candidates = crops + ([c.flip(-1) for c in crops] if flip else [])
        assert any(torch.equal(out[i], c) for c in candidates), f"image {i} is not a crop/flip of its input"
        moved += not torch.equal(out[i], x[i])
    assert moved >= len(x) // 4, "augmentation hardly changes anything"


def test_augment_is_reproducible_with_the_same_generator():
    x = images()
    a = augment(x, 2, True, torch.Generator().manual_seed(7))
    b = augment(x, 2, True, torch.Generator().manual_seed(7))
    c = augment(x, 2, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_without_pad_or_flip_is_the_identity():
    x = images()
    assert torch.equal(augment(x, 0, False, torch.Generator().manual_seed(0)), x)


# ------------------------------------------------------------------------ on-disk formats


def assert_marker_image(split: data_mod.Split, label: int) -> None:
    """The image with the marker pixel landed in NCHW at [1, 2, 5] with its label."""
    hits = (split.x[:, 1, 2, 5] == 200) & (split.x.flatten(1).sum(1) == 200)
    assert int(hits.sum()) == 1, "the marker pixel is not at (channel 1, row 2, col 5)"
    assert int(split.y[hits][0]) == label


def assert_layout(d: data_mod.TrialData, train: tuple, test: tuple, shape: tuple) -> None:
    for split in (d.train, d.val, d.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == shape
        assert split.y.dtype == torch.int64
    train_seen = example_multiset(d.train.x, d.train.y) + example_multiset(d.val.x, d.val.y)
    assert train_seen == example_multiset(*train)
    assert example_multiset(d.test.x, d.test.y) == example_multiset(*test)


def test_cifar10_files_load(tmp_path, monkeypatch):
    x_train, x_test = rgb_images(10, 0), rgb_images(4, 1)
    y_train, y_test = np.arange(10) % 10, np.array([3, 1, 4, 1])
    write_cifar10(tmp_path, x_train, y_train, x_test, y_test, monkeypatch)  # 5 batches of 2

    d = data_mod.load(DataConfig(dataset="cifar10", root=str(tmp_path), val_fraction=0.0), 0.0)
    assert (len(d.train), len(d.val), len(d.test)) == (10, 0, 4)
    assert_layout(d, (x_train, y_train), (x_test, y_test), (3, 32, 32))
    assert_marker_image(d.train, label=0)
    assert_marker_image(d.test, label=3)
    assert d.info.classes == 10 and d.info.channels == 3


def test_cifar100_files_load(tmp_path, monkeypatch):
    x_train, x_test = rgb_images(6, 2), rgb_images(3, 3)
    y_train, y_test = np.array([99, 0, 42, 7, 7, 50]), np.array([12, 99, 0])
    write_cifar100(tmp_path, x_train, y_train, x_test, y_test, monkeypatch)

    d = data_mod.load(DataConfig(dataset="cifar100", root=str(tmp_path), val_fraction=0.0), 0.0)
    assert_layout(d, (x_train, y_train), (x_test, y_test), (3, 32, 32))
    assert_marker_image(d.train, label=99)
    assert_marker_image(d.test, label=12)
    assert d.info.classes == 100


def test_svhn_files_load_with_label_10_as_digit_0(tmp_path, monkeypatch):
    x_train, x_test = rgb_images(5, 4), rgb_images(3, 5)
    y_train, y_test = np.array([10, 1, 2, 10, 9]), np.array([10, 5, 10])  # SVHN labels digit 0 as 10
    write_svhn(tmp_path, x_train, y_train, x_test, y_test, monkeypatch)

    d = data_mod.load(DataConfig(dataset="svhn", root=str(tmp_path), val_fraction=0.0), 0.0)
    assert_layout(d, (x_train, y_train % 10), (x_test, y_test % 10), (3, 32, 32))
    assert_marker_image(d.train, label=0)
    assert_marker_image(d.test, label=0)
    assert int(d.train.y.max()) == 9


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_style_files_load(tmp_path, dataset, folder):
    rng = np.random.default_rng(6)
    x_train, x_test = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), rng.integers(0, 256, (4, 28, 28),
                                                                                          dtype=np.uint8)
    x_train[0] = 0
    x_train[0, 3, 17] = 201  # row 3, column 17
    y_train, y_test = np.array([7, 0, 1, 2, 3, 4, 5, 6]), np.array([9, 8, 7, 6])
    write_mnist_style(tmp_path, folder, x_train, y_train, x_test, y_test)

    d = data_mod.load(DataConfig(dataset=dataset, root=str(tmp_path), val_fraction=0.0), 0.0)
    assert_layout(d, (x_train[:, None], y_train), (x_test[:, None], y_test), (1, 28, 28))
    hits = (d.train.x[:, 0, 3, 17] == 201) & (d.train.x.flatten(1).sum(1) == 201)
    assert int(hits.sum()) == 1 and int(d.train.y[hits][0]) == 7


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "svhn", "mnist", "fashion_mnist"])
def test_missing_dataset_is_a_data_error_that_says_where_and_how(tmp_path, dataset):
    root = tmp_path / "not-downloaded"
    with pytest.raises(DataError) as info:
        data_mod.load(DataConfig(dataset=dataset, root=str(root)), 0.0)
    message = str(info.value)
    assert str(root) in message
    assert "download" in message


def test_image_folder_loads_train_and_val_class_folders(tmp_path):
    colors = {"cat": (10, 20, 30), "dog": (200, 100, 50)}
    for cls, color in colors.items():
        for i in range(3):
            write_png(tmp_path / "train" / cls / f"{i}.png", color)
        write_png(tmp_path / "val" / cls / "0.png", color)
    cfg = DataConfig(dataset="image_folder", root=str(tmp_path), image_size=8, val_fraction=0.0)
    d = data_mod.load(cfg, 0.0)
    assert (len(d.train), len(d.test)) == (6, 2)
    assert d.info.classes == 2 and d.info.size == 8
    for split in (d.train, d.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 8, 8)
        for label, cls in enumerate(sorted(colors)):  # classes are the sorted folder names
            color = torch.tensor(colors[cls], dtype=torch.uint8)[:, None, None]
            assert bool((split.x[split.y == label] == color).all()), f"{cls} pixels"
    assert Counter(d.train.y.tolist()) == {0: 3, 1: 3}


def test_image_folder_without_val_is_a_data_error(tmp_path):
    write_png(tmp_path / "train" / "cat" / "0.png", (1, 2, 3))
    with pytest.raises(DataError, match="val"):
        data_mod.load(DataConfig(dataset="image_folder", root=str(tmp_path)), 0.0)


def test_image_folder_skips_an_unlabelled_test_folder(tmp_path):
    """Tiny ImageNet ships test/images/ without labels: the labelled val/<class>/ is the test split."""
    write_tiny_imagenet(tmp_path, ["n01", "n02"], train_per_class=2, val_per_class=1, size=8)
    assert (tmp_path / "test" / "images").is_dir()
    d = data_mod.load(DataConfig(dataset="image_folder", root=str(tmp_path), image_size=8, val_fraction=0.0), 0.0)
    assert (len(d.train), len(d.test)) == (4, 2)
    assert sorted(d.test.y.tolist()) == [0, 1]


def test_flowers102_trains_on_train_and_val_and_tests_on_test(tmp_path):
    """The published train and val splits are the training pool, tstid the test split; labels are 1-based on
    disk; every image is resized on its shorter side and centre cropped to data.image_size."""
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 101])
    write_flowers102(tmp_path, labels, {"trnid": [1, 2, 3], "valid": [4, 5, 6], "tstid": [7, 8, 9, 10]})
    d = data_mod.load(DataConfig(dataset="flowers102", root=str(tmp_path), image_size=8, val_fraction=0.0), 0.0)
    assert (len(d.train), len(d.test)) == (6, 4)
    assert d.info.classes == 102 and d.info.size == 8
    assert sorted(d.train.y.tolist()) == [0, 0, 1, 1, 2, 2] and sorted(d.test.y.tolist()) == [0, 1, 2, 101]
    assert d.train.x.shape[1:] == (3, 8, 8) and d.train.x.dtype == torch.uint8
    flat = d.test.x.flatten(2).float()  # one colour per image survives the resize and crop (JPEG: ±a few)
    assert float((flat - flat.median(dim=2, keepdim=True).values).abs().max()) <= 12


def test_flowers102_missing_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as info:
        data_mod.load(DataConfig(dataset="flowers102", root=str(tmp_path)), 0.0)
    assert "flowers-102" in str(info.value) and "Flowers102" in str(info.value)

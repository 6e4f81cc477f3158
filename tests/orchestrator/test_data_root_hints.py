"""A missing dataset's hint offers `data.download` only for the datasets that download: torchvision's and
Flowers-102. image_folder (Tiny ImageNet) reads the files it is given and would ignore it."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.study import checks
from orchestrator.study.checks import DOWNLOAD_HOSTS, check_data_root, check_download
from orchestrator.study.schema import StudyData
from trials.datasets import DATASETS


def refusal(tmp_path, **data) -> UserError:
    with pytest.raises(UserError) as e:
        check_data_root(StudyData(**data), "study.yaml")
    return e.value


@pytest.mark.parametrize("download", [False, True])
def test_a_missing_image_folder_is_never_told_to_download(tmp_path, download):
    e = refusal(tmp_path, dataset="image_folder", root=str(tmp_path / "tiny-imagenet-200"), download=download)
    assert "does not exist" in e.reason
    assert "download" not in e.hint.replace("never downloaded", "")
    assert "<root>/train/<class>" in e.hint


def test_an_image_folder_without_a_root_is_told_what_to_put_there(tmp_path):
    e = refusal(tmp_path, dataset="image_folder")
    assert e.reason == "data.root: required for dataset image_folder"
    assert "data.download" not in e.hint and "<root>/train/<class>" in e.hint


@pytest.mark.parametrize("dataset", ["cifar10", "flowers102"])
def test_a_missing_downloadable_dataset_is_offered_the_download(tmp_path, dataset):
    e = refusal(tmp_path, dataset=dataset, root=str(tmp_path / "data"))
    assert "data.download: true" in e.hint and "download=True" in e.hint  # and the command to fetch it elsewhere


def test_a_downloadable_dataset_with_download_on_may_be_missing(tmp_path):
    check_data_root(StudyData(dataset="cifar10", root=str(tmp_path / "data"), download=True), "study.yaml")


def test_every_dataset_that_downloads_has_a_server_to_probe():
    assert {name for name, (info, _) in DATASETS.items() if info.torchvision} <= set(DOWNLOAD_HOSTS)


@pytest.mark.parametrize("dataset", [name for name, (info, _) in DATASETS.items() if info.torchvision])
def test_a_download_without_a_network_is_refused_for_every_dataset_that_downloads(tmp_path, monkeypatch, dataset):
    monkeypatch.setattr(checks, "reachable", lambda host, port: False)  # no traffic leaves the test
    with pytest.raises(UserError) as e:
        check_download(StudyData(dataset=dataset, root=str(tmp_path / "data"), download=True), "study.yaml")
    assert "cannot be reached" in e.value.reason and "download=True" in e.value.hint

"""deeplab.datasets.descriptors: manifest.json first, the original three descriptors otherwise."""

import pytest

from deeplab import storage
from deeplab.datasets import descriptors
from deeplab.errors import UserInputError


def _manifest(**overrides):
  manifest = {
      "format_version": 1, "name": "synthetic", "fingerprint": "0123456789abcdef",
      "converter": {"format": "synthetic", "version": "1", "options": {}},
      "num_classes": 3, "ignore_label": 255, "class_names": ["background", "disc", "bar"],
      "image_format": "jpeg",
      "splits": {"train": {"num_examples": 40, "shards": [], "max_height": 64, "max_width": 48},
                 "val": {"num_examples": 8, "shards": []}},
  }
  manifest.update(overrides)
  return manifest


@pytest.fixture(params=["local", "gcs"])
def dataset_dir(request, tmp_path):
  if request.param == "local":
    return str(tmp_path / "ds")
  return f"gs://{request.getfixturevalue('gcs_bucket')}/datasets/synthetic/0123"


def test_manifest_wins(dataset_dir):
  storage.write_json(storage.join(dataset_dir, "manifest.json"), _manifest())
  info = descriptors.get_dataset_info(dataset_dir, "pascal_voc_seg")
  assert info == descriptors.DatasetInfo(
      name="synthetic", num_classes=3, ignore_label=255, splits_to_sizes={"train": 40, "val": 8},
      class_names=("background", "disc", "bar"), fingerprint="0123456789abcdef",
      max_image_size={"train": (64, 48)})
  assert info.num_examples("val") == 8
  with pytest.raises(UserInputError, match=r"'tset'.*\['train', 'val'\]"):
    info.num_examples("tset")


@pytest.mark.parametrize("name,num_classes,ignore_label,split,size", [
    ("pascal_voc_seg", 21, 255, "train_aug", 10582),
    ("cityscapes", 19, 255, "val_fine", 500),
    ("ade20k", 151, 0, "train", 20210),
])
def test_original_descriptors(tmp_path, name, num_classes, ignore_label, split, size):
  info = descriptors.get_dataset_info(str(tmp_path), name)
  assert (info.name, info.num_classes, info.ignore_label) == (name, num_classes, ignore_label)
  assert info.num_examples(split) == size
  assert info.fingerprint is None and info.max_image_size == {} and info.class_names is None


def test_cityscapes_uses_final_split_names(tmp_path):
  info = descriptors.get_dataset_info(str(tmp_path), "cityscapes")
  assert set(info.splits_to_sizes) == {"train_fine", "train_coarse", "trainval_fine",
                                       "trainval_coarse", "val_fine", "test_fine"}


def test_unknown_name_lists_valid_ones(tmp_path):
  with pytest.raises(UserInputError, match=r"'coco'.*\['ade20k', 'cityscapes', 'pascal_voc_seg'\]"):
    descriptors.get_dataset_info(str(tmp_path), "coco")
  with pytest.raises(UserInputError, match="manifest.json"):
    descriptors.get_dataset_info(str(tmp_path))


@pytest.mark.parametrize("overrides,message", [
    ({"num_classes": "3"}, "num_classes"),
    ({"num_classes": 0}, "at least 1"),
    ({"format_version": 2}, "format_version"),
    ({"splits": {"train": {}}}, "num_examples"),
    ({"class_names": ["a"]}, "class_names"),
    ({"ignore_label": None}, "ignore_label"),
])
def test_bad_manifest_names_file_and_field(tmp_path, overrides, message):
  storage.write_json(str(tmp_path / "manifest.json"), _manifest(**overrides))
  with pytest.raises(UserInputError, match=message) as err:
    descriptors.get_dataset_info(str(tmp_path))
  assert "manifest.json" in str(err.value)


def test_manifest_not_json(tmp_path):
  (tmp_path / "manifest.json").write_text("{not json")
  with pytest.raises(UserInputError, match="manifest.json.*JSON"):
    descriptors.get_dataset_info(str(tmp_path))

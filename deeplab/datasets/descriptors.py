"""What a dataset is: classes, ignore label, split sizes.

A dataset describes itself through its `manifest.json` (written last by `build-tfrecords`).
TFRecords made by the original DeepLab scripts have no manifest; for them the three
descriptors of the original data_generator.py (docs/compatibility.md) are built in and
chosen by name. Nobody edits this file to add a dataset: write a manifest instead.
"""

import dataclasses
import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from deeplab import storage
from deeplab.datasets import features
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.datasets")

MANIFEST_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Facts about a converted dataset.

  Attributes:
    name: dataset name (manifest 'name' or the original descriptor key).
    num_classes: number of classes, background included.
    ignore_label: label value excluded from loss and metrics.
    splits_to_sizes: number of examples per split.
    class_names: class names when known.
    fingerprint: the manifest fingerprint; None for original-layout datasets.
    max_image_size: split -> (max height, max width) when the manifest records it, else empty.
  """
  name: str
  num_classes: int
  ignore_label: int
  splits_to_sizes: Dict[str, int]
  class_names: Optional[Tuple[str, ...]] = None
  fingerprint: Optional[str] = None
  max_image_size: Dict[str, Tuple[int, int]] = dataclasses.field(default_factory=dict)

  def num_examples(self, split: str) -> int:
    """Examples in `split`; raises UserInputError listing the known splits."""
    if split not in self.splits_to_sizes:
      raise UserInputError(
          f"data split name {split!r} not recognized for dataset {self.name!r}; its splits are "
          f"{sorted(self.splits_to_sizes)}")
    return self.splits_to_sizes[split]


# The original data_generator.py descriptors (final upstream).
_ORIGINAL = {
    "pascal_voc_seg": DatasetInfo(
        name="pascal_voc_seg", num_classes=21, ignore_label=255,
        splits_to_sizes={"train": 1464, "train_aug": 10582, "trainval": 2913, "val": 1449}),
    "cityscapes": DatasetInfo(
        name="cityscapes", num_classes=19, ignore_label=255,
        splits_to_sizes={"train_fine": 2975, "train_coarse": 22973, "trainval_fine": 3475,
                         "trainval_coarse": 23473, "val_fine": 500, "test_fine": 1525}),
    "ade20k": DatasetInfo(
        name="ade20k", num_classes=151, ignore_label=0,
        splits_to_sizes={"train": 20210, "val": 2000}),
}
ORIGINAL_DATASETS = tuple(sorted(_ORIGINAL))


def original_descriptor(dataset_name: str) -> DatasetInfo:
  """One of the built-in descriptors; raises UserInputError listing the valid names."""
  if dataset_name not in _ORIGINAL:
    raise UserInputError(
        f"unknown dataset {dataset_name!r}: without a manifest.json the built-in datasets are "
        f"{list(ORIGINAL_DATASETS)}; pass one of them as --dataset or convert the data with "
        "`python -m deeplab build-tfrecords`, which writes a manifest.json")
  return _ORIGINAL[dataset_name]


def get_dataset_info(dataset_dir: str, dataset_name: Optional[str] = None) -> DatasetInfo:
  """Reads `<dataset_dir>/manifest.json` (local or gs://), else the original descriptor.

  Args:
    dataset_dir: folder (or gs:// prefix) holding the `<split>-*` TFRecord shards.
    dataset_name: used only when there is no manifest: pascal_voc_seg, cityscapes or ade20k.

  Returns:
    The dataset's DatasetInfo.

  Raises:
    UserInputError: bad manifest, or no manifest and an unknown/missing dataset_name.
  """
  manifest_uri = storage.join(dataset_dir, features.MANIFEST)
  if storage.exists(manifest_uri):
    info = manifest_to_info(storage.read_json(manifest_uri), manifest_uri)
    if dataset_name and dataset_name not in (info.name, *ORIGINAL_DATASETS):
      log.warning("dataset %r requested but %s describes %r; using the manifest",
                      dataset_name, manifest_uri, info.name)
    return info
  if not dataset_name:
    raise UserInputError(
        f"{dataset_dir} has no {features.MANIFEST}; convert the data with `python -m deeplab "
        f"build-tfrecords`, or for TFRecords made by the original DeepLab scripts pass --dataset "
        f"(one of {list(ORIGINAL_DATASETS)})")
  return original_descriptor(dataset_name)


def _field(manifest: Mapping[str, Any], key: str, kind, where: str):
  value = manifest.get(key)
  if not isinstance(value, kind) or isinstance(value, bool):
    raise UserInputError(
        f"{where}: field {key!r} should be {getattr(kind, '__name__', kind)} but is {value!r}; "
        "regenerate the manifest with `python -m deeplab build-tfrecords`")
  return value


def manifest_to_info(manifest: Any, where: str = features.MANIFEST) -> DatasetInfo:
  """Validates a parsed manifest.json (INTERFACES.md) and turns it into a DatasetInfo."""
  if not isinstance(manifest, dict):
    raise UserInputError(f"{where} should hold a JSON object, got {type(manifest).__name__}")
  version = manifest.get("format_version", MANIFEST_FORMAT_VERSION)
  if version != MANIFEST_FORMAT_VERSION:
    raise UserInputError(
        f"{where} has format_version {version!r}; this version reads "
        f"{MANIFEST_FORMAT_VERSION}: upgrade deeplab or reconvert the dataset")
  name = _field(manifest, "name", str, where)
  num_classes = _field(manifest, "num_classes", int, where)
  ignore_label = _field(manifest, "ignore_label", int, where)
  splits = _field(manifest, "splits", dict, where)
  if num_classes < 1:
    raise UserInputError(f"{where}: num_classes is {num_classes}, expected at least 1")
  sizes, max_sizes = {}, {}
  for split, entry in splits.items():
    if not isinstance(entry, dict):
      raise UserInputError(f"{where}: splits[{split!r}] should be an object, got {entry!r}")
    sizes[split] = _field(entry, "num_examples", int, f"{where} splits[{split!r}]")
    if isinstance(entry.get("max_height"), int) and isinstance(entry.get("max_width"), int):
      max_sizes[split] = (entry["max_height"], entry["max_width"])
  class_names = manifest.get("class_names")
  if class_names is not None:
    if not isinstance(class_names, list) or len(class_names) != num_classes:
      raise UserInputError(
          f"{where}: class_names should list {num_classes} names (num_classes), got "
          f"{class_names!r}")
    class_names = tuple(str(c) for c in class_names)
  fingerprint = manifest.get("fingerprint")
  return DatasetInfo(name=name, num_classes=num_classes, ignore_label=ignore_label,
                     splits_to_sizes=sizes, class_names=class_names,
                     fingerprint=str(fingerprint) if fingerprint else None,
                     max_image_size=max_sizes)

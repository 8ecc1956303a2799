"""Cityscapes fine annotations, like build_cityscapes_data.py.

Images: leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png; labels:
gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png. When a tree has no labelTrainIds files
(cityscapesScripts' createTrainIdLabelImgs.py was not run) the *_gtFine_labelIds.png files are
mapped to trainIds here. Split folders train/val/test become train_fine/val_fine/test_fine, the
names of the final DeepLab descriptor.
"""

import glob
import os

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              require_dir, resolve_classes, select_splits)
from deeplab.errors import UserInputError

NUM_SHARDS = 10
SPLIT_FOLDERS = {"train_fine": "train", "val_fine": "val", "test_fine": "test"}
CLASS_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
               "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
               "bus", "train", "motorcycle", "bicycle")
# cityscapesScripts labels.py: labelId -> trainId for ids 0..33 (255 = ignored); any other
# value cannot come from a labelIds PNG.
_TRAIN_IDS = (255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255,
              6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18)
LABEL_ID_TO_TRAIN_ID = _TRAIN_IDS + (-1,) * (256 - len(_TRAIN_IDS))
_IMAGE_POSTFIX = "_leftImg8bit.png"
_TRAIN_ID_POSTFIX = "_gtFine_labelTrainIds.png"
_LABEL_ID_POSTFIX = "_gtFine_labelIds.png"


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  image_root = require_dir(os.path.join(source, "leftImg8bit"), "image folder",
                           "pass the Cityscapes root (with leftImg8bit/ and gtFine/) as --source")
  label_root = require_dir(os.path.join(source, "gtFine"), "label folder",
                           "download gtFine_trainvaltest and unpack it into --source")
  found = [s for s, folder in SPLIT_FOLDERS.items()
           if os.path.isdir(os.path.join(image_root, folder))]
  splits = select_splits(found, opts.splits, source)
  use_train_ids = bool(glob.glob(os.path.join(label_root, "*", "*", "*" + _TRAIN_ID_POSTFIX)))
  if not use_train_ids and not glob.glob(os.path.join(label_root, "*", "*",
                                                      "*" + _LABEL_ID_POSTFIX)):
    raise UserInputError(f"'{label_root}' has no *{_TRAIN_ID_POSTFIX} nor *{_LABEL_ID_POSTFIX} "
                         "files; unpack gtFine_trainvaltest.zip into --source")
  label_postfix = _TRAIN_ID_POSTFIX if use_train_ids else _LABEL_ID_POSTFIX
  examples = []
  for split in splits:
    folder = SPLIT_FOLDERS[split]
    for path in sorted(glob.glob(os.path.join(image_root, folder, "*", "*" + _IMAGE_POSTFIX))):
      city = os.path.basename(os.path.dirname(path))
      stem = os.path.basename(path)[:-len(_IMAGE_POSTFIX)]
      examples.append(example(source, split, stem, path,
                              os.path.join(label_root, folder, city, stem + label_postfix)))
  num_classes, names, ignore = resolve_classes(opts, defaults=(19, CLASS_NAMES, 255))
  spec = DatasetSpec(name=opts.dataset_name or "cityscapes", num_classes=num_classes,
                     ignore_label=ignore, class_names=names, examples=examples,
                     split_names=splits, default_num_shards=NUM_SHARDS)
  if not use_train_ids:
    spec.label_map = LABEL_ID_TO_TRAIN_ID
    spec.label_map_name = "Cityscapes labelId (expected 0..33)"
    spec.notes.append("no *_labelTrainIds.png: mapping *_labelIds.png to trainIds")
  return spec

"""PASCAL VOC 2012 (build_voc2012_data.py + remove_gt_colormap.py in one step).

Splits are the list files in ImageSets/Segmentation (train, val, trainval, ...). Labels come
from SegmentationClassRaw when it exists, otherwise from the palette PNGs in SegmentationClass,
whose palette indices are the class indices (converted on the fly by validate.check_label).
"""

import os

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              read_list_file, require_dir, resolve_classes,
                                              select_splits)
from deeplab.errors import UserInputError

NUM_SHARDS = 4
CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tv")


def find_root(source: str) -> str:
  """The VOC2012 folder: `source` itself, or VOC2012 / VOCdevkit/VOC2012 under it."""
  for root in (source, os.path.join(source, "VOC2012"),
               os.path.join(source, "VOCdevkit", "VOC2012")):
    if os.path.isdir(os.path.join(root, "ImageSets", "Segmentation")):
      return root
  raise UserInputError(f"'{source}' is not a VOC2012 tree: no ImageSets/Segmentation under it "
                       "(nor under VOC2012/ or VOCdevkit/VOC2012/); pass the VOC2012 folder as "
                       "--source")


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  root = find_root(source)
  list_dir = os.path.join(root, "ImageSets", "Segmentation")
  image_dir = require_dir(os.path.join(root, "JPEGImages"), "image folder",
                          "VOC images must be in JPEGImages/")
  raw_dir = os.path.join(root, "SegmentationClassRaw")
  label_dir = raw_dir if os.path.isdir(raw_dir) else os.path.join(root, "SegmentationClass")
  require_dir(label_dir, "label folder", "expected SegmentationClassRaw/ or SegmentationClass/")
  found = sorted(os.path.splitext(f)[0] for f in os.listdir(list_dir)
                 if f.endswith(".txt") and not f.startswith("."))
  splits = select_splits(found, opts.splits, source)
  ext = opts.image_format
  examples = []
  for split in splits:
    list_path = os.path.join(list_dir, split + ".txt")
    for stem in read_list_file(list_path, os.path.relpath(list_path, source)):
      examples.append(example(source, split, stem, os.path.join(image_dir, f"{stem}.{ext}"),
                              os.path.join(label_dir, stem + ".png")))
  num_classes, names, ignore = resolve_classes(opts, defaults=(21, CLASS_NAMES, 255))
  notes = [f"labels from {os.path.basename(label_dir)}/"
           + (" (palette PNGs converted to class indices)" if label_dir != raw_dir else "")]
  return DatasetSpec(name=opts.dataset_name or "pascal_voc_seg", num_classes=num_classes,
                     ignore_label=ignore, class_names=names, examples=examples,
                     split_names=splits, default_num_shards=NUM_SHARDS, notes=notes)

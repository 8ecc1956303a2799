"""A plain folder of your own: images/ + masks/ with matching stems.

Splits come from list files (splits/<name>.txt by default, or --split_lists name=path,...), or
when there are none from a seeded shuffle with --val_ratio (train/val). num_classes and class
names come from the flags or a small JSON (--classes_json, default <source>/classes.json).
"""

import os

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              require_dir, resolve_classes, select_splits,
                                              split_stems)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  image_dir = require_dir(os.path.join(source, "images"), "image folder",
                          "the folder format expects images/ and masks/ under --source")
  mask_dir = require_dir(os.path.join(source, "masks"), "mask folder",
                         "the folder format expects images/ and masks/ under --source")
  images = {}
  for name in sorted(os.listdir(image_dir)):
    stem, ext = os.path.splitext(name)
    if name.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS:
      continue
    images.setdefault(stem, []).append(os.path.join(image_dir, name))
  stems_by_split = split_stems(source, opts, images)
  splits = select_splits(list(stems_by_split), opts.splits, source)
  examples = []
  for split in splits:
    for stem in stems_by_split[split]:
      paths = images.get(stem) or [os.path.join(image_dir, stem + ".jpg")]
      for path in paths:  # several files for one stem: validate.check_listing reports it
        examples.append(example(source, split, stem, path, os.path.join(mask_dir, stem + ".png")))
  num_classes, names, ignore = resolve_classes(opts, os.path.join(source, "classes.json"))
  return DatasetSpec(name=opts.dataset_name or os.path.basename(os.path.abspath(source)),
                     num_classes=num_classes, ignore_label=ignore, class_names=names,
                     examples=examples, split_names=splits)

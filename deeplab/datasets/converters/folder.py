"""A plain folder of your own: images/ + masks/ with matching stems.

Splits come from list files (splits/<name>.txt by default, or --split_lists name=path,...), or
when there are none from a seeded shuffle with --val_ratio (train/val). num_classes and class
names come from the flags or a small JSON (--classes_json, default <source>/classes.json).
"""

import os
import random

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              read_list_file, require_dir, resolve_classes,
                                              select_splits)
from deeplab.errors import UserInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _split_lists(source: str, opts: ConvertOptions) -> dict:
  if opts.split_lists:
    return dict(opts.split_lists)
  folder = os.path.join(source, "splits")
  if not os.path.isdir(folder):
    return {}
  return {f[:-4]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
          if f.endswith(".txt") and not f.startswith(".")}


def _ratio_splits(stems, val_ratio: float, seed: int) -> dict:
  if not 0 <= val_ratio < 1:
    raise UserInputError(f"--val_ratio is {val_ratio}; expected 0 <= ratio < 1")
  order = sorted(stems)
  random.Random(seed).shuffle(order)
  n_val = int(round(len(order) * val_ratio))
  if val_ratio > 0 and len(order) > 1:
    n_val = min(max(n_val, 1), len(order) - 1)
  splits = {"train": sorted(order[n_val:])}
  if val_ratio > 0:
    splits["val"] = sorted(order[:n_val])
  return splits


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
  lists = _split_lists(source, opts)
  if lists:
    stems_by_split = {s: read_list_file(p, os.path.relpath(p, source)) for s, p in lists.items()}
  else:
    stems_by_split = _ratio_splits(images, opts.val_ratio, opts.seed)
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

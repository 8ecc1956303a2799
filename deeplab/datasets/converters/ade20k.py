"""ADE20K scene parsing (ADEChallengeData2016), like build_ade20k_data.py.

images/{training,validation}/*.jpg with annotations/{training,validation}/<stem>.png; splits
train and val; 151 classes with ignore_label 0. Unlike the original, examples are in sorted
order, not shuffled: the output must be deterministic (the reader shuffles).
"""

import os

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              require_dir, resolve_classes, select_splits)
from deeplab.errors import UserInputError

NUM_SHARDS = 4
SPLIT_FOLDERS = {"train": "training", "val": "validation"}
# objectInfo150 short names; index 0 is "other" (ignored).
CLASS_NAMES = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag")


def find_root(source: str) -> str:
  for root in (source, os.path.join(source, "ADEChallengeData2016"),
               os.path.join(source, "ADE20K", "ADEChallengeData2016")):
    if os.path.isdir(os.path.join(root, "images")) and os.path.isdir(
        os.path.join(root, "annotations")):
      return root
  raise UserInputError(f"'{source}' is not an ADEChallengeData2016 tree: expected images/ and "
                       "annotations/ under it; pass the ADEChallengeData2016 folder as --source")


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  root = find_root(source)
  found = [s for s, folder in SPLIT_FOLDERS.items()
           if os.path.isdir(os.path.join(root, "images", folder))]
  splits = select_splits(found, opts.splits, source)
  examples = []
  for split in splits:
    image_dir = os.path.join(root, "images", SPLIT_FOLDERS[split])
    label_dir = require_dir(os.path.join(root, "annotations", SPLIT_FOLDERS[split]),
                            "label folder", "ADE20K labels must be in annotations/<split>/")
    for name in sorted(f for f in os.listdir(image_dir) if f.endswith(".jpg")):
      stem = name[:-len(".jpg")]
      examples.append(example(source, split, stem, os.path.join(image_dir, name),
                              os.path.join(label_dir, stem + ".png")))
  num_classes, names, ignore = resolve_classes(opts, defaults=(151, CLASS_NAMES, 0))
  return DatasetSpec(name=opts.dataset_name or "ade20k", num_classes=num_classes,
                     ignore_label=ignore, class_names=names, examples=examples,
                     split_names=splits, default_num_shards=NUM_SHARDS)

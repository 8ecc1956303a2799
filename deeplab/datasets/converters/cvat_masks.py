"""CVAT "Segmentation mask 1.1" exports: colour masks with their labelmap.txt.

    labelmap.txt                       # label:color_rgb:parts:actions, one label a line
    ImageSets/Segmentation/<subset>.txt
    JPEGImages/<stem>.<ext>
    SegmentationClass/<stem>.png       # one colour per label (SegmentationObject/ is unused)

Classes are labelmap.txt's labels in its order (CVAT writes 'background' first); a colour in a
mask that labelmap.txt does not list is an error. A lone 'default' subset is split into
train/val by --val_ratio. --classes_json / --class_names pin the indices by label name.
"""

import os
from typing import Dict, List, Tuple

from deeplab.datasets import rasterize
from deeplab.datasets.converters import annotations as ann
from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              read_list_file, require_dir)
from deeplab.errors import UserInputError

LABELMAP = "labelmap.txt"


def read_labelmap(source: str, problems: ann.Problems) -> List[Tuple[str, int]]:
  """[(label, colour code R + 256 G + 65536 B)] in file order."""
  path = os.path.join(source, LABELMAP)
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except OSError:
    raise UserInputError(f"'{source}' has no {LABELMAP}; export the task as CVAT "
                         "'Segmentation mask 1.1' and unpack the whole archive") from None
  out, seen = [], {}
  for n, line in enumerate(lines, 1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    name, _, rest = line.partition(":")
    try:
      r, g, b = (int(v) for v in rest.split(":")[0].split(","))
      if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError
    except ValueError:
      problems.add(LABELMAP, f"{LABELMAP} line {n} {line!r} is not label:R,G,B::; fix it")
      continue
    code = r + 256 * g + 65536 * b
    if code in seen:
      problems.add(LABELMAP, f"{LABELMAP} gives {name!r} and {seen[code]!r} the same colour "
                   f"({r},{g},{b}); give each label its own colour")
    seen.setdefault(code, name)
    out.append((name, code))
  return out


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  mask_dir = require_dir(os.path.join(source, "SegmentationClass"), "mask folder",
                         "a CVAT 'Segmentation mask 1.1' export has SegmentationClass/")
  image_dir = require_dir(os.path.join(source, "JPEGImages"), "image folder",
                          "a CVAT 'Segmentation mask 1.1' export has JPEGImages/")
  list_dir = require_dir(os.path.join(source, "ImageSets", "Segmentation"), "subset folder",
                         "a CVAT 'Segmentation mask 1.1' export has ImageSets/Segmentation/")
  problems, notes = ann.Problems(source), []
  labelmap = read_labelmap(source, problems)
  classes = ann.ClassTable(opts, [name for name, _ in labelmap], background=False,
                           source_json=os.path.join(source, "classes.json"))
  colours: Dict[int, int] = {}
  for name, code in labelmap:
    value = classes.value(name)
    if value is None:
      problems.add(LABELMAP, classes.unknown(name, f"{LABELMAP}"))
    else:
      colours.setdefault(code, value)
  subsets = {f[:-4]: read_list_file(os.path.join(list_dir, f), f"ImageSets/Segmentation/{f}")
             for f in sorted(os.listdir(list_dir)) if f.endswith(".txt")}
  plan = ann.split_plan(subsets, opts, source, notes)
  images = {}
  for name in sorted(os.listdir(image_dir)):
    images.setdefault(os.path.splitext(name)[0], os.path.join(image_dir, name))
  examples = []
  for split, stems in plan.items():
    for stem in stems:
      mask = os.path.join(mask_dir, stem + ".png")
      if stem not in images:
        problems.add(f"JPEGImages/{stem}", f"subset '{split}' lists '{stem}' but JPEGImages/ "
                     "has no image of that name; unpack the export with its images "
                     "('Save images')", split)
        continue
      if not os.path.isfile(mask):
        problems.add(f"SegmentationClass/{stem}.png", f"image '{stem}' has no mask "
                     f"SegmentationClass/{stem}.png; export the task again", split)
        continue
      rel = f"SegmentationClass/{stem}.png"
      recipe = rasterize.LabelRecipe(source=rel, colour_png=mask, colours=colours)
      examples.append(example(source, split, stem, images[stem], mask, recipe))
  rgb = {name: [code % 256, code // 256 % 256, code // 65536] for name, code in labelmap}
  return classes.spec(opts, "cvat", examples, plan, problems, notes,
                      source_ids={"colours": rgb})

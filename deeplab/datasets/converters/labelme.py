"""LabelMe: one JSON per image (shapes: polygon, rectangle, circle) beside or near its image.

Every *.json under --source holding a 'shapes' list is one example; its image is `imagePath`,
relative to the JSON. Splits come from list files of JSON stems (splits/<name>.txt or
--split_lists), else a seeded --val_ratio shuffle. Classes: 'background' (and LabelMe's
'_background_') is 0, then the labels found, sorted; --classes_json / --class_names pin them.
Points, lines and line strips mark no region and are left out (counted in the notes).
"""

import os
from typing import Dict, List

from deeplab.datasets import rasterize
from deeplab.datasets.converters import annotations as ann
from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, example,
                                              select_splits, split_stems)
from deeplab.errors import UserInputError

NOT_REGIONS = ("point", "line", "linestrip")


def _find(source: str) -> Dict[str, str]:
  """stem -> LabelMe JSON path, for every JSON under `source` that has a 'shapes' list."""
  out = {}
  for folder, dirs, names in os.walk(source):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in sorted(names):
      if name.endswith(".json") and not name.startswith(".") and name != "classes.json":
        out.setdefault(ann.stem_of(name), os.path.join(folder, name))
  return out


def _shape(s: dict, value: int, what: str, size) -> rasterize.Shape:
  """A LabelMe shape as a rasterize.Shape; raises ValueError with the reason."""
  kind = s.get("shape_type") or "polygon"
  pts = s.get("points") or []
  if kind == "rectangle" and len(pts) == 2:
    (x0, y0), (x1, y1) = pts[0][:2], pts[1][:2]
    ring = [x0, y0, x1, y0, x1, y1, x0, y1]
  elif kind == "circle" and len(pts) == 2:
    (cx, cy), (px, py) = pts[0][:2], pts[1][:2]
    r = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
    if not (-r <= cx <= size[0] + r and -r <= cy <= size[1] + r):
      raise ValueError(f"{what} is a circle centred at ({cx:g}, {cy:g}) outside the "
                       f"{size[0]}x{size[1]} image; fix the shape")
    return rasterize.Shape(value, rasterize.CIRCLE, (float(cx), float(cy), float(r)), False, what)
  elif kind == "polygon":
    ring = rasterize.ring_list(pts)
  else:
    raise ValueError(f"{what} is a {kind!r} with {len(pts)} points; LabelMe regions are "
                     "polygons, rectangles (2 points) and circles (2 points): redraw it")
  bad = rasterize.polygon_bounds_problem([ring], size, what)
  if bad:
    raise ValueError(bad)
  return rasterize.Shape(value, rasterize.POLYGON, (tuple(ring),), False, what)


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  files = _find(source)
  problems, notes = ann.Problems(source), []
  docs, labels = {}, set()
  for stem, path in files.items():
    rel = os.path.relpath(path, source).replace(os.sep, "/")
    data = ann.read_json(path, rel)
    if isinstance(data, dict) and isinstance(data.get("shapes"), list):
      docs[stem] = (rel, data)
      labels.update(str(s.get("label", "")) for s in data["shapes"]
                    if (s.get("shape_type") or "polygon") not in NOT_REGIONS)
  if not docs:
    raise UserInputError(f"no LabelMe JSON (a file with a 'shapes' list) under '{source}'; "
                         "pass the folder LabelMe saved its JSON files to")
  classes = ann.ClassTable(opts, sorted(labels), background=True,
                           source_json=os.path.join(source, "classes.json"))
  by_split = split_stems(source, opts, docs)
  splits = select_splits(list(by_split), opts.splits, source)
  examples: List = []
  skipped_shapes = 0
  for split in splits:
    for stem in by_split[split]:
      if stem not in docs:
        problems.add(f"splits/{split}.txt", f"split '{split}' lists '{stem}' but there is no "
                     f"LabelMe JSON '{stem}.json' under --source; fix the list", split)
        continue
      rel, data = docs[stem]
      w, h = data.get("imageWidth"), data.get("imageHeight")
      if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        problems.add(rel, f"'{rel}' has no valid imageWidth/imageHeight; save it again in "
                     "LabelMe", split)
        continue
      image_path = os.path.join(source, os.path.dirname(rel),
                                str(data.get("imagePath") or "").replace("\\", "/"))
      if not data.get("imagePath") or not os.path.isfile(image_path):
        problems.add(rel, f"'{rel}': image '{data.get('imagePath')}' (imagePath, relative to "
                     "the JSON) does not exist; copy the image there or fix imagePath", split)
        continue
      shapes, bad = [], False
      for i, s in enumerate(data["shapes"]):
        if (s.get("shape_type") or "polygon") in NOT_REGIONS:
          skipped_shapes += 1
          continue
        what = f"shape {i} ({s.get('label')!r}) of '{rel}'"
        value = classes.value(str(s.get("label", "")))
        try:
          if value is None:
            raise ValueError(classes.unknown(str(s.get("label", "")), what))
          shapes.append(_shape(s, value, what, (w, h)))
        except (ValueError, TypeError) as e:
          problems.add(rel, str(e), split)
          bad = True
      if not bad:
        recipe = rasterize.LabelRecipe(source=rel, size=(w, h), shapes=tuple(shapes))
        examples.append(example(source, split, stem, image_path, os.path.join(source, rel),
                                recipe))
  if skipped_shapes:
    notes.append(f"{skipped_shapes} point/line shapes mark no region and were left out")
  return classes.spec(opts, "labelme", examples, splits, problems, notes,
                      source_ids={"labels": {n: n for n in classes.names}})

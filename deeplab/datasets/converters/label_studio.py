"""Label Studio's JSON export (Export -> JSON): brush masks (its own RLE), polygons, rectangles.

The export is a list of tasks; each task's `data` names its image (an upload URL such as
/data/upload/3/1a2b3c4d-photo.jpg, found by file name in images/ or --source, with or without
Label Studio's 8-hex upload prefix), and its first annotation that was not cancelled holds the
regions. Coordinates are percentages of original_width/original_height; brush masks are
decoded by deeplab.datasets.rasterize.decode_ls_rle. Files: --annotations split=path, or every
*.json list at the top of --source (one file: split by --split_lists or --val_ratio).
"""

import glob
import os
from typing import Dict, List
from urllib.parse import unquote

from deeplab.datasets import rasterize
from deeplab.datasets.converters import annotations as ann
from deeplab.datasets.converters.base import ConvertOptions, DatasetSpec, example, split_stems

REGION_TYPES = ("polygonlabels", "brushlabels", "rectanglelabels")


def found_files(source: str) -> Dict[str, List[str]]:
  names = [os.path.basename(p) for p in sorted(glob.glob(os.path.join(source, "*.json")))
           if os.path.basename(p) != "classes.json"]
  return {ann.DEFAULT_SUBSET: names} if names else {}


def _image_name(task: dict) -> str:
  data = task.get("data") or {}
  value = data.get("image") or next((v for v in data.values() if isinstance(v, str)), "")
  return os.path.basename(unquote(str(value).split("?")[0]))


def _results(task: dict) -> list:
  for a in task.get("annotations") or []:
    if not a.get("was_cancelled"):
      return a.get("result") or []
  return []


def _shape(r: dict, value: int, what: str) -> rasterize.Shape:
  """A region as a rasterize.Shape; raises ValueError with the reason."""
  v, kind = r.get("value") or {}, r["type"]
  w, h = r["original_width"], r["original_height"]
  if kind == "brushlabels":
    if v.get("format", "rle") != "rle" or not isinstance(v.get("rle"), list):
      raise ValueError(f"{what} is a brush region without an 'rle' list; export as JSON")
    count = int.from_bytes(bytes(int(b) & 0xFF for b in v["rle"][:4]), "big")
    if count != w * h * 4:  # the RLE's first 32 bits: how many RGBA bytes it holds
      raise ValueError(f"{what} is a brush mask of {count} RGBA values but the image is "
                       f"{w}x{h} ({w * h * 4} values); export the project again")
    return rasterize.Shape(value, rasterize.LS_RLE, tuple(v["rle"]), False, what)
  if kind == "rectanglelabels":
    if v.get("rotation"):
      raise ValueError(f"{what} is a rectangle rotated by {v['rotation']} degrees; draw it as "
                       "a polygon instead")
    x0, y0 = v["x"] * w / 100, v["y"] * h / 100
    x1, y1 = x0 + v["width"] * w / 100, y0 + v["height"] * h / 100
    ring = [x0, y0, x1, y0, x1, y1, x0, y1]
  else:
    ring = [c * (w if i % 2 == 0 else h) / 100
            for i, c in enumerate(rasterize.ring_list(v.get("points") or []))]
  bad = rasterize.polygon_bounds_problem([ring], (w, h), what)
  if bad:
    raise ValueError(bad)
  return rasterize.Shape(value, rasterize.POLYGON, (tuple(ring),), False, what)


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  files = ann.annotation_files(source, opts, found_files(source))
  problems, notes = ann.Problems(source), []
  tasks, labels = {}, set()  # stem -> (split, file, task)
  for split, rels in files.items():
    for rel in rels:
      data = ann.read_json(os.path.join(source, rel), rel)
      if not isinstance(data, list):
        problems.add(rel, f"'{rel}' is not a Label Studio JSON export (a list of tasks); "
                     "export with Export -> JSON", split)
        continue
      for task in data:
        stem = ann.stem_of(_image_name(task))
        if stem in tasks:
          problems.add(rel, f"'{rel}' task {task.get('id')}: image '{stem}' is also task "
                       f"{tasks[stem][2].get('id')}; delete the duplicate task", split)
          continue
        tasks[stem] = (split, rel, task)
        for r in _results(task):
          if r.get("type") in REGION_TYPES:
            labels.update(str(n) for n in (r.get("value") or {}).get(r["type"]) or ())
  classes = ann.ClassTable(opts, sorted(labels), background=True,
                           source_json=os.path.join(source, "classes.json"))
  if set(files) == {ann.DEFAULT_SUBSET}:
    by_split = split_stems(source, opts, tasks)
  else:
    by_split = {s: [t for t, v in tasks.items() if v[0] == s] for s in files}
  plan = ann.split_plan(by_split, opts, source, notes)
  finder = ann.ImageFinder(source, [os.path.join(source, "images"), source])
  examples = []
  for split, stems in plan.items():
    for stem in stems:
      if stem not in tasks:
        problems.add(f"splits/{split}.txt", f"split '{split}' lists '{stem}' but no task of "
                     "the export has that image; fix the list", split)
        continue
      _, rel, task = tasks[stem]
      what = f"'{rel}' task {task.get('id')}"
      path = finder.find(_image_name(task), strip_prefix=True)
      if path is None:
        problems.add(rel, finder.missing(_image_name(task), what), split)
        continue
      shapes, sizes, bad = [], set(), False
      for i, r in enumerate(_results(task)):
        if r.get("type") not in REGION_TYPES:
          continue
        names = (r.get("value") or {}).get(r["type"]) or []
        rwhat = f"{what} region {r.get('id', i)} ({', '.join(map(str, names))})"
        try:
          if len(names) != 1:
            raise ValueError(f"{rwhat} has {len(names)} labels; give each region one label")
          if r.get("image_rotation"):
            raise ValueError(f"{rwhat} was drawn on an image rotated by "
                             f"{r['image_rotation']} degrees; redraw it unrotated")
          value = classes.value(str(names[0]))
          if value is None:
            raise ValueError(classes.unknown(str(names[0]), rwhat))
          sizes.add((int(r["original_width"]), int(r["original_height"])))
          shapes.append(_shape(r, value, rwhat))
        except (ValueError, KeyError, TypeError) as e:
          problems.add(rel, str(e) if isinstance(e, ValueError) else
                       f"{rwhat} lacks {e}; export the project again as JSON", split)
          bad = True
      if len(sizes) > 1:
        problems.add(rel, f"{what} has regions for different image sizes {sorted(sizes)}; "
                     "export the project again", split)
        bad = True
      if not bad:
        recipe = rasterize.LabelRecipe(source=rel, size=sizes.pop() if sizes else None,
                                       shapes=tuple(shapes))
        examples.append(example(source, split, stem, path, os.path.join(source, rel), recipe))
  return classes.spec(opts, "label_studio", examples, plan, problems, notes,
                      source_ids={"labels": {n: n for n in classes.names}})

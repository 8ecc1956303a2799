"""COCO JSON (instances and stuff): polygons and RLE, as CVAT, Label Studio, Roboflow and
most labelling tools export them.

Annotation files per split: --annotations split=path,... or, by default, annotations/
instances_<split>.json and stuff_<split>.json (both drawn for the split), Roboflow's
<split>/_annotations.coco.json and Label Studio's result.json. Images are looked up by
`file_name` beside the JSON, in images/<split>/, images/, <split>/ and --source.

Classes: 'background' (pixels no annotation covers) is 0, then the categories by id; a
classes.json (--classes_json or <source>/classes.json) pins names to indices across exports.
iscrowd regions and categories in --ignore_classes get the ignore label. Overlaps: the
smaller region wins (deeplab.datasets.rasterize).
"""

import glob
import os
from typing import Dict, List

from deeplab.datasets import rasterize
from deeplab.datasets.converters import annotations as ann
from deeplab.datasets.converters.base import ConvertOptions, DatasetSpec, example


def found_files(source: str, prefixes=("instances", "stuff")) -> Dict[str, List[str]]:
  """Default annotation files: split -> paths relative to `source`."""
  out: Dict[str, List[str]] = {}
  for prefix in prefixes:
    for path in sorted(glob.glob(os.path.join(source, "annotations", f"{prefix}_*.json"))):
      split = os.path.basename(path)[len(prefix) + 1:-len(".json")]
      out.setdefault(split, []).append(os.path.relpath(path, source))
  for path in sorted(glob.glob(os.path.join(source, "*", "_annotations.coco.json"))):
    out.setdefault(os.path.basename(os.path.dirname(path)), []).append(
        os.path.relpath(path, source))
  if not out and os.path.isfile(os.path.join(source, "result.json")):
    out[ann.DEFAULT_SUBSET] = ["result.json"]
  return out


def image_folders(source: str, split: str, json_path: str) -> List[str]:
  return [os.path.dirname(json_path), os.path.join(source, "images", split),
          os.path.join(source, "images"), os.path.join(source, split), source]


def add_categories(data: dict, rel: str, split: str, categories: Dict, problems: ann.Problems):
  """Adds the file's categories (id -> name) to `categories`; an id that another file read
  into `categories` names differently is a problem (shared by the coco and coco_panoptic
  formats)."""
  for cat in data.get("categories") or []:
    cid, name = cat.get("id"), str(cat.get("name", ""))
    if cid in categories and categories[cid] != name:
      problems.add(rel, f"'{rel}' names category id {cid} {name!r} but another annotation "
                   f"file names it {categories[cid]!r}; export both with the same categories",
                   split)
    categories.setdefault(cid, name)


def read_split(source: str, split: str, rels: List[str], problems: ann.Problems):
  """(categories id -> name, images file_name -> entry, annotations file_name -> list, the
  JSON each image came from) over the split's files."""
  categories, images, by_image, origin = {}, {}, {}, {}
  for rel in rels:
    data = ann.read_json(os.path.join(source, rel), rel)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
      problems.add(rel, f"'{rel}' is not a COCO file (no 'images' list); export it again as "
                   "COCO JSON", split)
      continue
    add_categories(data, rel, split, categories, problems)
    ids = {}
    for img in data["images"]:
      name = str(img.get("file_name", ""))
      ids[img.get("id")] = name
      images.setdefault(name, img)
      origin.setdefault(name, rel)
      by_image.setdefault(name, [])
    for a in data.get("annotations") or []:
      name = ids.get(a.get("image_id"))
      if name is None:
        problems.add(rel, f"'{rel}': annotation {a.get('id')} points to image_id "
                     f"{a.get('image_id')!r}, which no image entry has; remove the annotation "
                     "or add its image", split)
        continue
      by_image[name].append((rel, a))
  return categories, images, by_image, origin


def shapes_of(anns, size, categories, classes: ann.ClassTable):
  """(shapes, problems) of one image's annotations."""
  shapes, problems = [], []
  for rel_a, a in anns:
    shape, bad = _shape(rel_a, a, size, categories, classes)
    if bad:
      problems.append(bad)
    else:
      shapes.append(shape)
  return tuple(shapes), problems


def _shape(rel: str, a: dict, size, categories, classes: ann.ClassTable):
  """(Shape, None) or (None, why it cannot be drawn)."""
  what = f"annotation {a.get('id')} of '{rel}'"
  cid = a.get("category_id")
  if cid not in categories:
    return None, (f"{what} has category_id {cid!r}, which is not in the file's categories; "
                  "fix the annotation or add the category")
  crowd = bool(a.get("iscrowd"))
  value = classes.ignore_label if crowd else classes.value(categories[cid])
  if value is None:
    return None, classes.unknown(categories[cid], what)
  seg = a.get("segmentation")
  if isinstance(seg, list) and seg:
    bad = rasterize.polygon_bounds_problem(seg, size, what)
    if bad:
      return None, bad
    return rasterize.Shape(value, rasterize.POLYGON, tuple(tuple(p) for p in seg), crowd,
                           what), None
  if isinstance(seg, dict) and "counts" in seg:
    if list(seg.get("size") or ()) != [size[1], size[0]]:
      return None, (f"{what} is an RLE of size {seg.get('size')} (HxW) but its image is "
                    f"{size[1]}x{size[0]}; export the annotation again")
    return rasterize.Shape(value, rasterize.RLE, seg, crowd, what), None
  return None, (f"{what} has no segmentation (a box only?); draw a polygon or mask for it, "
                "or delete the annotation: a box is not a segmentation label")


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  files = ann.annotation_files(source, opts, found_files(source))
  problems, notes = ann.Problems(source), []
  per_split = {s: read_split(source, s, rels, problems) for s, rels in files.items()}
  categories = {}
  for cats, _, _, _ in per_split.values():
    for cid, name in cats.items():
      categories.setdefault(cid, name)
  ordered = [categories[c] for c in sorted(categories, key=lambda c: (str(type(c)), c))]
  classes = ann.ClassTable(opts, ordered, background=True,
                           source_json=os.path.join(source, "classes.json"))
  stems = {s: [ann.stem_of(n) for n in v[1]] for s, v in per_split.items()}
  plan = ann.split_plan(stems, opts, source, notes)
  examples = []
  for split, wanted in plan.items():
    wanted = set(wanted)
    for original, (cats, images, by_image, origin) in per_split.items():
      finder = None
      for name, img in images.items():
        if ann.stem_of(name) not in wanted:
          continue
        rel = origin[name]
        what = f"'{rel}' image {img.get('id')}"
        w, h = img.get("width"), img.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
          problems.add(rel, f"{what} ('{name}') has no valid width/height; export it again",
                       split)
          continue
        finder = finder or ann.ImageFinder(source, image_folders(
            source, original, os.path.join(source, rel)))
        path = finder.find(name)
        if path is None:
          problems.add(rel, finder.missing(name, what), split)
          continue
        shapes, bad = shapes_of(by_image[name], (w, h), cats, classes)
        for reason in bad:
          problems.add(rel, reason, split)
        if bad:
          continue
        recipe = rasterize.LabelRecipe(source=rel, size=(w, h), shapes=shapes)
        examples.append(example(source, split, ann.stem_of(name), path,
                                os.path.join(source, rel), recipe))
  ids = {name: [c for c, n in categories.items() if n == name] for name in classes.names}
  return classes.spec(opts, "coco", examples, plan, problems, notes,
                      source_ids={"category_ids": ids})

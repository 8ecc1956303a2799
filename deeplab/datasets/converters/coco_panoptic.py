"""COCO panoptic: segments_info + PNG (segment id = R + 256 G + 256² B) -> semantic labels.

Files per split: --annotations split=path or annotations/panoptic_<split>.json, with the PNGs
in the folder of the same name beside it (annotations/panoptic_<split>/) and the images found
like the coco format's. Classes are the categories by id (things and stuff; no background:
panoptic labels cover every labelled pixel); unlabelled pixels (id 0) and crowd segments get
the ignore label.
"""

import os

from deeplab.datasets import rasterize
from deeplab.datasets.converters import annotations as ann
from deeplab.datasets.converters import coco
from deeplab.datasets.converters.base import ConvertOptions, DatasetSpec, example

VOID_ID = 0


def png_folder(source: str, rel: str) -> str:
  return os.path.join(source, os.path.splitext(rel)[0])


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  files = ann.annotation_files(source, opts, coco.found_files(source, ("panoptic",)))
  problems, notes = ann.Problems(source), []
  docs, categories = {}, {}
  for split, rels in files.items():
    for rel in rels:
      data = ann.read_json(os.path.join(source, rel), rel)
      if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        problems.add(rel, f"'{rel}' is not a COCO panoptic file (no 'annotations' list); "
                     "export it again", split)
        continue
      docs.setdefault(split, []).append((rel, data))
      coco.add_categories(data, rel, split, categories, problems)
  ordered = [categories[c] for c in sorted(categories, key=lambda c: (str(type(c)), c))]
  classes = ann.ClassTable(opts, ordered, background=False,
                           source_json=os.path.join(source, "classes.json"))
  stems = {s: [ann.stem_of(img.get("file_name", "")) for _, d in v for img in d["images"]]
           for s, v in docs.items()}
  plan = ann.split_plan(stems, opts, source, notes)
  examples = []
  for split, wanted in plan.items():
    wanted = set(wanted)
    for original, entries in docs.items():
      for rel, data in entries:
        images = {img.get("id"): img for img in data.get("images") or []}
        finder = ann.ImageFinder(source, coco.image_folders(source, original,
                                                            os.path.join(source, rel)))
        for a in data["annotations"]:
          img = images.get(a.get("image_id"))
          what = f"'{rel}' image_id {a.get('image_id')!r}"
          if img is None:
            problems.add(rel, f"{what}: no image entry has that id; remove the annotation or "
                         "add its image", split)
            continue
          name = str(img.get("file_name", ""))
          if ann.stem_of(name) not in wanted:
            continue
          path = finder.find(name)
          png = os.path.join(png_folder(source, rel), str(a.get("file_name", "")))
          if path is None:
            problems.add(rel, finder.missing(name, what), split)
            continue
          if not os.path.isfile(png):
            problems.add(rel, f"{what}: its PNG '{os.path.relpath(png, source)}' does not "
                         "exist; unpack the panoptic PNGs beside the JSON", split)
            continue
          colours, bad = {VOID_ID: classes.ignore_label}, False
          for seg in a.get("segments_info") or []:
            cid = seg.get("category_id")
            value = classes.value(categories[cid]) if cid in categories else None
            if value is None:
              problems.add(rel, classes.unknown(categories[cid], f"{what} segment {seg.get('id')}")
                           if cid in categories else
                           f"{what} segment {seg.get('id')} has category_id {cid!r}, which is "
                           "not in the categories; fix the export", split)
              bad = True
              continue
            colours[int(seg.get("id", 0))] = classes.ignore_label if seg.get("iscrowd") else value
          if not bad:
            recipe = rasterize.LabelRecipe(
                source=os.path.relpath(png, source).replace(os.sep, "/"), colour_png=png,
                colours=colours, size=(img.get("width"), img.get("height")))
            examples.append(example(source, split, ann.stem_of(name), path, png, recipe))
  ids = {name: [c for c, n in categories.items() if n == name] for name in classes.names}
  return classes.spec(opts, "coco_panoptic", examples, plan, problems, notes,
                      source_ids={"category_ids": ids})

"""The fingerprint of an annotation export covers its annotation files and its class mapping."""

import json
import os

from deeplab.datasets import fingerprint
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest
from tests.deeplab.datasets.test_convert_coco import make_coco


def test_annotations_and_class_mapping_change_the_fingerprint(tmp_path):
  src = make_coco(str(tmp_path / "coco"))
  res = convert("coco", src, str(tmp_path / "out"))
  fp = fingerprint.compute_fingerprint("coco", src, {})
  # What resolve_config computes before converting is what the conversion records.
  assert res["fingerprint"] == fp == manifest(str(tmp_path / "out"))["fingerprint"]
  with open(os.path.join(src, "notes.txt"), "w") as f:
    f.write("not read by the converter")
  assert fingerprint.compute_fingerprint("coco", src, {}) == fp

  pinned = kit.write_json(str(tmp_path / "a.json"), ["background", "cat", "dog"])
  swapped = kit.write_json(str(tmp_path / "b.json"), ["background", "dog", "cat"])
  fp_a = fingerprint.compute_fingerprint("coco", src, {"classes_json": pinned})
  fp_b = fingerprint.compute_fingerprint("coco", src, {"classes_json": swapped})
  assert len({fp, fp_a, fp_b}) == 3
  assert fingerprint.compute_fingerprint("coco", src, {"ignore_classes": "crowd"}) != fp

  path = os.path.join(src, "annotations", "instances_train.json")
  with open(path) as f:
    data = json.load(f)
  data["categories"][0]["name"] = "kitten"  # a renamed class, same images
  kit.write_json(path, data)
  assert fingerprint.compute_fingerprint("coco", src, {}) != fp

"""COCO JSON exports (polygons, RLE, crowd, a void class, overlaps) converted pixel by pixel."""

import json
import os

import numpy as np
import pytest

from deeplab.errors import UserInputError
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest

H, W = 30, 40
CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 9, "name": "__ignore__"}]
RECT = (4, 3, 24, 18)           # x0, y0, x1, y1: the cat
CROWD = (28, 2, 36, 10)         # a crowd of cats -> ignore
VOID = (30, 20, 38, 28)         # a "__ignore__" region -> ignore
TRIANGLE = [(2.0, 27.5), (20.5, 4.0), (37.0, 26.0)]


def rect(x0, y0, x1, y1):
  return [x0, y0, x1, y0, x1, y1, x0, y1]


def uncompressed_rle(mask: np.ndarray) -> dict:
  """COCO's uncompressed RLE, written from its definition: column-major run lengths, starting
  with a run of zeros."""
  flat = mask.astype(np.uint8).ravel(order="F")
  counts, value, run = [], 0, 0
  for v in flat:
    if v != value:
      counts.append(run)
      value, run = v, 0
    run += 1
  counts.append(run)
  return {"counts": counts, "size": [mask.shape[0], mask.shape[1]]}


def dog_mask() -> np.ndarray:
  m = np.zeros((H, W), bool)
  m[8:14, 10:30] = True  # overlaps the cat rectangle; smaller, so it wins
  return m


def make_coco(root: str) -> str:
  from pycocotools import mask as coco_mask
  kit.write_image(os.path.join(root, "images", "a.jpg"), H, W, 1)
  kit.write_image(os.path.join(root, "images", "b.png"), H, W, 2)
  kit.write_image(os.path.join(root, "images", "c.jpg"), H, W, 3)
  compressed = coco_mask.encode(np.asfortranarray(dog_mask().astype(np.uint8)))
  compressed["counts"] = compressed["counts"].decode("ascii")
  train = {
      "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
                 {"id": 2, "file_name": "b.png", "width": W, "height": H}],
      "categories": CATEGORIES,
      "annotations": [
          {"id": 10, "image_id": 1, "category_id": 3, "iscrowd": 0,
           "segmentation": [rect(*RECT)]},
          {"id": 11, "image_id": 1, "category_id": 7, "iscrowd": 0,
           "segmentation": uncompressed_rle(dog_mask())},
          {"id": 12, "image_id": 1, "category_id": 3, "iscrowd": 1,
           "segmentation": uncompressed_rle(_box(CROWD))},
          {"id": 13, "image_id": 1, "category_id": 9, "iscrowd": 0,
           "segmentation": [rect(*VOID)]},
          {"id": 20, "image_id": 2, "category_id": 7, "iscrowd": 0,
           "segmentation": [[c for p in TRIANGLE for c in p]]},
          {"id": 21, "image_id": 2, "category_id": 3, "iscrowd": 0,
           "segmentation": compressed},
      ]}
  val = {"images": [{"id": 5, "file_name": "c.jpg", "width": W, "height": H}],
         "categories": CATEGORIES, "annotations": []}
  kit.write_json(os.path.join(root, "annotations", "instances_train.json"), train)
  kit.write_json(os.path.join(root, "annotations", "instances_val.json"), val)
  return root


def _box(box) -> np.ndarray:
  x0, y0, x1, y1 = box
  m = np.zeros((H, W), bool)
  m[y0:y1, x0:x1] = True
  return m


def test_polygons_rle_crowd_void_and_overlap_pixel_by_pixel(tmp_path):
  src = make_coco(str(tmp_path / "coco"))
  res = convert("coco", src, str(tmp_path / "out"))
  assert res["splits"] == {"train": 2, "val": 1}
  m = manifest(str(tmp_path / "out"))
  assert m["class_names"] == ["background", "cat", "dog"] and m["ignore_label"] == 255
  with open(tmp_path / "out" / "classes.json") as f:
    classes = json.load(f)
  assert classes["class_names"] == ["background", "cat", "dog"]
  assert classes["source_ids"]["category_ids"] == {"background": [], "cat": [3], "dog": [7]}

  train = kit.read_split(str(tmp_path / "out"), "train")
  # The documented order: crowd first (under everything), then by decreasing area.
  want = np.zeros((H, W), np.uint8)
  want[_box(CROWD)] = 255
  want[_box(RECT)] = 1
  want[dog_mask()] = 2           # smaller than the cat: drawn over it (and over the crowd)
  want[_box(VOID)] = 255
  np.testing.assert_array_equal(train["a"][1], want)
  assert (train["a"][1] == 1).sum() == (RECT[2] - RECT[0]) * (RECT[3] - RECT[1]) - (
      dog_mask() & _box(RECT)).sum()

  label_b = train["b"][1]
  # b: the dog triangle (a polygon) and the cat (compressed RLE, smaller, on top).
  np.testing.assert_array_equal(label_b == 1, dog_mask())
  kit.assert_polygon_drawn((label_b == 2) | ((label_b == 1) & kit.inside(TRIANGLE, H, W)),
                           TRIANGLE)
  assert kit.read_split(str(tmp_path / "out"), "val")["c"][1].max() == 0  # no annotations
  counts = m["splits"]["train"]["class_pixel_counts"]
  assert counts == [sum(int((lab == c).sum()) for _, lab in train.values()) for c in range(3)]


def test_every_problem_is_listed_with_its_file(tmp_path):
  src = str(tmp_path / "coco")
  kit.write_image(os.path.join(src, "images", "a.jpg"), H, W)
  bad = {
      "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
                 {"id": 2, "file_name": "gone.jpg", "width": W, "height": H},
                 {"id": 3, "file_name": "a.jpg", "width": W, "height": H}],
      "categories": CATEGORIES,
      "annotations": [
          {"id": 1, "image_id": 99, "category_id": 3, "segmentation": [rect(1, 1, 5, 5)]},
          {"id": 2, "image_id": 1, "category_id": 3, "segmentation": [rect(1, 1, 90, 5)]},
      ]}
  other = {"images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
           "categories": CATEGORIES,
           "annotations": [{"id": 5, "image_id": 1, "category_id": 42,
                            "segmentation": [rect(1, 1, 5, 5)]},
                           {"id": 6, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4],
                            "segmentation": []}]}
  kit.write_json(os.path.join(src, "annotations", "instances_train.json"), bad)
  kit.write_json(os.path.join(src, "annotations", "instances_val.json"), other)
  with pytest.raises(UserInputError) as e:
    convert("coco", src, str(tmp_path / "out"))
  msg = str(e.value)
  assert "annotations/instances_train.json" in msg and "annotations/instances_val.json" in msg
  assert "image_id 99" in msg                      # an annotation pointing to no image
  assert "'gone.jpg' is not in" in msg             # a missing image file
  assert "vertex at (90, 1) outside the 40x30 image" in msg
  assert "category_id 42" in msg                   # an unknown category
  assert "a box is not a segmentation label" in msg
  assert not os.path.exists(tmp_path / "out" / "manifest.json")


def test_pinned_classes_refuse_a_new_category_and_keep_indices(tmp_path):
  src = make_coco(str(tmp_path / "coco"))
  pinned = kit.write_json(str(tmp_path / "classes.json"),
                          {"class_names": ["background", "dog", "cat"], "ignore_label": 255})
  convert("coco", src, str(tmp_path / "out"), classes_json=pinned)
  a = kit.read_split(str(tmp_path / "out"), "train")["a"][1]
  assert (a[_box(RECT) & ~dog_mask()] == 2).all() and (a[dog_mask()] == 1).all()
  only_cat = kit.write_json(str(tmp_path / "cat.json"), ["background", "cat"])
  with pytest.raises(UserInputError, match=r"class 'dog', which is not one of the 2 classes"):
    convert("coco", src, str(tmp_path / "out2"), classes_json=only_cat)


def test_cvat_default_subset_is_split_by_val_ratio(tmp_path):
  src = str(tmp_path / "cvat")
  images = []
  for i in range(5):
    kit.write_image(os.path.join(src, "images", f"f{i}.jpg"), H, W, i)
    images.append({"id": i + 1, "file_name": f"f{i}.jpg", "width": W, "height": H})
  kit.write_json(os.path.join(src, "annotations", "instances_default.json"),
                 {"images": images, "categories": CATEGORIES[:1], "annotations": []})
  res = convert("coco", src, str(tmp_path / "out"), val_ratio=0.4)
  assert res["splits"] == {"train": 3, "val": 2}


def test_skip_converts_the_rest_and_lists_the_bad_ones(tmp_path):
  src = make_coco(str(tmp_path / "coco"))
  kit.write_image(os.path.join(src, "images", "d.jpg"), H, W, 4)
  path = os.path.join(src, "annotations", "instances_val.json")
  with open(path) as f:
    val = json.load(f)
  val["images"] += [{"id": 6, "file_name": "d.jpg", "width": W, "height": H},
                    {"id": 7, "file_name": "gone.jpg", "width": W, "height": H}]
  val["annotations"] = [{"id": 1, "image_id": 5, "category_id": 42,
                         "segmentation": [rect(1, 1, 5, 5)]}]
  kit.write_json(path, val)
  res = convert("coco", src, str(tmp_path / "out"), on_bad_example="skip")
  assert res["splits"] == {"train": 2, "val": 1} and res["skipped"] == 2
  skipped = manifest(str(tmp_path / "out"))["skipped"]
  assert {s["file"] for s in skipped} == {"annotations/instances_val.json"}
  assert any("category_id 42" in s["reason"] for s in skipped)
  assert any("'gone.jpg' is not in" in s["reason"] for s in skipped)

"""COCO panoptic (segments_info + id-coded PNG) to semantic labels, pixel by pixel."""

import os

import numpy as np
import pytest

from deeplab.errors import UserInputError
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest, save

H, W = 26, 31
CATEGORIES = [{"id": 1, "name": "person", "isthing": 1}, {"id": 124, "name": "grass",
                                                          "isthing": 0}]
# segment id -> (category id, iscrowd); ids are large to use all three colour channels.
SEGMENTS = {70000: (124, 0), 300: (1, 0), 5: (1, 1)}


def id_map() -> np.ndarray:
  ids = np.zeros((H, W), np.int64)       # 0: unlabelled
  ids[10:, :] = 70000                    # grass
  ids[4:20, 5:12] = 300                  # a person
  ids[2:8, 20:28] = 5                    # a crowd of people
  return ids


def make_panoptic(root: str) -> str:
  kit.write_image(os.path.join(root, "val2017", "000000000139.jpg"), H, W)
  ids = id_map()
  rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
  save(os.path.join(root, "annotations", "panoptic_val2017", "000000000139.png"), rgb)
  kit.write_json(os.path.join(root, "annotations", "panoptic_val2017.json"), {
      "images": [{"id": 139, "file_name": "000000000139.jpg", "width": W, "height": H}],
      "categories": CATEGORIES,
      "annotations": [{"image_id": 139, "file_name": "000000000139.png", "segments_info": [
          {"id": i, "category_id": c, "iscrowd": crowd} for i, (c, crowd) in SEGMENTS.items()]}]})
  return root


def test_segments_become_category_classes(tmp_path):
  src = make_panoptic(str(tmp_path / "pan"))
  res = convert("coco_panoptic", src, str(tmp_path / "out"))
  assert res["splits"] == {"val2017": 1}
  assert manifest(str(tmp_path / "out"))["class_names"] == ["person", "grass"]
  label = kit.read_split(str(tmp_path / "out"), "val2017")["000000000139"][1]
  ids = id_map()
  want = np.full((H, W), 255, np.uint8)  # unlabelled and crowd
  want[ids == 300] = 0
  want[ids == 70000] = 1
  np.testing.assert_array_equal(label, want)


def test_unknown_category_names_the_file(tmp_path):
  src = make_panoptic(str(tmp_path / "pan"))
  path = os.path.join(src, "annotations", "panoptic_val2017.json")
  import json
  with open(path) as f:
    data = json.load(f)
  data["annotations"][0]["segments_info"][0]["category_id"] = 999
  kit.write_json(path, data)
  with pytest.raises(UserInputError, match=r"'annotations/panoptic_val2017.json' image_id 139 "
                                           r"segment 70000 has category_id 999"):
    convert("coco_panoptic", src, str(tmp_path / "out"))


def test_a_category_named_differently_by_two_files_is_refused(tmp_path):
  # A second split's file names category 124 'lawn' where the first says 'grass': the two
  # exports disagree on what class 124 is, so the conversion stops and names both.
  import json
  src = make_panoptic(str(tmp_path / "pan"))
  with open(os.path.join(src, "annotations", "panoptic_val2017.json")) as f:
    data = json.load(f)
  data["categories"] = [{"id": 124, "name": "lawn", "isthing": 0}]
  kit.write_json(os.path.join(src, "annotations", "panoptic_train2017.json"), data)
  with pytest.raises(UserInputError, match=r"'annotations/panoptic_val2017.json' names category "
                                           r"id 124 'grass' but another annotation file names "
                                           r"it 'lawn'"):
    convert("coco_panoptic", src, str(tmp_path / "out"))
  assert not os.path.exists(str(tmp_path / "out" / "manifest.json"))

"""LabelMe JSON (polygon, rectangle, circle, a void label, a point) converted pixel by pixel."""

import os

import numpy as np
import pytest

from deeplab.errors import UserInputError
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest

H, W = 32, 44
TRIANGLE = [[3.0, 29.0], [21.5, 2.5], [40.0, 27.0]]
RECT = [[5, 6], [17, 20]]          # two corners, as LabelMe stores a rectangle
CIRCLE = [[30.0, 10.0], [30.0, 16.5]]  # centre and a point on the circle: r = 6.5


def labelme(image: str, shapes) -> dict:
  """A LabelMe 5.x file (https://github.com/wkentaro/labelme, examples/*.json)."""
  return {"version": "5.4.1", "flags": {}, "imagePath": image, "imageData": None,
          "imageHeight": H, "imageWidth": W,
          "shapes": [{"label": label, "points": pts, "group_id": None, "description": "",
                      "shape_type": kind, "flags": {}} for label, kind, pts in shapes]}


def make_labelme(root: str) -> str:
  kit.write_image(os.path.join(root, "img", "one.jpg"), H, W, 1)
  kit.write_image(os.path.join(root, "img", "two.jpg"), H, W, 2)
  kit.write_json(os.path.join(root, "one.json"), labelme("img/one.jpg", [
      ("road", "polygon", TRIANGLE), ("car", "rectangle", RECT), ("sign", "circle", CIRCLE),
      ("marker", "point", [[1, 1]])]))
  kit.write_json(os.path.join(root, "two.json"), labelme("img/two.jpg", [
      ("car", "rectangle", RECT), ("__ignore__", "rectangle", [[8, 10], [12, 14]])]))
  return root


def test_polygon_rectangle_circle_pixel_by_pixel(tmp_path):
  src = make_labelme(str(tmp_path / "lm"))
  res = convert("labelme", src, str(tmp_path / "out"), val_ratio=0.0)
  assert res["splits"] == {"train": 2}
  m = manifest(str(tmp_path / "out"))
  assert m["class_names"] == ["background", "car", "road", "sign"]
  assert any("point/line" in n for n in m["notes"])
  got = kit.read_split(str(tmp_path / "out"), "train")
  one = got["one"][1]
  # The rectangle: exactly its (x1 - x0) * (y1 - y0) pixels, drawn over the larger road.
  (x0, y0), (x1, y1) = RECT
  assert (one[y0:y1, x0:x1] == 1).all() and (one == 1).sum() == (x1 - x0) * (y1 - y0)
  # The circle: pixel centres clearly inside are 'sign', clearly outside are not.
  yy, xx = np.mgrid[0:H, 0:W] + 0.5
  d = np.hypot(xx - 30.0, yy - 10.0)
  assert (one[d < 6.0] == 3).all() and not (one[d > 7.0] == 3).any()
  # The triangle, where neither the car nor the sign covers it.
  other = (one == 1) | (one == 3)
  road = (one == 2) | (other & kit.inside(TRIANGLE, H, W))
  kit.assert_polygon_drawn(road, TRIANGLE)
  two = got["two"][1]
  assert (two[10:14, 8:12] == 255).all() and (two == 255).sum() == 16


def test_problems_name_their_json_file(tmp_path):
  src = make_labelme(str(tmp_path / "lm"))
  kit.write_json(os.path.join(src, "three.json"), labelme("img/missing.jpg", []))
  kit.write_json(os.path.join(src, "four.json"), labelme("img/one.jpg", [
      ("car", "polygon", [[1, 1], [80, 1], [5, 9]]), ("car", "polygon", [[1, 1], [4, 4]])]))
  with pytest.raises(UserInputError) as e:
    convert("labelme", src, str(tmp_path / "out"), val_ratio=0.0)
  msg = str(e.value)
  assert msg.startswith("3 problems")
  assert "'three.json': image 'img/missing.jpg'" in msg
  assert "shape 0 ('car') of 'four.json' has a vertex at (80, 1)" in msg
  assert "shape 1 ('car') of 'four.json' has a polygon with 4 coordinates" in msg

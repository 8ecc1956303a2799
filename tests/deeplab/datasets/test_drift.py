"""The drift report between two converted versions that differ in class balance and size."""

import json
import os

import numpy as np
from PIL import Image

from deeplab.datasets import drift
from tests.deeplab.datasets.test_build_trees import convert, image_array, manifest, save


def _version(root: str, size: int, dog_rows: int, n: int) -> dict:
  """A folder dataset: n images size x size; label: cat everywhere but `dog_rows` dog rows."""
  labels = []
  for i in range(n):
    save(os.path.join(root, "images", f"im{i}.png"), image_array(i, size, size))
    lab = np.ones((size, size), np.uint8)
    lab[:dog_rows] = 2
    lab[-1, -1] = 0
    labels.append(lab)
    save(os.path.join(root, "masks", f"im{i}.png"), lab)
  os.makedirs(os.path.join(root, "splits"))
  with open(os.path.join(root, "splits", "train.txt"), "w") as f:
    f.write("\n".join(f"im{i}" for i in range(n)))
  with open(os.path.join(root, "classes.json"), "w") as f:
    json.dump(["bg", "cat", "dog"], f)
  convert("folder", root, root + "-out")
  return manifest(root + "-out"), labels


def test_class_balance_and_size_drift_are_reported(tmp_path):
  old, old_labels = _version(str(tmp_path / "v1"), 20, 2, 3)
  new, new_labels = _version(str(tmp_path / "v2"), 40, 30, 2)
  report = drift.compare(old, new, factor=2.0)
  s = report["splits"]["train"]
  assert s["num_examples"] == [3, 2]
  assert s["image_sizes"] == [{"20x20": 3}, {"40x40": 2}]
  assert s["median_area"] == [400.0, 1600.0]
  shares = {c["class"]: c["pixel_share"] for c in s["classes"]}
  for k, labels in enumerate((old_labels, new_labels)):
    stacked = np.concatenate([lab.ravel() for lab in labels])
    assert shares["dog"][k] == (stacked == 2).sum() / stacked.size
  assert {c["class"]: c["images"] for c in s["classes"]}["dog"] == [3, 2]
  text = " | ".join(report["warnings"])
  warned = {n for n, (a, b) in shares.items() if f"pixel share of class '{n}'" in text}
  assert warned == {n for n, (a, b) in shares.items() if max(a / b, b / a) > 2.0}
  assert warned == {"bg", "cat", "dog"} and "median image area" in text
  assert "images changed" not in text  # 3 -> 2 is within x2


def test_report_files(tmp_path):
  old, _ = _version(str(tmp_path / "v1"), 20, 2, 3)
  new, _ = _version(str(tmp_path / "v2"), 40, 30, 2)
  out = drift.write(drift.compare(old, new), str(tmp_path / "run"))
  with open(out["md"]) as f:
    md = f.read()
  assert "WARNING: train: pixel share of class 'dog'" in md and "| dog |" in md
  assert Image.open(out["png"]).size[0] > 100
  with open(out["json"]) as f:
    assert json.load(f)["new_fingerprint"] == new["fingerprint"]
  same = drift.compare(old, old)
  assert same["warnings"] == [] and "No change beyond" in drift.markdown(same)

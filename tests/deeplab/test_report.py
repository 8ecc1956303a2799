"""The report renders: non-trivial PNGs, class names in the Markdown, absent classes marked."""

import os

import numpy as np
from PIL import Image

from deeplab.evaluation import metrics, report


def _metrics():
  m = np.array([[50, 5, 0, 0], [4, 30, 6, 0], [0, 2, 20, 0], [0, 0, 0, 0]])
  doc = metrics.compute_metrics(m, ["background", "cat", "dog", "unicorn"])
  doc.update(checkpoint="/x/model.ckpt-5", checkpoint_step=5, dataset="tiny", eval_split="val",
             dataset_fingerprint="abc", num_images=2, eval_scales=[1.0],
             add_flipped_images=False, eval_crop_size=[33, 33])
  return doc


def test_write_report(tmp_path):
  rng = np.random.RandomState(0)
  image = rng.randint(0, 255, (20, 30, 3)).astype(np.uint8)
  label = rng.randint(0, 3, (20, 30))
  label[:, :3] = 255
  pred = rng.randint(0, 3, (20, 30))
  files = report.write_report(str(tmp_path), _metrics(), [("a/img 1.jpg", image, label, pred)])
  assert files == ["report.md", "confusion.png", "per_class_iou.png", "overlays/000000_img_1.png"]
  for name in files[1:]:
    img = np.asarray(Image.open(tmp_path / name).convert("RGB"))
    assert img.shape[0] > 100 and img.shape[1] > 100, name
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 5, f"{name} looks blank"
  overlay = np.asarray(Image.open(tmp_path / files[3]).convert("RGB"))
  k = overlay.shape[0] // 20  # enlarged by an integer factor
  assert overlay.shape == (20 * k, 3 * 30 * k + 8, 3)
  # Middle panel: ignored truth pixels are white.
  assert overlay[0, 30 * k + 4].tolist() == [255, 255, 255]
  md = (tmp_path / "report.md").read_text()
  for text in ("background", "unicorn", "absent", "confusion.png", "per_class_iou.png",
               "overlays/000000_img_1.png", "model.ckpt-5"):
    assert text in md
  assert os.path.getsize(tmp_path / "confusion.png") > 5000


def test_many_classes_render(tmp_path):
  rng = np.random.RandomState(1)
  m = rng.randint(0, 20, (151, 151)) + np.diag(rng.randint(0, 3000, 151))  # mostly right
  doc = metrics.compute_metrics(m)
  report.save_confusion_png(m, doc["class_names"], str(tmp_path / "c.png"))
  report.save_iou_png(doc["per_class_iou"], doc["class_names"], doc["miou"],
                      str(tmp_path / "i.png"))
  assert Image.open(tmp_path / "c.png").size[0] > 500

"""The exported model serves every image of its dataset, exactly as evaluation scored it.

A VOC-style set of JPEG images larger than the training crop (100x120 and 120x100 against a
65x65 crop), converted, evaluated and exported the way the DAG does it (--eval_metrics_json,
--dataset_dir, --check_split). Then the frozen graph runs on every image of the eval split at
its own size, and the mIoU recomputed in numpy from its predictions (ignore label excluded)
equals metrics.json.

The checkpoint is written by the test (`_eval_kit.make_run`: batch norm calibrated, random
unit-scale logits), not trained: what a 40-step training run learns depends on the machine
(on an AVX-512/AMX Xeon it predicted background everywhere, which makes "served = scored"
true for any export), while these weights predict every class on every machine.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.deeplab import _eval_kit as kit_run
from tests.deeplab import _serving_kit as kit
from tests.deeplab._cli import run_deeplab as _deeplab

NUM_CLASSES = 4
# (height, width): larger than the 65x65 training crop; the tallest and the widest differ.
TRAIN_SIZES = [(100, 120)] * 8
VAL_SIZES = [(100, 120), (96, 120), (120, 100), (100, 112), (88, 104), (100, 120)]




def make_voc_tree(root: str) -> str:
  """VOC2012 layout: JPEGImages/*.jpg, SegmentationClassRaw/*.png, ImageSets lists."""
  from deeplab.datasets.converters.synthetic import generate_example
  voc = os.path.join(root, "VOC2012")
  for sub in ("JPEGImages", "SegmentationClassRaw", os.path.join("ImageSets", "Segmentation")):
    os.makedirs(os.path.join(voc, sub), exist_ok=True)
  index = 0
  for split, sizes in (("train", TRAIN_SIZES), ("val", VAL_SIZES)):
    stems = []
    for h, w in sizes:
      image, label = generate_example(7, index, max(h, w), NUM_CLASSES)
      image, label = image[:h, :w], label[:h, :w].copy()
      label[:, :3] = 255  # an ignored strip, like VOC's object borders
      stem = f"2026_{index:06d}"
      Image.fromarray(image).save(os.path.join(voc, "JPEGImages", stem + ".jpg"), quality=90)
      Image.fromarray(label).save(os.path.join(voc, "SegmentationClassRaw", stem + ".png"))
      stems.append(stem)
      index += 1
    with open(os.path.join(voc, "ImageSets", "Segmentation", split + ".txt"), "w") as f:
      f.write("\n".join(stems) + "\n")
  return voc


@pytest.mark.slow
def test_frozen_graph_on_every_val_image_at_full_size_reproduces_metrics_json(tmp_path):
  data, train, eval_dir = tmp_path / "data", tmp_path / "train", tmp_path / "eval"
  _deeplab("build-tfrecords", "--format=voc", f"--source={make_voc_tree(str(tmp_path))}",
           f"--output_dir={data}", f"--num_classes={NUM_CLASSES}", "--num_shards=2",
           "--class_names=background,circle,square,triangle")
  kit_run.make_run(str(train), num_classes=NUM_CLASSES, crop=(65, 65), sizes=VAL_SIZES,
                   output_stride=16)
  _deeplab("evaluate", f"--dataset_dir={data}", f"--checkpoint_dir={train}",
           f"--eval_logdir={eval_dir}", "--eval_batch_size=2",
           f"--result_json={tmp_path / 'eval.json'}")
  evaluated = json.loads((tmp_path / "eval.json").read_text())
  metrics = json.loads((eval_dir / "metrics.json").read_text())
  # As the DAG's export task: evaluate's checkpoint and metrics.json from its result (XCom).
  _deeplab("export", f"--checkpoint_path={evaluated['checkpoint']}",
           f"--export_path={tmp_path / 'export'}", f"--dataset_dir={data}", "--check_split=val",
           f"--eval_metrics_json={evaluated['metrics_json']}")

  exported = json.loads((tmp_path / "export" / "export_result.json").read_text())
  assert exported["crop_size"] is None and metrics["inference_size"] == "own_size"  # any size
  checked = {(i["height"], i["width"]) for i in exported["check"]["images"]}
  assert {(120, 100), (100, 120)} <= checked and exported["check"]["passed"]

  examples, predictions = kit.frozen_graph_on_split(str(tmp_path / "export"), str(data), "val")
  assert sorted(img.shape[:2] for _, img, _ in examples) == sorted(VAL_SIZES)
  assert [p.shape for p in predictions] == [img.shape[:2] for _, img, _ in examples]
  # Not constant: a constant model would make the comparison below blind to a misplaced or
  # resized prediction. The second most predicted class covers 46% of the pixels here
  # (oneDNN on and off, one thread or two), so this does not hang on numerics.
  counts = np.bincount(np.concatenate([p.ravel() for p in predictions]), minlength=NUM_CLASSES)
  print("predicted pixels per class:", counts.tolist())
  assert np.sort(counts)[-2] >= 0.05 * counts.sum(), counts
  labels = [label for _, _, label in examples]
  assert kit.numpy_miou(predictions, labels, NUM_CLASSES) == pytest.approx(metrics["miou"],
                                                                           abs=1e-4)

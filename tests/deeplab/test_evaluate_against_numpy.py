"""evaluate's metrics.json against a confusion matrix computed here with numpy from the
predictions the evaluation graph produces (fetched from it), on a split with ignored pixels.

The fast evaluate tests only check that mIoU lies in [0, 1]; an evaluation that scored
all-zero (or otherwise wrong) predictions passed them.
"""

import json

import numpy as np
import pytest

from deeplab import evaluate
from deeplab.compat import tf
from deeplab.evaluation import eval_pass
from tests.deeplab import _eval_kit as kit

IGNORE = 255


def _graph_outputs(data, ckpt):
  """(labels, predictions) of every batch, fetched from the evaluation graph itself."""
  graph = eval_pass.EvalGraph(data, "val", 1, kit.shared_model_config(), kit.SHARED_CROP, (1.0,),
                              False, IGNORE)
  labels, preds = [], []
  with graph.session(ckpt) as sess:
    while True:
      try:
        out = sess.run({"label": graph.batch["label"], "pred": graph.predictions})
      except tf.errors.OutOfRangeError:
        break
      labels.append(out["label"][..., 0].ravel())
      preds.append(out["pred"].ravel())
  return np.concatenate(labels).astype(np.int64), np.concatenate(preds).astype(np.int64)


def test_metrics_json_equals_numpy_on_the_graph_predictions(tmp_path_factory, tmp_path):
  data, ckpt = kit.shared_run(tmp_path_factory)
  labels, preds = _graph_outputs(data, ckpt)
  keep = labels != IGNORE
  c = kit.SHARED_CLASSES
  assert np.count_nonzero(~keep) > 0  # the split's ignored strips (and the crop padding)
  assert len(np.unique(preds[keep])) > 1  # a real prediction map, not a constant one
  expected = np.bincount(labels[keep] * c + preds[keep], minlength=c * c).reshape(c, c)

  out = tmp_path / "eval"
  code = kit.run_cli(evaluate, [
      f"--checkpoint_path={ckpt}", f"--dataset_dir={data}", f"--eval_logdir={out}",
      "--eval_split=val", f"--eval_crop_size={kit.SHARED_CROP[0]},{kit.SHARED_CROP[1]}",
      "--num_overlays=0"])
  assert code == 0
  m = json.loads((out / "metrics.json").read_text())
  np.testing.assert_array_equal(
      np.asarray(m["confusion_matrix"]), expected,
      err_msg="evaluate scored other predictions than the ones its graph produced")
  tp, union = np.diag(expected), expected.sum(0) + expected.sum(1) - np.diag(expected)
  iou = [t / u for t, u in zip(tp, union) if u > 0]
  assert m["miou"] == pytest.approx(float(np.mean(iou)))
  assert m["pixel_accuracy"] == pytest.approx(tp.sum() / expected.sum())

"""evaluate's metrics.json against a confusion matrix computed here with numpy from the
predictions its graph produced (every batch is fetched and kept), on a split with ignored
pixels.

The fast evaluate tests only check that mIoU lies in [0, 1]; an evaluation that scored
all-zero (or otherwise wrong) predictions passed them.
"""

import json

import numpy as np
import pytest

from deeplab import evaluate
from deeplab.evaluation import eval_pass
from tests.deeplab import _eval_kit as kit

IGNORE = 255


def test_metrics_json_equals_numpy_on_the_graph_predictions(tmp_path_factory, tmp_path,
                                                            monkeypatch):
  data, ckpt = kit.shared_run(tmp_path_factory)
  fetched = []
  real_run_batch = eval_pass.run_batch

  def keep_batches(sess, fetch):  # what sess.run returned: the graph's own outputs
    out = real_run_batch(sess, fetch)
    if out is not None:
      fetched.append((out["label"][..., 0].copy(), out["pred"].copy()))
    return out

  monkeypatch.setattr(eval_pass, "run_batch", keep_batches)
  out = tmp_path / "eval"
  code = kit.run_cli(evaluate, [
      f"--checkpoint_path={ckpt}", f"--dataset_dir={data}", f"--eval_logdir={out}",
      "--eval_split=val", "--num_overlays=1"])
  assert code == 0
  m = json.loads((out / "metrics.json").read_text())

  assert len(fetched) == m["num_images"] == 4
  labels = np.concatenate([l.ravel() for l, _ in fetched]).astype(np.int64)
  preds = np.concatenate([p.ravel() for _, p in fetched]).astype(np.int64)
  keep = labels != IGNORE
  assert np.count_nonzero(~keep) > 0  # the split's ignored strips (and the crop padding)
  assert len(np.unique(preds[keep])) > 1, "the graph predicted one class everywhere"
  c = kit.SHARED_CLASSES
  expected = np.bincount(labels[keep] * c + preds[keep], minlength=c * c).reshape(c, c)
  np.testing.assert_array_equal(
      np.asarray(m["confusion_matrix"]), expected,
      err_msg="evaluate scored other predictions than the ones its graph produced")
  tp, union = np.diag(expected), expected.sum(0) + expected.sum(1) - np.diag(expected)
  assert m["miou"] == pytest.approx(float(np.mean([t / u for t, u in zip(tp, union) if u])))
  assert m["pixel_accuracy"] == pytest.approx(tp.sum() / expected.sum())

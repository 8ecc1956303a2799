"""The device formats' verdicts and settings, without TensorFlow: float formats by agreement
with the frozen graph, quantized ones by their mIoU drop; bad --formats refused (exit 2)."""

import numpy as np
import pytest

from deeplab import export
from deeplab.exporting import formats as fm
from deeplab.exporting.scoring import FLOAT_MIN_AGREEMENT, Scores
from tests.deeplab import _eval_kit as kit


def _numpy_miou(label, pred, num_classes, ignore=255):
  keep = label != ignore
  ious = []
  for c in range(num_classes):
    t, p = (label == c) & keep, (pred == c) & keep
    if (t | p).any():
      ious.append((t & p).sum() / (t | p).sum())
  return float(np.mean(ious))


def _label_and_reference():
  rng = np.random.RandomState(0)
  label = rng.randint(0, 3, (20, 30)).astype(np.int64)
  label[:, :2] = 255
  return label, label.copy()  # the frozen graph is right everywhere: mIoU 1


def test_a_quantized_format_that_drops_more_than_allowed_fails_naming_both_mious():
  label, ref = _label_and_reference()
  int8 = ref.copy()
  int8[:10, 5:15] = (int8[:10, 5:15] + 1) % 3  # 100 of 600 pixels wrong
  scores = Scores([fm.TFLITE_INT8], 3, 255)
  scores.add("a", label, ref, {fm.TFLITE_INT8: int8})
  want = _numpy_miou(label, int8, 3)
  out = scores.result(max_quantized_miou_drop=0.01)
  row = out["formats"][fm.TFLITE_INT8]
  assert out["frozen"]["miou"] == pytest.approx(1.0)
  assert row["miou"] == pytest.approx(want) and row["miou_drop"] == pytest.approx(1 - want)
  assert row["differing_pixels"] == 100 and not row["passed"]
  (msg,) = out["failures"]
  assert "tflite_int8" in msg and f"{want:.4f}" in msg and "1.0000" in msg
  # The same drop within a larger allowance passes.
  assert scores.result(max_quantized_miou_drop=1 - want + 1e-9)["failures"] == []


def test_a_float_format_must_agree_with_the_frozen_graph():
  label, ref = _label_and_reference()
  n_bad = int(ref.size * (1 - FLOAT_MIN_AGREEMENT)) + 1  # just beyond the tolerance
  onnx = ref.copy().reshape(-1)
  onnx[:n_bad] = (onnx[:n_bad] + 1) % 3
  scores = Scores([fm.ONNX, fm.TFLITE_FLOAT32], 3, 255)
  scores.add("a", label, ref, {fm.ONNX: onnx.reshape(ref.shape), fm.TFLITE_FLOAT32: ref})
  out = scores.result(max_quantized_miou_drop=1.0)  # the mIoU allowance does not apply
  assert not out["formats"][fm.ONNX]["passed"] and out["formats"][fm.TFLITE_FLOAT32]["passed"]
  assert out["formats"][fm.TFLITE_FLOAT32]["agreement"] == 1.0
  assert len(out["failures"]) == 1 and "onnx" in out["failures"][0]


def test_scores_add_up_over_images():
  label, ref = _label_and_reference()
  f16 = ref.copy()
  f16[3, 3] = (f16[3, 3] + 1) % 3
  scores = Scores([fm.TFLITE_FLOAT16], 3, 255)
  for _ in range(3):
    scores.add("a", label, ref, {fm.TFLITE_FLOAT16: f16})
  row = scores.result(0.01)["formats"][fm.TFLITE_FLOAT16]
  assert row["pixels"] == 3 * ref.size and row["differing_pixels"] == 3
  assert row["miou"] == pytest.approx(_numpy_miou(np.tile(label, 3), np.tile(f16, 3), 3))


@pytest.mark.parametrize("formats, check_split, dataset_dir, fragment", [
    (("saved_model", "tflite"), "val", "d", "must include 'frozen'"),
    (("frozen", "coreml"), "val", "d", "unknown format(s) ['coreml']"),
    (("frozen", "onnx"), "val", None, "needs --dataset_dir"),
    (("frozen", "tflite_int8"), "train", "d", "--calibration_split=train is the check split"),
])
def test_impossible_format_settings_are_refused(formats, check_split, dataset_dir, fragment):
  problems = export.device_problems(formats, export.DeviceSettings(), dataset_dir, check_split)
  assert any(fragment in p for p in problems), problems


def test_the_default_formats_need_nothing_more():
  assert export.DeviceSettings().calibration_split == "train"
  assert export.device_problems(fm.DEFAULT_FORMATS, export.DeviceSettings(), None, "val") == []
  assert fm.device_formats(fm.DEFAULT_FORMATS) == []


def test_the_cli_refuses_bad_formats_before_reading_anything(tmp_path, capsys):
  out = tmp_path / "export"
  code = kit.run_cli(export, [f"--checkpoint_path={tmp_path}/missing/model.ckpt-1",
                              f"--export_path={out}", "--formats=frozen,tflite_int9"])
  assert code == 2
  err = capsys.readouterr().err
  assert "tflite_int9" in err and "tflite_int8" in err  # names the bad one and the choices
  assert not out.exists()

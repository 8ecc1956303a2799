"""export --formats: TFLite (float32, float16, int8, the mobile form) and ONNX, each scored like
the frozen graph.

The check split's labels are the frozen graph's own predictions, so the frozen graph's mIoU is
1 by construction (a fact independent of the code under test), and any pixel a format gets
wrong lowers its mIoU. Each format is run here with its own runtime (LiteRT, onnxruntime),
independently of the export's scoring, at several image sizes (dynamic height and width).
"""

import hashlib
import json
import os

import numpy as np
import pytest

from deeplab import export, run_config
from deeplab.datasets import features
from deeplab.exporting import formats as fm
from deeplab.exporting import graph as eg
from deeplab.exporting import report
from deeplab.exporting import self_check
from deeplab.exporting.scoring import FLOAT_MIN_AGREEMENT
from tests.deeplab import _eval_kit as kit

pytestmark = pytest.mark.slow
NUM_CLASSES = 3
VAL_SIZES = ((33, 41), (29, 33), (45, 52))
TRAIN_SIZES = ((31, 35), (40, 28), (33, 33), (38, 44))
_CACHE = {}


def _write_split(folder, split, examples):
  from deeplab.compat import tf
  path = os.path.join(folder, features.shard_name(split, 0, 1))
  with tf.io.TFRecordWriter(path) as writer:
    for name, image, label in examples:
      feats = {features.IMAGE_ENCODED: kit._bytes(kit._png(image)),
               features.IMAGE_FILENAME: kit._bytes(name.encode()),
               features.IMAGE_FORMAT: kit._bytes(b"png"),
               features.IMAGE_HEIGHT: kit._int(image.shape[0]),
               features.IMAGE_WIDTH: kit._int(image.shape[1]),
               features.IMAGE_CHANNELS: kit._int(3),
               features.LABEL_ENCODED: kit._bytes(kit._png(label.astype(np.uint8))),
               features.LABEL_FORMAT: kit._bytes(b"png")}
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=feats)).SerializeToString())
  return {"num_examples": len(examples),
          "shards": [{"name": os.path.basename(path), "num_examples": len(examples)}],
          "max_height": max(e[1].shape[0] for e in examples),
          "max_width": max(e[1].shape[1] for e in examples)}


@pytest.fixture
def run(tmp_path_factory):
  """(dataset_dir, checkpoint, val examples): val labels = the frozen graph's predictions."""
  if "run" not in _CACHE:
    root = tmp_path_factory.mktemp("formats")
    ckpt = kit.make_run(str(root / "train"), num_classes=NUM_CLASSES)
    cfg, _ = run_config.load_run_config(ckpt, None, required=True)
    policy = export.size_settings(cfg.model, None, None, None, None, None)["policy"]
    frozen = eg.freeze(eg.build_inference_graph(policy), ckpt)
    val = [(f"val_{i}", kit.make_example(i, h, w, NUM_CLASSES)[0])
           for i, (h, w) in enumerate(VAL_SIZES)]
    labels = self_check.frozen_predictions(frozen, val)
    # Several classes, so that a wrong pixel lowers the mIoU of a format.
    assert len(np.unique(np.concatenate([p.ravel() for p in labels]))) > 1
    data = str(root / "data")
    os.makedirs(data)
    splits = {
        "val": _write_split(data, "val", [(n, img, lab) for (n, img), lab in zip(val, labels)]),
        "train": _write_split(data, "train", [
            (f"train_{i}", *kit.make_example(100 + i, h, w, NUM_CLASSES))
            for i, (h, w) in enumerate(TRAIN_SIZES)]),
        # Calibration on black images only: int8 ranges that fit no real image.
        "black": _write_split(data, "black", [
            (f"black_{i}", np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8))
            for i, (h, w) in enumerate(TRAIN_SIZES)])}
    with open(os.path.join(data, features.MANIFEST), "w") as f:
      json.dump({"format_version": 1, "name": "formats", "fingerprint": "feedfacecafe0020",
                 "num_classes": NUM_CLASSES, "ignore_label": 255, "image_format": "png",
                 "class_names": ["background", "a", "b"], "splits": splits}, f)
    _CACHE["run"] = (data, ckpt, [(n, img, lab) for (n, img), lab in zip(val, labels)])
  return _CACHE["run"]


def _litert(path, images):
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path)
  inp = interpreter.get_input_details()[0]
  out = [d for d in interpreter.get_output_details() if d["name"] == "SemanticPredictions"][0]
  preds = []
  for img in images:
    interpreter.resize_tensor_input(inp["index"], [1, *img.shape])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], img[None])
    interpreter.invoke()
    preds.append(interpreter.get_tensor(out["index"])[0])
  return preds


def _onnxruntime(path, images):
  import onnxruntime
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  return [session.run(["SemanticPredictions:0"], {"ImageTensor:0": img[None]})[0][0]
          for img in images]


def _mobile(path, images):
  """The app's own pre- and post-processing, written here from the original's formulas:
  pixels to [-1, 1], padded with 0 (the mean pixel) bottom and right; argmax, image region."""
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path)
  interpreter.allocate_tensors()
  inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
  assert inp["dtype"] == np.float32 and inp["name"] == "MobileInput"
  assert out["name"] == "SemanticLogits"
  crop_h, crop_w = inp["shape"][1:3]
  assert list(out["shape"]) == [1, crop_h, crop_w, NUM_CLASSES]
  preds = []
  for img in images:
    h, w = img.shape[:2]
    x = np.zeros((1, crop_h, crop_w, 3), np.float32)
    x[0, :h, :w] = img.astype(np.float32) * (2.0 / 255.0) - 1.0
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    preds.append(np.argmax(interpreter.get_tensor(out["index"])[0], -1)[:h, :w])
  return preds


def _miou(labels, preds):
  ious = []
  for c in range(NUM_CLASSES):
    inter = sum(int(((l == c) & (p == c)).sum()) for l, p in zip(labels, preds))
    union = sum(int(((l == c) | (p == c)).sum()) for l, p in zip(labels, preds))
    if union:
      ious.append(inter / union)
  return float(np.mean(ious))


def test_every_format_runs_and_is_scored_like_the_frozen_graph(run, tmp_path):
  data, ckpt, val = run
  out, result_json = tmp_path / "export", tmp_path / "result.json"
  code = kit.run_cli(export, [
      f"--checkpoint_path={ckpt}", f"--export_path={out}", f"--dataset_dir={data}",
      "--formats=frozen,tflite,tflite_float16,tflite_int8,onnx,tflite_mobile",  # no SavedModel
      "--max_quantized_miou_drop=1", f"--result_json={result_json}"])
  assert code == 0
  names = {fm.TFLITE_FLOAT32: "deeplab_float32.tflite", fm.TFLITE_FLOAT16:
           "deeplab_float16.tflite", fm.TFLITE_INT8: "deeplab_int8.tflite",
           fm.ONNX: "deeplab.onnx", fm.TFLITE_MOBILE: "deeplab_mobile.tflite"}
  assert sorted(os.listdir(out)) == sorted(["export_result.json", "frozen_inference_graph.pb",
                                            *names.values()])
  result = json.loads((out / "export_result.json").read_text())
  scored = result["device_formats"]
  images = [img for _, img, _ in val]
  labels = [lab for _, _, lab in val]
  assert scored["num_images"] == len(val) and scored["calibration_split"] == "train"
  assert scored["frozen"]["miou"] == pytest.approx(1.0)  # labels = its own predictions
  for fmt, name in names.items():
    path = str(out / name)
    run_format = {fm.ONNX: _onnxruntime, fm.TFLITE_MOBILE: _mobile}.get(fmt, _litert)
    preds = run_format(path, images)
    assert [p.shape for p in preds] == [lab.shape for lab in labels]  # any height and width
    differing = sum(int((p != lab).sum()) for p, lab in zip(preds, labels))
    row = scored["formats"][fmt]
    assert row["differing_pixels"] == differing, fmt
    assert row["miou"] == pytest.approx(_miou(labels, preds)), fmt
    if fmt in (fm.TFLITE_FLOAT32, fm.ONNX):
      assert 1 - differing / sum(lab.size for lab in labels) >= FLOAT_MIN_AGREEMENT, fmt
  sizes = {f["path"]: f["bytes"] for f in result["files"]}
  # float16 stores weights in half the bytes, int8 in a quarter: both files are smaller.
  assert sizes[names[fm.TFLITE_INT8]] < sizes[names[fm.TFLITE_FLOAT32]]
  assert sizes[names[fm.TFLITE_FLOAT16]] < sizes[names[fm.TFLITE_FLOAT32]]
  # The mobile form: the original's fixed-size float input and logits output, at 513x513 when
  # the export has no --crop_size.
  described = scored["mobile_form"]
  assert described["input_shape"] == [1, 513, 513, 3]
  assert described["output_shape"] == [1, 513, 513, NUM_CLASSES]
  # The run report's rows (promote's log, the demo summary) from the real export_result.json.
  rows = {r["format"]: r for r in report.rows(report.summary(result), result["files"],
                                              result["frozen_graph"])}
  assert set(rows) == {"frozen", *names}
  for fmt, name in names.items():
    assert rows[fmt]["bytes"] == (out / name).stat().st_size
    assert rows[fmt]["verdict"].startswith("passed"), rows[fmt]
  summary = json.loads(result_json.read_text())
  assert summary["device_formats"] == report.summary(result)
  for f in summary["files"]:
    assert f["sha256"] == hashlib.sha256((out / f["path"]).read_bytes()).hexdigest()
  assert summary["device_formats"][fm.TFLITE_INT8]["file"] == names[fm.TFLITE_INT8]
  assert summary["device_formats"]["frozen_miou"] == pytest.approx(1.0)


def test_an_int8_export_that_drops_more_than_allowed_exits_2(run, tmp_path, capsys):
  data, ckpt, _ = run
  out = tmp_path / "export"
  code = kit.run_cli(export, [
      f"--checkpoint_path={ckpt}", f"--export_path={out}", f"--dataset_dir={data}",
      "--formats=frozen,tflite_int8", "--calibration_split=black", "--num_check_images=1"])
  assert code == 2
  err = capsys.readouterr().err
  assert "format tflite_int8: mIoU" in err and "float mIoU 1.0000" in err
  assert "--max_quantized_miou_drop=0.01" in err
  assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_the_mobile_form_at_the_exports_crop_predicts_what_the_frozen_graph_does(run, tmp_path):
  """With --crop_size, the frozen graph pools over the same fixed crop as the mobile form: the
  mobile form between the app's pre- and post-processing gives the frozen graph's classes."""
  data, ckpt, val = run
  out = tmp_path / "export"
  code = kit.run_cli(export, [
      f"--checkpoint_path={ckpt}", f"--export_path={out}", f"--dataset_dir={data}",
      "--crop_size=49,65", "--formats=frozen,tflite_mobile", "--num_check_images=1"])
  assert code == 0
  images = [img for _, img, _ in val]
  frozen = self_check.frozen_predictions(
      eg.read_frozen_graph(str(out / eg.FROZEN_GRAPH)), [("", img) for img in images])
  preds = _mobile(str(out / "deeplab_mobile.tflite"), images)
  pixels = sum(p.size for p in frozen)
  differing = sum(int((p != f).sum()) for p, f in zip(preds, frozen))
  assert 1 - differing / pixels >= FLOAT_MIN_AGREEMENT
  result = json.loads((out / "export_result.json").read_text())
  row = result["device_formats"]["formats"][fm.TFLITE_MOBILE]
  assert row["differing_pixels"] == differing and row["passed"]
  assert result["device_formats"]["mobile_form"]["input_shape"] == [1, 49, 65, 3]

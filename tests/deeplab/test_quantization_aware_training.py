"""--quantize_delay_step: fake-quant ops in the model from the delay step on, and the int8 TFLite
model of a QAT checkpoint converted from its learned ranges and scored by the self-check."""

import json
import os

import numpy as np
import pytest

from deeplab import export, train
from deeplab.exporting import formats as fm
from tests.deeplab import _eval_kit as kit
from tests.deeplab.test_export_formats import run  # noqa: F401 (the shared dataset + checkpoint)

pytestmark = pytest.mark.slow
DELAY = 3


def _distinct_values_before_and_after_the_delay():
  """Distinct values of one layer's output in the training graph at step 0 and step DELAY."""
  from deeplab import config, model
  from deeplab.compat import tf
  cfg = config.ModelConfig(num_classes=3, quantize_delay_step=DELAY, **kit.TINY_MODEL)
  images = np.random.RandomState(0).uniform(0, 255, (2, 33, 33, 3)).astype(np.float32)
  graph = tf.Graph()
  with graph.as_default():
    step = tf.train.get_or_create_global_step()
    model.multi_scale_logits(tf.constant(images), cfg, [33, 33], is_training=True,
                             fine_tune_batch_norm=True)
    # The first bottleneck's linear projection: the output of a conv + batch norm.
    layer = graph.get_tensor_by_name("MobilenetV2/expanded_conv/output:0")
    types = {op.type for op in graph.get_operations()}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      before = sess.run(layer)
      sess.run(step.assign(DELAY))
      after = sess.run(layer)
  return types, before, after


def test_fake_quant_ops_act_from_the_delay_step_on():
  types, before, after = _distinct_values_before_and_after_the_delay()
  assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel"} <= types
  assert before.size > 1000
  # Before the delay the float model: values of a conv output are (almost) all distinct.
  assert len(np.unique(before)) > 256
  # After: 8-bit, at most 256 levels, evenly spaced (one step apart, up to float rounding).
  levels = np.unique(after)
  assert 2 < len(levels) <= 256
  gaps = np.diff(levels)
  assert np.allclose(gaps / gaps.min(), np.round(gaps / gaps.min()), atol=1e-3)


def test_a_qat_run_exports_int8_tflite_from_its_learned_ranges(run, tmp_path,  # noqa: F811
                                                               capsys):
  data, float_ckpt, val = run
  logdir = tmp_path / "qat"
  code = kit.run_cli(train, [
      f"--dataset_dir={data}", "--train_split=train", f"--train_logdir={logdir}",
      f"--tf_initial_checkpoint={float_ckpt}", "--model_variant=mobilenet_v2",
      "--depth_multiplier=0.25", "--aspp_convs_filters=16", "--decoder_filters=16",
      "--train_crop_size=33,33", "--train_batch_size=2", "--training_number_of_steps=3",
      "--quantize_delay_step=1", "--base_learning_rate=0.001", "--save_summaries_secs=0"])
  assert code == 0
  from deeplab.compat import tf
  reader = tf.train.load_checkpoint(str(logdir / "model.ckpt-3"))
  act_max = reader.get_tensor("MobilenetV2/Conv/act_quant/max")
  assert act_max > 0  # the range was learned from the activations (it starts at 0)

  # Its float conversions are refused before anything is written (their fake-quant ops become
  # quantize/dequantize pairs or QLinearConv nodes; docs/export.md).
  refused = tmp_path / "refused"
  code = kit.run_cli(export, [
      f"--checkpoint_path={logdir / 'model.ckpt-3'}", f"--export_path={refused}",
      f"--dataset_dir={data}", "--formats=frozen,tflite,tflite_int8,onnx"])
  assert code == 2 and not refused.exists()
  assert "['tflite', 'onnx'] of a quantization-aware-trained model" in capsys.readouterr().err

  out = tmp_path / "export"
  code = kit.run_cli(export, [
      f"--checkpoint_path={logdir / 'model.ckpt-3'}", f"--export_path={out}",
      f"--dataset_dir={data}", "--formats=frozen,tflite_int8", "--num_check_images=1",
      "--max_quantized_miou_drop=1"])
  assert code == 0
  result = json.loads((out / "export_result.json").read_text())
  scored = result["device_formats"]
  assert scored["int8_ranges"] == "quantization-aware training"
  assert scored["calibration_split"] is None  # no calibration images were read
  row = scored["formats"][fm.TFLITE_INT8]
  assert row["passed"] and row["miou"] is not None and scored["num_images"] == len(val)

  # The file is integer end to end: every conv reads and writes int8 tensors, with the
  # scale the learned range gives (max - min) / 255 for the first conv's output.
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=str(out / fm.DEVICE_FILES[fm.TFLITE_INT8]))
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  convs = [op for op in interpreter._get_ops_details()
           if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
  assert convs
  for op in convs:
    assert tensors[op["inputs"][0]]["dtype"] == np.int8
    assert tensors[op["outputs"][0]]["dtype"] == np.int8
  act_min = reader.get_tensor("MobilenetV2/Conv/act_quant/min")
  scales = [t["quantization"][0] for t in tensors.values()
            if t["dtype"] == np.int8 and "MobilenetV2/Conv/" in t["name"]]
  assert any(np.isclose(s, (act_max - act_min) / 255, rtol=1e-3) for s in scales)

"""The dense prediction cell (DPC): its file, its checks, its atrous rates and its branches.

Facts from the original research/deeplab/core/dense_prediction_cell.py and its bundled
dense_prediction_cell_branch5_top1_cityscapes.json (tensorflow/models, late 2020).
The graphs run on the small stand-in backbone of test_model.py.
"""

import json

import numpy as np
import pytest

from deeplab import cli, model
from deeplab.compat import tf
from deeplab.config import ModelConfig
from deeplab.config import dense_prediction_cell as cell_file
from deeplab.datasets import build
from deeplab.datasets.converters.base import ConvertOptions
from deeplab.errors import UserInputError
from tests.deeplab.test_model import _tiny_extract_features

# The original file's content, as published.
ORIGINAL_CELL = [
    {"kernel": 3, "rate": [1, 6], "op": "conv", "input": -1},
    {"kernel": 3, "rate": [18, 15], "op": "conv", "input": 0},
    {"kernel": 3, "rate": [6, 3], "op": "conv", "input": 1},
    {"kernel": 3, "rate": [1, 1], "op": "conv", "input": 0},
    {"kernel": 3, "rate": [6, 21], "op": "conv", "input": 0},
]


@pytest.fixture
def tiny_backbone(monkeypatch):
  monkeypatch.setattr(model.feature_extractor, "extract_features", _tiny_extract_features)


def _write(tmp_path, cell, name="cell.json"):
  path = tmp_path / name
  path.write_text(cell if isinstance(cell, str) else json.dumps(cell))
  return str(path)


def test_the_bundled_cell_is_the_original():
  assert json.loads(cell_file.BUNDLED_CITYSCAPES_CELL.read_text()) == ORIGINAL_CELL
  assert cell_file.load(str(cell_file.BUNDLED_CITYSCAPES_CELL)) == ORIGINAL_CELL


@pytest.mark.parametrize("cell, message", [
    ("[{", "not valid JSON"),
    ({"op": "conv"}, "expected a non-empty JSON list"),
    ([{"op": "deconv", "input": -1}], "branch 0: key 'op' must be one of"),
    ([{"op": "conv", "kernel": 3, "rate": [1, 1], "input": 0}], "branch 0: key 'input'"),
    ([{"op": "conv", "kernel": 5, "rate": [1, 1], "input": -1}], "branch 0: key 'kernel'"),
    ([{"op": "conv", "kernel": 1, "input": -1},
      {"op": "conv", "kernel": 3, "rate": [0, 2], "input": 0}], "branch 1: key 'rate'"),
    ([{"op": "pyramid_pooling", "grid_size": [2], "input": -1}], "branch 0: key 'grid_size'"),
])
def test_a_malformed_cell_names_the_file_and_the_key(tmp_path, cell, message):
  path = _write(tmp_path, cell)
  cfg = ModelConfig(dense_prediction_cell_json=path)
  assert cfg.problems() == []  # the Airflow side reads no files
  problems = " ".join(cfg.input_file_problems())
  assert path in problems and message in problems


def test_a_missing_cell_file_is_named():
  problems = " ".join(
      ModelConfig(dense_prediction_cell_json="/no/such/cell.json").input_file_problems())
  assert "/no/such/cell.json" in problems and "cannot read it" in problems


def test_train_with_a_malformed_cell_exits_2_naming_the_file(tmp_path, capsys):
  dataset = str(tmp_path / "ds")
  build.build_tfrecords(ConvertOptions(format="synthetic", source=None, synthetic_num_train=2,
                                       synthetic_num_val=1, synthetic_image_size=32), dataset, 0)
  path = _write(tmp_path, [{"op": "conv", "kernel": 3, "input": -1}], "bad_cell.json")
  code = cli.run_command("train", [f"--dataset_dir={dataset}",
                                   f"--train_logdir={tmp_path / 'train'}",
                                   f"--dense_prediction_cell_json={path}"])
  captured = capsys.readouterr()
  assert code == 2
  assert "bad_cell.json" in captured.err + captured.out
  assert not (tmp_path / "train").exists()


def test_training_keeps_a_copy_of_the_cell_and_config_json_points_at_it(tmp_path):
  """The run stays reproducible when the user's cell file changes or goes away."""
  from deeplab.config import TrainConfig, load_train_config
  from deeplab.training import trainer
  from deeplab.training.logdir import TrainLogdir

  source = _write(tmp_path, ORIGINAL_CELL, "my_cell.json")
  run = tmp_path / "run"
  cfg = TrainConfig(model=ModelConfig(dense_prediction_cell_json=source, num_classes=3),
                    dataset_dir=str(tmp_path), train_logdir=str(run))
  trainer._write_config(TrainLogdir(str(run)), cfg)
  saved = load_train_config((run / "config.json").read_text())
  copy = run / "dense_prediction_cell.json"
  assert saved.model.dense_prediction_cell_json == str(copy)
  assert json.loads(copy.read_text()) == ORIGINAL_CELL
  trainer._write_config(TrainLogdir(str(run)), saved)  # resuming from config.json
  trainer._write_config(TrainLogdir(str(run)), cfg)  # or from the same flags

  (tmp_path / "my_cell.json").write_text(json.dumps(ORIGINAL_CELL[:2]))
  with pytest.raises(UserInputError, match="differs from .*my_cell.json"):
    trainer._write_config(TrainLogdir(str(run)), cfg)
  assert json.loads(copy.read_text()) == ORIGINAL_CELL


def _rates(graph, scope):
  """[rate_h, rate_w] of the depthwise conv under `scope` (SpaceToBatchND's block shape)."""
  for op in graph.get_operations():
    if op.name.startswith(scope + "/") and op.type == "SpaceToBatchND":
      return [int(r) for r in tf.make_ndarray(op.inputs[1].op.get_attr("value"))]
  return [1, 1]


@pytest.mark.parametrize("output_stride, multiplier", [(16, 1), (8, 2)])
def test_rates_scale_with_output_stride_and_branches_chain(tiny_backbone, output_stride,
                                                           multiplier):
  cfg = ModelConfig(model_variant="mobilenet_v2", num_classes=3, output_stride=output_stride,
                    dense_prediction_cell_json=str(cell_file.BUNDLED_CITYSCAPES_CELL))
  graph = tf.Graph()
  with graph.as_default():
    net, _ = model.extract_features(tf.zeros([1, 65, 65, 3]), cfg, crop_size=(65, 65))
    assert net.shape.as_list()[-1] == 256
    for i, branch in enumerate(ORIGINAL_CELL):
      want = [r * multiplier for r in branch["rate"]]
      assert _rates(graph, f"meta_architecture/branch{i}_depthwise") == want, i
      # Branch i reads the features (16 channels) or an earlier branch (256).
      depthwise = graph.get_tensor_by_name(
          f"meta_architecture/branch{i}_depthwise/depthwise_weights:0")
      assert depthwise.shape.as_list()[2] == (16 if branch["input"] < 0 else 256)
    names = [v.op.name for v in tf.global_variables()]
    assert not any(n.startswith(("aspp", "image_pooling", "concat_projection")) for n in names)


def test_pyramid_pooling_and_1x1_branches(tiny_backbone, tmp_path):
  cell = [{"op": "pyramid_pooling", "grid_size": [1, 1], "input": -1},
          {"op": "conv", "kernel": 1, "input": 0}]
  cfg = ModelConfig(model_variant="mobilenet_v2", num_classes=3, output_stride=16,
                    dense_prediction_cell_json=_write(tmp_path, cell))
  images = np.random.RandomState(0).uniform(0, 255, (1, 65, 65, 3)).astype(np.float32)
  with tf.Graph().as_default():
    net, _ = model.extract_features(tf.constant(images), cfg, crop_size=(65, 65))
    pooled = tf.get_default_graph().get_tensor_by_name(
        "meta_architecture/branch0/Relu:0")
    shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      pooled_value = sess.run(pooled)
  assert shapes["meta_architecture/branch0/weights"] == [1, 1, 16, 256]
  assert shapes["meta_architecture/branch1/weights"] == [1, 1, 256, 256]
  assert shapes["meta_architecture/concat_projection/weights"] == [1, 1, 512, 256]
  # A 1x1 grid pools the whole 5x5 feature map to one value per channel.
  assert pooled_value.shape == (1, 1, 1, 256)
  assert net.shape.as_list() == [1, 5, 5, 256]

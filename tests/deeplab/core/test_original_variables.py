"""Each model variant builds exactly the original's checkpoint variables, and such a checkpoint loads.

The expected lists are tests/testdata/model_variables/*.json, written from the original
sources by original_layout.py there (no code of this repository involved; see the README).
A checkpoint holding exactly those names and shapes must initialise every model variable
through the --tf_initial_checkpoint path (training.checkpoint_init) with nothing missing,
nothing of a different shape and nothing left over.
"""

import json
import pathlib

import pytest

from deeplab import model
from deeplab.compat import tf
from deeplab.config import ModelConfig
from deeplab.training import checkpoint_init

DATA = pathlib.Path(__file__).parents[2] / "testdata" / "model_variables"
CORE = pathlib.Path(__file__).parents[3] / "deeplab" / "core"
# Building these big graphs takes 6-10 s each: they run with the slow tests.
_SLOW = {"resnet_v1_101", "xception_71_dpc", "nas_pnasnet"}
# test_nas_variants.py trains this one and compares its checkpoint with the same list.
_CHECKED_BY_TRAINING = {"nas_hnasnet"}
CASES = sorted(p.stem for p in DATA.glob("*.json"))
PARAMS = [pytest.param(c, marks=pytest.mark.slow) if c in _SLOW else c for c in CASES
          if c not in _CHECKED_BY_TRAINING]
CROP = 33  # (33 - 1) / 16 + 1 = 3: exact at output stride 16 and 8.


def _case(name: str) -> dict:
  return json.loads((DATA / f"{name}.json").read_text())


def _flags(case: dict) -> dict:
  """The case's flags; "BUNDLED:<name>" is a file shipped in deeplab/core."""
  flags = dict(case["flags"])
  for name, value in flags.items():
    if isinstance(value, str) and value.startswith("BUNDLED:"):
      flags[name] = str(CORE / (value[len("BUNDLED:"):] + ".json"))
  return flags


def _build(case: dict):
  """The training graph of `case`'s flags on a CROP x CROP batch of one; its variables."""
  cfg = ModelConfig(num_classes=case["num_classes"], **_flags(case))
  assert cfg.problems() == [] and cfg.input_file_problems() == []
  graph = tf.Graph()
  with graph.as_default():
    model.multi_scale_logits(tf.zeros([1, CROP, CROP, 3]), cfg, (CROP, CROP),
                             is_training=True, fine_tune_batch_norm=True)
  return graph


def _write_checkpoint(variables: dict, prefix: str) -> None:
  """Variable i (in name order) holds i + 1 everywhere: a restore tells them apart."""
  with tf.Graph().as_default(), tf.Session() as sess:
    tf_vars = [tf.Variable(tf.fill(shape, float(i + 1)), name=name)
               for i, (name, shape) in enumerate(sorted(variables.items()))]
    sess.run(tf.global_variables_initializer())
    tf.train.Saver(tf_vars).save(sess, prefix, write_meta_graph=False)


def test_every_case_is_a_supported_variant():
  from deeplab.config import SUPPORTED_VARIANTS
  assert CASES and {_case(c)["flags"]["model_variant"] for c in CASES} <= set(SUPPORTED_VARIANTS)


@pytest.mark.parametrize("name", PARAMS)
def test_graph_variables_equal_the_original_and_its_checkpoint_loads(name, tmp_path):
  case = _case(name)
  expected = case["variables"]
  graph = _build(case)
  with graph.as_default():
    built = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    assert sorted(set(built) - set(expected)) == [], "variables the original does not have"
    assert sorted(set(expected) - set(built)) == [], "variables of the original not built"
    assert {n: s for n, s in built.items() if expected[n] != s} == {}, "shapes differ"

  prefix = str(tmp_path / "model.ckpt")
  _write_checkpoint(expected, prefix)
  with graph.as_default():
    init_fn = checkpoint_init.get_model_init_fn(prefix, ignore_missing_vars=False)
    assert init_fn.missing == [] and init_fn.skipped_shape == []
    assert init_fn.restored == sorted(expected)
    variables = tf.global_variables()
    # The smallest element of each variable: restored ones hold their fill everywhere.
    lowest = [tf.reduce_min(v) for v in variables] + [tf.reduce_max(v) for v in variables]
    with tf.Session() as sess:
      init_fn(sess)
      values = sess.run(lowest)
    order = sorted(expected)
    fills = [order.index(v.op.name) + 1 for v in variables]
    assert values == fills + fills


@pytest.mark.slow
def test_one_training_step_writes_exactly_the_original_variables(tmp_path):
  """`deeplab train` with the model zoo's MobileNet-v3 flags (tiny crop, one step, two
  clones) writes a checkpoint whose model variables are exactly the original's list."""
  from deeplab import cli
  from deeplab.datasets import build
  from deeplab.datasets.converters.base import ConvertOptions

  classes = 3
  dataset = str(tmp_path / "ds")
  build.build_tfrecords(ConvertOptions(format="synthetic", source=None, synthetic_num_train=4,
                                       synthetic_num_val=1, synthetic_image_size=33,
                                       synthetic_num_classes=classes), dataset, 0)
  case = _case("mobilenet_v3_small_seg")
  flags = [f"--{k}={v}" for k, v in _flags(case).items() if not isinstance(v, list)]
  flags += [f"--{k}={x}" for k, v in _flags(case).items() if isinstance(v, list) for x in v]
  flags = [f for f in flags if not f.startswith("--decoder_filters=")]
  code = cli.run_command("train", [
      f"--dataset_dir={dataset}", f"--train_logdir={tmp_path / 'train'}", *flags,
      f"--decoder_filters={classes}", "--train_crop_size=33,33", "--train_batch_size=2",
      "--num_clones=2", "--training_number_of_steps=1", "--save_summaries_secs=0"])
  assert code == 0
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "train")))
  saved = {n: s for n, s in reader.get_variable_to_shape_map().items()
           if n != "global_step" and not n.endswith("/Momentum")}
  # The decoder's last convs have one filter per class: the dataset's 3, not Cityscapes' 19.
  want = {n: [classes if n.startswith("decoder/") and d == case["num_classes"] else d
              for d in s] for n, s in case["variables"].items()}
  assert saved == want

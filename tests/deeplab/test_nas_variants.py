"""The NAS backbones through every stage: train, evaluate, export (with its self-check).

One run of nas_hnasnet (the two NAS backbones share their cells, nas_cell.py; nas_pnasnet's
variables and checkpoint loading are checked by core/test_original_variables.py, which keeps
the slow suite within its budget) on a tiny synthetic dataset (33x33 crops, 3 classes), with the flags of
tests/testdata/model_variables/<variant>.json (the original's layout, written from its
sources): the checkpoint training writes holds exactly that list (the logits sized for the
dataset's 3 classes instead of Cityscapes' 19), evaluation reads it, and the export checks
itself against the evaluation graph before publishing.
"""

import json
import pathlib

import pytest

from deeplab import cli
from deeplab.compat import tf

DATA = pathlib.Path(__file__).parents[1] / "testdata" / "model_variables"
CLASSES = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  from deeplab.datasets import build
  from deeplab.datasets.converters.base import ConvertOptions

  folder = str(tmp_path_factory.mktemp("nas") / "ds")
  build.build_tfrecords(ConvertOptions(format="synthetic", source=None, synthetic_num_train=2,
                                       synthetic_num_val=1, synthetic_image_size=33,
                                       synthetic_num_classes=CLASSES), folder, 0)
  return folder


def _flags(case: dict) -> list:
  out = []
  for name, value in case["flags"].items():
    out += [f"--{name}={v}" for v in value] if isinstance(value, list) else [f"--{name}={value}"]
  return out


@pytest.mark.slow
def test_nas_variant_trains_evaluates_and_exports(dataset, tmp_path):
  variant = "nas_hnasnet"
  case = json.loads((DATA / f"{variant}.json").read_text())
  train_dir, result = tmp_path / "train", tmp_path / "train.json"
  code = cli.run_command("train", [
      f"--dataset_dir={dataset}", f"--train_logdir={train_dir}", *_flags(case),
      "--train_crop_size=33,33", "--train_batch_size=2", "--training_number_of_steps=2",
      "--drop_path_keep_prob=0.8", "--save_summaries_secs=0", f"--result_json={result}"])
  assert code == 0
  assert json.loads(result.read_text())["final_step"] == 2

  checkpoint = tf.train.latest_checkpoint(str(train_dir))
  saved = {n: s for n, s in tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
           .items() if n != "global_step" and not n.endswith("/Momentum")}
  want = {n: s[:-1] + [CLASSES] if n.startswith("logits/") else s
          for n, s in case["variables"].items()}
  assert saved == want

  eval_json = tmp_path / "eval.json"
  code = cli.run_command("evaluate", [
      f"--dataset_dir={dataset}", f"--checkpoint_dir={train_dir}",
      f"--eval_logdir={tmp_path / 'eval'}", f"--result_json={eval_json}"])
  assert code == 0
  assert 0.0 <= json.loads(eval_json.read_text())["miou"] <= 1.0

  export_dir = tmp_path / "export"
  code = cli.run_command("export", [
      f"--checkpoint_path={checkpoint}", f"--export_path={export_dir}",
      f"--dataset_dir={dataset}"])
  assert code == 0
  exported = json.loads((export_dir / "export_result.json").read_text())
  assert exported["check"]["passed"] and exported["model"]["model_variant"] == variant

"""check_dataset, the task after the conversion: a dataset version whose classes differ from
the champion's is refused for a warm start and for the champion comparison, naming the class,
even when resolve_config ran before the data was converted; the drift report is written once
and the gate links it."""

import copy
import json
import os

import pytest

from deeplab_pipeline import dataset_check, judge
from deeplab_pipeline import resolve as r
from tests.deeplab.datasets.test_build_trees import convert, make_folder


def _champion_files(root: str, dataset_dir: str, num_classes: int) -> dict:
  """A champion record whose checkpoint and config.json exist (the model is never built)."""
  from deeplab import config as dl_config
  train = os.path.join(root, "runs", "r0", "train")
  os.makedirs(train)
  prefix = os.path.join(train, "model.ckpt-5")
  open(prefix + ".index", "w").close()
  cfg = dl_config.TrainConfig(model=dl_config.ModelConfig(num_classes=num_classes),
                              train_logdir=train, dataset_dir=dataset_dir, dataset="pets")
  with open(os.path.join(train, "config.json"), "w") as f:
    f.write(dl_config.dumps(cfg))
  return {"run_id": "r0", "checkpoint": prefix, "dataset_dir": dataset_dir, "miou": 0.4}


def test_warm_start_refused_after_a_conversion_resolve_could_not_see(dag, tmp_path):
  from deeplab.datasets.converted import is_converted
  from deeplab.datasets.fingerprint import compute_fingerprint

  root = str(tmp_path)
  make_folder(os.path.join(root, "raw", "pets"))  # classes bg, cat, dog
  old_dir = os.path.join(root, "datasets", "pets", "old")
  convert("folder", os.path.join(root, "raw", "pets"), old_dir, class_names=("bg", "cat", "bird"))
  champion = _champion_files(root, old_dir, 3)

  def plan(mapping):
    params = copy.deepcopy(dag.params)
    for k, v in {"dataset_name": "pets", "dataset_format": "folder", "source_uri": "raw/pets",
                 "init_from": "champion", "class_mapping": mapping}.items():
      params[k] = v
    return r.resolve(params.validate(), run_id="manual__1", run_type="manual",
                     storage_root=root, load_champion=lambda uri: champion,
                     fingerprint_fn=compute_fingerprint, converted_fn=is_converted)

  refused = plan({})  # not converted yet: resolve cannot know the classes
  assert refused["build_skip"] == "" and not is_converted(refused["dataset_dir"])
  assert refused["train_config"]["tf_initial_checkpoint"] == champion["checkpoint"]
  convert("folder", refused["build_source"], refused["dataset_dir"])  # what build_tfrecords does
  check = dag.get_task("check_dataset").python_callable
  from airflow.sdk.exceptions import AirflowFailException
  with pytest.raises(AirflowFailException, match=r"init_from champion refused: .*removed "
                                                 r"'bird'; added 'dog'"):
    check(refused)
  assert not os.path.exists(os.path.join(refused["run_dir"], dataset_check.DATASET_CHECK_JSON))

  mapped = plan({"bird": "dog"})  # now converted: the same check, with the mapping, passes
  assert mapped["build_skip"]
  result = check(mapped)
  assert result["class_difference"] == ""
  # The same pixels under the new name: no drift (a class gone and a new one without mapping).
  assert os.path.exists(result["drift"]["md"]) and result["drift"]["warnings"] == []


def test_a_version_with_one_class_removed_is_refused_for_the_champion_comparison(tmp_path):
  root = str(tmp_path)
  v1 = os.path.join(root, "datasets", "pets", "v1")
  v2 = os.path.join(root, "datasets", "pets", "v2")
  convert("folder", make_folder(os.path.join(root, "raw", "v1")), v1)  # bg, cat, dog
  convert("folder", make_folder(os.path.join(root, "raw", "v2"), num_classes=2), v2)  # no dog
  champion = _champion_files(root, v1, 3)
  run_dir = os.path.join(root, "runs", "r1")
  plan = {"champion": champion, "dataset_dir": v2, "run_dir": run_dir, "init_from": "scratch",
          "train_config": {"tf_initial_checkpoint": None}, "class_mapping": {},
          "drift_factor": 2.0, "eval_flags": {"eval_split": "val"}, "min_miou": 0.1,
          "miou_tolerance": 0.01, "gate_mode": "not_worse", "max_class_iou_drop": 0.05}

  checked = dataset_check.check(plan)
  assert checked["class_difference"].startswith(
      "this run's dataset's classes differ from the champion's: removed 'dog'")
  assert "class 'dog' is gone from the new dataset" in checked["drift"]["warnings"]
  with open(os.path.join(run_dir, dataset_check.DATASET_CHECK_JSON)) as f:
    assert json.load(f) == checked

  skip = judge.check_champion(plan)["skip"]  # the champion is not evaluated on this split
  assert "removed 'dog'" in skip and "recorded mIoU only" in skip
  decision = judge.judge(plan, {"miou": 0.5}, None, skip)
  assert decision["compared_on"] == "recorded_miou" and decision["per_class"] is None
  assert "removed 'dog'" in decision["reason"]
  assert decision["drift"] == checked["drift"]  # linked, not computed again
  assert checked["drift"]["md"] in decision["reason"]

  warm = {**plan, "init_from": "champion",
          "train_config": {"tf_initial_checkpoint": champion["checkpoint"]}}
  with pytest.raises(dataset_check.ClassesDiffer, match="removed 'dog'"):
    dataset_check.check(warm)


def test_no_champion_dataset_no_report(tmp_path):
  plan = {"champion": None, "dataset_dir": str(tmp_path / "d"), "run_dir": str(tmp_path / "run")}
  result = dataset_check.check(plan)
  assert result["drift"] is None and result["class_difference"] == ""
  assert judge.drift_report(plan) is None

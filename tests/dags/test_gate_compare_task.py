"""The gate task with a champion evaluated on the same split: it reads both per-image files,
writes gate.json with the paired figures and compare/compare.md; check_champion says why a
champion cannot be evaluated here."""

import json
import os

import numpy as np
import pytest

from deeplab.evaluation import metrics, per_image
from deeplab_pipeline import judge

CLASSES = ["background", "cat", "dog"]


def _write_eval(folder, labels, preds, names, overlays=0):
  os.makedirs(folder, exist_ok=True)
  collector = per_image.PerImageConfusion(len(CLASSES))
  collector.update([n.encode() for n in names], labels, preds)
  collector.save(os.path.join(folder, per_image.PER_IMAGE_NPZ))
  m = metrics.compute_metrics(collector.dense().sum(axis=0), CLASSES)
  # As evaluate names them: the first images read, "<index>_<name>.png".
  m["report_files"] = ["report.md"] + [f"overlays/{i:06d}_{names[i]}.png"
                                       for i in range(overlays)]
  with open(os.path.join(folder, "metrics.json"), "w") as f:
    json.dump(m, f)
  return {"miou": m["miou"]}


def _plan(root, champion):
  run = os.path.join(root, "runs", "r2")
  return {"run_dir": run, "eval_logdir": os.path.join(run, "eval"),
          "champion_eval_logdir": os.path.join(run, "eval_champion"),
          "compare_dir": os.path.join(run, "compare"), "champion": champion,
          "min_miou": 0.1, "miou_tolerance": 0.01, "gate_mode": "not_worse",
          "max_class_iou_drop": 0.05}


def _data(n=12, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, (n, 8, 8, 1))
  return labels, labels[..., 0].copy()


def test_champion_from_easier_data_is_judged_on_this_split(tmp_path):
  labels, perfect = _data()
  names = [f"img_{i}" for i in range(len(labels))]
  plan = _plan(str(tmp_path), {"miou": 0.99, "run_id": "r1"})  # recorded on easier data
  champ_pred = perfect.copy()
  champ_pred[:, :4] = (champ_pred[:, :4] + 1) % 3  # half of every image wrong
  champion_eval = _write_eval(plan["champion_eval_logdir"], labels, champ_pred, names, 2)
  cand_pred = perfect.copy()
  cand_pred[:, :2] = (cand_pred[:, :2] + 1) % 3  # a quarter wrong: better on every image
  result = _write_eval(plan["eval_logdir"], labels, cand_pred, names, 2)
  d = judge.judge(plan, result, champion_eval)
  assert d["passed"], d["reason"]
  assert d["compared_on"] == "same_split" and d["champion_miou_recorded"] == 0.99
  assert d["candidate_miou"] == result["miou"] < 0.99 - 0.01  # the old rule would refuse it
  assert d["delta"] == pytest.approx(d["candidate_miou"] - d["champion_miou"])
  assert 0 < d["delta_ci"][0] <= d["delta"] <= d["delta_ci"][1]
  with open(os.path.join(plan["run_dir"], "gate.json")) as f:
    stored = json.load(f)
  for key in ("candidate_miou", "champion_miou", "champion_miou_recorded", "delta", "delta_ci",
              "per_class", "verdict", "reason"):
    assert stored[key] == d[key], key
  md = open(os.path.join(plan["compare_dir"], "compare.md")).read()
  assert "| champion (this split) |" in md and "img_" in md
  # The overlays both evaluations drew, linked from the run folder's compare/.
  assert "![candidate](../eval/overlays/000001_img_1.png)" in md
  assert "![champion](../eval_champion/overlays/000001_img_1.png)" in md
  assert os.path.getsize(os.path.join(plan["compare_dir"], "per_class_iou_compare.png")) > 0
  assert "promoted: " in judge.summary(d) and "interval" in judge.summary(d)


def test_candidate_worse_in_one_class_is_refused_with_that_class_named(tmp_path):
  labels, perfect = _data()
  names = [f"img_{i}" for i in range(len(labels))]
  plan = _plan(str(tmp_path), {"miou": 0.5})
  champion_eval = _write_eval(plan["champion_eval_logdir"], labels, perfect, names)
  damaged = perfect.copy()
  damaged[(labels[..., 0] == 2) & (np.arange(8)[None, None, :] < 4)] = 0  # dog -> background
  d = judge.judge(plan, _write_eval(plan["eval_logdir"], labels, damaged, names), champion_eval)
  assert not d["passed"] and d["verdict"] == "keep_champion"
  assert "class dog lost" in d["reason"] and d["outcome"].startswith("champion kept: ")
  assert d["skip_reason"].startswith("gate: ")


def test_evaluations_of_other_images_are_refused(tmp_path):
  from deeplab.errors import UserInputError
  labels, perfect = _data()
  plan = _plan(str(tmp_path), {"miou": 0.5})
  champion_eval = _write_eval(plan["champion_eval_logdir"], labels, perfect,
                              [f"old_{i}" for i in range(len(labels))])
  result = _write_eval(plan["eval_logdir"], labels, perfect,
                       [f"img_{i}" for i in range(len(labels))])
  with pytest.raises(UserInputError, match="not over the same images"):
    judge.judge(plan, result, champion_eval)
  assert not os.path.exists(os.path.join(plan["run_dir"], "gate.json"))


def _champion_files(root, num_classes):
  from deeplab import config as dl_config
  train = os.path.join(root, "runs", "r1", "train")
  os.makedirs(train)
  prefix = os.path.join(train, "model.ckpt-5")
  open(prefix + ".index", "w").close()
  cfg = dl_config.TrainConfig(model=dl_config.ModelConfig(num_classes=num_classes),
                              train_logdir=train, dataset_dir="", dataset="x")
  with open(os.path.join(train, "config.json"), "w") as f:
    f.write(dl_config.dumps(cfg))
  data = os.path.join(root, "datasets", "d", "fp")
  os.makedirs(data)
  with open(os.path.join(data, "manifest.json"), "w") as f:
    json.dump({"num_classes": 3}, f)
  return prefix, data


@pytest.mark.parametrize("num_classes,words", [(3, None), (4, "4 classes, this run's dataset 3")])
def test_check_champion_compares_class_counts(tmp_path, num_classes, words):
  prefix, data = _champion_files(str(tmp_path), num_classes)
  plan = {"champion": {"checkpoint": prefix, "run_id": "r1"}, "dataset_dir": data,
          "eval_flags": {"eval_split": "val"}}
  c = judge.check_champion(plan)
  if words is None:
    assert c["skip"] == "" and c["checkpoint_dir"] == os.path.dirname(prefix)
    assert c["eval_flags"] == {"eval_split": "val", "checkpoint_path": prefix}
  else:
    assert words in c["skip"]


def test_check_champion_without_champion_or_checkpoint(tmp_path):
  prefix, data = _champion_files(str(tmp_path), 3)
  plan = {"champion": None, "dataset_dir": data, "eval_flags": {"eval_split": "val"}}
  assert judge.check_champion(plan)["skip"].startswith("no champion yet")
  plan["champion"] = {"checkpoint": prefix + "-gone"}
  assert "no longer exists" in judge.check_champion(plan)["skip"]


def test_judge_reads_and_writes_gs_storage(tmp_path, gcs_bucket):
  from deeplab import storage
  labels, perfect = _data()
  names = [f"img_{i}" for i in range(len(labels))]
  local = _plan(str(tmp_path), {"miou": 0.5})
  results = [_write_eval(local[k], labels, perfect, names)
             for k in ("champion_eval_logdir", "eval_logdir")]
  plan = _plan(f"gs://{gcs_bucket}/root", {"miou": 0.5})
  for key in ("champion_eval_logdir", "eval_logdir"):
    for name in (per_image.PER_IMAGE_NPZ, "metrics.json"):
      with open(os.path.join(local[key], name), "rb") as f:
        storage.write_bytes(storage.join(plan[key], name), f.read())
  d = judge.judge(plan, results[1], results[0])
  assert d["passed"] and d["delta_ci"] == [0.0, 0.0]
  assert storage.read_json(plan["run_dir"] + "/gate.json")["verdict"] == "promote"
  assert storage.exists(plan["compare_dir"] + "/compare.md")

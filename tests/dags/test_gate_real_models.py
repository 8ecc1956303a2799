"""The gate on real evaluations (`python -m deeplab evaluate` in-process, TensorFlow): the same
weights as candidate and champion compare as exactly equal; a candidate whose logits for one
class were lowered is refused with that class named."""

import os

import numpy as np
import pytest

from deeplab import evaluate
from deeplab_pipeline import judge
from tests.deeplab import _eval_kit as kit

BIAS = "logits/semantic/biases"


def _evaluate(data, checkpoint, folder):
  code = kit.run_cli(evaluate, [f"--checkpoint_path={checkpoint}", f"--dataset_dir={data}",
                                f"--eval_logdir={folder}", "--num_overlays=0"])
  assert code == 0
  import json
  with open(os.path.join(folder, "metrics.json")) as f:
    return json.load(f)


def _lower_class_logit(checkpoint, folder, class_id, amount=1e3):
  """A copy of `checkpoint` (with its config.json) whose logits bias for one class is lowered."""
  from deeplab.compat import tf
  reader = tf.train.load_checkpoint(checkpoint)
  os.makedirs(folder)
  graph = tf.Graph()
  with graph.as_default():
    variables = {}
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if name == BIAS:
        value = value.copy()
        value[class_id] -= amount
      variables[name] = tf.Variable(value, name=name.replace("/", "_"))
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      prefix = tf.train.Saver(var_list=variables).save(
          sess, os.path.join(folder, os.path.basename(checkpoint)))
  src = os.path.join(os.path.dirname(checkpoint), "config.json")
  with open(src) as f, open(os.path.join(folder, "config.json"), "w") as g:
    g.write(f.read())
  assert BIAS in reader.get_variable_to_shape_map()
  return prefix


def _plan(root):
  run = os.path.join(root, "run")
  return {"run_dir": run, "eval_logdir": os.path.join(run, "eval"),
          "champion_eval_logdir": os.path.join(run, "eval_champion"),
          "compare_dir": os.path.join(run, "compare"), "champion": {"miou": 0.9},
          "min_miou": 0.0, "miou_tolerance": 0.01, "gate_mode": "not_worse",
          "max_class_iou_drop": 0.05}


@pytest.mark.slow
def test_same_weights_equal_and_one_damaged_class_refused(tmp_path_factory, tmp_path):
  data, ckpt = kit.shared_run(tmp_path_factory)
  plan = _plan(str(tmp_path))
  champion = _evaluate(data, ckpt, plan["champion_eval_logdir"])
  same = _evaluate(data, ckpt, plan["eval_logdir"])
  d = judge.judge(plan, same, champion)
  assert d["delta"] == 0.0 and d["delta_ci"] == [0.0, 0.0], d
  assert d["passed"] and d["candidate_miou"] == d["champion_miou"]

  ious = champion["per_class_iou"]
  best = int(np.nanargmax([-1.0 if v is None else v for v in ious]))
  assert ious[best] > 0.05, "the kit's model must predict some class well"
  damaged = _lower_class_logit(ckpt, str(tmp_path / "damaged"), best)
  worse = _evaluate(data, damaged, plan["eval_logdir"])
  d = judge.judge(plan, worse, champion)
  name = champion["class_names"][best]
  assert not d["passed"] and f"class {name} lost" in d["reason"], d["reason"]
  deltas = [p["delta"] for p in d["per_class"]]
  assert int(np.nanargmin([np.inf if v is None else v for v in deltas])) == best

"""evaluate: each image at its own size, a multi-scale + flip run through the CLI, no-checkpoint exit 2."""

import glob
import json
import os

import numpy as np
import pytest

from tests.deeplab import _eval_kit as kit
from deeplab import evaluate, run_config
from deeplab.storage import checkpoints
from deeplab.evaluation import eval_pass
from deeplab.datasets.descriptors import DatasetInfo


@pytest.mark.parametrize("size,stride,expected", [
    ((500, 375), 16, (513, 385)),   # PASCAL-sized image
    ((512, 512), 16, (513, 513)),
    ((513, 513), 16, (513, 513)),   # already of the form 16k+1
    ((1024, 2048), 16, (1025, 2049)),  # Cityscapes, as the FAQ recommends
    ((1024, 2048), 8, (1025, 2049)),
    ((33, 41), 8, (33, 41)),
    ((34, 42), 8, (41, 49)),
])
def test_auto_crop_size_rule(size, stride, expected):
  assert run_config.auto_crop_size(size[0], size[1], stride) == expected


def test_each_image_is_padded_only_to_its_own_stride_multiple(tmp_path):
  # Own size: 33x41 -> 33x49 and 530x20 -> 545x33 at output_stride 16 (16k+1, by hand),
  # never the split's largest image nor the original's 513x513 floor.
  from deeplab.compat import tf
  from deeplab.config import ModelConfig
  from deeplab.evaluation import input_size
  data = kit.write_dataset(str(tmp_path / "d"), sizes=((33, 41), (530, 20)), manifest=False)
  policy = input_size.make_policy(ModelConfig(num_classes=3, output_stride=16))
  with tf.Graph().as_default():
    ds = eval_pass.eval_dataset(data, "val", 1, policy, 255)
    item = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess:
      got = [sess.run(item) for _ in range(2)]
  assert [g["image"].shape[1:3] for g in got] == [(33, 49), (545, 33)]
  assert [tuple(g["valid_size"][0]) for g in got] == [(33, 41), (530, 20)]
  assert [g["label"].shape[1:3] for g in got] == [(33, 41), (530, 20)]  # original size
  # 4000x3000 with the default bound of 2049: resized into range (2049x1536), then padded.
  assert policy.resized_size(4000, 3000) == (2049, 1536)
  assert policy.padded_size(2049, 1536) == (2049, 1537)


def test_evaluate_multiscale_flip_cli(tmp_path_factory, tmp_path):
  data, ckpt = kit.shared_run(tmp_path_factory)
  out, result = tmp_path / "eval", tmp_path / "result.json"
  code = kit.run_cli(evaluate, [
      f"--checkpoint_dir={os.path.dirname(ckpt)}", f"--dataset_dir={data}",
      f"--eval_logdir={out}", "--eval_split=val", "--eval_scales=0.75", "--eval_scales=1.0",
      "--add_flipped_images", "--output_stride=16",  # a model flag: config.json wins
      "--max_number_of_evaluations=0", "--num_overlays=2", f"--result_json={result}"])
  assert code == 0
  m = json.loads((out / "metrics.json").read_text())
  assert m["checkpoint_step"] == 7 and m["checkpoint"] == ckpt
  assert m["model_source"].endswith("config.json")
  assert m["inference_size"] == "own_size" and m["eval_crop_size"] is None
  assert m["min_resize_value"] is None and m["keep_aspect_ratio"] is True  # as config.json
  assert m["eval_scales"] == [0.75, 1.0] and m["add_flipped_images"] is True
  assert m["dataset_fingerprint"] == "feedfacecafe0001" and m["num_images"] == 4
  assert m["class_names"] == ["background", "shape1", "shape2", "shape3", "shape4"]
  # Every non-ignored pixel of the split is counted exactly once (padding and 255 excluded).
  expected_pixels = sum(int((kit.make_example(i, h, w, 5)[1] != 255).sum())
                        for i, (h, w) in enumerate(((33, 41), (29, 33), (37, 30), (33, 33))))
  assert m["evaluated_pixels"] == expected_pixels
  assert np.asarray(m["confusion_matrix"]).sum() == expected_pixels
  assert 0 <= m["miou"] <= 1 and 0 <= m["pixel_accuracy"] <= 1
  assert len(m["per_class_iou"]) == 5
  assert "eval/miou_0.75_1.0_flipped_overall" in m["tensorboard_scalars"]
  assert m["report_files"][:3] == ["report.md", "confusion.png", "per_class_iou.png"]
  assert sorted(os.listdir(out / "overlays")) == ["000000_img_000.png", "000001_img_001.png"]
  # One confusion matrix per image, in reading order, summing to the split's matrix.
  from deeplab.evaluation import per_image
  names, per = per_image.load(str(out / m["per_image_confusion"]))
  assert names == ["img_000", "img_001", "img_002", "img_003"]
  np.testing.assert_array_equal(per.sum(axis=0), np.asarray(m["confusion_matrix"]))
  summary = json.loads(result.read_text())
  from deeplab.evaluation.input_size import SIZE_KEYS
  assert summary["miou"] == m["miou"] and summary["metrics_json"] == str(out / "metrics.json")
  assert {k: summary[k] for k in SIZE_KEYS} == {k: m[k] for k in SIZE_KEYS}

  from deeplab.compat import tf
  events = glob.glob(str(out / "events.out.tfevents.*"))
  tags = {v.tag: v.simple_value for e in tf.train.summary_iterator(events[0])
          for v in e.summary.value}
  assert tags["eval/miou_0.75_1.0_flipped_overall"] == pytest.approx(m["miou"])
  assert "eval/miou_0.75_1.0_flipped_class_0" in tags


def test_missing_checkpoint_exits_2_at_once(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  data = kit.write_dataset(str(tmp_path / "d"), sizes=((9, 9),))
  code = kit.run_cli(evaluate, [f"--checkpoint_dir={tmp_path / 'empty'}", f"--dataset_dir={data}",
                                f"--eval_logdir={tmp_path / 'e'}"])
  assert code == 2
  assert "holds no checkpoint" in capsys.readouterr().err


def test_latest_checkpoint_uses_index_basename(tmp_path):
  (tmp_path / "checkpoint").write_text(
      'model_checkpoint_path: "/somewhere/else/model.ckpt-30"\n'
      'all_model_checkpoint_paths: "/somewhere/else/model.ckpt-30"\n')
  assert checkpoints.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-30")
  assert checkpoints.checkpoint_step(str(tmp_path / "model.ckpt-30")) == 30


def test_crop_smaller_than_images_is_user_error(tmp_path_factory, tmp_path, capsys):
  data, ckpt = kit.shared_run(tmp_path_factory)
  code = kit.run_cli(evaluate, [f"--checkpoint_path={ckpt}", f"--dataset_dir={data}",
                                f"--eval_logdir={tmp_path / 'e'}", "--eval_crop_size=17,17",
                                "--num_overlays=0"])
  assert code == 2
  assert "larger than the fixed crop size" in capsys.readouterr().err
  assert not (tmp_path / "e" / "metrics.json").exists()

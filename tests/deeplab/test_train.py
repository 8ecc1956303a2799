"""The training loop in-process, on tiny in-memory data: outputs, resume, NaN, init, gs://."""

import json
import logging
import os
import re

import numpy as np
import pytest

from deeplab import config as C
from deeplab.training import trainer
from deeplab.compat import tf
from deeplab.errors import NonFiniteLossError, UserInputError

CROP = 33


def _input_fn(poison: bool = False):
  def input_fn(batch_size):
    rng = np.random.RandomState(0)
    img = rng.uniform(0, 255, (8, CROP, CROP, 3)).astype(np.float32)
    lab = (img[..., :1] > 128).astype(np.int32)
    if poison:
      img[:] = np.inf
    ds = tf.data.Dataset.from_tensor_slices({"image": img, "label": lab})
    return ds.repeat().batch(batch_size, drop_remainder=True)
  return input_fn


def _cfg(logdir, steps=2, num_classes=2, **kwargs):
  model = C.ModelConfig(num_classes=num_classes, depth_multiplier=0.25,
                        aspp_convs_filters=16)
  args = dict(model=model, train_logdir=str(logdir), dataset_dir="unused", num_clones=2,
              train_batch_size=2, train_crop_size=(CROP, CROP), training_number_of_steps=steps,
              log_steps=1, base_learning_rate=0.01, save_summaries_secs=0, seed=1)
  args.update(kwargs)
  return C.TrainConfig(**args)


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_train_writes_checkpoint_config_and_result(tmp_path):
  logdir = tmp_path / "train"
  out = tmp_path / "result.json"
  result = trainer.train(_cfg(logdir, save_summaries_secs=600), input_fn=_input_fn(),
                         result_json=str(out))
  assert result["final_step"] == 2
  assert np.isfinite(result["final_loss"])
  assert result["num_clones"] == 2 and result["images_per_sec"] > 0
  assert result["checkpoint"] == str(logdir / "model.ckpt-2")
  assert os.path.exists(str(logdir / "model.ckpt-2.index"))
  assert 'model_checkpoint_path: "model.ckpt-2"' in (logdir / "checkpoint").read_text()
  assert json.loads(out.read_text()) == json.loads((logdir / "train_result.json").read_text())
  saved = C.load_train_config((logdir / "config.json").read_text())
  assert saved == _cfg(logdir, save_summaries_secs=600)
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir))
  # Summaries as the original: learning_rate, total_loss, per-clone losses, histograms.
  events = [f for f in os.listdir(logdir) if f.startswith("events")]
  tags = set()
  for e in tf.train.summary_iterator(str(logdir / events[0])):
    tags.update(v.tag for v in e.summary.value)
  assert {"learning_rate", "total_loss", "clone_0/clone_loss", "regularization_loss"} <= tags
  assert "losses/clone_0/semantic_merged_logits/loss" in tags
  assert "logits/semantic/weights" in tags

  # Resume: same folder, more steps: continues from step 2 and stops exactly at 5.
  result = trainer.train(_cfg(logdir, steps=5, save_summaries_secs=600), input_fn=_input_fn())
  assert result["start_step"] == 2 and result["final_step"] == 5
  assert os.path.exists(str(logdir / "model.ckpt-5.index"))
  # Already there: returns at once with the previous figures.
  again = trainer.train(_cfg(logdir, steps=5, save_summaries_secs=600), input_fn=_input_fn())
  assert again["final_step"] == 5 and again["final_loss"] == result["final_loss"]


def test_resume_with_a_different_model_is_refused(tmp_path):
  trainer.train(_cfg(tmp_path, steps=1, num_clones=1), input_fn=_input_fn())
  with pytest.raises(UserInputError, match="different model"):
    trainer.train(_cfg(tmp_path, steps=2, num_classes=3), input_fn=_input_fn())


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_non_finite_loss_raises_with_step_and_rate(tmp_path):
  with pytest.raises(NonFiniteLossError) as info:
    trainer.train(_cfg(tmp_path, steps=3), input_fn=_input_fn(poison=True))
  message = str(info.value)
  assert re.search(r"became (nan|inf|-inf) at step [12] \(learning rate 0\.0\d+\)", message)
  assert "label values" in message
  assert info.value.exit_code == 3
  assert not os.path.exists(str(tmp_path / "checkpoint"))


def test_batch_must_divide_over_clones(tmp_path):
  with pytest.raises(UserInputError, match="does not divide evenly"):
    trainer.train(_cfg(tmp_path, train_batch_size=3), input_fn=_input_fn())


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_class_count_mismatch_is_skipped_with_one_warning(tmp_path, caplog):
  trainer.train(_cfg(tmp_path / "a", steps=1, num_clones=1, num_classes=3), input_fn=_input_fn())
  caplog.set_level(logging.INFO, logger="deeplab.train")
  result = trainer.train(
      _cfg(tmp_path / "b", steps=1, num_clones=1, num_classes=2,
           tf_initial_checkpoint=str(tmp_path / "a" / "model.ckpt-1")), input_fn=_input_fn())
  assert result["final_step"] == 1
  warnings = [r.getMessage() for r in caplog.records
              if r.name == "deeplab.train" and r.levelno == logging.WARNING]
  assert len(warnings) == 1, warnings
  assert "logits/semantic/weights model [1, 1, 16, 2] vs checkpoint [1, 1, 16, 3]" in warnings[0]
  assert "logits/semantic/biases" in warnings[0]
  assert "number of classes" in warnings[0]
  # The backbone did come from the checkpoint.
  assert any("initialising" in r.getMessage() for r in caplog.records)


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_gcs_logdir_uploads_and_resumes(tmp_path, gcs_bucket):
  from deeplab import storage

  uri = f"gs://{gcs_bucket}/runs/r1/train"
  result = trainer.train(_cfg(uri, steps=1, num_clones=1, max_to_keep=1), input_fn=_input_fn())
  assert result["checkpoint"] == uri + "/model.ckpt-1"
  names = storage.listdir(uri)
  assert {"checkpoint", "config.json", "train_result.json", "model.ckpt-1.index"} <= set(names)
  result = trainer.train(_cfg(uri, steps=2, num_clones=1, max_to_keep=1), input_fn=_input_fn())
  assert result["start_step"] == 1 and result["final_step"] == 2
  names = storage.listdir(uri)
  assert "model.ckpt-2.index" in names
  assert not any(n.startswith("model.ckpt-1.") for n in names)  # max_to_keep=1 pruned remotely
  assert "model.ckpt-2" in storage.read_text(uri + "/checkpoint")


def _weights(prefix: str) -> dict:
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_a_seeded_run_with_two_clones_is_reproducible(tmp_path):
  # Each clone takes its fixed share of one batch: with a clone dequeuing on its own, the
  # images each clone saw (and so its batch-norm statistics) depended on thread timing.
  def images(batch_size):  # every image different, so a swap between clones shows
    rng = np.random.RandomState(3)
    img = rng.uniform(0, 255, (16, CROP, CROP, 3)).astype(np.float32)
    lab = (img[..., :1] > rng.uniform(64, 192, (16, 1, 1, 1))).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices({"image": img, "label": lab}).repeat().batch(
        batch_size, drop_remainder=True)

  runs = [trainer.train(_cfg(tmp_path / name, steps=4, train_batch_size=4,
                             save_summaries_secs=600), input_fn=images)
          for name in ("a", "b")]
  a, b = (_weights(r["checkpoint"]) for r in runs)
  assert a.keys() == b.keys()
  different = [n for n in a if not np.array_equal(a[n], b[n])]
  assert different == [], f"{len(different)} of {len(a)} variables differ, e.g. {different[:3]}"
  assert runs[0]["final_loss"] == runs[1]["final_loss"]

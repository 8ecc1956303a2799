"""Resume survives a checkpoint pruned or half-written under it (issue 11)."""

import logging
import os

import pytest

from deeplab.compat import tf
from deeplab.training import trainer
from deeplab.training.logdir import CHECKPOINT_INDEX, TrainLogdir


def _graph_with_checkpoints(folder, steps):
  """A graph with one variable whose value is the step; a checkpoint saved at each step."""
  graph = tf.Graph()
  with graph.as_default():
    v = tf.Variable(0.0, name="v")
    value = tf.placeholder(tf.float32, [])
    assign = v.assign(value)
    saver = tf.train.Saver(max_to_keep=10, save_relative_paths=True)
  sess = tf.Session(graph=graph)
  for step in steps:
    sess.run(assign, {value: float(step)})
    saver.save(sess, os.path.join(folder, "model.ckpt"), global_step=step,
               write_meta_graph=False)
  sess.run(assign, {value: -1.0})
  return sess, saver, v


def _remove(folder, name):
  for f in os.listdir(folder):
    if f.startswith(name + "."):
      os.remove(os.path.join(folder, f))


def test_a_checkpoint_pruned_between_lookup_and_restore_falls_back(tmp_path, caplog):
  sess, saver, v = _graph_with_checkpoints(str(tmp_path), [10, 20, 30])
  logdir = TrainLogdir(str(tmp_path))
  newest = logdir.latest_checkpoint()
  assert newest.endswith("model.ckpt-30")
  _remove(str(tmp_path), "model.ckpt-30")  # another writer pruned it after we looked
  with caplog.at_level(logging.WARNING, logger="deeplab.train"):
    restored = trainer._restore_newest(sess, saver, logdir, newest)
  assert restored.endswith("model.ckpt-20")
  assert sess.run(v) == 20.0
  assert "falling back to the newest complete checkpoint" in caplog.text


def test_a_half_written_newest_checkpoint_is_skipped(tmp_path):
  sess, saver, v = _graph_with_checkpoints(str(tmp_path), [10, 20])
  data = [f for f in os.listdir(tmp_path) if f.startswith("model.ckpt-20.data")]
  with open(tmp_path / data[0], "r+b") as f:
    f.truncate(3)  # a save interrupted mid-file
  logdir = TrainLogdir(str(tmp_path))
  restored = trainer._restore_newest(sess, saver, logdir, logdir.latest_checkpoint())
  assert restored.endswith("model.ckpt-10") and sess.run(v) == 10.0


def test_without_an_index_the_newest_complete_checkpoint_on_disk_is_used(tmp_path):
  _graph_with_checkpoints(str(tmp_path), [5, 40, 15])
  os.remove(tmp_path / CHECKPOINT_INDEX)
  assert TrainLogdir(str(tmp_path)).latest_checkpoint().endswith("model.ckpt-40")


def test_nothing_left_to_restore_is_a_transient_error(tmp_path):
  sess, saver, _ = _graph_with_checkpoints(str(tmp_path), [10])
  logdir = TrainLogdir(str(tmp_path))
  newest = logdir.latest_checkpoint()
  _remove(str(tmp_path), "model.ckpt-10")
  with pytest.raises(RuntimeError, match="no checkpoint in .* restores any more"):
    trainer._restore_newest(sess, saver, logdir, newest)

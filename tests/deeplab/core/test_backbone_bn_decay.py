"""backbone_batch_norm_decay: None keeps the original per-family decay; a value overrides it.

Short runs from scratch (the demo, CI) need a fast decay, or evaluation normalises with
moving averages that still hold their initial values and predicts one class everywhere.
"""

import pytest

from deeplab.compat import tf
from deeplab.core import feature_extractor


def _moving_average_decays(**kwargs):
  graph = tf.Graph()
  with graph.as_default():
    images = tf.zeros([1, 33, 33, 3])
    feature_extractor.extract_features(images, output_stride=16, model_variant="mobilenet_v2",
                                       depth_multiplier=0.25, is_training=True,
                                       fine_tune_batch_norm=True, **kwargs)
    with tf.Session(graph=graph) as sess:
      # tf-slim's update computes `1 - decay` in the op AssignMovingAvg/sub.
      one_minus = [op.outputs[0] for op in graph.get_operations()
                   if op.name.startswith("MobilenetV2/") and op.name.endswith("AssignMovingAvg/sub")]
      assert one_minus, "no batch-norm moving-average update found"
      return {round(1.0 - float(v), 6) for v in sess.run(one_minus)}


@pytest.mark.parametrize("override, expected", [(None, 0.997), (0.9, 0.9)])
def test_backbone_decay(override, expected):
  assert _moving_average_decays(batch_norm_decay=override) == {expected}


def test_config_rejects_a_decay_outside_0_1():
  from deeplab.config import ModelConfig
  assert "backbone_batch_norm_decay" in " ".join(
      ModelConfig(backbone_batch_norm_decay=1.5).problems())

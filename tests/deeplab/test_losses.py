"""Segmentation loss against numpy: ignore pixels, class weights, hard-pixel mining."""

import numpy as np
import pytest

from deeplab.compat import tf
from deeplab.training.losses import add_softmax_cross_entropy_loss_for_each_scale, get_label_weight_mask

C = 3


def _np_pixel_losses(logits, labels):
  flat = logits.reshape(-1, C).astype(np.float64)
  flat = flat - flat.max(1, keepdims=True)
  logp = flat - np.log(np.exp(flat).sum(1, keepdims=True))
  lab = labels.reshape(-1)
  safe = np.where(lab == 255, 0, lab)
  return -logp[np.arange(lab.size), safe]


def _loss(logits, labels, **kwargs):
  with tf.Graph().as_default():
    step = kwargs.pop("step", None)
    gs = tf.constant(step, tf.int64) if step is not None else None
    losses = add_softmax_cross_entropy_loss_for_each_scale(
        {"merged_logits": tf.constant(logits)}, tf.constant(labels), C, 255, scope="semantic",
        global_step=gs, **kwargs)
    assert tf.get_collection(tf.GraphKeys.LOSSES) == losses
    assert losses[0].op.name == "semantic_merged_logits/loss"
    with tf.Session() as sess:
      return float(sess.run(losses[0]))


def _data(seed=0):
  rng = np.random.RandomState(seed)
  logits = rng.normal(size=(2, 4, 4, C)).astype(np.float32)
  labels = rng.randint(0, C, (2, 4, 4, 1)).astype(np.int32)
  labels[0, 0, :2, 0] = 255
  return logits, labels


def test_ignore_label_is_excluded_from_mean():
  logits, labels = _data()
  pix = _np_pixel_losses(logits, labels)
  keep = labels.reshape(-1) != 255
  assert _loss(logits, labels) == pytest.approx(pix[keep].mean(), rel=1e-5)


def test_per_class_weights():
  logits, labels = _data()
  weights = [0.5, 2.0, 1.0]
  pix = _np_pixel_losses(logits, labels)
  lab = labels.reshape(-1)
  w = np.where(lab == 255, 0.0, np.array(weights)[np.where(lab == 255, 0, lab)])
  want = (pix * w).sum() / (w != 0).sum()
  assert _loss(logits, labels, loss_weight=weights) == pytest.approx(want, rel=1e-5)


def test_top_k_hard_pixels():
  logits, labels = _data()
  pix = _np_pixel_losses(logits, labels)
  pix[labels.reshape(-1) == 255] = 0
  k = int(0.25 * pix.size)
  want = np.sort(pix)[::-1][:k].mean()
  assert _loss(logits, labels, top_k_percent_pixels=0.25) == pytest.approx(want, rel=1e-5)


def test_top_k_annealing():
  logits, labels = _data()
  pix = _np_pixel_losses(logits, labels)
  pix[labels.reshape(-1) == 255] = 0
  # Halfway through 100 mining steps: fraction = 0.5 * 0.25 + 0.5 = 0.625.
  k = int(0.625 * pix.size)
  top = np.sort(pix)[::-1][:k]
  want = top.sum() / (top != 0).sum()
  got = _loss(logits, labels, top_k_percent_pixels=0.25, hard_example_mining_step=100, step=50)
  assert got == pytest.approx(want, rel=1e-5)


def test_downsampled_labels_when_not_upsampling_logits():
  logits, labels = _data()
  labels = np.repeat(np.repeat(labels, 2, axis=1), 2, axis=2)  # 8x8 labels for 4x4 logits
  got = _loss(logits, labels, upsample_logits=False)
  small = labels[:, ::2, ::2]
  pix = _np_pixel_losses(logits, small)
  keep = small.reshape(-1) != 255
  assert got == pytest.approx(pix[keep].mean(), rel=1e-5)


def test_all_ignored_gives_zero():
  logits, labels = _data()
  labels[:] = 255
  assert _loss(logits, labels) == 0.0


def test_weight_mask_validation():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="one weight per class"):
      get_label_weight_mask(tf.constant([0, 1]), 255, 3, [1.0, 2.0])
    with tf.Session() as sess:
      mask = sess.run(get_label_weight_mask(tf.constant([0, 1, 255, 2]), 255, 3, [1., 2., 3.]))
  np.testing.assert_allclose(mask, [1, 2, 0, 3])


def test_label_weights_none_is_refused_as_the_original():
  # The original's get_label_weight_mask raises on None; train.py always passes a value.
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="label_weights is None"):
      get_label_weight_mask(tf.constant([0, 1]), 255, 3, None)
    logits, labels = _data()
    with pytest.raises(ValueError, match="label_weights is None"):
      add_softmax_cross_entropy_loss_for_each_scale(
          {"merged_logits": tf.constant(logits)}, tf.constant(labels), 3, 255, loss_weight=None)


def test_trainer_passes_the_default_weight_when_the_config_has_none():
  from deeplab import config
  from deeplab.training import trainer
  assert config.ModelConfig().label_weights is None  # the flag default
  cfg = config.TrainConfig(model=config.ModelConfig(num_classes=3))
  assert trainer.loss_weights(cfg.model) == 1.0
  assert trainer.loss_weights(config.ModelConfig(num_classes=3, label_weights=[1, 2, 3])) == \
      [1.0, 2.0, 3.0]

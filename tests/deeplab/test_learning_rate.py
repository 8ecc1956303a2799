"""Learning-rate policies against closed-form values (docs/compatibility.md)."""

import math

import numpy as np
import pytest

from deeplab.compat import tf
from deeplab.training.learning_rate import get_model_learning_rate


def _rates(steps, **kwargs):
  args = dict(learning_policy="poly", base_learning_rate=0.01, learning_rate_decay_step=10,
              learning_rate_decay_factor=0.1, training_number_of_steps=100, learning_power=0.9,
              slow_start_step=0, slow_start_learning_rate=1e-4)
  args.update(kwargs)
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    rate = get_model_learning_rate(global_step=step, **args)
    with tf.Session() as sess:
      return [float(sess.run(rate, {step: s})) for s in steps]


def test_poly():
  got = _rates([0, 50, 100])
  want = [0.01 * (1 - s / 100) ** 0.9 for s in (0, 50, 100)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_poly_with_slow_start_and_end_rate():
  got = _rates([0, 9, 10, 55, 100], slow_start_step=10, end_learning_rate=0.001)
  # decay_steps 0 means training_number_of_steps - slow_start_step = 90.
  want = [1e-4, 1e-4, 0.01, (0.01 - 0.001) * (1 - 45 / 90) ** 0.9 + 0.001, 0.001]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_linear_burnin():
  got = _rates([0, 5, 10], slow_start_step=10, slow_start_burnin_type="linear")
  np.testing.assert_allclose(got, [1e-4, 1e-4 + (0.01 - 1e-4) * 0.5, 0.01], rtol=1e-5)


def test_step():
  got = _rates([0, 9, 10, 25], learning_policy="step")
  np.testing.assert_allclose(got, [0.01, 0.01, 0.001, 0.0001], rtol=1e-5)


def test_cosine():
  got = _rates([0, 50, 100], learning_policy="cosine")
  want = [0.01 * 0.5 * (1 + math.cos(math.pi * s / 100)) for s in (0, 50, 100)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_multi_steps():
  got = _rates([0, 30, 31, 70, 71], learning_policy="multi_steps", boundaries=[30, 70],
               boundary_learning_rates=[0.1, 0.01, 0.001])
  np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"learning_policy": "exp"},
    {"learning_policy": "multi_steps"},
    {"learning_policy": "multi_steps", "boundaries": [1], "boundary_learning_rates": [0.1]},
    {"slow_start_burnin_type": "cubic"},
])
def test_bad_policies(kwargs):
  with pytest.raises(ValueError):
    _rates([0], **kwargs)

"""Learning-rate policies (docs/compatibility.md): poly, step, cosine, multi_steps.

All policies run on `adjusted_step = max(global_step - slow_start_step, 0)`. During the
first slow_start_step steps the rate is slow_start_learning_rate (burn-in 'none') or rises
linearly from it to base_learning_rate (burn-in 'linear').
"""

from __future__ import annotations

from typing import Optional, Sequence

from deeplab.compat import tf
from deeplab.errors import ConfigError

POLICIES = ("poly", "step", "cosine", "multi_steps")


def get_model_learning_rate(learning_policy: str, base_learning_rate: float,
                            learning_rate_decay_step: int, learning_rate_decay_factor: float,
                            training_number_of_steps: int, learning_power: float,
                            slow_start_step: int, slow_start_learning_rate: float,
                            slow_start_burnin_type: str = "none", decay_steps: float = 0.0,
                            end_learning_rate: float = 0.0,
                            boundaries: Optional[Sequence[int]] = None,
                            boundary_learning_rates: Optional[Sequence[float]] = None,
                            global_step=None):
  """The learning-rate tensor for the global step (the original train_utils' signature).

  Args:
    learning_policy: 'poly', 'step', 'cosine' or 'multi_steps'.
    base_learning_rate: rate after the slow start.
    learning_rate_decay_step: 'step': decay every this many steps.
    learning_rate_decay_factor: 'step': multiply by this factor at each decay.
    training_number_of_steps: total steps (for poly/cosine).
    learning_power: 'poly' power.
    slow_start_step: warm-up steps.
    slow_start_learning_rate: rate during (or at the start of) the warm-up.
    slow_start_burnin_type: 'none' (constant warm-up) or 'linear'.
    decay_steps: 'poly' decay steps; 0 means training_number_of_steps - slow_start_step.
    end_learning_rate: 'poly' final rate.
    boundaries: 'multi_steps' step boundaries.
    boundary_learning_rates: 'multi_steps' rates, one more than boundaries.
    global_step: defaults to the graph's global step.

  Returns:
    A float32 scalar tensor.

  Raises:
    ValueError: unknown policy or burn-in type, or missing multi_steps lists.
  """
  if global_step is None:
    global_step = tf.train.get_or_create_global_step()
  step = tf.cast(global_step, tf.int64)
  adjusted_step = tf.maximum(step - slow_start_step, 0)
  if decay_steps == 0.0:
    decay_steps = training_number_of_steps - slow_start_step
  decay_steps = max(float(decay_steps), 1.0)
  if learning_policy == "step":
    rate = tf.train.exponential_decay(base_learning_rate, adjusted_step,
                                      learning_rate_decay_step, learning_rate_decay_factor,
                                      staircase=True)
  elif learning_policy == "poly":
    rate = tf.train.polynomial_decay(base_learning_rate, adjusted_step, decay_steps,
                                     end_learning_rate, power=learning_power)
  elif learning_policy == "cosine":
    rate = tf.train.cosine_decay(base_learning_rate, adjusted_step,
                                 max(training_number_of_steps - slow_start_step, 1))
  elif learning_policy == "multi_steps":
    if not boundaries or not boundary_learning_rates:
      raise ConfigError("learning_policy multi_steps needs boundaries and boundary_learning_rates")
    if len(boundary_learning_rates) != len(boundaries) + 1:
      raise ConfigError(f"multi_steps needs one more rate than boundaries, got "
                       f"{len(boundaries)} boundaries and {len(boundary_learning_rates)} rates")
    rate = tf.train.piecewise_constant_decay(
        adjusted_step, [int(b) for b in boundaries],
        [float(r) for r in boundary_learning_rates])
  else:
    raise ConfigError(f"unknown learning_policy {learning_policy!r}; choose one of {POLICIES}")
  rate = tf.cast(rate, tf.float32)

  if slow_start_burnin_type == "none":
    adjusted_slow_start = tf.constant(float(slow_start_learning_rate))
  elif slow_start_burnin_type == "linear":
    fraction = tf.to_float(step) / float(max(slow_start_step, 1))
    adjusted_slow_start = (slow_start_learning_rate
                           + (base_learning_rate - slow_start_learning_rate) * fraction)
  else:
    raise ConfigError(f"unknown slow_start_burnin_type {slow_start_burnin_type!r}; "
                     "choose 'none' or 'linear'")
  return tf.where(step < slow_start_step, adjusted_slow_start, rate, name="learning_rate")


def learning_rate_from_config(cfg, global_step=None):
  """get_model_learning_rate with a deeplab.config.TrainConfig's fields."""
  return get_model_learning_rate(
      cfg.learning_policy, cfg.base_learning_rate, cfg.learning_rate_decay_step,
      cfg.learning_rate_decay_factor, cfg.training_number_of_steps, cfg.learning_power,
      cfg.slow_start_step, cfg.slow_start_learning_rate, cfg.slow_start_burnin_type,
      cfg.decay_steps, cfg.end_learning_rate, cfg.boundaries, cfg.boundary_learning_rates,
      global_step=global_step)

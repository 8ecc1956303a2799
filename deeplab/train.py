"""`python -m deeplab train`: the original train.py flags, then deeplab.training.trainer.train().

Flag names and defaults are the original's (reference/deeplab.md §2.1; model flags §3.1);
added: --save_interval_steps, --max_to_keep, --seed, --slow_start_burnin_type, --boundaries,
--boundary_learning_rates (cosine/multi_steps policies) and --result_json. Flags of the
original's distributed mode (--master, --task, --startup_delay_steps) are accepted and
ignored; --num_replicas > 1 and --num_ps_tasks > 0 are rejected (one multi-clone worker per job).
"""

from __future__ import annotations

import logging

from absl import flags

from deeplab import config as config_lib
from deeplab import model_flags
from deeplab.flag_util import define

log = logging.getLogger("deeplab.train")
FLAGS = flags.FLAGS
f = flags

model_flags.define_model_flags()

# Multi-GPU and (unsupported) replicas.
define(f.DEFINE_integer, "num_clones", 1, "Number of clones to deploy (one per GPU).")
define(f.DEFINE_boolean, "clone_on_cpu", False, "Use CPUs to deploy clones.")
define(f.DEFINE_integer, "num_replicas", 1, "Number of worker replicas (only 1 supported).")
define(f.DEFINE_integer, "startup_delay_steps", 15, "Ignored (replicas are not supported).")
define(f.DEFINE_integer, "num_ps_tasks", 0, "Number of parameter servers (only 0 supported).")
define(f.DEFINE_string, "master", "", "Ignored (single worker).")
define(f.DEFINE_integer, "task", 0, "Ignored (single worker).")
# Logging and checkpoints.
define(f.DEFINE_string, "train_logdir", None, "Where checkpoints and logs are written (or gs://).")
define(f.DEFINE_integer, "log_steps", 10, "Log the loss every n steps.")
define(f.DEFINE_integer, "save_interval_secs", 1200, "Save a checkpoint every n seconds (0: off).")
define(f.DEFINE_integer, "save_interval_steps", 0, "Also save every n steps (0: off).")
define(f.DEFINE_integer, "save_summaries_secs", 600, "Write summaries every n seconds.")
define(f.DEFINE_boolean, "save_summaries_images", False, "Write sample images to summaries.")
define(f.DEFINE_string, "profile_logdir", None, "Not supported; ignored with a warning.")
define(f.DEFINE_integer, "max_to_keep", 5, "Checkpoints to keep.")
# Optimizer and learning rate.
define(f.DEFINE_enum, "optimizer", "momentum", list(config_lib.OPTIMIZERS), "Optimizer.")
define(f.DEFINE_enum, "learning_policy", "poly", list(config_lib.LEARNING_POLICIES),
       "Learning rate policy.")
define(f.DEFINE_float, "base_learning_rate", .0001, "Base learning rate (0.007 on PASCAL aug).")
define(f.DEFINE_float, "decay_steps", 0.0, "Poly decay steps (0: training steps - slow start).")
define(f.DEFINE_float, "end_learning_rate", 0.0, "Poly end learning rate.")
define(f.DEFINE_float, "learning_rate_decay_factor", 0.1, "Step policy decay factor.")
define(f.DEFINE_integer, "learning_rate_decay_step", 2000, "Step policy decay interval.")
define(f.DEFINE_float, "learning_power", 0.9, "Poly power.")
define(f.DEFINE_integer, "training_number_of_steps", 30000, "Number of training steps.")
define(f.DEFINE_float, "momentum", 0.9, "Momentum.")
define(f.DEFINE_float, "adam_learning_rate", 0.001, "Adam learning rate (constant).")
define(f.DEFINE_float, "adam_epsilon", 1e-08, "Adam epsilon.")
define(f.DEFINE_integer, "slow_start_step", 0, "Train with a small learning rate for n steps.")
define(f.DEFINE_float, "slow_start_learning_rate", 1e-4, "Learning rate of the slow start.")
define(f.DEFINE_enum, "slow_start_burnin_type", "none", list(config_lib.BURNIN_TYPES),
       "'none': constant slow start; 'linear': rise to base_learning_rate.")
define(f.DEFINE_list, "boundaries", None, "multi_steps policy: step boundaries.")
define(f.DEFINE_list, "boundary_learning_rates", None, "multi_steps policy: rates (one more).")
# Batch, regularisation, crop, fine-tuning.
define(f.DEFINE_integer, "train_batch_size", 8, "Global batch size, split over the clones.")
define(f.DEFINE_float, "weight_decay", 0.00004, "Weight decay (0.0001 for ResNet).")
define(f.DEFINE_list, "train_crop_size", "513,513", "Image crop size [height, width].")
define(f.DEFINE_float, "last_layer_gradient_multiplier", 1.0, "Last layers' gradient multiplier.")
define(f.DEFINE_boolean, "upsample_logits", True, "Upsample logits (else downsample labels).")
define(f.DEFINE_float, "drop_path_keep_prob", 1.0, "NAS only; not supported.")
define(f.DEFINE_string, "tf_initial_checkpoint", None, "Initial checkpoint (local or gs://).")
define(f.DEFINE_boolean, "initialize_last_layer", True, "Initialise the last layers too.")
define(f.DEFINE_boolean, "last_layers_contain_logits_only", False,
       "Only logits count as last layers.")
define(f.DEFINE_boolean, "fine_tune_batch_norm", True, "Train batch norm (batch size > 12).")
define(f.DEFINE_float, "min_scale_factor", 0.5, "Minimum random scale.")
define(f.DEFINE_float, "max_scale_factor", 2., "Maximum random scale.")
define(f.DEFINE_float, "scale_factor_step_size", 0.25, "Random scale step (0: continuous).")
define(f.DEFINE_integer, "hard_example_mining_step", 0, "Anneal hard-pixel mining over n steps.")
define(f.DEFINE_float, "top_k_percent_pixels", 1.0, "Fraction of hardest pixels kept.")
define(f.DEFINE_integer, "quantize_delay_step", -1, "Not supported (must stay < 0).")
# Dataset.
define(f.DEFINE_string, "dataset", "pascal_voc_seg", "Dataset name (used without manifest.json).")
define(f.DEFINE_string, "train_split", "train", "Split to train on.")
define(f.DEFINE_string, "dataset_dir", None, "Folder (or gs://) with the TFRecords.")
define(f.DEFINE_integer, "seed", None, "Random seed (reproducible input order and init).")
define(f.DEFINE_string, "result_json", None, "Also write train_result.json here.")


def config_from_flags(fl, num_classes: int) -> config_lib.TrainConfig:
  """A TrainConfig from parsed flags and the dataset's class count (not validated)."""
  return config_lib.TrainConfig(
      model=model_flags.model_config_from_flags(fl, num_classes),
      dataset=fl.dataset, train_split=fl.train_split, dataset_dir=fl.dataset_dir,
      train_logdir=fl.train_logdir, num_clones=fl.num_clones, clone_on_cpu=fl.clone_on_cpu,
      num_replicas=fl.num_replicas, num_ps_tasks=fl.num_ps_tasks, log_steps=fl.log_steps,
      save_interval_secs=fl.save_interval_secs, save_interval_steps=fl.save_interval_steps,
      save_summaries_secs=fl.save_summaries_secs,
      save_summaries_images=fl.save_summaries_images, max_to_keep=fl.max_to_keep,
      optimizer=fl.optimizer, learning_policy=fl.learning_policy,
      base_learning_rate=fl.base_learning_rate, decay_steps=fl.decay_steps,
      end_learning_rate=fl.end_learning_rate,
      learning_rate_decay_factor=fl.learning_rate_decay_factor,
      learning_rate_decay_step=fl.learning_rate_decay_step, learning_power=fl.learning_power,
      training_number_of_steps=fl.training_number_of_steps, momentum=fl.momentum,
      adam_learning_rate=fl.adam_learning_rate, adam_epsilon=fl.adam_epsilon,
      slow_start_step=fl.slow_start_step, slow_start_learning_rate=fl.slow_start_learning_rate,
      slow_start_burnin_type=fl.slow_start_burnin_type, boundaries=fl.boundaries,
      boundary_learning_rates=fl.boundary_learning_rates,
      train_batch_size=fl.train_batch_size, weight_decay=fl.weight_decay,
      train_crop_size=fl.train_crop_size,
      last_layer_gradient_multiplier=fl.last_layer_gradient_multiplier,
      upsample_logits=fl.upsample_logits, tf_initial_checkpoint=fl.tf_initial_checkpoint or None,
      initialize_last_layer=fl.initialize_last_layer,
      last_layers_contain_logits_only=fl.last_layers_contain_logits_only,
      fine_tune_batch_norm=fl.fine_tune_batch_norm, min_scale_factor=fl.min_scale_factor,
      max_scale_factor=fl.max_scale_factor, scale_factor_step_size=fl.scale_factor_step_size,
      hard_example_mining_step=fl.hard_example_mining_step,
      top_k_percent_pixels=fl.top_k_percent_pixels, seed=fl.seed)


def main(argv) -> int:
  """Reads the flags, resolves the dataset's classes, trains; returns the exit code."""
  from deeplab.errors import UserInputError

  if len(argv) > 1:
    raise UserInputError(f"unexpected arguments {argv[1:]}; flags are written --name=value")
  missing = [n for n in ("dataset_dir", "train_logdir") if not getattr(FLAGS, n)]
  if missing:
    raise UserInputError("missing required flag(s): " + ", ".join("--" + n for n in missing))
  if FLAGS.quantize_delay_step >= 0:
    raise UserInputError("--quantize_delay_step >= 0 (quantization-aware training) is not "
                         "supported; leave it at -1")
  if FLAGS.drop_path_keep_prob != 1.0:
    raise UserInputError("--drop_path_keep_prob applies to NAS backbones, which are not "
                         "supported; leave it at 1.0")
  if FLAGS.profile_logdir:
    log.warning("--profile_logdir is not supported and is ignored")

  from deeplab.datasets.descriptors import get_dataset_info

  info = get_dataset_info(FLAGS.dataset_dir, FLAGS.dataset)
  info.num_examples(FLAGS.train_split)  # Unknown split: a clear error listing the splits.
  cfg = config_from_flags(FLAGS, info.num_classes).validate()

  from deeplab.training import trainer

  trainer.train(cfg, ignore_label=info.ignore_label, result_json=FLAGS.result_json)
  return 0

"""TrainConfig: the original train.py flags plus the model, each declared once."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Tuple

from deeplab.config.fields import coerce_tuples, setting
from deeplab.config.model import ModelConfig

OPTIMIZERS = ("momentum", "adam")
LEARNING_POLICIES = ("poly", "step", "cosine", "multi_steps")
BURNIN_TYPES = ("none", "linear")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Training settings (the original train.py flags) plus the model."""

  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  # Dataset.
  dataset: str = setting("pascal_voc_seg", "Dataset name (used without manifest.json).")
  train_split: str = setting("train", "Split to train on.")
  dataset_dir: Optional[str] = setting(None, "Folder (or gs://) with the TFRecords.",
                                       kind="string", path=True, required=True)
  train_logdir: Optional[str] = setting(
      None, "Where checkpoints and logs are written (or gs://).", kind="string", path=True,
      required=True)
  # Multi-GPU.
  num_clones: int = setting(1, "Number of clones to deploy (one per GPU).")
  clone_on_cpu: bool = setting(False, "Use CPUs to deploy clones.")
  num_replicas: int = setting(1, "Number of worker replicas (each runs num_clones clones).")
  num_ps_tasks: int = setting(
      0, "Number of parameter servers (0: variables stay on the worker; >= 1 with replicas).")
  # Logging and checkpoints.
  log_steps: int = setting(10, "Log the loss every n steps.")
  save_interval_secs: int = setting(1200, "Save a checkpoint every n seconds (0: off).")
  save_interval_steps: int = setting(0, "Also save every n steps (0: off).")
  save_summaries_secs: int = setting(600, "Write summaries every n seconds.")
  save_summaries_images: bool = setting(False, "Write sample images to summaries.")
  max_to_keep: int = setting(5, "Checkpoints to keep.")
  # Optimizer and learning rate.
  optimizer: str = setting("momentum", "Optimizer.", choices=OPTIMIZERS)
  learning_policy: str = setting("poly", "Learning rate policy.", choices=LEARNING_POLICIES)
  base_learning_rate: float = setting(0.0001, "Base learning rate (0.007 on PASCAL aug).")
  decay_steps: float = setting(0.0, "Poly decay steps (0: training steps - slow start).")
  end_learning_rate: float = setting(0.0, "Poly end learning rate.")
  learning_rate_decay_factor: float = setting(0.1, "Step policy decay factor.")
  learning_rate_decay_step: int = setting(2000, "Step policy decay interval.")
  learning_power: float = setting(0.9, "Poly power.")
  training_number_of_steps: int = setting(30000, "Number of training steps.")
  drop_path_keep_prob: float = setting(
      1.0, "Probability to keep each path in the NAS cell when training.")
  momentum: float = setting(0.9, "Momentum.")
  adam_learning_rate: float = setting(0.001, "Adam learning rate (constant).")
  adam_epsilon: float = setting(1e-08, "Adam epsilon.")
  slow_start_step: int = setting(0, "Train with a small learning rate for n steps.")
  slow_start_learning_rate: float = setting(1e-4, "Learning rate of the slow start.")
  slow_start_burnin_type: str = setting(
      "none", "'none': constant slow start; 'linear': rise to base_learning_rate.",
      choices=BURNIN_TYPES)
  boundaries: Optional[Tuple[int, ...]] = setting(
      None, "multi_steps policy: step boundaries.", kind="list")
  boundary_learning_rates: Optional[Tuple[float, ...]] = setting(
      None, "multi_steps policy: rates (one more).", kind="list")
  # Batch, regularisation, crop, fine-tuning.
  train_batch_size: int = setting(8, "Global batch size, split over the clones.")
  weight_decay: float = setting(0.00004, "Weight decay (0.0001 for ResNet).")
  train_crop_size: Tuple[int, int] = setting((513, 513), "Image crop size [height, width].",
                                             kind="list")
  last_layer_gradient_multiplier: float = setting(1.0, "Last layers' gradient multiplier.")
  upsample_logits: bool = setting(True, "Upsample logits (else downsample labels).")
  tf_initial_checkpoint: Optional[str] = setting(
      None, "Initial checkpoint (local or gs://).", kind="string", path=True)
  initialize_last_layer: bool = setting(True, "Initialise the last layers too.")
  last_layers_contain_logits_only: bool = setting(False, "Only logits count as last layers.")
  fine_tune_batch_norm: bool = setting(True, "Train batch norm (batch size > 12).")
  # Augmentation.
  min_scale_factor: float = setting(0.5, "Minimum random scale.")
  max_scale_factor: float = setting(2.0, "Maximum random scale.")
  scale_factor_step_size: float = setting(0.25, "Random scale step (0: continuous).")
  # Hard example mining.
  hard_example_mining_step: int = setting(0, "Anneal hard-pixel mining over n steps.")
  top_k_percent_pixels: float = setting(1.0, "Fraction of hardest pixels kept.")
  seed: Optional[int] = setting(None, "Random seed (reproducible input order and init).",
                                kind="integer")

  def __post_init__(self):
    if isinstance(self.model, Mapping):
      from deeplab.config.io import from_dict
      object.__setattr__(self, "model", from_dict(ModelConfig, self.model))
    coerce_tuples(self, {"train_crop_size": int, "boundaries": int,
                         "boundary_learning_rates": float})
    if self.tf_initial_checkpoint == "":
      object.__setattr__(self, "tf_initial_checkpoint", None)

  @property
  def clone_batch_size(self) -> int:
    return self.train_batch_size // self.num_clones

  def problems(self) -> list:
    """Every invalid setting, each with its fix; [] when valid."""
    out = list(self.model.problems())
    if not isinstance(self.num_clones, int) or self.num_clones < 1:
      out.append(f"num_clones must be an integer >= 1 (one clone per GPU), got {self.num_clones!r}")
    elif not isinstance(self.train_batch_size, int) or self.train_batch_size < 1:
      out.append(f"train_batch_size must be an integer >= 1, got {self.train_batch_size!r}")
    elif self.train_batch_size % self.num_clones:
      out.append(f"train_batch_size {self.train_batch_size} does not divide evenly over "
                 f"num_clones {self.num_clones}; use a multiple of {self.num_clones}")
    if self.model.quantize_delay_step >= 0 and self.num_clones != 1:
      out.append(f"quantize_delay_step {self.model.quantize_delay_step} (quantization-aware "
                 f"training) supports one clone only, as the original; got num_clones "
                 f"{self.num_clones}: pass --num_clones=1")
    if not isinstance(self.num_replicas, int) or self.num_replicas < 1:
      out.append(f"num_replicas must be an integer >= 1, got {self.num_replicas!r}")
    if not isinstance(self.num_ps_tasks, int) or self.num_ps_tasks < 0:
      out.append(f"num_ps_tasks must be an integer >= 0, got {self.num_ps_tasks!r}")
    elif isinstance(self.num_replicas, int) and self.num_replicas > 1 and self.num_ps_tasks < 1:
      out.append(f"num_replicas {self.num_replicas} needs num_ps_tasks >= 1: the replicas share "
                 "their variables through parameter-server tasks (as the original's)")
    crop = self.train_crop_size
    if not crop or len(crop) != 2 or any(c < 1 for c in crop):
      out.append(f"train_crop_size must be a pair of positive integers like 513,513, got {crop!r}")
    if self.training_number_of_steps < 1:
      out.append(f"training_number_of_steps must be >= 1, got {self.training_number_of_steps}")
    if not 0 < self.drop_path_keep_prob <= 1:
      out.append(f"drop_path_keep_prob must be in (0, 1], got {self.drop_path_keep_prob}")
    if self.optimizer not in OPTIMIZERS:
      out.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
    if self.learning_policy not in LEARNING_POLICIES:
      out.append(f"learning_policy must be one of {LEARNING_POLICIES}, got {self.learning_policy!r}")
    if self.learning_policy == "multi_steps":
      b, r = self.boundaries or (), self.boundary_learning_rates or ()
      if not b or len(r) != len(b) + 1:
        out.append("learning_policy multi_steps needs boundaries and boundary_learning_rates "
                   "with one more rate than boundaries")
    if self.slow_start_burnin_type not in BURNIN_TYPES:
      out.append(f"slow_start_burnin_type must be one of {BURNIN_TYPES}")
    if self.base_learning_rate <= 0:
      out.append(f"base_learning_rate must be > 0, got {self.base_learning_rate}")
    if not 0 < self.top_k_percent_pixels <= 1:
      out.append(f"top_k_percent_pixels must be in (0, 1], got {self.top_k_percent_pixels}")
    if self.min_scale_factor <= 0 or self.max_scale_factor < self.min_scale_factor:
      out.append(f"scale factors must satisfy 0 < min_scale_factor <= max_scale_factor, got "
                 f"{self.min_scale_factor}, {self.max_scale_factor}")
    if self.log_steps < 1:
      out.append(f"log_steps must be >= 1, got {self.log_steps}")
    for name in ("save_interval_secs", "save_interval_steps", "save_summaries_secs",
                 "slow_start_step", "hard_example_mining_step"):
      if getattr(self, name) < 0:
        out.append(f"{name} must be >= 0, got {getattr(self, name)}")
    if self.max_to_keep < 1:
      out.append(f"max_to_keep must be >= 1, got {self.max_to_keep}")
    return out

  def validate(self) -> "TrainConfig":
    from deeplab.config.io import raise_problems
    raise_problems(self.problems() + self.model.input_file_problems(),
                   "training configuration")
    return self

  def to_dict(self) -> dict:
    from deeplab.config.io import to_dict
    return to_dict(self)

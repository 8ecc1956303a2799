"""Every setting of every command, declared once (pure Python, no TensorFlow).

Resolution order: defaults -> the run's config.json -> explicit flags -> validate() -> freeze ->
write config.json. Operators import this package to validate a run at trigger time.

  fields.py    setting(): a dataclass field that is also a flag (default, help, kind, path)
  model.py     ModelConfig (the original common.py flags)
  training.py  TrainConfig (the original train.py flags)
  stages.py    EvalConfig, VisConfig, ExportConfig
  commands.py  which settings each command takes; flags tolerated for compatibility
  io.py        config.json in and out
"""

from deeplab.config.fields import check_name, setting
from deeplab.config.io import dumps, from_dict, load_train_config, to_dict
from deeplab.config.model import (MEAN_RGB, MEAN_SUBTRACTED_VARIANTS, MERGE_METHODS,
                                  OUTPUT_STRIDES, SUPPORTED_VARIANTS, ModelConfig,
                                  default_atrous_rates, mean_pixel)
from deeplab.config.training import BURNIN_TYPES, LEARNING_POLICIES, OPTIMIZERS, TrainConfig
from deeplab.errors import ConfigError

__all__ = [
    "BURNIN_TYPES", "ConfigError", "LEARNING_POLICIES", "MEAN_RGB", "MEAN_SUBTRACTED_VARIANTS",
    "MERGE_METHODS",
    "OPTIMIZERS", "OUTPUT_STRIDES", "SUPPORTED_VARIANTS", "ModelConfig", "TrainConfig",
    "check_name", "default_atrous_rates", "dumps", "from_dict", "load_train_config",
    "mean_pixel", "setting", "to_dict",
]

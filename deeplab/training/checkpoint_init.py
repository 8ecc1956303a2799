"""Initialisation from --tf_initial_checkpoint (docs/compatibility.md).

As the original: every global variable except global_step (and the last layers when
initialize_last_layer is False) is restored when the checkpoint has it; missing ones keep
their initial value. Unlike the original, a variable whose shape differs from the checkpoint
(a different class count) is skipped with one warning naming it, instead of the cryptic
"Assign requires shapes of both tensors to match".
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Optional, Sequence

from deeplab.compat import tf
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.train")

_SUFFIX_RE = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


def _strip_suffix(path: str) -> str:
  return _SUFFIX_RE.sub("", path)


def _local_prefix(path: str) -> Optional[str]:
  """A checkpoint prefix for a local prefix, file or folder, or None."""
  path = _strip_suffix(path)
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest and os.path.exists(latest + ".index"):
      return latest
    indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
    if len(indexes) == 1:
      return os.path.join(path, indexes[0][:-len(".index")])
    return None
  if os.path.exists(path + ".index"):
    return path
  return None


def _stage_gcs_checkpoint(uri: str, cache_dir: Optional[str] = None) -> str:
  """Downloads a gs:// checkpoint (prefix or folder) to the verified cache; local prefix."""
  from deeplab import storage

  try:
    local = storage.stage_in(_strip_suffix(uri.rstrip("/")), cache_dir)
  except storage.NotFoundError:
    return ""
  return _local_prefix(local) or ""


def stage_initial_checkpoint(path: str, cache_dir: Optional[str] = None) -> str:
  """A local checkpoint prefix for a local or gs:// checkpoint prefix, file or folder.

  Raises:
    UserInputError: nothing that looks like a checkpoint is there.
  """
  from deeplab import storage

  local = _stage_gcs_checkpoint(path, cache_dir) if storage.is_gcs(path) else _local_prefix(path)
  if not local or not os.path.exists(local + ".index"):
    raise UserInputError(
        f"--tf_initial_checkpoint {path!r} is not a TensorFlow checkpoint: expected a prefix "
        "such as .../model.ckpt (with model.ckpt.index and model.ckpt.data-*) or a folder "
        "holding one; check the path, or leave the flag empty to start from random weights")
  return local


def _matches(name: str, scopes: Sequence[str]) -> bool:
  return any(re.match(s, name) for s in scopes)


def get_model_init_fn(checkpoint_prefix: str, exclude_scopes: Sequence[str] = (),
                      variables: Optional[Sequence] = None,
                      ignore_missing_vars: bool = True) -> Callable:
  """Builds a function init_fn(sess) that restores variables from a local checkpoint.

  Must be called while the graph is still open (it creates a Saver).

  Args:
    checkpoint_prefix: local checkpoint prefix (see stage_initial_checkpoint).
    exclude_scopes: variable-name prefixes not to restore (e.g. the last layers).
    variables: candidates; default all global variables. global_step is never restored.
    ignore_missing_vars: skip variables the checkpoint lacks (else raise).

  Returns:
    init_fn(sess); init_fn.restored / .skipped_shape / .missing list the variable names.

  Raises:
    UserInputError: the checkpoint shares no variable with the model (wrong model_variant?),
      or a variable is missing and ignore_missing_vars is False.
  """
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  ckpt_shapes = reader.get_variable_to_shape_map()
  if variables is None:
    variables = tf.global_variables()
  var_list, skipped_shape, missing = {}, [], []
  for var in variables:
    name = var.op.name
    if name == "global_step" or name.endswith("/global_step") or _matches(name, exclude_scopes):
      continue
    if name not in ckpt_shapes:
      missing.append(name)
      continue
    want = var.shape.as_list()
    have = list(ckpt_shapes[name])
    if want != have:
      skipped_shape.append((name, want, have))
      continue
    var_list[name] = var

  model_names = {v.op.name for v in tf.model_variables()}
  if model_names and not any(n in model_names for n in var_list) and not any(
      n in model_names for n, _, _ in skipped_shape):
    sample = ", ".join(sorted(ckpt_shapes)[:3])
    expect = ", ".join(sorted(model_names)[:3])
    raise UserInputError(
        f"--tf_initial_checkpoint {checkpoint_prefix!r} shares no variable with the model "
        f"(model has e.g. {expect}; checkpoint has e.g. {sample}); check --model_variant "
        "and that the checkpoint is a DeepLab/slim checkpoint of that backbone")
  if missing and not ignore_missing_vars:
    raise UserInputError(f"checkpoint {checkpoint_prefix!r} lacks variables {missing[:10]}")
  if skipped_shape:
    details = "; ".join(f"{n} model {w} vs checkpoint {h}" for n, w, h in skipped_shape)
    log.warning(
        "%d variable(s) have a different shape in %s and are NOT initialised from it "
        "(they start from random values): %s. This is expected when the dataset has a "
        "different number of classes than the checkpoint (e.g. a model-zoo checkpoint "
        "trained on 21 PASCAL classes); pass --initialize_last_layer=false "
        "(with --last_layers_contain_logits_only=true to keep the ASPP/decoder weights) "
        "to exclude them explicitly.", len(skipped_shape), checkpoint_prefix, details)
  if missing:
    log.info("%d variable(s) are not in %s and keep their initial value (e.g. %s)",
             len(missing), checkpoint_prefix, ", ".join(missing[:3]))
  log.info("initialising %d variable(s) from %s", len(var_list), checkpoint_prefix)

  saver = tf.train.Saver(var_list, reshape=False, sharded=False) if var_list else None

  def init_fn(sess) -> None:
    if saver is not None:
      saver.restore(sess, checkpoint_prefix)

  init_fn.restored = sorted(var_list)
  init_fn.skipped_shape = [n for n, _, _ in skipped_shape]
  init_fn.missing = missing
  return init_fn

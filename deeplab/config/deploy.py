"""The settings of `python -m deeplab deploy`: push an export to serving, checked by a request."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab.config.fields import setting

DEFAULT_KEEP_VERSIONS = 5
# The DAGs' serving base path is <storage root>/<SERVING_FOLDER> unless
# DEEPLAB_SERVING_BASE_PATH says otherwise (operators/settings.py: serving_base_path).
SERVING_FOLDER = "serving"


@dataclasses.dataclass(frozen=True)
class DeployConfig:
  """Where the export comes from, where it is served, and what proves it serves correctly."""

  export_path: Optional[str] = setting(
      None, "The export folder (python -m deeplab export --export_path): its saved_model/ is "
      "pushed; its export_result.json names the checkpoint and the inference policy.",
      kind="string", path=True, required=True)
  serving_base_path: Optional[str] = setting(
      None, "TF Serving's model base path (local or gs://): the model goes to "
      "<serving_base_path>/<model_name>/<version>/. The DAGs default to <storage root>/serving.",
      kind="string", path=True, required=True)
  model_name: Optional[str] = setting(
      None, "The served model's name: the folder under --serving_base_path.", kind="string",
      required=True)
  push_id: Optional[str] = setting(
      None, "Identifies this push across retries: a version already pushed with this id is "
      "reused, not written again. Default: derived from the export's export_result.json, so "
      "deploying the same export twice is a no-op; pass a new id to push it again.",
      kind="string")
  keep_versions: int = setting(
      DEFAULT_KEEP_VERSIONS, "Versions to keep (0: all); the served version and the one served "
      "before it (the rollback target) are never removed.")
  protect_versions: Tuple[int, ...] = setting(
      (), "Versions retention must never remove (e.g. one pinned in a server's config).",
      kind="multi_integer")
  checkpoint_path: Optional[str] = setting(
      None, "The checkpoint whose evaluation predictions the served model must reproduce "
      "(default: the one the export recorded).", kind="string", path=True)
  config_json: Optional[str] = setting(
      None, "The run's config.json for that checkpoint (default: next to it or one folder up).",
      kind="string", path=True)
  dataset_dir: Optional[str] = setting(
      None, "Dataset whose images the request check sends (default: synthetic images).",
      kind="string", path=True)
  check_split: str = setting("val", "Split the request check takes images from.")
  num_check_images: int = setting(3, "Images the request check sends (>= 1).")

  def __post_init__(self):
    object.__setattr__(self, "protect_versions", tuple(int(v) for v in self.protect_versions))

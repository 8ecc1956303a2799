"""Is a dataset folder a complete conversion? Asked by build-tfrecords ("already converted")
and by resolve_config (skip the conversion), so both mean the same thing. Pure Python: no
TensorFlow needed to ask.
"""

from typing import Optional

from deeplab import storage
from deeplab.datasets.features import MANIFEST


def read_manifest(output_dir: str) -> Optional[dict]:
  uri = storage.join(output_dir, MANIFEST)
  return storage.read_json(uri) if storage.exists(uri) else None


def is_complete(output_dir: str, manifest: dict) -> bool:
  """Every shard the manifest lists is there with its size (local or gs://: a cut-off copy or
  upload, or a shard deleted since, must be converted again, not taken as done)."""
  sizes = storage.file_sizes(output_dir)
  for split in manifest.get("splits", {}).values():
    for shard in split.get("shards", []):
      if sizes.get(shard["name"]) != shard["bytes"]:
        return False
  return True


def is_converted(output_dir: str) -> bool:
  """manifest.json is there and every shard it lists is whole."""
  manifest = read_manifest(output_dir)
  return manifest is not None and is_complete(output_dir, manifest)
